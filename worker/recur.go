package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

// OccurrenceID names the occurrence of a series scheduled at t.
func OccurrenceID(series string, t time.Time) string {
	return series + "-" + strings.ToLower(t.UTC().Format("20060102t1504"))
}

// scheduleNext enqueues the next occurrence of a completed scheduled
// rollout. Recurrence is driven by the workers through asynq's ProcessAt,
// so no scheduler daemon has to run; the task ID starts each occurrence once.
func (w *Worker) scheduleNext(ctx context.Context, spec rollout.Spec) error {
	if spec.Schedule == "" {
		return nil
	}
	next, err := tasks.NextOccurrence(spec.Schedule, w.clock.Now())
	if err != nil {
		return err
	}
	t, err := tasks.NewRecur(w.q, tasks.RecurPayload{Rollout: spec.ID, At: next.Unix()})
	if err != nil {
		return err
	}
	if _, err := w.cfg.Engine.Client().EnqueueContext(ctx, t); err != nil && !tasks.IsConflict(err) {
		return fmt.Errorf("worker: schedule next occurrence of %s: %w", spec.ID, err)
	}
	w.log.Info("next occurrence scheduled", "rollout", spec.ID, "at", next)
	return nil
}

// handleRecur creates the next occurrence of a series from the one that
// completed: the same targets, waves and settings, as a new rollout.
func (w *Worker) handleRecur(ctx context.Context, t *asynq.Task) error {
	var p tasks.RecurPayload
	if err := tasks.Parse(t, &p); err != nil {
		return err
	}
	prev, err := w.l.Get(ctx, p.Rollout)
	if errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("worker: recur: %w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	is, err := w.l.AllInstances(ctx, prev)
	if err != nil {
		return err
	}
	spec := prev.Spec
	spec.Series = cmp.Or(spec.Series, spec.ID)
	at := time.Unix(p.At, 0)
	spec.ID = OccurrenceID(spec.Series, at)
	spec.StartAt = time.Time{}
	targets := make([]rollout.Target, len(is))
	ids := make([]string, len(is))
	for i, in := range is {
		targets[i] = rollout.Target{InstanceID: in.ID, Group: in.Group, Wave: in.Wave, Zone: in.Zone}
		ids[i] = in.ID
	}
	conflicts, err := w.l.Claim(ctx, spec.ID, ids)
	if err != nil {
		return err
	}
	if len(conflicts) > 0 {
		why := fmt.Sprintf("occurrence %s skipped: %s is in active rollout %s", spec.ID, conflicts[0].InstanceID, conflicts[0].Rollout)
		w.log.Error("scheduled occurrence skipped", "rollout", spec.ID, "reason", why)
		w.ctl.Notify(ctx, prev.Spec, "occurrence_skipped", 0, why)
		return w.scheduleNext(ctx, spec)
	}
	created, err := w.l.Create(ctx, spec, targets, ledger.CreateOptions{})
	if errors.Is(err, ledger.ErrApplying) || (err == nil && !created) {
		return nil // a redelivery of this task, or another worker, got there first
	}
	if err != nil {
		return err
	}
	if err := w.ctl.EnqueueStartWave(ctx, spec.ID, 0, 0, time.Time{}); err != nil {
		return err
	}
	if err := w.l.Activate(ctx, spec); errors.Is(err, ledger.ErrApplying) {
		return nil
	} else if err != nil {
		return err
	}
	w.log.Info("scheduled occurrence started", "rollout", spec.ID, "series", spec.Series)
	return nil
}
