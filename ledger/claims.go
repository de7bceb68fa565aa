package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/fleetreset/fleetreset/rollout"
)

// Conflict is an instance that another rollout holds.
type Conflict struct {
	InstanceID string
	Rollout    string
	// InFlight is set when Rollout is aborted but still has the instance
	// in hand: its reset call under way with no answer yet, or drained from
	// its load balancers. The instance is free once the call is answered
	// and its weights are back.
	InFlight bool
}

// maxConflicts is how many conflicts Claim reports at most.
const maxConflicts = 10

// claimRounds bounds how often Claim tries to take over instances whose
// owners it found dead: each round may meet a new owner that claimed
// them in the meantime.
const claimRounds = 3

// pipeChunk is how many script calls one pipeline carries.
const pipeChunk = 2000

// Claim claims instances for a rollout, all or nothing: when any is held by
// another active rollout, nothing is claimed (the claims this call made are
// taken back) and the conflicts, at most ten, are returned in the order of
// ids.
//
// Each instance's claim is its own key and slot (see claimScript), claimed
// by one script call, pipelined. Two concurrent Claims over the same
// instances never both succeed; both may fail, and say so. A Claim cut off
// by an error leaves its claims owned by a rollout without a record, which
// block others only while the claiming mark lasts (applyLease).
func (l *Ledger) Claim(ctx context.Context, rollout string, ids []string) ([]Conflict, error) {
	// The mark first: from the first claim on, others see this rollout
	// live although it has no record yet.
	if err := l.rdb.Set(ctx, l.keys(rollout).claiming(), "1", applyLease).Err(); err != nil {
		return nil, fmt.Errorf("ledger: claim for %s: mark: %w", rollout, err)
	}
	order := make(map[string]int, len(ids))
	for i, id := range ids {
		order[id] = i
	}
	var (
		taken     []string              // claimed by this call
		conflicts []Conflict            // held by live owners
		pend      = ids                 // still to claim
		displace  = map[string]string{} // instance → dead owner to take it from
	)
	fail := func(err error) ([]Conflict, error) {
		// Best effort: what is not taken back is freed with the mark.
		_, _ = l.unclaim(context.WithoutCancel(ctx), rollout, taken)
		return nil, fmt.Errorf("ledger: claim for %s: %w", rollout, err)
	}
	for round := 0; len(pend) > 0; round++ {
		replies, err := l.claimEach(ctx, rollout, pend, displace)
		if err != nil {
			return fail(err)
		}
		held := map[string]string{}
		for i, res := range replies {
			switch {
			case len(res) == 1 && res[0] == "new":
				taken = append(taken, pend[i])
			case len(res) == 2 && res[0] == "held":
				held[pend[i]] = res[1]
			case len(res) == 1 && res[0] == "mine":
			default:
				return fail(fmt.Errorf("unexpected reply %v", res))
			}
		}
		live, inFlight, err := l.holdersLive(ctx, held)
		if err != nil {
			return fail(err)
		}
		pend = nil
		for id, owner := range held {
			// The rollback of an aborted owner takes over what it still
			// keeps out of service (an unhealthy instance left at weight 0
			// is the rollback's to reinstall and give back); nothing else
			// does. Its calls in flight it waits out (engine.Rollback).
			busy := inFlight[id] && !isRollbackOf(rollout, owner)
			if live[owner] || busy || round+1 >= claimRounds {
				conflicts = append(conflicts, Conflict{InstanceID: id, Rollout: owner, InFlight: inFlight[id]})
				continue
			}
			pend = append(pend, id)
			displace[id] = owner
		}
		slices.SortFunc(pend, func(a, b string) int { return order[a] - order[b] })
		if len(conflicts) > 0 {
			break
		}
	}
	if len(conflicts) == 0 {
		return nil, nil
	}
	if _, err := l.unclaim(ctx, rollout, taken); err != nil {
		return nil, fmt.Errorf("ledger: claim for %s: take back after a conflict: %w", rollout, err)
	}
	slices.SortFunc(conflicts, func(a, b Conflict) int { return order[a.InstanceID] - order[b.InstanceID] })
	return conflicts[:min(len(conflicts), maxConflicts)], nil
}

