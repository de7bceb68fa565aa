package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/notify"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/tasks"
)

// ErrRefused is returned (wrapped) when pre-flight or claims refuse a plan.
var ErrRefused = errors.New("engine: plan refused")

// ApplyRequest is a validated plan to apply: what planner.Load produced,
// as data, so that the engine never parses YAML.
type ApplyRequest struct {
	Spec    rollout.Spec
	Targets []rollout.Target
	// Overrides names the Spec fields a command-line override changed and
	// where from (planner.Plan.Overrides); used to explain a refusal.
	Overrides map[string]string
	// Describe, when set, pre-flights every target before anything is
	// written: missing or unresettable instances refuse the whole apply;
	// instances already on the target image are skipped.
	Describe rollout.DescribeFunc
	// DescribeAt, when set, replaces Describe with one describe per
	// location (rollout.PreflightAllAt): a plan spanning regions or
	// accounts is pre-flighted where each instance is.
	DescribeAt func(loc rollout.Location) rollout.DescribeFunc
	// Recovered carries the state an earlier run left in a local journal.
	Recovered ledger.CreateOptions
	// Source is what the plan was read from when it has a schedule and a
	// select (planner.Plan.Source): kept with the rollout so that each
	// occurrence resolves the select again (StartOccurrence).
	Source *rollout.PlanSource
}

// ApplyResult says what Apply did.
type ApplyResult struct {
	// Created is false when the same plan was already applied (by this
	// apply earlier, a concurrent one, or a scheduled occurrence): nothing
	// new was written or enqueued.
	Created bool
	// Skipped maps instances already on their target image to the reason.
	Skipped map[string]string
	State   ledger.RolloutState
}

// Apply records the rollout of a validated plan and enqueues its first
// wave. It is all or nothing: a refused pre-flight or an instance claimed
// by another active rollout changes nothing. Applying the same plan again,
// or at the same moment from another process, changes nothing and
// enqueues nothing: exactly one apply creates the rollout.
//
// `fleetreset apply`, `fleetreset run` and every scheduled occurrence
// (StartOccurrence) go through here.
func (c *Engine) Apply(ctx context.Context, req ApplyRequest) (ApplyResult, error) {
	spec := req.Spec
	res := ApplyResult{Skipped: map[string]string{}}
	if spec.Schedule != "" {
		// A schedule without a start time first runs at its next occurrence.
		spec.Series = spec.ID
		if spec.StartAt.IsZero() {
			next, err := tasks.NextOccurrence(spec.Schedule, c.clock.Now())
			if err != nil {
				return res, err
			}
			spec.StartAt = next
		}
	}
	l := c.l
	if _, st, err := l.Spec(ctx, spec.ID); err == nil && st != ledger.Applying {
		r, err := l.Get(ctx, spec.ID)
		if err != nil {
			return res, err
		}
		if r.Spec.PlanHash != spec.PlanHash {
			return res, planChanged(r.Spec, spec, req.Overrides)
		}
		res.State = r.State
		return res, nil
	} else if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return res, err
	}
	opts := req.Recovered
	opts.Source = req.Source
	if opts.Seeds == nil {
		opts.Seeds = map[string]ledger.Seed{}
	}
	if req.Describe != nil || req.DescribeAt != nil {
		at := req.DescribeAt
		if at == nil {
			at = func(rollout.Location) rollout.DescribeFunc { return req.Describe }
		}
		pf, err := rollout.PreflightAllAt(ctx, spec, req.Targets, at)
		if err != nil {
			return res, fmt.Errorf("engine: %w", err)
		}
		if len(pf.Refused) > 0 {
			return res, fmt.Errorf("%w: %s", ErrRefused, pf.RefusedSummary(10))
		}
		for id, why := range pf.Skipped {
			if _, known := opts.Seeds[id]; !known {
				opts.Seeds[id] = ledger.Seed{State: ledger.Skipped, Code: "AlreadyOnTarget", Error: why, OldImage: pf.Images[id], NewImage: pf.Images[id]}
				res.Skipped[id] = why
			}
		}
	}
	created, err := c.create(ctx, spec, req.Targets, opts)
	if err != nil {
		var ce *claimError
		if errors.As(err, &ce) {
			return res, fmt.Errorf("%w: %s: %s; finish or abort that rollout first", ErrRefused, spec.PlanFile, ce.Error())
		}
		return res, err
	}
	res.Created = created
	res.State, _, _ = l.State(ctx, spec.ID)
	return res, nil
}

