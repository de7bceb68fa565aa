package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

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
	err := w.ctl.StartOccurrence(ctx, p.Rollout, time.Unix(p.At, 0), w.cfg.Reselect)
	if errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("worker: recur: %w: %w", err, asynq.SkipRetry)
	}
	return err
}
