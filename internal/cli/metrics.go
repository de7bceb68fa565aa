package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/fleetreset/fleetreset/metrics"
	"github.com/fleetreset/fleetreset/worker"
	"github.com/hibiken/asynq"
)

// serveWorkerMetrics serves Prometheus /metrics on addr until ctx ends and
// makes the worker report its API calls, rate-limit waits and outcomes to
// it. An empty addr serves nothing. The address is bound before it returns,
// so a taken port fails the command at once.
func serveWorkerMetrics(ctx context.Context, addr string, cn *conn, cfg *worker.Config, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	q := cfg.Engine.Queues()
	insp := asynq.NewInspector(cn.opt)
	m := metrics.New(metrics.Config{Inspector: insp, Queues: []string{q.Reset, q.Control}, Ledger: cn.ledger, Logger: log, RedisErrors: cn.errs, Webhooks: cn.webhooks(log)})
	cfg.Observer = m
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		insp.Close()
		return fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		insp.Close()
	}()
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return nil
}