// claimError lists the instances another active rollout holds.
type claimError struct{ conflicts []ledger.Conflict }

func (e *claimError) Error() string {
	var b strings.Builder
	for i, c := range e.conflicts {
		if i > 0 {
			b.WriteString(", ")
		}
		if c.InFlight {
			fmt.Fprintf(&b, "%s is still out of service in aborted rollout %q (its reset call in flight, or drained); apply again once it is back", c.InstanceID, c.Rollout)
		} else {
			fmt.Fprintf(&b, "%s is in active rollout %q", c.InstanceID, c.Rollout)
		}
	}
	return b.String()
}

// create claims the targets, writes the rollout and enqueues its first
// wave, in the order that makes a crash at any point recoverable: the
// start task exists before the rollout is activated, and its task ID makes
// every re-enqueue a no-op. created is false when another creator (a
// concurrent apply, a redelivered occurrence) got there first.
func (c *Engine) create(ctx context.Context, spec rollout.Spec, targets []rollout.Target, opts ledger.CreateOptions) (created bool, err error) {
	ids := make([]string, len(targets))
	for i, t := range targets {
		ids[i] = t.InstanceID
	}
	conflicts, err := c.l.Claim(ctx, spec.ID, ids)
	if err != nil {
		return false, err
	}
	if len(conflicts) > 0 {
		return false, &claimError{conflicts}
	}
	created, err = c.l.Create(ctx, spec, targets, opts)
	if errors.Is(err, ledger.ErrApplying) || (err == nil && !created) {
		// Another creator got there first and owns the rest; its claims
		// are ours too.
		return false, nil
	}
	if err != nil {
		// The claims stay: they name this rollout, which a concurrent
		// creator may hold them for (a same-named plan that won, an apply
		// whose Claim met ours as its own), and taking them back would free
		// instances it is about to reset. A rollout that never gets a
		// record frees them when its claiming mark lapses (ledger.Claim);
		// one that exists, when it ends.
		return false, err
	}
	if err := c.EnqueueStartWave(ctx, spec.ID, opts.Wave, opts.Seq, spec.StartAt); err != nil {
		return false, fmt.Errorf("engine: enqueue first wave of %s: %w", spec.ID, err)
	}
	if err := c.l.Activate(ctx, spec); errors.Is(err, ledger.ErrApplying) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if st, _, err := c.l.State(ctx, spec.ID); err == nil {
		c.changed(spec.ID, st, "applied")
	}
	return true, nil
}

// planChanged explains why spec cannot be applied over the stored rollout
// of the same name. The effective API and endpoint are part of the plan's
// hash, so an --api or --endpoint that contradicts the rollout lands here
// too; naming the field beats "a different version of the plan" when the
// YAML did not change at all.
func planChanged(stored, spec rollout.Spec, overrides map[string]string) error {
	// source says where the new value of key comes from.
	source := func(key string) string {
		if from := overrides[key]; from != "" {
			return "from " + from
		}
		return "the plan's"
	}
	endpoint := func(e string) string {
		if e == "" {
			return "the default endpoint"
		}
		return "endpoint " + e
	}
	var was, now []string
	if stored.API != spec.API {
		was = append(was, "api "+stored.API)
		now = append(now, fmt.Sprintf("api %s (%s)", spec.API, source("api")))
	}
	if stored.Endpoint != spec.Endpoint {
		was = append(was, endpoint(stored.Endpoint))
		now = append(now, fmt.Sprintf("%s (%s)", endpoint(spec.Endpoint), source("endpoint")))
	}
	if len(was) == 0 {
		return fmt.Errorf("%w: rollout %q exists from a different version of the plan; give the plan a new name", ledger.ErrPlanChanged, spec.ID)
	}
	return fmt.Errorf("%w: rollout %q was applied with %s, and this apply has %s; a rollout keeps the API and endpoint it was applied with: apply with the same ones, or give the plan a new name",
		ledger.ErrPlanChanged, spec.ID, strings.Join(was, " and "), strings.Join(now, " and "))
}

