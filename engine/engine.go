// Package control drives rollouts from outside a task handler and after
// each outcome: pause, resume, approve, abort, retry-failed, the gate that
// follows a finished instance, and the status and report views. The CLI,
// the web UI and the workers share it, so a command has the same effect
// from any machine that reaches Redis.
package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/fleetreset/fleetreset/internal/clock"
	"github.com/fleetreset/fleetreset/internal/testsignal"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/notify"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

// Config configures a Engine.
type Config struct {
	Ledger *ledger.Ledger
	// Client enqueues tasks.
	Client *asynq.Client
	// Namespace selects the queues. Defaults to tasks.DefaultNamespace.
	Namespace string
	// Logger defaults to a discarding logger.
	Logger *slog.Logger
	// Clock defaults to the wall clock.
	Clock clock.Clock
	// Inspector, when set, lets a rescan (resume, approve, retry-failed)
	// find an instance whose reset task asynq keeps completed while the
	// ledger still has it to reset — a Redis failover can strand one so —
	// and give it a task of its own. Optional.
	Inspector *asynq.Inspector
	// Webhooks queues webhook notifications and posts them in the
	// background; its owner closes it on shutdown to drain the queue.
	// Defaults to a Sender of notify's defaults that nobody closes (its
	// goroutines end when its queue is empty).
	Webhooks *notify.Sender
	// ResetTimeout is the asynq Timeout of reset tasks. Defaults to 5m.
	ResetTimeout time.Duration
}

// Engine changes rollouts. It is safe for concurrent use.
type Engine struct {
	// TestSignals let tests await the engine's state changes instead of
	// polling Redis; inert unless a test arms them.
	TestSignals TestSignals

	l      *ledger.Ledger
	client *asynq.Client
	q      tasks.Queues
	log    *slog.Logger
	clock  clock.Clock
	hooks  *notify.Sender
	resetT time.Duration
	insp   *asynq.Inspector
	// sweeps maps a rollout to the latest verify sweep time this engine
	// scheduled: asking again before it ran costs no Redis command.
	sweeps sync.Map
}

// New returns an Engine.
func New(cfg Config) *Engine {
	log := cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	return &Engine{
		l: cfg.Ledger, client: cfg.Client, q: tasks.QueuesFor(cfg.Namespace),
		log:    log,
		clock:  clock.Or(cfg.Clock),
		hooks:  cmp.Or(cfg.Webhooks, notify.NewSender(notify.SenderConfig{Logger: log})),
		resetT: cmp.Or(cfg.ResetTimeout, 5*time.Minute),
		insp:   cfg.Inspector,
	}
}

// StateEvent is a rollout state change this engine made.
type StateEvent struct {
	Rollout string
	State   ledger.RolloutState
	Reason  string
}

// TestSignals are the events tests can await (internal/testsignal).
type TestSignals struct {
	State testsignal.Signal[StateEvent]
}

// changed announces a state change to armed test signals.
func (c *Engine) changed(id string, st ledger.RolloutState, reason string) {
	c.TestSignals.State.Signal(StateEvent{Rollout: id, State: st, Reason: reason})
}

// Ledger returns the ledger the engine writes.
func (c *Engine) Ledger() *ledger.Ledger { return c.l }

// Client returns the asynq client the engine enqueues with.
func (c *Engine) Client() *asynq.Client { return c.client }

// Queues returns the queue names the engine enqueues into.
func (c *Engine) Queues() tasks.Queues { return c.q }

// ErrNotChanged is returned when a command does not apply to the rollout's
// current state (e.g. resume of a running rollout).
var ErrNotChanged = errors.New("control: rollout not in a state this command applies to")

func (c *Engine) enqueue(ctx context.Context, t *asynq.Task, err error) error {
	if err != nil {
		return err
	}
	if _, err := c.client.EnqueueContext(ctx, t); err != nil && !tasks.IsConflict(err) {
		return fmt.Errorf("engine: enqueue %s: %w", t.Type(), err)
	}
	return nil
}

// EnqueueReset enqueues the reset task of one instance generation.
func (c *Engine) EnqueueReset(ctx context.Context, rolloutID string, rq ledger.Requeue) error {
	t, err := tasks.NewReset(c.q, tasks.ResetPayload{Rollout: rolloutID, InstanceID: rq.ID, Wave: rq.Wave, Gen: rq.Gen}, c.resetT)
	return c.enqueue(ctx, t, err)
}

