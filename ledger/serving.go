package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/health"
	"github.com/redis/go-redis/v9"
)

// Serving phases: where an instance stands in the steps around its reset
// (rollout/serving.go). Before the call the instance is pending; after it,
// resetting, until the last step finishes it.
const (
	PhaseDrain   = "drain"   // weights recorded and set to 0; waiting out the drain time
	PhaseBefore  = "before"  // running before hooks
	PhaseReady   = "ready"   // drained and hooked: the reset may be called
	PhaseAfter   = "after"   // image verified; running after hooks
	PhaseHealth  = "health"  // probing until healthy or the deadline
	PhaseRestore = "restore" // healthy; putting the recorded weights back
)

// Serving is an instance's progress through drain, hooks and health,
// stored as JSON in its hash (field sv) under a version (svv) that every
// write compares and bumps, so two deliveries of one task cannot both act
// on the same step.
type Serving struct {
	Phase string `json:"phase,omitempty"`
	// Weights are the instance's weights on its listeners as found before
	// the drain: what is restored. Recorded once per drain.
	Weights   []Weight  `json:"weights,omitempty"`
	DrainedAt time.Time `json:"drained_at,omitzero"`
	// Zeroed says the drain call (weight 0) completed.
	Zeroed bool `json:"zeroed,omitempty"`
	// Hook is the index of the running hook in the current phase, and
	// Handle its persisted handle (hook.Handle as JSON); nil before Start.
	Hook   int             `json:"hook,omitempty"`
	Handle json.RawMessage `json:"handle,omitempty"`
	// Starting marks a hook whose Start was entered: a crash before its
	// handle was stored leaves it set, and the hook is started again.
	Starting bool `json:"starting,omitempty"`
	// HookSince is when the running hook was first tried; its timeout
	// bounds retries of a Start that failed.
	HookSince time.Time `json:"hook_since,omitzero"`
	// HookLog keeps one line per finished hook ("before stop-app: ok").
	HookLog []string `json:"hook_log,omitempty"`
	// VerifiedAt is when the new image was verified; health deadlines
	// count from it.
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	// HealthSince is when the health deadline starts counting: the
	// verification, or the moment an undecided instance was given a new
	// window (the prober's trouble is not the instance's).
	HealthSince time.Time `json:"health_since,omitzero"`
	// Image is the image DescribeInstances showed at verification.
	Image     string `json:"image,omitempty"`
	PrivateIP string `json:"private_ip,omitempty"`
	PublicIP  string `json:"public_ip,omitempty"`
	Name      string `json:"name,omitempty"`
	// Health is the probes' progress; NextProbe when the next is due.
	Health    health.State `json:"health,omitzero"`
	NextProbe time.Time    `json:"next_probe,omitzero"`
	// Restored says the recorded weights were put back.
	Restored bool `json:"restored,omitempty"`
}

// Weight is an instance's weight on one listener (and rule).
type Weight struct {
	LoadBalancerID string `json:"lb"`
	ListenerID     string `json:"listener"`
	LocationID     string `json:"location,omitempty"`
	Port           int    `json:"port"`
	Weight         int    `json:"weight"`
}

// Drained reports whether the instance's weights are recorded and not yet
// put back.
func (s *Serving) Drained() bool { return s != nil && len(s.Weights) > 0 && !s.Restored }

func (k keys) drained() string { return k.b + "drained" }