// OccurrenceID names the occurrence of a series scheduled at t.
func OccurrenceID(series string, t time.Time) string {
	return series + "-" + strings.ToLower(t.UTC().Format("20060102t1504"))
}

// ScheduleNext enqueues the next occurrence of a completed scheduled
// rollout. Recurrence is driven by the workers through asynq's ProcessAt,
// so no scheduler daemon has to run; the task ID starts each occurrence once.
func (c *Engine) ScheduleNext(ctx context.Context, spec rollout.Spec) error {
	if spec.Schedule == "" {
		return nil
	}
	next, err := tasks.NextOccurrence(spec.Schedule, c.clock.Now())
	if err != nil {
		return err
	}
	t, err := tasks.NewRecur(c.q, tasks.RecurPayload{Rollout: spec.ID, At: next.Unix()})
	if err := c.enqueue(ctx, t, err); err != nil {
		return fmt.Errorf("engine: schedule next occurrence of %s: %w", spec.ID, err)
	}
	c.log.Info("next occurrence scheduled", "rollout", spec.ID, "at", next)
	return nil
}

// ErrSkipOccurrence, wrapped by a Reselect error, skips the occurrence:
// it is announced and the one after it scheduled, instead of retried.
var ErrSkipOccurrence = errors.New("occurrence skipped")

// ErrCannotResolve is returned by StartOccurrence when the series resolves
// its select again and no Reselect was given: a worker that has one must
// start it.
var ErrCannotResolve = errors.New("engine: this process cannot resolve a select (no API client)")

// ErrOccurrenceApplying is returned by StartOccurrence when the occurrence
// exists but is still being created: by another worker now, or by one that
// died, whose creation the next try takes over once its lease lapses.
var ErrOccurrenceApplying = errors.New("engine: occurrence still being created")

// Reselect resolves the select of a scheduled series again for its next
// occurrence: from the spec of the occurrence before and the plan source
// kept with it (ledger.Ledger.Source), it lists what the plan selects now
// and returns the spec and targets apply would make of the plan. An error
// wrapping ErrSkipOccurrence (the plan no longer reads, say) skips the
// occurrence; any other is retried with the task.
type Reselect func(ctx context.Context, prev rollout.Spec, src rollout.PlanSource) (rollout.Spec, []rollout.Target, error)

// StartOccurrence creates the occurrence of a series due at `at` from the
// one that completed (prev), as a new rollout, through the same creation
// path as Apply. A series whose plan selects its instances (it keeps its
// plan source) resolves the select again through reselect, so instances
// tagged since join and untagged ones leave; any other repeats prev's
// targets, waves and settings. An occurrence whose instances another
// active rollout holds, or whose select finds nothing, is skipped,
// announced, and the one after it scheduled.
func (c *Engine) StartOccurrence(ctx context.Context, prev string, at time.Time, reselect Reselect) error {
	r, err := c.l.Get(ctx, prev)
	if err != nil {
		return err
	}
	src, err := c.l.Source(ctx, prev)
	if err != nil {
		return err
	}
	spec := r.Spec
	spec.Series = cmp.Or(spec.Series, spec.ID)
	spec.ID = OccurrenceID(spec.Series, at)
	spec.StartAt = time.Time{}
	skip := func(why string) error { return c.skipOccurrence(ctx, r.Spec, spec.ID, why) }
	var targets []rollout.Target
	if src != nil {
		res, done, err := c.resolveOccurrence(ctx, r.Spec, spec, *src, reselect)
		if errors.Is(err, ErrSkipOccurrence) {
			return skip(strings.TrimPrefix(err.Error(), ErrSkipOccurrence.Error()+": "))
		}
		if err != nil || done {
			return err
		}
		spec, targets = res.Spec, res.Targets
	} else {
		is, err := c.l.AllInstances(ctx, r)
		if err != nil {
			return err
		}
		targets = make([]rollout.Target, len(is))
		for i, in := range is {
			targets[i] = rollout.Target{InstanceID: in.ID, Group: in.Group, Wave: in.Wave, Zone: in.Zone}
		}
	}
	created, err := c.create(ctx, spec, targets, ledger.CreateOptions{Source: src})
	var ce *claimError
	if errors.As(err, &ce) {
		return skip(fmt.Sprintf("%s is in active rollout %s", ce.conflicts[0].InstanceID, ce.conflicts[0].Rollout))
	}
	if err != nil {
		return err
	}
	if !created {
		// A redelivery of this task, or another worker, got there first;
		// while its creation is not done, this task waits to take it over
		// should that creator have died.
		if st, _, err := c.l.State(ctx, spec.ID); err != nil || st == ledger.Applying {
			return cmp.Or(err, fmt.Errorf("%w: %s", ErrOccurrenceApplying, spec.ID))
		}
		return nil
	}
	if src != nil {
		// Nothing reads the resolution once the occurrence exists; it
		// would expire, but it can be large.
		_ = c.l.DropResolution(ctx, spec.ID)
	}
	c.log.Info("scheduled occurrence started", "rollout", spec.ID, "series", spec.Series, "instances", len(targets))
	return nil
}