// requeueStranded is EnqueueReset for a rescan: when the task of the
// instance's generation exists but asynq keeps it completed or archived,
// while the ledger says the instance is still to reset (a Redis failover
// that lost the ledger write but kept the task's completion), the
// instance gets a task of its own: the next free of a short chain of IDs
// (rescan 1, 2, ...), so that repeated rescans add no task while one is
// queued or running. A second task of one instance is safe anyway: the
// ledger fences them, and the check before the call adopts a reinstall
// the cloud shows.
func (c *Engine) requeueStranded(ctx context.Context, rolloutID string, rq ledger.Requeue) error {
	const chain = 5
	for n := 0; n <= chain; n++ {
		p := tasks.ResetPayload{Rollout: rolloutID, InstanceID: rq.ID, Wave: rq.Wave, Gen: rq.Gen, Rescan: n}
		t, err := tasks.NewReset(c.q, p, c.resetT)
		if err != nil {
			return err
		}
		_, err = c.client.EnqueueContext(ctx, t)
		switch {
		case err == nil:
			if n > 0 {
				c.log.Warn("instance still to reset but its task was done; queued again", "rollout", rolloutID, "instance_id", rq.ID, "rescan", n)
			}
			return nil
		case !tasks.IsConflict(err):
			return fmt.Errorf("engine: enqueue %s: %w", t.Type(), err)
		case c.insp == nil:
			return nil
		}
		ti, err := c.insp.GetTaskInfo(c.q.Reset, tasks.TaskIDOf(p))
		if err != nil || (ti.State != asynq.TaskStateCompleted && ti.State != asynq.TaskStateArchived) {
			return nil // queued, running or retrying: it will run
		}
	}
	c.log.Error("instance still to reset but every task of its rescan chain is done; recover it by hand", "rollout", rolloutID, "instance_id", rq.ID)
	return nil
}

// EnqueueVerify makes sure a verification sweep of a rollout runs at the
// end of the current verify interval (shared by everyone asking within it)
// or, when that sweep is already taken (running: clocks of machines differ),
// at the end of the next one. after, when set, is a sweep time the new one
// must come after: a sweep scheduling its successor passes its own time.
//
// A sweep this engine scheduled and that has not run yet serves every later
// caller: every reset accepted before it runs is verified by it.
func (c *Engine) EnqueueVerify(ctx context.Context, rolloutID string, interval time.Duration, after time.Time) error {
	now := c.clock.Now()
	if v, ok := c.sweeps.Load(rolloutID); ok {
		if x := v.(time.Time); x.After(now) && x.After(after) {
			return nil
		}
	}
	at := tasks.SweepAt(now, interval)
	if !after.Before(at) {
		at = tasks.SweepAt(after, interval)
	}
	p := tasks.VerifyPayload{Rollout: rolloutID, At: at.Unix()}
	t, err := tasks.NewVerify(c.q, p, at)
	if err != nil {
		return err
	}
	if _, err := c.client.EnqueueContext(ctx, t); err == nil || !tasks.IsConflict(err) {
		if err != nil {
			return fmt.Errorf("engine: enqueue %s: %w", t.Type(), err)
		}
		c.sweeps.Store(rolloutID, at)
		return nil
	}
	next := tasks.SweepAt(at, interval)
	p.At = next.Unix()
	t, err = tasks.NewVerify(c.q, p, next)
	if err := c.enqueue(ctx, t, err); err != nil {
		return err
	}
	c.sweeps.Store(rolloutID, next)
	return nil
}

// EnqueueStartWave enqueues the start of wave k.
func (c *Engine) EnqueueStartWave(ctx context.Context, rolloutID string, k, seq int, at time.Time) error {
	t, err := tasks.NewStartWave(c.q, tasks.WavePayload{Rollout: rolloutID, Wave: k, Seq: seq}, at)
	return c.enqueue(ctx, t, err)
}

// EnqueueAdvance enqueues the gate after wave k.
func (c *Engine) EnqueueAdvance(ctx context.Context, rolloutID string, k, seq int, delay time.Duration) error {
	t, err := tasks.NewAdvance(c.q, tasks.WavePayload{Rollout: rolloutID, Wave: k, Seq: seq}, delay)
	return c.enqueue(ctx, t, err)
}

// Notify queues an event for the rollout's webhook and returns at once: a
// slow or failing receiver never holds up the caller (a gate). The Sender
// retries, and logs and counts what it cannot deliver.
func (c *Engine) Notify(ctx context.Context, spec rollout.Spec, kind string, wave int, reason string) {
	if spec.Webhook == "" {
		return
	}
	e := notify.Event{Kind: kind, Rollout: spec.ID, Wave: wave + 1, Reason: reason, Time: c.clock.Now()}
	if r, err := c.l.Get(ctx, spec.ID); err == nil {
		e.State, e.Succeeded, e.Failed, e.Total = string(r.State), r.Counters.Succeeded+r.Counters.Skipped, r.Counters.Failures(), r.Total
	}
	c.hooks.Send(spec.Webhook, e)
}

