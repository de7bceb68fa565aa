package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/fleetreset/fleetreset/rollout"
	"github.com/redis/go-redis/v9"
)

// Webhook hook steps that answered 202 wait for an external system to
// complete them with their one-time token (package hook). One hash per
// rollout holds the tokens and their results:
//
//	B hooks   hash   i:<sha256(token)> → the instance ID (registered),
//	                 r:<sha256(token)> → continue | abandon (completed)
//
// Tokens are kept only as their SHA-256: a Redis dump does not hand out
// the power to complete steps.

// Errors of hook completion.
var (
	// ErrHookNotFound: no hook step of the rollout has that token. It
	// matches ErrNotFound too.
	ErrHookNotFound error = hookNotFound{}
	// ErrHookCompleted: the step was completed already, with another result.
	ErrHookCompleted = errors.New("ledger: the hook step was already completed with another result")
)

// Results a step is completed with (rollout's hook failure policies).
const (
	hookContinue = rollout.HookContinue
	hookAbandon  = rollout.HookAbandon
)

type hookNotFound struct{}

func (hookNotFound) Error() string        { return "ledger: no hook step waits for that token" }
func (hookNotFound) Is(target error) bool { return target == ErrNotFound }

func (k keys) hooks() string { return k.b + "hooks" }

// hookField names a token's fields without the token itself.
func hookField(kind, token string) string {
	sum := sha256.Sum256([]byte(token))
	return kind + ":" + hex.EncodeToString(sum[:])
}

// completeHookScript records a token's result once.
//
// KEYS[1] B hooks; ARGV[1] the token's registration field, ARGV[2] its
// result field, ARGV[3] the result.
// Returns {code, result}: code is missing (no such token), set (recorded
// now) or had (recorded earlier, with result).
var completeHookScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {'missing', ''} end
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if cur then return {'had', cur} end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return {'set', ARGV[3]}
`)

// RegisterHookToken records that a webhook step of instanceID in rollout
// waits for token, so that CompleteHook accepts it. Registering a token
// again changes nothing.
func (l *Ledger) RegisterHookToken(ctx context.Context, rollout, token, instanceID string) error {
	if token == "" {
		return errors.New("ledger: register hook token: empty token")
	}
	if err := l.rdb.HSet(ctx, l.keys(rollout).hooks(), hookField("i", token), instanceID).Err(); err != nil {
		return fmt.Errorf("ledger: register hook token of %s in %s: %w", instanceID, rollout, err)
	}
	return nil
}

// CompleteHook completes the webhook step of rollout waiting for token with
// result, "continue" or "abandon" (rollout.HookContinue, HookAbandon). An
// unknown token is ErrHookNotFound (which is ErrNotFound); completing a
// step again with the same result is nil, with another ErrHookCompleted.
func (l *Ledger) CompleteHook(ctx context.Context, rollout, token, result string) error {
	if result != hookContinue && result != hookAbandon {
		return fmt.Errorf("ledger: complete hook: result %q: want %s or %s", result, hookContinue, hookAbandon)
	}
	if token == "" {
		return fmt.Errorf("ledger: complete hook in %s: %w", rollout, ErrHookNotFound)
	}
	res, err := completeHookScript.Run(ctx, l.rdb, []string{l.keys(rollout).hooks()}, hookField("i", token), hookField("r", token), result).StringSlice()
	if err != nil {
		return fmt.Errorf("ledger: complete hook in %s: %w", rollout, err)
	}
	switch {
	case res[0] == "missing":
		return fmt.Errorf("ledger: complete hook in %s: %w", rollout, ErrHookNotFound)
	case res[0] == "had" && res[1] != result:
		return fmt.Errorf("%w (%s)", ErrHookCompleted, res[1])
	}
	return nil
}

// HookResult returns the result the step waiting for token was completed
// with, ok false while it is not (or the token is unknown). It implements
// hook.Completions.
func (l *Ledger) HookResult(ctx context.Context, rollout, token string) (string, bool, error) {
	res, err := l.rdb.HGet(ctx, l.keys(rollout).hooks(), hookField("r", token)).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("ledger: hook result in %s: %w", rollout, err)
	}
	return res, true, nil
}