// claimEach runs claimScript's decision for every instance of ids and
// returns each one's reply: one call per instance on a cluster, up to
// batchKeys per call (claimBatchScript) on one server.
func (l *Ledger) claimEach(ctx context.Context, rollout string, ids []string, displace map[string]string) ([][]string, error) {
	out := make([][]string, len(ids))
	if l.perKey {
		cmds, err := l.runEach(ctx, claimScript, len(ids), func(i int) ([]string, []any) {
			return []string{l.claimKey(ids[i])}, []any{rollout, displace[ids[i]]}
		})
		if err != nil {
			return nil, err
		}
		for i, c := range cmds {
			out[i], _ = c.StringSlice()
		}
		return out, nil
	}
	batches := (len(ids) + batchKeys - 1) / batchKeys
	cmds, err := l.runEach(ctx, claimBatchScript, batches, func(b int) ([]string, []any) {
		part := ids[b*batchKeys : min((b+1)*batchKeys, len(ids))]
		keys := make([]string, len(part))
		argv := make([]any, 1, len(part)+1)
		argv[0] = rollout
		for i, id := range part {
			keys[i] = l.claimKey(id)
			argv = append(argv, displace[id])
		}
		return keys, argv
	})
	if err != nil {
		return nil, err
	}
	for b, c := range cmds {
		replies, err := c.StringSlice()
		if err != nil {
			return nil, err
		}
		for i, r := range replies {
			verdict, owner, _ := strings.Cut(r, " ")
			if owner != "" {
				out[b*batchKeys+i] = []string{verdict, owner}
			} else {
				out[b*batchKeys+i] = []string{verdict}
			}
		}
	}
	return out, nil
}

// batchKeys is how many claim keys one call of the batch scripts takes on
// one server.
const batchKeys = 1000

// holdersLive judges each distinct owner in held (instance → owner) by
// ownerScript on the owner's slot. An aborted owner is dead except for the
// instances it still has out of service (busy: a reset call in flight, or
// drained): those it holds until they are back, so no other rollout
// resets or drains them meanwhile. live is per owner, inFlight per
// instance.
func (l *Ledger) holdersLive(ctx context.Context, held map[string]string) (live map[string]bool, inFlight map[string]bool, err error) {
	var owners []string
	seen := map[string]bool{}
	for _, o := range held {
		if !seen[o] {
			seen[o] = true
			owners = append(owners, o)
		}
	}
	cmds, err := l.runEach(ctx, ownerScript, len(owners), func(i int) ([]string, []any) {
		k := l.keys(owners[i])
		return []string{k.record(), k.applying(), k.claiming()}, nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("judge owners: %w", err)
	}
	live = make(map[string]bool, len(owners))
	aborted := map[string]bool{}
	for i, c := range cmds {
		n, _ := c.Int()
		live[owners[i]] = n == 1
		aborted[owners[i]] = n == 2
	}
	var ids []string
	for id, o := range held {
		if aborted[o] {
			ids = append(ids, id)
		}
	}
	inFlight = map[string]bool{}
	for start := 0; start < len(ids); start += pipeChunk {
		part := ids[start:min(start+pipeChunk, len(ids))]
		busy, err := l.busy(ctx, part, func(id string) string { return held[id] })
		if err != nil {
			return nil, nil, fmt.Errorf("judge owners: %w", err)
		}
		for i, id := range part {
			inFlight[id] = busy[i]
		}
	}
	return live, inFlight, nil
}

// busy reports, for each of ids in the rollout ownerOf names, whether the
// rollout still has it in hand: its reset call under way with no answer
// yet (calling: the request may still reach the cloud, after another
// rollout's describe saw nothing), or drained with its weights not yet
// given back. An aborted rollout keeps such instances until they are back.
// A reinstall the cloud accepted (resetting) is not kept: the cloud shows
// it running, and a new rollout adopts it instead of calling.
func (l *Ledger) busy(ctx context.Context, ids []string, ownerOf func(id string) string) ([]bool, error) {
	pipe := l.rdb.Pipeline()
	sts := make([]*redis.StringCmd, len(ids))
	drained := make([]*redis.BoolCmd, len(ids))
	for i, id := range ids {
		k := l.keys(ownerOf(id))
		sts[i] = pipe.HGet(ctx, k.instance(id), "st")
		drained[i] = pipe.SIsMember(ctx, k.drained(), id)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]bool, len(ids))
	for i := range ids {
		out[i] = InstanceState(sts[i].Val()) == Calling || drained[i].Val()
	}
	return out, nil
}

// Unclaim releases the claims a rollout holds on ids.
func (l *Ledger) Unclaim(ctx context.Context, rollout string, ids []string) error {
	if _, err := l.unclaim(ctx, rollout, ids); err != nil {
		return fmt.Errorf("ledger: unclaim for %s: %w", rollout, err)
	}
	return nil
}

// unclaim releases the claims rollout holds on ids and returns how many it
// released, counting those of the calls that succeeded even on error.
func (l *Ledger) unclaim(ctx context.Context, rollout string, ids []string) (int, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = l.claimKey(id)
	}
	return l.unclaimKeys(ctx, rollout, keys)
}