// SkipOccurrence skips the occurrence of series rollout prev due at `at`
// (one that could not be started, as a recur task that ran out of tries),
// announces why, and schedules the one after it, so that the series goes
// on.
func (c *Engine) SkipOccurrence(ctx context.Context, prev string, at time.Time, why string) error {
	spec, _, err := c.l.Spec(ctx, prev)
	if err != nil {
		return err
	}
	return c.skipOccurrence(ctx, spec, OccurrenceID(cmp.Or(spec.Series, spec.ID), at), why)
}

// skipOccurrence announces a skipped occurrence and goes on with the
// series from the rollout that exists (prev): the skipped one was never
// created, and a recur task naming it would find nothing and end the
// schedule.
func (c *Engine) skipOccurrence(ctx context.Context, prev rollout.Spec, occ, why string) error {
	why = fmt.Sprintf("occurrence %s skipped: %s", occ, why)
	c.log.Error("scheduled occurrence skipped", "rollout", occ, "reason", why)
	c.Notify(ctx, prev, notify.OccurrenceSkipped, 0, why)
	return c.ScheduleNext(ctx, prev)
}

// resolveOccurrence resolves the select of occurrence occ (prev's spec
// renamed) once: the first resolution is recorded (ledger.Resolve) and
// every later creator of the occurrence — a redelivered recur task, a
// second worker, a takeover of a creation whose worker died — creates from
// it, so all of them create one rollout, never two plans under one name,
// whatever the tags did between their listings. done is true when the
// occurrence already exists past creation: nothing is listed again.
func (c *Engine) resolveOccurrence(ctx context.Context, prev, occ rollout.Spec, src rollout.PlanSource, reselect Reselect) (res ledger.Resolved, done bool, err error) {
	if _, st, err := c.l.Spec(ctx, occ.ID); err == nil && st != ledger.Applying {
		return res, true, nil
	} else if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return res, false, err
	}
	if got, ok, err := c.l.Resolution(ctx, occ.ID); err != nil || ok {
		return got, false, err
	}
	if reselect == nil {
		return res, false, fmt.Errorf("%w: occurrence %s resolves its select again", ErrCannotResolve, occ.ID)
	}
	next, ts, err := reselect(ctx, prev, src)
	if errors.Is(err, ErrSkipOccurrence) {
		return res, false, err
	}
	if err != nil {
		return res, false, fmt.Errorf("engine: occurrence %s: resolve its select: %w", occ.ID, err)
	}
	if len(ts) == 0 {
		return res, false, fmt.Errorf("%w: its select matched no instance", ErrSkipOccurrence)
	}
	res, err = c.l.Resolve(ctx, occ.ID, ledger.Resolved{Spec: occurrenceSpec(occ, next), Targets: ts})
	return res, false, err
}

// occurrenceSpec is the spec of an occurrence whose plan was read again
// (next): its waves, groups and hash, under the occurrence's name, with
// what apply resolved outside the plan (the credential identities, the
// plan's path) kept from the series.
func occurrenceSpec(occ, next rollout.Spec) rollout.Spec {
	next.ID, next.Series, next.StartAt = occ.ID, occ.Series, time.Time{}
	next.PlanFile = occ.PlanFile
	next.Identity, next.AccountIdentities = occ.Identity, occ.AccountIdentities
	return next
}
