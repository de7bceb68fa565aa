package ledger

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetreset/fleetreset/internal/clock"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/redis/go-redis/v9"
)

// PrefixDefault is the key prefix used when Config.Prefix is empty: the
// default namespace, as for the queues and the rate limiter.
const PrefixDefault = "fleetreset:"

// Errors callers branch on.
var (
	// ErrNotFound: no rollout with that ID.
	ErrNotFound = errors.New("ledger: rollout not found")
	// ErrPlanChanged: a rollout with that name exists for a different plan.
	ErrPlanChanged = errors.New("ledger: a rollout with this name exists for a different plan")
	// ErrApplying: another apply of the same plan is writing the rollout
	// right now; it will start it.
	ErrApplying = errors.New("ledger: the rollout is being applied by another apply")
	// ErrFenced: the caller's fencing token no longer holds the instance
	// (another worker took it over, or it already moved on).
	ErrFenced = errors.New("ledger: fenced out")
	// ErrNotRunning: the rollout is not running, so no new call may start
	// (Retake).
	ErrNotRunning = errors.New("ledger: the rollout is not running")
)

// RolloutState is the state of a rollout.
type RolloutState string

// Rollout states. Completed and aborted are terminal.
const (
	Applying         RolloutState = "applying"
	Scheduled        RolloutState = "scheduled"
	Running          RolloutState = "running"
	Paused           RolloutState = "paused"
	AwaitingApproval RolloutState = "awaiting_approval"
	Completed        RolloutState = "completed"
	Aborted          RolloutState = "aborted"
)

// Terminal reports whether no further work happens in state s.
func (s RolloutState) Terminal() bool { return s == Completed || s == Aborted }

// InstanceState is an instance's position in the reset protocol.
type InstanceState string

// Instance states; see the package doc for the protocol.
const (
	Pending   InstanceState = "pending"
	Held      InstanceState = "held"
	Calling   InstanceState = "calling"
	Resetting InstanceState = "resetting"
	Succeeded InstanceState = "succeeded"
	Skipped   InstanceState = "skipped"
	Failed    InstanceState = "failed"
	Ambiguous InstanceState = "ambiguous"
	Cancelled InstanceState = "cancelled"
)

// Terminal reports whether s is a final outcome of this attempt.
func (s InstanceState) Terminal() bool {
	switch s {
	case Succeeded, Skipped, Failed, Ambiguous, Cancelled:
		return true
	}
	return false
}

// Config configures a Ledger. The zero value is ready to use.
//
// The Redis client given to New must not retry commands by itself
// (go-redis MaxRetries -1; RedisOptions sets it): go-redis re-sends a
// command whose reply timed out, and a fenced script run twice can report
// its own first run as another worker's (a Release or Finish that says
// "fenced out" although it changed the instance). An error is safe: the
// task comes back and reconciles. New warns about a client that retries;
// CheckClient tells a caller before it starts.
type Config struct {
	// Prefix starts every key. Defaults to PrefixDefault.
	Prefix string
	// Clock stamps transitions. Defaults to the wall clock.
	Clock clock.Clock
	// Cluster makes claims one script call per instance, each on its own
	// slot, as Redis Cluster requires; on one server they go many to a
	// call, which costs Redis a third as much. New sets it for a
	// *redis.ClusterClient; tests set it to check slot use on one server.
	Cluster bool
}

// Ledger reads and writes rollout state in Redis. It is safe for concurrent use.
type Ledger struct {
	rdb    redis.UniversalClient
	prefix string
	clock  clock.Clock
	// tokens holds the creation token of each rollout this Ledger created
	// and has not activated yet, so Activate activates only its own.
	tokens sync.Map
	// perKey: claims go one script call per instance (Config.Cluster).
	perKey bool
	// sweepObserver, set by tests, is told how many instances each call
	// of the abort and retry-failed scripts examined.
	sweepObserver func(examined int)
}