// unclaimKeys is unclaim of claim keys.
func (l *Ledger) unclaimKeys(ctx context.Context, rollout string, keys []string) (int, error) {
	if !l.perKey {
		batches := (len(keys) + batchKeys - 1) / batchKeys
		cmds, err := l.runEach(ctx, unclaimBatchScript, batches, func(b int) ([]string, []any) {
			return keys[b*batchKeys : min((b+1)*batchKeys, len(keys))], []any{rollout}
		})
		n := 0
		for _, c := range cmds {
			if c != nil {
				v, _ := c.Int()
				n += v
			}
		}
		return n, err
	}
	cmds, err := l.runEach(ctx, unclaimScript, len(keys), func(i int) ([]string, []any) {
		return []string{keys[i]}, []any{rollout}
	})
	n := 0
	for _, c := range cmds {
		if c != nil {
			v, _ := c.Int()
			n += v
		}
	}
	return n, err
}

// UnclaimAll releases every claim of a finished rollout, except, unless
// r is completed, the claims of instances it still has in hand (busy: a
// call under way, or drained): an aborted rollout keeps those until the
// call is answered and the weights are back (ledger.Claim judges them per
// instance; Finish of an aborted rollout's instance and the worker's
// undrain release them).
func (l *Ledger) UnclaimAll(ctx context.Context, r *Rollout) error {
	for k := range r.Spec.Waves {
		ids, err := l.WaveInstances(ctx, r.ID, k)
		if err != nil {
			return err
		}
		if r.State != Completed {
			if ids, err = l.idle(ctx, r.ID, ids); err != nil {
				return err
			}
		}
		if err := l.Unclaim(ctx, r.ID, ids); err != nil {
			return err
		}
	}
	return nil
}

// isRollbackOf reports whether rollout claimer is the rollback of owner.
func isRollbackOf(claimer, owner string) bool { return claimer == rollout.RollbackID(owner) }

// UnclaimIdle releases the claims rollout holds on those of ids it no
// longer keeps in hand (not busy): for an aborted rollout, as each of its
// last instances comes back.
func (l *Ledger) UnclaimIdle(ctx context.Context, rollout string, ids []string) error {
	idle, err := l.idle(ctx, rollout, ids)
	if err != nil {
		return err
	}
	return l.Unclaim(ctx, rollout, idle)
}

// idle returns the instances of ids that rollout does not keep in hand
// (busy).
func (l *Ledger) idle(ctx context.Context, rollout string, ids []string) ([]string, error) {
	out := make([]string, 0, len(ids))
	for start := 0; start < len(ids); start += pipeChunk {
		part := ids[start:min(start+pipeChunk, len(ids))]
		busy, err := l.busy(ctx, part, func(string) string { return rollout })
		if err != nil {
			return nil, fmt.Errorf("ledger: unclaim %s: %w", rollout, err)
		}
		for i, id := range part {
			if !busy[i] {
				out = append(out, id)
			}
		}
	}
	return out, nil
}

// runEach runs s n times, call i with the keys and arguments args(i)
// gives, in pipelines of pipeChunk calls; on Redis Cluster each call goes
// to the node of its keys. A call that found the script not loaded
// (NOSCRIPT: it did not run) is sent again with the script's body. It
// returns every call's command, nil for calls not sent; the error is the
// first call's that failed.
func (l *Ledger) runEach(ctx context.Context, s *redis.Script, n int, args func(i int) ([]string, []any)) ([]*redis.Cmd, error) {
	out := make([]*redis.Cmd, n)
	for start := 0; start < n; start += pipeChunk {
		end := min(start+pipeChunk, n)
		pipe := l.rdb.Pipeline()
		for i := start; i < end; i++ {
			keys, argv := args(i)
			out[i] = s.EvalSha(ctx, pipe, keys, argv...)
		}
		_, _ = pipe.Exec(ctx) // errors are read per call below
		var again []int
		for i := start; i < end; i++ {
			if err := out[i].Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				again = append(again, i)
			}
		}
		if len(again) > 0 {
			pipe := l.rdb.Pipeline()
			for _, i := range again {
				keys, argv := args(i)
				out[i] = s.Eval(ctx, pipe, keys, argv...)
			}
			_, _ = pipe.Exec(ctx)
		}
		for i := start; i < end; i++ {
			if err := out[i].Err(); err != nil && !errors.Is(err, redis.Nil) {
				return out[:end], err
			}
		}
	}
	return out, nil
}
