package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/internal/testfleet"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/fleetreset/fleetreset/worker"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// targetImage is the image every benchmark plan reinstalls; simulated
// instances start on cvmsim.ImageLinuxOld.
const targetImage = cvmsim.ImageLinuxNew

// benchPassword satisfies the API 3.0 Linux password rules.
const benchPassword = "Bench-Passw0rd"

// planOpts shapes a generated plan.
type planOpts struct {
	name string
	// waves is the YAML of the waves list, e.g. "[100%]".
	waves string
	// reset and describe are the plan's rates; above the API limits they
	// set unsafeAboveApiLimit.
	reset, describe float64
	// verify is the verify interval. Defaults to 1s.
	verify time.Duration
}

// fleet is a generated plan on disk with its instances.
type fleet struct {
	dir  string
	path string
	ids  []string
}

// writePlan writes a plan for n generated instances (unique ins-xxxxxxxx
// IDs derived from seed) into dir, with the IDs in an instancesFile and
// the password in a file next to it.
func writePlan(tb testing.TB, dir string, n int, seed int64, o planOpts) fleet {
	tb.Helper()
	ids := testfleet.SeededIDs(n, seed)
	verify := o.verify
	if verify == 0 {
		verify = time.Second
	}
	path := testfleet.WritePlan(tb, dir, testfleet.Plan{Name: o.name, Image: "{id: " + targetImage + "}",
		RateLimit: fmt.Sprintf("{reset: %g, describe: %g, unsafeAboveApiLimit: %t}", o.reset, o.describe, o.reset > 10 || o.describe > 40),
		Verify:    fmt.Sprintf("{interval: %s, timeout: 30m}", verify), Retry: "{attempts: 20, deadline: 30m}",
		Waves: o.waves, FailureBudget: "{max: 0}"}, ids, benchPassword)
	return fleet{dir: dir, path: path, ids: ids}
}

// The shared harness under the names these benchmarks use.
var (
	// simFleet returns simulated Linux instances on the old image for ids.
	simFleet = testfleet.SimFleet
	// startSim serves a simulator with ids until the benchmark ends.
	startSim = testfleet.StartSim
	// requireCompleted fails unless every instance of a rollout succeeded.
	requireCompleted = testfleet.RequireSucceeded
	// requireExactlyOnce fails unless the simulator accepted exactly one
	// reset of every id.
	requireExactlyOnce = testfleet.RequireExactlyOnce
	// simCreds are the simulator's default credentials.
	simCreds = testfleet.SimCredentials()
)

// proc is one simulated worker process: its own Redis connections,
// asynq client, ledger, controller and limiter, like `fleetreset worker`.
type proc struct {
	rdb    *redis.Client
	client *asynq.Client
	ctl    *engine.Engine
	w      *worker.Worker
}

// noLimit is a Limiter that never waits: the Dispatch benchmark's way to
// take the API budget out of the measurement.
type noLimit struct{}

func (noLimit) Wait(ctx context.Context, _ string, _ float64) (time.Duration, error) {
	return 0, ctx.Err()
}

func (noLimit) Throttled(context.Context, string) error { return nil }

