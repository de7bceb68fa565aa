package testfleet

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/hibiken/asynq"
)

// LockedBuffer collects log output from many goroutines.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// signalBuffer is how many state changes an engine's armed test signal
// holds before it fails the test: far more than a test makes.
const signalBuffer = 10000

// Stack is the Redis side of fleetreset in one test process: a ledger, an
// asynq client and an engine on the test's own namespace, logging JSON at
// debug level into Logs. The engine's state signal is armed, so Await
// waits for its events instead of polling.
type Stack struct {
	Redis *redistest.Redis
	// NS is the namespace (queues, and the ledger's and limiter's key
	// prefix without its colon), unique to the test.
	NS     string
	Ledger *ledger.Ledger
	Client *asynq.Client
	Engine *engine.Engine
	Logs   *LockedBuffer
	Log    *slog.Logger
}

// NewStack builds a Stack on r; the client is closed when the test ends.
func NewStack(tb testing.TB, r *redistest.Redis) *Stack {
	tb.Helper()
	ns := strings.TrimSuffix(r.Prefix, ":")
	s := &Stack{Redis: r, NS: ns, Logs: &LockedBuffer{},
		Ledger: ledger.New(r.Client, ledger.Config{Prefix: ns + ":"}),
		Client: asynq.NewClient(r.ConnOpt()),
	}
	tb.Cleanup(func() { s.Client.Close() })
	s.Log = slog.New(slog.NewJSONHandler(s.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s.Engine = engine.New(engine.Config{Ledger: s.Ledger, Client: s.Client, Namespace: ns, Logger: s.Log})
	s.Engine.TestSignals.State.Init(tb, signalBuffer)
	return s
}

// Limiter returns the fleet-wide Redis limiter of the stack's namespace,
// as each worker process builds its own.
func (s *Stack) Limiter() *ratelimit.Redis {
	return ratelimit.NewRedis(s.Redis.Client, ratelimit.Config{Prefix: s.NS + ":"})
}

// Apply applies plan as `fleetreset apply` does, from an engine of its own
// (another process), and fails the test unless it created the rollout.
func (s *Stack) Apply(tb testing.TB, plan *planner.Plan) {
	tb.Helper()
	res, err := engine.New(engine.Config{Ledger: s.Ledger, Client: s.Client, Namespace: s.NS}).
		Apply(tb.Context(), engine.ApplyRequest{Spec: plan.Spec, Targets: plan.Targets})
	if err != nil || !res.Created {
		tb.Fatalf("Apply = %+v, %v", res, err)
	}
}

// Await waits until rollout id reaches one of want (see AwaitRollout).
func (s *Stack) Await(tb testing.TB, id string, within time.Duration, want ...ledger.RolloutState) *ledger.Rollout {
	tb.Helper()
	return AwaitRollout(tb, s.Ledger, s.Engine, id, within, want...)
}

// Runner is a worker process (a *worker.Worker): it runs until ctx ends.
type Runner interface {
	Run(ctx context.Context) error
}

// RunWorkers runs each of ws until the test ends or the returned stop is
// called; stop cancels them and waits for their drain, once. A worker
// whose Run fails (it could not start) fails the test.
func RunWorkers(tb testing.TB, ws ...Runner) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() {
			if err := w.Run(ctx); err != nil {
				tb.Errorf("worker %d: %v", i, err)
			}
		})
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}
	tb.Cleanup(stop)
	return stop
}