// New returns a Ledger on rdb, a client that does not retry commands (see
// Config); it logs a warning when rdb does.
func New(rdb redis.UniversalClient, cfg Config) *Ledger {
	if err := CheckClient(rdb); err != nil {
		slog.Warn(err.Error(), "component", "ledger")
	}
	_, cluster := rdb.(*redis.ClusterClient)
	return &Ledger{rdb: rdb, prefix: cmp.Or(cfg.Prefix, PrefixDefault), clock: clock.Or(cfg.Clock),
		perKey: cfg.Cluster || cluster}
}

// ErrClientRetries: the Redis client re-sends commands by itself; see Config.
var ErrClientRetries = errors.New("ledger: the Redis client retries commands by itself (set MaxRetries to -1, e.g. with ledger.RedisOptions): a replayed ledger script can misreport its own first run")

// RedisOptions sets what the ledger requires of a Redis client on opt (no
// automatic retries) and returns opt, for redis.NewClient.
func RedisOptions(opt *redis.Options) *redis.Options {
	opt.MaxRetries = -1
	return opt
}

// CheckClient returns ErrClientRetries when rdb retries commands by itself.
// go-redis normalizes MaxRetries when a client is made: -1 becomes 0 (no
// retries) and 0 becomes the default of 3. A cluster client also re-sends
// a command that timed out, up to MaxRedirects times. Clients of other
// types pass.
func CheckClient(rdb redis.UniversalClient) error {
	retries := 0
	switch c := rdb.(type) {
	case *redis.Client:
		retries = c.Options().MaxRetries
	case *redis.ClusterClient:
		retries = max(c.Options().MaxRetries, c.Options().MaxRedirects)
	case *redis.Ring:
		retries = c.Options().MaxRetries
	}
	if retries > 0 {
		return fmt.Errorf("%w: MaxRetries is %d", ErrClientRetries, retries)
	}
	return nil
}

// Redis returns the client the ledger uses.
func (l *Ledger) Redis() redis.UniversalClient { return l.rdb }

func (l *Ledger) claimKey(id string) string { return l.prefix + "claim:" + id }
func (l *Ledger) indexKey() string          { return l.prefix + "rollouts" }
func (l *Ledger) now() string               { return strconv.FormatInt(l.clock.Now().UnixMilli(), 10) }

// Counters count terminal outcomes.
type Counters struct {
	Succeeded int `json:"succeeded"`
	Skipped   int `json:"skipped"`
	Failed    int `json:"failed"`
	Ambiguous int `json:"ambiguous"`
	Cancelled int `json:"cancelled"`
	Terminal  int `json:"terminal"`
}

// Failures is what failure budgets count: failed and ambiguous outcomes.
func (c Counters) Failures() int { return c.Failed + c.Ambiguous }

// Judged is how many outcomes a failure budget judges: instances that were
// reset or tried to be (succeeded, failed, ambiguous). Skipped instances
// were never touched and cancelled ones never tried, so neither dilutes a
// failure percentage.
func (c Counters) Judged() int { return c.Succeeded + c.Failed + c.Ambiguous }

func countersFrom(vals []int64) Counters {
	return Counters{Succeeded: int(vals[0]), Skipped: int(vals[1]), Failed: int(vals[2]),
		Ambiguous: int(vals[3]), Cancelled: int(vals[4]), Terminal: int(vals[5])}
}

func countersFromMap(m map[string]string) Counters {
	n := func(k string) int { v, _ := strconv.Atoi(m[k]); return v }
	return Counters{Succeeded: n("succeeded"), Skipped: n("skipped"), Failed: n("failed"),
		Ambiguous: n("ambiguous"), Cancelled: n("cancelled"), Terminal: n("terminal")}
}

// Seed is the initial state of one instance when a rollout is created: the
// pre-flight observation, or what a local journal remembers of an earlier run.
type Seed struct {
	State InstanceState
	// OldImage and OldOpRequestID are the pre-flight observation.
	OldImage       string
	OldOpRequestID string
	RequestID      string
	Token          int64
	IntentAt       time.Time
	CalledAt       time.Time
	Code, Error    string
	NewImage       string
}