// newProc builds one worker process; lim nil means the fleet-wide Redis
// limiter, as in production.
func newProc(tb testing.TB, addr, ns, endpoint string, concurrency int, lim ratelimit.Limiter) *proc {
	tb.Helper()
	rdb := redis.NewClient(ledger.RedisOptions(&redis.Options{Addr: addr, PoolSize: 64}))
	opt := asynq.RedisClientOpt{Addr: addr, PoolSize: 64}
	client := asynq.NewClient(opt)
	l := ledger.New(rdb, ledger.Config{Prefix: ns + ":"})
	ctl := engine.New(engine.Config{Ledger: l, Client: client, Namespace: ns})
	creds := simCreds
	if lim == nil {
		lim = ratelimit.NewRedis(rdb, ratelimit.Config{Prefix: ns + ":"})
	}
	w, err := worker.New(worker.Config{
		Redis: opt, Engine: ctl,
		Limiter:  lim,
		Endpoint: endpoint, Credentials: &creds, Concurrency: concurrency,
		// A benchmark process is never killed, so no call is ever left
		// without an answer; the grace only matters for redeliveries.
		ReconcileGrace: 5 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	must(tb, err)
	return &proc{rdb: rdb, client: client, ctl: ctl, w: w}
}

func (p *proc) close() {
	p.client.Close()
	p.rdb.Close()
}

// runProcs runs n worker processes until the returned stop is called; stop
// shuts them down gracefully and waits.
func runProcs(tb testing.TB, n int, addr, ns, endpoint string, concurrency int, lim ratelimit.Limiter) (stop func()) {
	tb.Helper()
	procs := make([]*proc, n)
	ws := make([]testfleet.Runner, n)
	for i := range procs {
		procs[i] = newProc(tb, addr, ns, endpoint, concurrency, lim)
		ws[i] = procs[i].w
	}
	stopWorkers := testfleet.RunWorkers(tb, ws...)
	var once sync.Once
	return func() {
		once.Do(func() {
			stopWorkers()
			for _, p := range procs {
				p.close()
			}
		})
	}
}

// awaitRollout waits until the rollout is terminal or paused; polling is
// the only view another process has of a rollout.
func awaitRollout(tb testing.TB, l *ledger.Ledger, id string, within time.Duration) *ledger.Rollout {
	tb.Helper()
	return testfleet.AwaitRollout(tb, l, nil, id, within, testfleet.Finished...)
}

// pollRollout is awaitRollout for goroutines other than the benchmark's.
func pollRollout(l *ledger.Ledger, id string, within time.Duration) (*ledger.Rollout, error) {
	return testfleet.PollRollout(l, id, within, testfleet.Finished...)
}

// wipe deletes every key of namespace ns (ledger, limiter and the asynq
// queues ns and ns-control) and of any extra asynq queues.
func wipe(tb testing.TB, rdb *redis.Client, ns string, queues ...string) {
	tb.Helper()
	ctx := context.Background()
	pats := []string{ns + ":*", "asynq:{" + ns + "}*", "asynq:{" + ns + "-control}*"}
	for _, q := range queues {
		pats = append(pats, "asynq:{"+q+"}*")
	}
	for _, pat := range pats {
		it := rdb.Scan(ctx, 0, pat, 5000).Iterator()
		var batch []string
		for it.Next(ctx) {
			batch = append(batch, it.Val())
			if len(batch) == 5000 {
				must(tb, rdb.Unlink(ctx, batch...).Err())
				batch = batch[:0]
			}
		}
		must(tb, it.Err())
		if len(batch) > 0 {
			must(tb, rdb.Unlink(ctx, batch...).Err())
		}
	}
	q := tasks.QueuesFor(ns)
	rdb.SRem(ctx, "asynq:queues", append([]string{q.Reset, q.Control}, queues...))
}

// benchRedis returns the benchmark's Redis and logs which one it is.
func benchRedis(b *testing.B) *redistest.Redis {
	b.Helper()
	r := redistest.New(b)
	if !r.Real() {
		b.Logf("no %s: running on in-process miniredis; numbers say little about production", redistest.EnvVar)
	}
	return r
}

var nsSeq atomic.Int64

// namespace returns a namespace unique to this run.
func namespace(r *redistest.Redis, what string) string {
	return fmt.Sprintf("%s%s%d", strings.TrimSuffix(r.Prefix, ":"), what, nsSeq.Add(1))
}

// bareServers runs n asynq servers on queue q with a no-op handler that
// counts tasks; done is closed once want tasks ran.
func bareServers(tb testing.TB, n int, addr, q string, concurrency, want int) (done <-chan struct{}, stop func()) {
	tb.Helper()
	var count atomic.Int64
	ch := make(chan struct{})
	var srvs []*asynq.Server
	for range n {
		srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr, PoolSize: 64}, asynq.Config{
			Concurrency: concurrency,
			Queues:      map[string]int{q: 1},
			// The same pickup interval as fleetreset's workers.
			TaskCheckInterval: 200 * time.Millisecond,
			LogLevel:          asynq.FatalLevel,
		})
		must(tb, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
			if count.Add(1) == int64(want) {
				close(ch)
			}
			return nil
		})))
		srvs = append(srvs, srv)
	}
	return ch, func() {
		for _, s := range srvs {
			s.Shutdown()
		}
	}
}

// enqueueBare enqueues n minimal tasks into queue q from g goroutines.
func enqueueBare(tb testing.TB, client *asynq.Client, q string, n, g int) {
	tb.Helper()
	payload := []byte(`{"rollout":"bench","instance_id":"ins-00000000"}`)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range g {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := client.Enqueue(asynq.NewTask("bench:noop", payload), asynq.Queue(q)); err != nil {
					tb.Errorf("bare enqueue: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// median returns the median of xs (the mean of the middle two for an even
// count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
