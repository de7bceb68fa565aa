// Package tasks owns fleetreset's asynq task types: their stable names,
// payloads (IDs and references, never secrets), constructors with
// deterministic task IDs, and queue names.
//
// Task type names are part of the on-Redis format and are never renamed once
// shipped: a worker of a newer version must still understand tasks queued by
// an older planner.
package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// Task type names.
const (
	// TypeStartWave starts one wave of a rollout: pre-flight checks of its
	// instances in batches, then one TypeReset task per instance.
	TypeStartWave = "rollout:start_wave"
	// TypeAdvance runs a wave's gate (soak over, approval, window) and
	// starts the next wave or completes the rollout.
	TypeAdvance = "rollout:advance"
	// TypeReset reinstalls one instance (at most once per rollout attempt).
	TypeReset = "cvm:reset_instance"
	// TypeVerify is one verification sweep of a rollout: every instance
	// whose reset the cloud accepted is polled, 100 per DescribeInstances
	// call. One sweep runs per rollout per verify interval.
	TypeVerify = "cvm:verify"
	// TypeRecur starts the next occurrence of a scheduled (cron) rollout.
	TypeRecur = "rollout:recur"
)

// Queues names the asynq queues of one namespace. Control tasks (waves,
// gates, verification) go to their own queue with a higher priority, so a
// deep queue of resets never delays a gate or a verification.
type Queues struct {
	Reset   string
	Control string
}

// DefaultNamespace is the namespace used when none is configured.
const DefaultNamespace = "fleetreset"

// QueuesFor returns the queue names for namespace ns ("" means DefaultNamespace).
func QueuesFor(ns string) Queues {
	if ns == "" {
		ns = DefaultNamespace
	}
	return Queues{Reset: ns, Control: ns + "-control"}
}

// Priorities returns asynq's Queues config for q: control before resets.
func (q Queues) Priorities() map[string]int {
	return map[string]int{q.Control: 6, q.Reset: 3}
}

// Retention keeps finished tasks (and so their task IDs) in Redis, so that
// re-enqueueing the same task ID is refused for this long.
const Retention = 30 * 24 * time.Hour

// WavePayload is the payload of TypeStartWave and TypeAdvance.
type WavePayload struct {
	Rollout string `json:"rollout"`
	Wave    int    `json:"wave"`
	// Seq distinguishes re-runs of the same gate (after resume or approve).
	Seq int `json:"seq,omitempty"`
}

// ResetPayload is the payload of TypeReset.
type ResetPayload struct {
	Rollout    string `json:"rollout"`
	InstanceID string `json:"instance_id"`
	Wave       int    `json:"wave"`
	// Gen is the instance's generation in the ledger; a task whose Gen is
	// not the current one is stale and does nothing.
	Gen int `json:"gen"`
	// Rescan, when set, numbers a task a rescan (resume, approve,
	// retry-failed) added because the instance was still to reset while
	// the task of its generation was done; it gives the task an ID of its
	// own (TaskIDOf).
	Rescan int `json:"rescan,omitempty"`
}

// VerifyPayload is the payload of TypeVerify.
type VerifyPayload struct {
	Rollout string `json:"rollout"`
	// At is the sweep's scheduled time (Unix seconds).
	At int64 `json:"at"`
}

// Validate reports a payload that no handler can act on.
func (p WavePayload) Validate() error {
	if p.Rollout == "" || p.Wave < 0 {
		return errors.New("tasks: wave payload needs a rollout and a wave >= 0")
	}
	return nil
}

// Validate reports a payload that no handler can act on.
func (p ResetPayload) Validate() error {
	if p.Rollout == "" || p.InstanceID == "" {
		return errors.New("tasks: reset payload needs a rollout and an instance_id")
	}
	return nil
}

// Validate reports a payload that no handler can act on.
func (p VerifyPayload) Validate() error {
	if p.Rollout == "" {
		return errors.New("tasks: verify payload needs a rollout")
	}
	return nil
}

// NewStartWave returns the task that starts wave p.Wave, to run at processAt
// (zero means now).
func NewStartWave(q Queues, p WavePayload, processAt time.Time) (*asynq.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	opts := []asynq.Option{
		asynq.Queue(q.Control),
		asynq.TaskID(WaveTaskID(p.Rollout, p.Wave, p.Seq)),
		asynq.Retention(Retention),
		asynq.MaxRetry(25),
		// Pre-flight of a large wave describes its instances at the describe
		// rate (40/s, 100 per call) and enqueues one task each.
		asynq.Timeout(2 * time.Hour),
	}
	if !processAt.IsZero() {
		opts = append(opts, asynq.ProcessAt(processAt))
	}
	return newTask(TypeStartWave, p, opts...)
}

// NewAdvance returns the gate task of wave p.Wave, to run after delay.
func NewAdvance(q Queues, p WavePayload, delay time.Duration) (*asynq.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	// No Retention: the ID only folds together the gates that many
	// finishing instances request at once; once a gate has run, a later
	// one (after retry-failed, say) must be able to run again. The gate
	// itself is idempotent.
	return newTask(TypeAdvance, p,
		asynq.Queue(q.Control),
		asynq.TaskID(fmt.Sprintf("adv:%s:%d:%d", p.Rollout, p.Wave, p.Seq)),
		asynq.MaxRetry(25),
		asynq.Timeout(5*time.Minute),
		asynq.ProcessIn(delay),
	)
}

