package bench

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/testfleet"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/fleetreset/fleetreset/worker"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// clusterEnv names a Redis Cluster for BenchmarkCluster: some of its
// nodes' addresses, comma-separated. The benchmark FLUSHALLs the
// cluster's primaries between runs: give it a cluster of its own.
const clusterEnv = "FLEETRESET_BENCH_REDIS_CLUSTER"

// deployment is one Redis deployment the cluster benchmark runs on: the
// ledger's client (no retries, as fleetreset makes it) and asynq's options.
type deployment struct {
	name  string
	rdb   redis.UniversalClient
	opt   asynq.RedisConnOpt
	reset func(tb testing.TB, ns string)
}

// BenchmarkCluster runs the apply of 100,000 instances and the dispatch of
// 20,000 (limiter=max, as BenchmarkDispatch) on one Redis
// (FLEETRESET_TEST_REDIS) and on a Redis Cluster (FLEETRESET_BENCH_REDIS_CLUSTER),
// alternately in each iteration, and reports medians:
//
//	apply-single-s, apply-cluster-s        planner.Load + engine.Apply
//	apply-ratio                            cluster ÷ single (above 1: the cluster is slower)
//	dispatch-single-s, dispatch-cluster-s  workers started → rollout completed
//	dispatch-ratio                         cluster ÷ single
//
// The cluster's nodes and the single server share the machine's CPUs
// with the benchmark, so the ratio says what the cluster's routing costs
// a client, not what more machines would buy.
func BenchmarkCluster(b *testing.B) {
	addrs := strings.TrimSpace(os.Getenv(clusterEnv))
	if addrs == "" {
		b.Skipf("%s is not set (some nodes of a Redis Cluster of its own)", clusterEnv)
	}
	r := benchRedis(b)
	if !r.Real() {
		b.Skip("needs FLEETRESET_TEST_REDIS: one real Redis to compare the cluster with")
	}
	single := deployment{name: "single",
		rdb:   redis.NewClient(ledger.RedisOptions(&redis.Options{Addr: r.Addr, PoolSize: 64})),
		opt:   asynq.RedisClientOpt{Addr: r.Addr, PoolSize: 64},
		reset: func(tb testing.TB, ns string) { wipe(tb, r.Client, ns) }}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ","), PoolSize: 64, MaxRetries: -1, MaxRedirects: -1})
	cluster := deployment{name: "cluster", rdb: cc, opt: asynq.RedisClusterClientOpt{Addrs: strings.Split(addrs, ",")},
		reset: func(tb testing.TB, _ string) {
			must(tb, cc.ForEachMaster(context.Background(), func(ctx context.Context, c *redis.Client) error {
				return c.FlushAll(ctx).Err()
			}))
		}}
	defer single.rdb.Close()
	defer cc.Close()
	cluster.reset(b, "")

	af := writePlan(b, b.TempDir(), applyN, 7, planOpts{name: "bench-apply", waves: "[1, 100, 10%, 100%]", reset: 10, describe: 40})
	df := writePlan(b, b.TempDir(), dispatchN, 11, planOpts{name: "bench-dispatch", waves: "[100%]",
		reset: ratelimit.MaxRate, describe: ratelimit.MaxRate, verify: 200 * time.Millisecond})
	got := map[string][]float64{}
	for b.Loop() {
		for _, d := range []deployment{single, cluster} {
			ns := namespace(r, "cl"+d.name)
			got["apply-"+d.name] = append(got["apply-"+d.name], applyOn(b, d, ns, af))
			d.reset(b, ns)
			got["dispatch-"+d.name] = append(got["dispatch-"+d.name], dispatchOn(b, d, ns+"d", df))
			d.reset(b, ns+"d")
		}
	}
	for _, what := range []string{"apply", "dispatch"} {
		s, c := median(got[what+"-single"]), median(got[what+"-cluster"])
		b.ReportMetric(s, what+"-single-s")
		b.ReportMetric(c, what+"-cluster-s")
		b.ReportMetric(c/s, what+"-ratio")
	}
}

// applyOn applies the plan at f on d and returns the seconds it took.
func applyOn(b *testing.B, d deployment, ns string, f fleet) float64 {
	client := asynq.NewClient(d.opt)
	defer client.Close()
	start := time.Now()
	plan, err := planner.Load(f.path, planner.Options{ResolveSecrets: true})
	must(b, err)
	l := ledger.New(d.rdb, ledger.Config{Prefix: ns + ":"})
	res, err := engine.New(engine.Config{Ledger: l, Client: client, Namespace: ns}).Apply(context.Background(), engine.ApplyRequest{Spec: plan.Spec, Targets: plan.Targets})
	must(b, err)
	took := time.Since(start).Seconds()
	if !res.Created {
		b.Fatalf("apply on %s created nothing", d.name)
	}
	return took
}

// dispatchOn applies the plan at f on d (not timed), then runs two worker
// processes of 20 handlers until the rollout completes and returns the
// seconds that took; every instance must be reset exactly once.
func dispatchOn(b *testing.B, d deployment, ns string, f fleet) float64 {
	b.StopTimer()
	plan, err := planner.Load(f.path, planner.Options{ResolveSecrets: true})
	must(b, err)
	sim, url := startSim(b, cvmsim.Config{ResetDuration: time.Nanosecond,
		Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}}, f.ids)
	client := asynq.NewClient(d.opt)
	defer client.Close()
	l := ledger.New(d.rdb, ledger.Config{Prefix: ns + ":"})
	plan.Spec.Endpoint = url
	_, err = engine.New(engine.Config{Ledger: l, Client: client, Namespace: ns}).Apply(context.Background(), engine.ApplyRequest{Spec: plan.Spec, Targets: plan.Targets})
	must(b, err)
	b.StartTimer()
	start := time.Now()
	var ws []testfleet.Runner
	var clients []*asynq.Client
	for range dispatchProcs {
		c := asynq.NewClient(d.opt)
		clients = append(clients, c)
		creds := simCreds
		w, err := worker.New(worker.Config{Redis: d.opt, Engine: engine.New(engine.Config{Ledger: l, Client: c, Namespace: ns}),
			Limiter: ratelimit.NewRedis(d.rdb, ratelimit.Config{Prefix: ns + ":"}), Endpoint: url, Credentials: &creds,
			Concurrency: dispatchConcurrency, ReconcileGrace: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		must(b, err)
		ws = append(ws, w)
	}
	stop := testfleet.RunWorkers(b, ws...)
	res := awaitRollout(b, l, plan.Spec.ID, 10*time.Minute)
	took := time.Since(start).Seconds()
	stop()
	for _, c := range clients {
		c.Close()
	}
	requireCompleted(b, res)
	requireExactlyOnce(b, sim.Stats(), f.ids)
	return took
}
