package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

// recurWait is how long a recur task waits before it asks again whether
// it may start its occurrence (a worker that can resolve selects, a
// creation under way elsewhere).
const recurWait = 30 * time.Second

// handleRecur starts the next occurrence of a series through the engine,
// the same creation path as `fleetreset apply`.
func (w *Worker) handleRecur(ctx context.Context, t *asynq.Task) error {
	var p tasks.RecurPayload
	if err := tasks.Parse(t, &p); err != nil {
		return err
	}
	// The occurrence lists instances with this worker's credentials when
	// it resolves a select: only a worker that serves the series may.
	if _, _, err := w.spec(ctx, p.Rollout); err != nil {
		return err
	}
	at := time.Unix(p.At, 0)
	err := w.ctl.StartOccurrence(ctx, p.Rollout, at, w.cfg.Reselect)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ledger.ErrNotFound):
		return fmt.Errorf("worker: recur: %w: %w", err, asynq.SkipRetry)
	case errors.Is(err, engine.ErrCannotResolve), errors.Is(err, engine.ErrOccurrenceApplying):
		return &retryLater{In: recurWait, Cause: err.Error()}
	case lastTry(ctx):
		// Archived, the task would end the series without a word: skip
		// this occurrence, say why, and schedule the next.
		w.log.Error("recur: out of tries", "rollout", p.Rollout, "error", err)
		return w.ctl.SkipOccurrence(ctx, p.Rollout, at, fmt.Sprintf("it could not be started: %v", err))
	}
	return err
}

// lastTry reports whether the task being handled has no retry left.
func lastTry(ctx context.Context) bool {
	n, ok1 := asynq.GetRetryCount(ctx)
	most, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && n >= most
}