// NewReset returns the reset task of one instance. timeout bounds one run
// of the handler (rate-limit wait, the API call, ledger writes).
func NewReset(q Queues, p ResetPayload, timeout time.Duration) (*asynq.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return newTask(TypeReset, p,
		asynq.Queue(q.Reset),
		asynq.TaskID(TaskIDOf(p)),
		asynq.Retention(Retention),
		// Retries of the reset call are budgeted in the ledger (count and
		// deadline), not by asynq; this only bounds crash-recovery loops.
		asynq.MaxRetry(1000),
		asynq.Timeout(timeout),
	)
}

// NewVerify returns the verification sweep of a rollout at time at. Its
// ID holds the time, so every caller asking for the sweep of one interval
// gets the same task: one sweep per rollout per interval, however many
// instances were accepted in it.
func NewVerify(q Queues, p VerifyPayload, at time.Time) (*asynq.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return newTask(TypeVerify, p,
		asynq.Queue(q.Control),
		asynq.TaskID(fmt.Sprintf("vfy:%s:%d", p.Rollout, at.Unix())),
		asynq.ProcessAt(at),
		asynq.MaxRetry(25),
		asynq.Timeout(10*time.Minute),
	)
}

// SweepAt is when the sweep that covers now runs: the end of the current
// interval, so that calls accepted within one interval share a sweep. The
// interval is rounded up to whole seconds, so the time is a whole second:
// asynq keeps a task's time in Unix seconds and may run it up to a second
// before a fractional time, when the sweep would still look scheduled to
// itself and schedule no successor.
func SweepAt(now time.Time, interval time.Duration) time.Time {
	interval = max(interval, time.Second)
	if r := interval % time.Second; r != 0 {
		interval += time.Second - r
	}
	return now.Truncate(interval).Add(interval)
}

// RecurPayload is the payload of TypeRecur.
type RecurPayload struct {
	// Rollout is the occurrence that just completed.
	Rollout string `json:"rollout"`
	// At is the scheduled time of the next occurrence (Unix seconds).
	At int64 `json:"at"`
}

// Validate reports a payload that no handler can act on.
func (p RecurPayload) Validate() error {
	if p.Rollout == "" || p.At <= 0 {
		return errors.New("tasks: recur payload needs a rollout and a time")
	}
	return nil
}

// NewRecur returns the task that starts the next occurrence of a scheduled
// rollout at time p.At. Its ID makes every occurrence start once.
func NewRecur(q Queues, p RecurPayload) (*asynq.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return newTask(TypeRecur, p,
		asynq.Queue(q.Control),
		asynq.TaskID(fmt.Sprintf("recur:%s:%d", p.Rollout, p.At)),
		asynq.Retention(Retention),
		asynq.MaxRetry(25),
		asynq.Timeout(10*time.Minute),
		asynq.ProcessAt(time.Unix(p.At, 0)),
	)
}

// WaveTaskID is the task ID of a wave's start task.
func WaveTaskID(rollout string, wave, seq int) string {
	return fmt.Sprintf("wave:%s:%d:%d", rollout, wave, seq)
}

// ResetTaskID is the task ID of an instance's reset task in generation gen.
// Enqueueing the same ID twice is refused by asynq while the task or its
// retained result exists, so re-applying a plan enqueues nothing new.
func ResetTaskID(rollout, instanceID string, gen int) string {
	return "reset:" + rollout + ":" + instanceID + ":" + strconv.Itoa(gen)
}

// TaskIDOf is the task ID of a reset payload: ResetTaskID, suffixed with
// the rescan number when there is one.
func TaskIDOf(p ResetPayload) string {
	id := ResetTaskID(p.Rollout, p.InstanceID, p.Gen)
	if p.Rescan > 0 {
		id += ":r" + strconv.Itoa(p.Rescan)
	}
	return id
}

// IsConflict reports whether an enqueue error only means the task is
// already there.
func IsConflict(err error) bool {
	return errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask)
}

func newTask(typ string, payload any, opts ...asynq.Option) (*asynq.Task, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("tasks: encode %s: %w", typ, err)
	}
	return asynq.NewTask(typ, b, opts...), nil
}

// Parse decodes a task payload into v and validates it when v has a
// Validate method.
func Parse(t *asynq.Task, v any) error {
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return fmt.Errorf("tasks: decode %s: %w: %w", t.Type(), err, asynq.SkipRetry)
	}
	if vv, ok := v.(interface{ Validate() error }); ok {
		if err := vv.Validate(); err != nil {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
	}
	return nil
}

// Describe renders a payload for people (logs, the web UI): task payloads
// hold no secrets, but the formatter still shows only known fields.
func Describe(typ string, payload []byte) string {
	var m map[string]any
	if json.Unmarshal(payload, &m) != nil {
		return typ
	}
	var b strings.Builder
	b.WriteString(typ)
	for _, k := range []string{"rollout", "wave", "instance_id", "gen", "poll"} {
		if v, ok := m[k]; ok {
			if n, isNum := v.(float64); k == "wave" && isNum {
				v = n + 1 // people count waves from 1, as the CLI and UI do
			}
			fmt.Fprintf(&b, " %s=%v", k, v)
		}
	}
	return b.String()
}
