package redisfit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// NoEviction is the only maxmemory-policy fleetreset accepts: with it a full
// Redis refuses writes (see IsOOM) instead of dropping keys.
const NoEviction = "noeviction"

// ErrPolicyUnknown means the server answered neither CONFIG GET
// maxmemory-policy nor INFO memory with a policy.
var ErrPolicyUnknown = errors.New("redisfit: maxmemory-policy unknown: CONFIG GET and INFO memory do not tell")

// EvictionError reports a Redis whose maxmemory-policy may evict keys.
type EvictionError struct {
	// Addr is the server's host:port, as the caller named it.
	Addr string
	// Policy is the server's maxmemory-policy, e.g. "allkeys-lru".
	Policy string
}

func (e *EvictionError) Error() string {
	return fmt.Sprintf("redis at %s has maxmemory-policy %s: it may evict keys, and an evicted ledger or queue key silently corrupts a rollout's counters and leaves it running forever; "+
		"run CONFIG SET maxmemory-policy noeviction there and set \"maxmemory-policy noeviction\" in redis.conf (or the managed Redis's parameters) so that it survives a restart",
		e.Addr, e.Policy)
}

// EvictionPolicy returns the server's maxmemory-policy. It asks CONFIG GET
// first; when CONFIG answers with an error (disabled, renamed, refused by
// ACL) or without the parameter, it reads INFO memory. It returns
// ErrPolicyUnknown when neither tells, and a connection or context error as
// it is.
func EvictionPolicy(ctx context.Context, c redis.Cmdable) (string, error) {
	cfg, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	switch {
	case err == nil && cfg["maxmemory-policy"] != "":
		return cfg["maxmemory-policy"], nil
	case err != nil && !isReply(err):
		return "", fmt.Errorf("redisfit: CONFIG GET maxmemory-policy: %w", err)
	}
	info, err := c.Info(ctx, "memory").Result()
	switch {
	case err != nil && !isReply(err):
		return "", fmt.Errorf("redisfit: INFO memory: %w", err)
	case err != nil:
		return "", ErrPolicyUnknown
	}
	if p := infoField(info, "maxmemory_policy"); p != "" {
		return p, nil
	}
	return "", ErrPolicyUnknown
}

// CheckEviction returns an *EvictionError unless the server at addr runs
// with maxmemory-policy noeviction. When the policy cannot be read it logs
// one warning on log and returns nil: refusing every managed Redis that
// hides its configuration would be worse than trusting the operator.
func CheckEviction(ctx context.Context, c redis.Cmdable, addr string, log *slog.Logger) error {
	policy, err := EvictionPolicy(ctx, c)
	switch {
	case errors.Is(err, ErrPolicyUnknown):
		if log != nil {
			log.Warn("cannot read the Redis eviction policy (CONFIG GET and INFO memory do not tell); make sure it is maxmemory-policy noeviction, since an evicting Redis silently corrupts rollouts",
				"addr", addr)
		}
		return nil
	case err != nil:
		return err
	case policy != NoEviction:
		return &EvictionError{Addr: addr, Policy: policy}
	}
	return nil
}

// isReply reports whether err is the server's answer (an error reply), as
// opposed to a failure to reach it.
func isReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// infoField returns the value of key in INFO's "key:value" lines.
func infoField(info, key string) string {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok && k == key {
			return v
		}
	}
	return ""
}