// CreateOptions carry what is known of a rollout before it starts.
type CreateOptions struct {
	// Seeds maps instance IDs to their initial state; absent ones are pending.
	Seeds map[string]Seed
	// Wave is the wave to start at: waves before it already passed their
	// gates in an earlier run (from a local journal).
	Wave int
	// Seq starts the gate sequence; a non-zero Seq makes the first wave
	// start rescan earlier waves for unfinished instances.
	Seq int
	// Source, when set, is kept with the rollout (Source) for the next
	// occurrence of its series to resolve its selection again.
	Source *rollout.PlanSource
}

// WaveStatus is the state of one wave.
type WaveStatus struct {
	Index    int      `json:"index"`
	Size     int      `json:"size"`
	Counters Counters `json:"counters"`
	Complete bool     `json:"complete"`
	Approved bool     `json:"approved"`
	// StartedAt is when the wave passed the previous gate (zero for wave 0
	// and waves not started).
	StartedAt time.Time `json:"started_at,omitzero"`
	// SoakUntil is when the soak after this wave ends, once it began.
	SoakUntil time.Time `json:"soak_until,omitzero"`
}

// Rollout is a rollout record with its counters.
type Rollout struct {
	ID        string       `json:"id"`
	Spec      rollout.Spec `json:"spec"`
	State     RolloutState `json:"state"`
	Reason    string       `json:"reason,omitempty"`
	Wave      int          `json:"wave"`
	Seq       int          `json:"seq"`
	Attempt   int          `json:"attempt"`
	Total     int          `json:"total"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
	Counters  Counters     `json:"counters"`
	Waves     []WaveStatus `json:"waves"`
	// Regions has the counters of each region, in group order, for
	// rollouts that count regions (rollout.Spec.CountedRegions).
	Regions []RegionStatus `json:"regions,omitempty"`
}

// RegionStatus is the progress of one region's instances.
type RegionStatus struct {
	Region   string   `json:"region"`
	Size     int      `json:"size"`
	Counters Counters `json:"counters"`
}

// Get reads a rollout record with its wave statuses.
func (l *Ledger) Get(ctx context.Context, id string) (*Rollout, error) {
	k := l.keys(id)
	m, err := l.rdb.HGetAll(ctx, k.record()).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: get %s: %w", id, err)
	}
	if len(m) == 0 || m["spec"] == "" {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	r := &Rollout{ID: id, State: RolloutState(m["state"]), Reason: m["reason"]}
	if err := json.Unmarshal([]byte(m["spec"]), &r.Spec); err != nil {
		return nil, fmt.Errorf("ledger: get %s: decode spec: %w", id, err)
	}
	r.Wave, _ = strconv.Atoi(m["wave"])
	r.Seq, _ = strconv.Atoi(m["seq"])
	r.Attempt, _ = strconv.Atoi(m["attempt"])
	r.Total, _ = strconv.Atoi(m["total"])
	r.CreatedAt = msTime(m["created"])
	r.UpdatedAt = msTime(m["updated"])
	pipe := l.rdb.Pipeline()
	cc := pipe.HGetAll(ctx, k.counters())
	wcs := make([]*redis.MapStringStringCmd, len(r.Spec.Waves))
	for w := range r.Spec.Waves {
		wcs[w] = pipe.HGetAll(ctx, k.waveCounters(w))
	}
	regions := r.Spec.CountedRegions()
	rcs := make([]*redis.MapStringStringCmd, len(regions))
	for i, rg := range regions {
		rcs[i] = pipe.HGetAll(ctx, k.regionCounters(rg))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("ledger: get %s: %w", id, err)
	}
	r.Counters = countersFromMap(cc.Val())
	for k, c := range wcs {
		wm := c.Val()
		size, _ := strconv.Atoi(wm["size"])
		r.Waves = append(r.Waves, WaveStatus{Index: k, Size: size, Counters: countersFromMap(wm),
			Complete: wm["complete"] == "1", Approved: wm["approved"] == "1",
			StartedAt: msTime(wm["started"]), SoakUntil: msTime(wm["soak_until"])})
	}
	for i, c := range rcs {
		size, _ := strconv.Atoi(c.Val()["size"])
		r.Regions = append(r.Regions, RegionStatus{Region: regions[i], Size: size, Counters: countersFromMap(c.Val())})
	}
	return r, nil
}

// List returns every rollout, oldest first.
func (l *Ledger) List(ctx context.Context) ([]*Rollout, error) {
	ids, err := l.rdb.ZRange(ctx, l.indexKey(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: list: %w", err)
	}
	var out []*Rollout
	for _, id := range ids {
		r, err := l.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Spec reads only a rollout's spec.
func (l *Ledger) Spec(ctx context.Context, id string) (rollout.Spec, RolloutState, error) {
	vals, err := l.rdb.HMGet(ctx, l.keys(id).record(), "spec", "state").Result()
	if err != nil {
		return rollout.Spec{}, "", fmt.Errorf("ledger: spec %s: %w", id, err)
	}
	s, _ := vals[0].(string)
	if s == "" {
		return rollout.Spec{}, "", fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	var spec rollout.Spec
	if err := json.Unmarshal([]byte(s), &spec); err != nil {
		return rollout.Spec{}, "", fmt.Errorf("ledger: spec %s: %w", id, err)
	}
	st, _ := vals[1].(string)
	return spec, RolloutState(st), nil
}

// State reads a rollout's state and current wave.
func (l *Ledger) State(ctx context.Context, id string) (RolloutState, int, error) {
	vals, err := l.rdb.HMGet(ctx, l.keys(id).record(), "state", "wave").Result()
	if err != nil {
		return "", 0, fmt.Errorf("ledger: state %s: %w", id, err)
	}
	st, _ := vals[0].(string)
	if st == "" {
		return "", 0, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	w, _ := vals[1].(string)
	wave, _ := strconv.Atoi(w)
	return RolloutState(st), wave, nil
}

// Instance is one instance's ledger entry.
type Instance struct {
	ID             string        `json:"instance_id"`
	Wave           int           `json:"wave"`
	Group          int           `json:"group"`
	Zone           string        `json:"zone,omitempty"`
	Gen            int           `json:"gen"`
	State          InstanceState `json:"state"`
	Token          int64         `json:"-"`
	RequestID      string        `json:"request_id,omitempty"`
	OldImage       string        `json:"old_image,omitempty"`
	OldOpRequestID string        `json:"-"`
	NewImage       string        `json:"new_image,omitempty"`
	Preflighted    bool          `json:"-"`
	// Tries counts reset attempts in this generation; Resets counts calls
	// the cloud accepted (the number the whole design keeps at one).
	Tries  int    `json:"tries"`
	Resets int    `json:"resets"`
	Code   string `json:"code,omitempty"`
	Error  string `json:"error,omitempty"`
	// Adopted, when set, says why the instance's last reset was adopted
	// from what the cloud showed instead of called (rollout.BeforeCall).
	Adopted    string    `json:"adopted,omitempty"`
	FirstTryAt time.Time `json:"first_try_at,omitzero"`
	IntentAt   time.Time `json:"intent_at,omitzero"`
	CalledAt   time.Time `json:"called_at,omitzero"`
	DoneAt     time.Time `json:"done_at,omitzero"`
	// Serving is the progress through drain, hooks and health (nil when
	// the instance's group has none or they have not begun), and
	// ServingV its version for SetServing.
	Serving  *Serving `json:"serving,omitempty"`
	ServingV int      `json:"-"`
}

func instanceFrom(id string, m map[string]string) *Instance {
	n := func(k string) int { v, _ := strconv.Atoi(m[k]); return v }
	tok, _ := strconv.ParseInt(m["tok"], 10, 64)
	in := &Instance{ID: id, Wave: n("w"), Group: n("g"), Zone: m["zone"], Gen: n("gen"),
		State: InstanceState(m["st"]), Token: tok, RequestID: m["rid"], OldImage: m["oimg"],
		OldOpRequestID: m["oop"], NewImage: m["nimg"], Preflighted: m["pf"] == "1",
		Tries: n("tries"), Resets: n("resets"), Code: m["code"], Error: m["err"], Adopted: m["adopted"],
		FirstTryAt: msTime(m["first"]), IntentAt: msTime(m["intent"]), CalledAt: msTime(m["called"]), DoneAt: msTime(m["done"])}
	in.Serving, in.ServingV = servingFrom(m)
	return in
}

func msTime(s string) time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// Instances reads the ledger entries of ids (missing ones are nil).
func (l *Ledger) Instances(ctx context.Context, rollout string, ids []string) ([]*Instance, error) {
	k := l.keys(rollout)
	out := make([]*Instance, len(ids))
	const chunk = 1000
	for start := 0; start < len(ids); start += chunk {
		pipe := l.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, 0, chunk)
		for _, id := range ids[start:min(start+chunk, len(ids))] {
			cmds = append(cmds, pipe.HGetAll(ctx, k.instance(id)))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("ledger: instances of %s: %w", rollout, err)
		}
		for i, c := range cmds {
			if m := c.Val(); len(m) > 0 {
				out[start+i] = instanceFrom(ids[start+i], m)
			}
		}
	}
	return out, nil
}

// Instance reads one instance's entry.
func (l *Ledger) Instance(ctx context.Context, rollout, id string) (*Instance, error) {
	is, err := l.Instances(ctx, rollout, []string{id})
	if err != nil {
		return nil, err
	}
	if is[0] == nil {
		return nil, fmt.Errorf("%w: instance %s of %q", ErrNotFound, id, rollout)
	}
	return is[0], nil
}

// Resetting returns the instances whose reset the cloud accepted and that
// are not yet verified: what a verification sweep polls.
func (l *Ledger) Resetting(ctx context.Context, rollout string) ([]string, error) {
	ids, err := l.rdb.SMembers(ctx, l.keys(rollout).resetting()).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: resetting of %s: %w", rollout, err)
	}
	return ids, nil
}

// WaveInstances returns the instance IDs of wave k in plan order.
func (l *Ledger) WaveInstances(ctx context.Context, rollout string, k int) ([]string, error) {
	ids, err := l.rdb.LRange(ctx, l.keys(rollout).wave(k), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: wave %d of %s: %w", k, rollout, err)
	}
	return ids, nil
}

// AllInstances returns every instance of a rollout, wave by wave.
func (l *Ledger) AllInstances(ctx context.Context, r *Rollout) ([]*Instance, error) {
	var out []*Instance
	for k := range r.Spec.Waves {
		ids, err := l.WaveInstances(ctx, r.ID, k)
		if err != nil {
			return nil, err
		}
		is, err := l.Instances(ctx, r.ID, ids)
		if err != nil {
			return nil, err
		}
		for _, in := range is {
			if in != nil {
				out = append(out, in)
			}
		}
	}
	return out, nil
}

// Preflight records the pre-flight observation of an instance that is
// still pending: its image and latest operation before any call of ours.
func (l *Ledger) Preflight(ctx context.Context, rollout, id, oldImage, oldOp string) error {
	ik := l.keys(rollout).instance(id)
	if err := l.rdb.HSet(ctx, ik, "oimg", oldImage, "oop", oldOp, "pf", 1).Err(); err != nil {
		return fmt.Errorf("ledger: preflight %s: %w", id, err)
	}
	return nil
}

// BeginAction tells a reset handler what to do; see Begin.
type BeginAction string

// Begin actions.
const (
	ActMissing   BeginAction = "missing"   // no such instance in the rollout
	ActStale     BeginAction = "stale"     // the task's generation is not the instance's
	ActDone      BeginAction = "done"      // already terminal
	ActVerify    BeginAction = "verify"    // already called; make sure it is being verified
	ActReconcile BeginAction = "reconcile" // a call may have been made: reconcile, never call blindly
	ActHeld      BeginAction = "held"      // rollout not running: parked until resume
	ActCancelled BeginAction = "cancelled" // rollout aborted
	ActProceed   BeginAction = "proceed"   // intent recorded under Token: call the API
	// ActAgain: the rollout is running, but the caller was not ready to
	// call (Park); nothing changed: start the attempt over.
	ActAgain BeginAction = "again"
)

// BeginResult is the outcome of Begin.
type BeginResult struct {
	Action   BeginAction
	Token    int64
	IntentAt time.Time
}

// Begin records the intent to reset instance id (generation gen) when the
// rollout is running and the instance is pending. Only ActProceed permits
// an API call.
func (l *Ledger) Begin(ctx context.Context, rollout, id string, gen int) (BeginResult, error) {
	return l.begin(ctx, rollout, id, gen, true)
}

// Park is Begin for a caller that is not ready to call: one that read the
// rollout stopped and so did none of the steps before a call (describe,
// drain, hooks, a place among the unavailable, a rate-limit slot). It
// parks or cancels the instance as Begin does, but where Begin would
// record an intent (the rollout runs again) it changes nothing and returns
// ActAgain.
func (l *Ledger) Park(ctx context.Context, rollout, id string, gen int) (BeginResult, error) {
	return l.begin(ctx, rollout, id, gen, false)
}

func (l *Ledger) begin(ctx context.Context, rollout, id string, gen int, ready bool) (BeginResult, error) {
	k := l.keys(rollout)
	res, err := beginScript.Run(ctx, l.rdb, []string{k.instance(id), k.record(), k.fence(), k.held(), k.counters()},
		id, gen, l.now(), b01(ready)).StringSlice()
	if err != nil {
		return BeginResult{}, fmt.Errorf("ledger: begin %s: %w", id, err)
	}
	tok, _ := strconv.ParseInt(res[1], 10, 64)
	return BeginResult{Action: BeginAction(res[0]), Token: tok, IntentAt: msTime(res[2])}, nil
}

// Called records that the cloud accepted the reset under requestID.
func (l *Ledger) Called(ctx context.Context, rollout, id string, token int64, requestID string) error {
	k := l.keys(rollout)
	n, err := calledScript.Run(ctx, l.rdb, []string{k.instance(id), k.resetting()}, id, token, requestID, l.now()).Int()
	if err != nil {
		return fmt.Errorf("ledger: called %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: called %s", ErrFenced, id)
	}
	return nil
}

// Once reports whether this is the first call for event in a rollout, so
// that a transition announced by a handler that may run again (a retried
// or redelivered task) is logged and posted once.
func (l *Ledger) Once(ctx context.Context, rollout, event string) (bool, error) {
	first, err := l.rdb.HSetNX(ctx, l.keys(rollout).once(), event, l.now()).Result()
	if err != nil {
		return false, fmt.Errorf("ledger: once %s of %s: %w", event, rollout, err)
	}
	return first, nil
}

// Adopt records that the worker judges a reinstall the cloud already shows
// (running, or finished since pre-flight) instead of calling: calling →
// resetting under requestID, with why kept for the report. It returns
// ErrFenced when token no longer holds the instance.
func (l *Ledger) Adopt(ctx context.Context, rollout, id string, token int64, requestID, why string) error {
	k := l.keys(rollout)
	n, err := adoptScript.Run(ctx, l.rdb, []string{k.instance(id), k.resetting()}, id, token, requestID, l.now(), why).Int()
	if err != nil {
		return fmt.Errorf("ledger: adopt %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: adopt %s", ErrFenced, id)
	}
	return nil
}

// Release undoes an intent whose call the cloud certainly refused, leaving
// the instance pending (or held, when the rollout stops), with the error.
func (l *Ledger) Release(ctx context.Context, rollout, id string, token int64, to InstanceState, code, msg string) error {
	k := l.keys(rollout)
	n, err := releaseScript.Run(ctx, l.rdb, []string{k.instance(id), k.held()}, id, token, string(to), code, msg).Int()
	if err != nil {
		return fmt.Errorf("ledger: release %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: release %s", ErrFenced, id)
	}
	return nil
}

// Retake moves an intent to a new token; see retakeScript.
func (l *Ledger) Retake(ctx context.Context, rollout, id string, token int64) (int64, error) {
	k := l.keys(rollout)
	n, err := retakeScript.Run(ctx, l.rdb, []string{k.instance(id), k.fence(), k.record()}, token, l.now(), rand.Int64()).Int64()
	if err != nil {
		return 0, fmt.Errorf("ledger: retake %s: %w", id, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: retake %s", ErrFenced, id)
	}
	if n < 0 {
		return 0, fmt.Errorf("%w: retake %s", ErrNotRunning, id)
	}
	return n, nil
}

// Outcome is a terminal transition for Finish.
type Outcome struct {
	// From lists the states the instance may leave; others make Finish a no-op.
	From []InstanceState
	// Token, when non-zero, must still hold the instance.
	Token    int64
	To       InstanceState
	Code     string
	Message  string
	NewImage string
}

// FinishResult reports the counts after a Finish.
type FinishResult struct {
	// Changed is false when the instance was not in a From state.
	Changed bool
	Wave    int
	// WaveCounters and Overall count terminal outcomes after the change.
	WaveCounters Counters
	Overall      Counters
	WaveSize     int
	WaveComplete bool
	Total        int
	// State is the rollout's state when the outcome was recorded.
	State RolloutState
	// Region is the instance's region and RegionCounters its region's
	// counts, when the rollout counts regions; else "" and zero.
	Region         string
	RegionCounters Counters
}

// Finish moves an instance to a terminal state, counting it exactly once.
func (l *Ledger) Finish(ctx context.Context, rollout, id string, o Outcome) (FinishResult, error) {
	if !o.To.Terminal() {
		return FinishResult{}, fmt.Errorf("ledger: finish %s: %q is not terminal", id, o.To)
	}
	from := make([]string, len(o.From))
	for i, s := range o.From {
		from[i] = string(s)
	}
	tok := ""
	if o.Token != 0 {
		tok = strconv.FormatInt(o.Token, 10)
	}
	k := l.keys(rollout)
	vals, err := finishScript.Run(ctx, l.rdb, []string{k.instance(id), k.record(), k.counters(), k.held(), k.resetting()},
		id, strings.Join(from, ","), tok,
		string(o.To), o.Code, o.Message, l.now(), o.NewImage).Slice()
	if err != nil {
		return FinishResult{}, fmt.Errorf("ledger: finish %s: %w", id, err)
	}
	if len(vals) < 18 {
		return FinishResult{}, fmt.Errorf("%w: instance %s of %q", ErrNotFound, id, rollout)
	}
	n := make([]int64, len(vals))
	for i, v := range vals {
		n[i] = int64(toInt(v))
	}
	st, _ := vals[17].(string)
	res := FinishResult{Changed: n[0] == 1, Wave: int(n[1]),
		WaveCounters: countersFrom(n[2:8]), Overall: countersFrom(n[8:14]),
		WaveSize: int(n[14]), WaveComplete: n[15] == 1, Total: int(n[16]), State: RolloutState(st)}
	if len(vals) >= 25 {
		res.Region, _ = vals[18].(string)
		res.RegionCounters = countersFrom(n[19:25])
	}
	return res, nil
}

// SetState changes the rollout state when it is in one of from (nil: any
// non-terminal state). It returns whether it changed.
func (l *Ledger) SetState(ctx context.Context, rollout string, from []RolloutState, to RolloutState, reason string) (bool, error) {
	f := "*"
	if from != nil {
		ss := make([]string, len(from))
		for i, s := range from {
			ss[i] = string(s)
		}
		f = strings.Join(ss, ",")
	}
	prev, err := setStateScript.Run(ctx, l.rdb, []string{l.keys(rollout).record()}, f, string(to), reason, l.now()).Text()
	if err != nil {
		return false, fmt.Errorf("ledger: set state of %s: %w", rollout, err)
	}
	if prev != "" && to.Terminal() {
		l.noteFinished(ctx, rollout)
	}
	return prev != "", nil
}

// AdvanceOutcome is the result of a gate; see advanceScript.
type AdvanceOutcome string

// Gate outcomes.
const (
	AdvBlocked    AdvanceOutcome = "blocked"
	AdvStale      AdvanceOutcome = "stale"
	AdvIncomplete AdvanceOutcome = "incomplete"
	AdvAwaiting   AdvanceOutcome = "awaiting"
	AdvWindow     AdvanceOutcome = "window"
	AdvCompleted  AdvanceOutcome = "completed"
	AdvStarted    AdvanceOutcome = "started"
)

// Advance passes the gate after wave k. approval says the wave needs a
// human approval first; windowOpen whether the maintenance window allows a
// new wave now. It returns the outcome and the current wave afterwards.
func (l *Ledger) Advance(ctx context.Context, rollout string, k int, approval, windowOpen, last bool) (AdvanceOutcome, int, error) {
	ks := l.keys(rollout)
	res, err := advanceScript.Run(ctx, l.rdb, []string{ks.record(), ks.counters(), ks.waveCounters(k), ks.waveCounters(k + 1)},
		k, b01(approval), b01(windowOpen), b01(last), l.now()).Slice()
	if err != nil {
		return "", 0, fmt.Errorf("ledger: advance %s wave %d: %w", rollout, k, err)
	}
	out, _ := res[0].(string)
	cur, _ := res[1].(int64)
	if AdvanceOutcome(out) == AdvCompleted {
		l.noteFinished(ctx, rollout)
	}
	return AdvanceOutcome(out), int(cur), nil
}

// SetSoak records when the soak after wave k ends.
func (l *Ledger) SetSoak(ctx context.Context, rollout string, k int, until time.Time) error {
	return l.rdb.HSet(ctx, l.keys(rollout).waveCounters(k), "soak_until", until.UnixMilli()).Err()
}

func b01(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Requeue is an instance that needs a new reset task.
type Requeue struct {
	ID   string
	Gen  int
	Wave int
}

// ResumeResult reports what Resume or Approve changed.
type ResumeResult struct {
	// Changed is false when the rollout was not in a resumable state.
	Changed bool
	Prev    RolloutState
	Seq     int
	Wave    int
	// Requeue lists parked instances, now pending in a new generation.
	Requeue []Requeue
}

// Resume sets a paused rollout running; Approve does the same for one that
// awaits approval, marking its current wave approved.
func (l *Ledger) Resume(ctx context.Context, rollout string) (ResumeResult, error) {
	return l.resume(ctx, rollout, []RolloutState{Paused, AwaitingApproval}, false)
}

// Approve approves the gate after the current wave.
func (l *Ledger) Approve(ctx context.Context, rollout string) (ResumeResult, error) {
	return l.resume(ctx, rollout, []RolloutState{AwaitingApproval}, true)
}

func (l *Ledger) resume(ctx context.Context, rollout string, from []RolloutState, approve bool) (ResumeResult, error) {
	ss := make([]string, len(from))
	for i, s := range from {
		ss[i] = string(s)
	}
	k := l.keys(rollout)
	res, err := resumeScript.Run(ctx, l.rdb, []string{k.record(), k.held()}, strings.Join(ss, ","), l.now(), b01(approve)).Slice()
	if err != nil {
		return ResumeResult{}, fmt.Errorf("ledger: resume %s: %w", rollout, err)
	}
	prev, _ := res[0].(string)
	if prev == "" {
		return ResumeResult{}, nil
	}
	out := ResumeResult{Changed: true, Prev: RolloutState(prev), Seq: toInt(res[1]), Wave: toInt(res[2])}
	out.Requeue = requeues(res[3:])
	return out, nil
}

func requeues(vals []any) []Requeue {
	var out []Requeue
	for i := 0; i+2 < len(vals); i += 3 {
		id, _ := vals[i].(string)
		out = append(out, Requeue{ID: id, Gen: toInt(vals[i+1]), Wave: toInt(vals[i+2])})
	}
	return out
}

func toInt(v any) int {
	switch x := v.(type) {
	case int64:
		return int(x)
	case string:
		n, _ := strconv.Atoi(x)
		return n
	}
	return 0
}

// RolledBackBy returns the ID of the rollback of rollout id when one
// exists (rollout.RollbackID), else "".
func (l *Ledger) RolledBackBy(ctx context.Context, id string) string {
	rb := rollout.RollbackID(id)
	if spec, _, err := l.Spec(ctx, rb); err != nil || spec.RollbackOf != id {
		return ""
	}
	return rb
}
