package bench

import (
	"context"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/hibiken/asynq"
)

// Dispatch benchmark shape: 20,000 instances, 2 worker processes of the
// default concurrency (20 handlers each), like the bare baseline.
const (
	dispatchN           = 20_000
	dispatchProcs       = 2
	dispatchConcurrency = 20
)

// BenchmarkDispatch runs a 20,000-instance rollout against a simulator with
// no limits, no latency and a reinstall that ends at once, and, in the same
// iteration, bare asynq processing 20,000 preloaded no-op tasks with the
// same number of server processes and handlers. Two sub-benchmarks:
//
//	limiter=max   the plan asks for ratelimit.MaxRate (1000/s, the most the
//	              limiter grants; unsafeAboveApiLimit), so resets cannot
//	              beat ~980/s (1s/(1s+Guard) of it)
//	limiter=none  the workers get a Limiter that never waits: what the rest
//	              of the machinery (asynq, ledger scripts, the HTTP client,
//	              verification sweeps) costs against bare asynq
//
// Metrics, medians over iterations:
//
//	rollout-s   workers started → rollout completed (pre-flight, resets,
//	            verification in batches of 100, the gate); apply not included
//	bare-s      servers started → all no-op tasks processed
//	inst/s      instances verified per second
//	bare/s      no-op tasks per second
//	ratio       inst/s ÷ bare/s
//	tasks/inst  asynq tasks fleetreset ran per instance (reset, verify
//	            sweeps, waves), so the ratio can be read against it
func BenchmarkDispatch(b *testing.B) {
	b.Run("limiter=max", func(b *testing.B) { benchDispatch(b, nil) })
	b.Run("limiter=none", func(b *testing.B) { benchDispatch(b, noLimit{}) })
}

func benchDispatch(b *testing.B, lim ratelimit.Limiter) {
	r := benchRedis(b)
	ctx := context.Background()
	f := writePlan(b, b.TempDir(), dispatchN, 11, planOpts{name: "bench-dispatch", waves: "[100%]",
		reset: ratelimit.MaxRate, describe: ratelimit.MaxRate, verify: 200 * time.Millisecond})
	plan, err := planner.Load(f.path, planner.Options{ResolveSecrets: true})
	must(b, err)
	opt := asynq.RedisClientOpt{Addr: r.Addr, PoolSize: 64}
	client := asynq.NewClient(opt)
	defer client.Close()
	var roll, bare, perInst []float64
	for b.Loop() {
		b.StopTimer()
		ns := namespace(r, "dispatch")
		bareQ := ns + "-bare"
		sim, url := startSim(b, cvmsim.Config{ResetDuration: time.Nanosecond,
			Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}}, f.ids)
		l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
		plan.Spec.Endpoint = url // the rollout keeps the endpoint its workers serve
		_, err := engine.New(engine.Config{Ledger: l, Client: client, Namespace: ns}).Apply(ctx, engine.ApplyRequest{Spec: plan.Spec, Targets: plan.Targets})
		must(b, err)
		enqueueBare(b, client, bareQ, dispatchN, 32)
		b.StartTimer()

		t0 := time.Now()
		stop := runProcs(b, dispatchProcs, r.Addr, ns, url, dispatchConcurrency, lim)
		res := awaitRollout(b, l, plan.Spec.ID, 10*time.Minute)
		roll = append(roll, time.Since(t0).Seconds())
		stop()

		t0 = time.Now()
		done, stopBare := bareServers(b, dispatchProcs, r.Addr, bareQ, dispatchConcurrency, dispatchN)
		<-done
		bare = append(bare, time.Since(t0).Seconds())
		stopBare()

		b.StopTimer()
		requireCompleted(b, res)
		requireExactlyOnce(b, sim.Stats(), f.ids)
		perInst = append(perInst, float64(processed(b, opt, ns))/dispatchN)
		wipe(b, r.Client, ns, bareQ)
		b.StartTimer()
	}
	rs, bs := median(roll), median(bare)
	b.ReportMetric(rs, "rollout-s")
	b.ReportMetric(bs, "bare-s")
	b.ReportMetric(dispatchN/rs, "inst/s")
	b.ReportMetric(dispatchN/bs, "bare/s")
	b.ReportMetric(bs/rs, "ratio")
	b.ReportMetric(median(perInst), "tasks/inst")
}

// processed counts the tasks asynq ran in namespace ns, from the queues'
// daily processed counters.
func processed(b *testing.B, opt asynq.RedisConnOpt, ns string) int {
	b.Helper()
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	n := 0
	for _, q := range []string{ns, ns + "-control"} {
		info, err := insp.GetQueueInfo(q)
		must(b, err)
		n += info.Processed
	}
	return n
}
