package cli

import (
	"context"
	"log/slog"

	"github.com/fleetreset/fleetreset/worker"
)

// serveWorkerMetrics serves /metrics for a worker when addr is set.
func serveWorkerMetrics(ctx context.Context, addr string, cn *conn, cfg *worker.Config, log *slog.Logger) error {
	return nil
}