// Pause stops new calls of a running rollout; calls in flight finish.
func (c *Engine) Pause(ctx context.Context, id, reason string) error {
	spec, _, err := c.l.Spec(ctx, id)
	if err != nil {
		return err
	}
	ok, err := c.l.SetState(ctx, id, []ledger.RolloutState{ledger.Running, ledger.Scheduled, ledger.AwaitingApproval}, ledger.Paused, cmp.Or(reason, "paused by operator"))
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotChanged
	}
	c.log.Info("rollout paused", "rollout", id, "reason", reason)
	c.Notify(ctx, spec, notify.RolloutPaused, 0, reason)
	c.changed(id, ledger.Paused, reason)
	return nil
}

// Interrupt pauses a running or scheduled rollout because the process
// driving it is stopping (`fleetreset run` on Ctrl-C or SIGTERM): new calls
// stop at the ledger while calls in flight finish and are verified. It
// reports whether it paused the rollout; no webhook is sent, the run that
// stops says so itself.
func (c *Engine) Interrupt(ctx context.Context, id, reason string) (bool, error) {
	ok, err := c.l.SetState(ctx, id, []ledger.RolloutState{ledger.Running, ledger.Scheduled}, ledger.Paused, reason)
	if err != nil || !ok {
		return ok, err
	}
	c.log.Info("rollout paused", "rollout", id, "reason", reason)
	c.changed(id, ledger.Paused, reason)
	return true, nil
}

// Resume sets a paused rollout running: parked instances get new tasks and
// the current wave and its gate are looked at again.
func (c *Engine) Resume(ctx context.Context, id string) (ledger.ResumeResult, error) {
	res, err := c.l.Resume(ctx, id)
	return c.restarted(ctx, id, res, err, "resumed", "rollout resumed", "requeued", len(res.Requeue))
}

// Approve lets the next wave start after a manual gate.
func (c *Engine) Approve(ctx context.Context, id string) (ledger.ResumeResult, error) {
	res, err := c.l.Approve(ctx, id)
	return c.restarted(ctx, id, res, err, "approved", "wave approved", "wave", res.Wave+1)
}

// RetryFailed gives failed instances (and ambiguous ones, when asked) a new
// attempt; succeeded instances are never called again.
func (c *Engine) RetryFailed(ctx context.Context, id string, includeAmbiguous bool) (ledger.ResumeResult, error) {
	res, err := c.l.RetryFailed(ctx, id, includeAmbiguous)
	return c.restarted(ctx, id, res, err, "retry-failed", "retrying failed instances", "instances", len(res.Requeue))
}

// restarted finishes a command that set a rollout running again (the
// ledger's res, err): logs msg with args, kicks the rollout, announces it.
func (c *Engine) restarted(ctx context.Context, id string, res ledger.ResumeResult, err error, why, msg string, args ...any) (ledger.ResumeResult, error) {
	if err != nil {
		return res, err
	}
	if !res.Changed {
		return res, ErrNotChanged
	}
	c.log.Info(msg, append([]any{"rollout", id}, args...)...)
	if err := c.kick(ctx, id, res); err != nil {
		return res, err
	}
	c.changed(id, ledger.Running, why)
	return res, nil
}

// kick re-enqueues what a resumed rollout needs: parked instances, a rescan
// of the current wave (for anything whose task was lost), and its gate.
func (c *Engine) kick(ctx context.Context, id string, res ledger.ResumeResult) error {
	for _, rq := range res.Requeue {
		if err := c.EnqueueReset(ctx, id, rq); err != nil {
			return err
		}
	}
	if err := c.EnqueueStartWave(ctx, id, res.Wave, res.Seq, time.Time{}); err != nil {
		return err
	}
	return c.EnqueueAdvance(ctx, id, res.Wave, res.Seq, 0)
}

// Abort stops a rollout for good. Calls already in flight finish and are
// verified; the returned overshoot counts them.
func (c *Engine) Abort(ctx context.Context, id, reason string) (inFlight int, err error) {
	r, err := c.l.Get(ctx, id)
	if err != nil {
		return 0, err
	}
	reason = cmp.Or(reason, "aborted by operator")
	ok, err := c.l.Abort(ctx, id, reason)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, ErrNotChanged
	}
	is, err := c.l.AllInstances(ctx, r)
	if err != nil {
		return 0, err
	}
	for _, in := range is {
		if in.State == ledger.Calling || in.State == ledger.Resetting {
			inFlight++
		}
	}
	if err := c.l.UnclaimAll(ctx, r); err != nil {
		return inFlight, err
	}
	c.log.Warn("rollout aborted", "rollout", id, "reason", reason, "in_flight", inFlight)
	c.Notify(ctx, r.Spec, notify.RolloutAborted, r.Wave, reason)
	c.changed(id, ledger.Aborted, reason)
	return inFlight, nil
}

