package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redistest"
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
	ins := cvmsim.GenerateSeed(n, seed)
	ids := make([]string, n)
	var b strings.Builder
	b.Grow(n * 13)
	for i, in := range ins {
		ids[i] = in.ID
		b.WriteString(in.ID)
		b.WriteByte('\n')
	}
	must(tb, os.WriteFile(filepath.Join(dir, "instances.txt"), []byte(b.String()), 0o600))
	must(tb, os.WriteFile(filepath.Join(dir, "pw.txt"), []byte(benchPassword+"\n"), 0o600))
	unsafe := o.reset > 10 || o.describe > 40
	verify := o.verify
	if verify == 0 {
		verify = time.Second
	}
	plan := fmt.Sprintf(`version: 1
name: %s
region: ap-guangzhou
api: v3
image: {id: %s}
os: linux
password: {file: pw.txt}
groups:
  - name: all
    instancesFile: instances.txt
rateLimit: {reset: %g, describe: %g, unsafeAboveApiLimit: %t}
verify: {interval: %s, timeout: 30m}
retry: {attempts: 20, deadline: 30m}
waves: %s
failureBudget: {max: 0}
`, o.name, targetImage, o.reset, o.describe, unsafe, verify, o.waves)
	path := filepath.Join(dir, "plan.yaml")
	must(tb, os.WriteFile(path, []byte(plan), 0o600))
	return fleet{dir: dir, path: path, ids: ids}
}

// simFleet returns simulated Linux instances on the old image for ids.
func simFleet(ids []string) []cvmsim.Instance {
	zones := []string{"ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6"}
	out := make([]cvmsim.Instance, len(ids))
	for i, id := range ids {
		out[i] = cvmsim.Instance{ID: id, Zone: zones[i%len(zones)], ImageID: cvmsim.ImageLinuxOld, OS: cvmsim.OSLinux, State: cvmsim.StateRunning}
	}
	return out
}

// startSim serves a simulator with ids in httptest until the benchmark ends.
func startSim(tb testing.TB, cfg cvmsim.Config, ids []string) (*cvmsim.Server, string) {
	tb.Helper()
	sim := cvmsim.New(cfg)
	sim.AddInstances(simFleet(ids)...)
	srv := httptest.NewServer(sim)
	tb.Cleanup(srv.Close)
	return sim, srv.URL
}

// simCreds are the simulator's default credentials.
var simCreds = cvm.Credentials{SecretID: cvmsim.SecretIDDefault, SecretKey: cvm.Secret(cvmsim.SecretKeyDefault)}

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
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})
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
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	procs := make([]*proc, n)
	for i := range procs {
		procs[i] = newProc(tb, addr, ns, endpoint, concurrency, lim)
		wg.Go(func() {
			if err := procs[i].w.Run(ctx); err != nil {
				tb.Errorf("worker %d: %v", i, err)
			}
		})
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			for _, p := range procs {
				p.close()
			}
		})
	}
}

// awaitRollout polls the ledger until the rollout is terminal or paused;
// polling is the only view another process has of a rollout.
func awaitRollout(tb testing.TB, l *ledger.Ledger, id string, within time.Duration) *ledger.Rollout {
	tb.Helper()
	r, err := pollRollout(l, id, within)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// pollRollout is awaitRollout for goroutines other than the benchmark's.
func pollRollout(l *ledger.Ledger, id string, within time.Duration) (*ledger.Rollout, error) {
	deadline := time.Now().Add(within)
	var last *ledger.Rollout
	for time.Now().Before(deadline) {
		r, err := l.Get(context.Background(), id)
		if err == nil {
			last = r
			if r.State.Terminal() || r.State == ledger.Paused {
				return r, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("rollout %s did not finish within %s; last: %+v", id, within, last)
}

// requireCompleted fails unless every instance of r succeeded.
func requireCompleted(tb testing.TB, r *ledger.Rollout) {
	tb.Helper()
	if r.State != ledger.Completed || r.Counters.Succeeded != r.Total {
		tb.Fatalf("rollout %s ended %s (%s) with %+v of %d", r.ID, r.State, r.Reason, r.Counters, r.Total)
	}
}

// requireExactlyOnce fails unless the simulator accepted exactly one reset
// of every id.
func requireExactlyOnce(tb testing.TB, st cvmsim.Stats, ids []string) {
	tb.Helper()
	bad := 0
	for _, id := range ids {
		if n := st.AcceptedResets[id]; n != 1 {
			if bad < 5 {
				tb.Errorf("%s reset %d times; want 1", id, n)
			}
			bad++
		}
	}
	if bad > 0 {
		tb.Fatalf("%d of %d instances not reset exactly once", bad, len(ids))
	}
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