// servingScript writes an instance's serving state when its version and
// state are as the caller read them.
//
// KEYS[1] B i:<id>, KEYS[2] B drained
// ARGV[1] instance ID, ARGV[2] expected version, ARGV[3] comma-separated
// states allowed, ARGV[4] JSON, ARGV[5] "1" when drained (kept in B drained)
// Returns the new version, or 0 when the version or state differed.
var servingScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], 'st', 'svv')
if not f[1] then return 0 end
if (f[2] or '0') ~= ARGV[2] then return 0 end
local ok = false
for s in string.gmatch(ARGV[3], '[^,]+') do if s == f[1] then ok = true end end
if not ok then return 0 end
local v = (tonumber(f[2] or '0') or 0) + 1
redis.call('HSET', KEYS[1], 'sv', ARGV[4], 'svv', v)
if ARGV[5] == '1' then redis.call('SADD', KEYS[2], ARGV[1]) else redis.call('SREM', KEYS[2], ARGV[1]) end
return v
`)

// SetServing stores sv for instance id when its serving version is still
// version and its state one of states, and returns the new version. Any
// other writer in between makes it fail with ErrFenced: re-read and
// judge again.
func (l *Ledger) SetServing(ctx context.Context, rollout, id string, version int, states []InstanceState, sv Serving) (int, error) {
	b, err := json.Marshal(sv)
	if err != nil {
		return 0, fmt.Errorf("ledger: serving state of %s: %w", id, err)
	}
	ss := make([]string, len(states))
	for i, s := range states {
		ss[i] = string(s)
	}
	k := l.keys(rollout)
	n, err := servingScript.Run(ctx, l.rdb, []string{k.instance(id), k.drained()},
		id, version, strings.Join(ss, ","), b, b01(sv.Drained())).Int()
	if err != nil {
		return 0, fmt.Errorf("ledger: serving state of %s: %w", id, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: serving state of %s", ErrFenced, id)
	}
	return n, nil
}

// DrainedInstances returns the instances of a rollout whose recorded
// weights have not been put back.
func (l *Ledger) DrainedInstances(ctx context.Context, rollout string) ([]string, error) {
	ids, err := l.rdb.SMembers(ctx, l.keys(rollout).drained()).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: drained of %s: %w", rollout, err)
	}
	return ids, nil
}

// servingFrom decodes the serving state of an instance hash, nil when it
// has none (or it cannot be read: the steps start over, which is safe).
func servingFrom(m map[string]string) (*Serving, int) {
	raw := m["sv"]
	if raw == "" {
		return nil, 0
	}
	var sv Serving
	if json.Unmarshal([]byte(raw), &sv) != nil {
		return nil, 0
	}
	v := 0
	fmt.Sscan(m["svv"], &v)
	return &sv, v
}

// Step describes for people where an instance stands in the steps around
// its reset ("draining", "before hook 1", "health 2 passes: ...");
// empty when it has none under way.
func (s *Serving) Step() string {
	if s == nil {
		return ""
	}
	switch s.Phase {
	case PhaseDrain:
		return "draining"
	case PhaseBefore:
		return fmt.Sprintf("before hook %d", s.Hook+1)
	case PhaseReady:
		return "drained, hooks done"
	case PhaseAfter:
		return fmt.Sprintf("after hook %d", s.Hook+1)
	case PhaseHealth:
		switch {
		case s.Health.Probes == 0:
			return "health: waiting for the first probe"
		case s.Health.Reason() == "":
			return fmt.Sprintf("health: %d passes in a row", s.Health.Passes)
		}
		return fmt.Sprintf("health: %d passes in a row; last trouble: %s", s.Health.Passes, s.Health.Reason())
	case PhaseRestore:
		if s.Restored {
			return "healthy, weights restored"
		}
		return "healthy, restoring weights"
	}
	return ""
}

// HookResults lists the hooks the instance ran and how each ended.
func (s *Serving) HookResults() []string {
	if s == nil {
		return nil
	}
	return s.HookLog
}

// drainerKey names the rollout that last recorded instance id's weights
// to drain it. Like claims, it is outside every rollout, in its own slot.
func (l *Ledger) drainerKey(id string) string { return l.prefix + "drainer:" + id }

// NoteDrainer records that rollout recorded instance id's weights and is
// about to drain it. A later rollout that finds the instance at weight 0
// asks LeftDrained whether that 0 is a drain never given back (an
// unhealthy instance keeps 0) rather than the operator's.
func (l *Ledger) NoteDrainer(ctx context.Context, rollout, id string) error {
	if err := l.rdb.Set(ctx, l.drainerKey(id), rollout, 0).Err(); err != nil {
		return fmt.Errorf("ledger: note drainer of %s: %w", id, err)
	}
	return nil
}

// LeftDrained returns the weights another rollout than except recorded
// for instance id and never put back — the instance's real weights, which
// the 0 it shows now hides — and that rollout's ID; none when the last
// rollout to drain it gave them back, is except, or was pruned.
func (l *Ledger) LeftDrained(ctx context.Context, id, except string) (rollout string, ws []Weight, err error) {
	owner, err := l.rdb.Get(ctx, l.drainerKey(id)).Result()
	if errors.Is(err, redis.Nil) || owner == except {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("ledger: drainer of %s: %w", id, err)
	}
	in, err := l.Instance(ctx, owner, id)
	if errors.Is(err, ErrNotFound) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	if !in.Serving.Drained() {
		return "", nil, nil
	}
	return owner, in.Serving.Weights, nil
}