// AfterFinish runs the consequences of a terminal outcome: a breached
// failure budget pauses (or aborts) the rollout; a complete wave gets its
// gate. It is idempotent, so a redelivered handler may call it again.
func (c *Engine) AfterFinish(ctx context.Context, spec rollout.Spec, res ledger.FinishResult) error {
	if res.WaveCounters.Failures() > 0 || res.Overall.Failures() > 0 {
		o := rollout.Outcomes{Wave: res.Wave, InWave: counts(res.WaveCounters), Overall: counts(res.Overall),
			Region: res.Region, InRegion: counts(res.RegionCounters)}
		if why := rollout.BreachReason(spec, o); why != "" {
			if err := c.breach(ctx, spec, res.Wave, why); err != nil {
				return err
			}
		}
	}
	if spec.OnBreach == rollout.OnBreachRollback {
		if err := c.rollbackSettled(ctx, spec, res); err != nil {
			return err
		}
	}
	st, cur, err := c.l.State(ctx, spec.ID)
	if err != nil {
		return err
	}
	if st != ledger.Running || (res.Wave == cur && !res.WaveComplete) {
		return nil
	}
	return c.CheckGate(ctx, spec)
}

func counts(c ledger.Counters) rollout.Counts {
	return rollout.Counts{Failed: c.Failures(), Judged: c.Judged()}
}

// CheckGate schedules the gate of the current wave when it is complete.
func (c *Engine) CheckGate(ctx context.Context, spec rollout.Spec) error {
	r, err := c.l.Get(ctx, spec.ID)
	if err != nil {
		return err
	}
	if r.State == ledger.Running && r.Wave < len(r.Waves) && r.Waves[r.Wave].Complete {
		return c.gate(ctx, spec, r, r.Wave)
	}
	return nil
}

func (c *Engine) breach(ctx context.Context, spec rollout.Spec, wave int, why string) error {
	if spec.OnBreach == rollout.OnBreachRollback {
		return c.rollbackOnBreach(ctx, spec, wave, why)
	}
	if spec.OnBreach == "abort" {
		ok, err := c.l.Abort(ctx, spec.ID, why)
		if err != nil || !ok {
			return err
		}
		c.log.Error("rollout aborted", "rollout", spec.ID, "wave", wave+1, "reason", why)
		c.Notify(ctx, spec, notify.RolloutAborted, wave, why)
		r, err := c.l.Get(ctx, spec.ID)
		if err != nil {
			// The claims stay, but an aborted rollout's claims are free to
			// take (see ledger.Claim): nothing is blocked for good.
			return err
		}
		if err := c.l.UnclaimAll(ctx, r); err != nil {
			return err
		}
		c.changed(spec.ID, ledger.Aborted, why)
		return nil
	}
	ok, err := c.l.SetState(ctx, spec.ID, []ledger.RolloutState{ledger.Running, ledger.AwaitingApproval, ledger.Scheduled}, ledger.Paused, why)
	if err != nil || !ok {
		return err
	}
	c.log.Error("rollout paused", "rollout", spec.ID, "wave", wave+1, "reason", why)
	c.Notify(ctx, spec, notify.RolloutPaused, wave, why)
	c.changed(spec.ID, ledger.Paused, why)
	return nil
}

// PauseFatal pauses a rollout because the cloud answered an error that no
// retry can fix (credentials, balance). It reports whether it changed state.
func (c *Engine) PauseFatal(ctx context.Context, spec rollout.Spec, wave int, why string) error {
	ok, err := c.l.SetState(ctx, spec.ID, []ledger.RolloutState{ledger.Running, ledger.AwaitingApproval, ledger.Scheduled}, ledger.Paused, why)
	if err != nil || !ok {
		return err
	}
	c.log.Error("rollout paused", "rollout", spec.ID, "wave", wave+1, "reason", why)
	c.Notify(ctx, spec, notify.RolloutPaused, wave, why)
	c.changed(spec.ID, ledger.Paused, why)
	return nil
}

// gate schedules the gate of complete wave k after its soak.
func (c *Engine) gate(ctx context.Context, spec rollout.Spec, r *ledger.Rollout, k int) error {
	now := c.clock.Now()
	soak := rollout.SoakLeft(spec, k, r.Waves[k].SoakUntil, now)
	if soak > 0 && r.Waves[k].SoakUntil.IsZero() {
		// Recorded once, so that a gate rescheduled later (a resume, a
		// redelivery) waits out what is left, not the whole soak again.
		if err := c.l.SetSoak(ctx, spec.ID, k, now.Add(soak)); err != nil {
			return err
		}
	}
	if every := alarmCheckEvery(spec); every > 0 {
		// The gate reads the alarms every interval of the soak.
		soak = min(soak, every)
	}
	return c.EnqueueAdvance(ctx, spec.ID, k, r.Seq, soak)
}
