package worker

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

// retention is how long finished rollouts are kept; negative keeps them
// forever.
func (w *Worker) retention() time.Duration {
	return cmp.Or(w.cfg.Retention, ledger.DefaultRetention)
}

// startPrune asks for the prune of the current period, once per worker
// start: whichever worker asks first enqueues it, the others find it there
// (or already run, retained), so one prune runs per period.
func (w *Worker) startPrune(ctx context.Context) {
	if w.retention() < 0 {
		w.log.Debug("retention off: finished rollouts are kept forever")
		return
	}
	if err := w.enqueuePrune(ctx, tasks.PrunePeriod(w.clock.Now()), 0); err != nil {
		// Not fatal: another worker's prune chain, or the next start, prunes.
		w.log.Warn("could not schedule the retention prune", "err", err)
		return
	}
	w.log.Debug("retention prune scheduled", "retention", w.retention())
}

func (w *Worker) enqueuePrune(ctx context.Context, period time.Time, delay time.Duration) error {
	t, err := tasks.NewPrune(w.q, period, delay)
	if err != nil {
		return err
	}
	if _, err := w.cfg.Engine.Client().EnqueueContext(ctx, t); err != nil && !tasks.IsConflict(err) {
		return fmt.Errorf("worker: schedule prune: %w", err)
	}
	return nil
}

// handlePrune deletes the finished rollouts older than the retention. It
// first asks for the next period's prune, so that a prune that fails does
// not end the chain. A worker whose retention is off deletes nothing but
// passes the chain on, for the workers that keep one.
func (w *Worker) handlePrune(ctx context.Context, t *asynq.Task) error {
	var p tasks.PrunePayload
	if err := tasks.Parse(t, &p); err != nil {
		return err
	}
	now := w.clock.Now()
	next := time.Unix(p.At, 0).Add(tasks.PruneEvery)
	if !next.After(now) {
		// The chain fell behind (no worker ran for a while).
		next = tasks.PrunePeriod(now).Add(tasks.PruneEvery)
	}
	if err := w.enqueuePrune(ctx, next, next.Sub(now)); err != nil {
		return err
	}
	keep := w.retention()
	if keep < 0 {
		return nil
	}
	res, err := w.l.Prune(ctx, ledger.PruneOptions{OlderThan: keep, Now: now})
	if len(res.Rollouts) > 0 || res.Keys > 0 {
		ids := make([]string, len(res.Rollouts))
		for i, r := range res.Rollouts {
			ids[i] = r.ID
		}
		w.log.Info("pruned finished rollouts", "rollouts", ids, "keys", res.Keys, "retention", keep)
	}
	return err
}
