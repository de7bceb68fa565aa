package bench

import (
	"context"
	"flag"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/hibiken/asynq"
)

// The issue asks for 10,000 instances at 10/s: at least 1,000 s per run.
// By default the benchmark keeps the rate and scales the fleet down to
// 1,000 instances (about two minutes); -walltime.full keeps the fleet and
// scales the rate up to 100/s, a raised quota the simulator enforces.
var wallFull = flag.Bool("walltime.full", false, "BenchmarkWallTime: 10,000 instances at 100/s instead of 1,000 at 10/s")

// Wall-time plan shape: four waves, a simulated reinstall of wallReset and
// a soak of wallSoak after each wave but the last.
const (
	wallReset = 5 * time.Second
	wallSoak  = 2 * time.Second
	wallWaves = "[{size: 1%, soak: 2s}, {size: 10%, soak: 2s}, {size: 50%, soak: 2s}, 100%]"
)

// BenchmarkWallTime runs a 4-wave rollout at the API's reset rate with a
// simulated reinstall duration and soaks, against the theoretical minimum
// of that plan: the sum over waves of max(calls/rate, reinstall duration),
// plus the soaks. Metrics, medians over iterations:
//
//	wall-s   workers started → rollout completed
//	min-s    the theoretical minimum
//	ratio    wall-s / min-s
//
// Three worker processes of 20 handlers each serve the rollout.
func BenchmarkWallTime(b *testing.B) {
	n, rate := 1000, 10
	if *wallFull {
		n, rate = 10_000, 100
	}
	r := benchRedis(b)
	ctx := context.Background()
	f := writePlan(b, b.TempDir(), n, 23, planOpts{name: "bench-wall", waves: wallWaves, reset: float64(rate), describe: 40})
	plan, err := planner.Load(f.path, planner.Options{ResolveSecrets: true})
	must(b, err)
	min := theoreticalMin(plan, float64(rate), wallReset)
	b.Logf("%d instances in waves %v at %d/s, reinstall %s, soak %s: theoretical minimum %s",
		n, waveSizes(plan), rate, wallReset, wallSoak, min)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	defer client.Close()
	var walls []float64
	for b.Loop() {
		b.StopTimer()
		ns := namespace(r, "wall")
		sim, url := startSim(b, cvmsim.Config{ResetDuration: wallReset,
			Faults: cvmsim.Faults{ResetRateLimit: rate, DescribeRateLimit: cvmsim.DescribeRateLimitDefault}}, f.ids)
		l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
		plan.Spec.Endpoint = url // the rollout keeps the endpoint its workers serve
		_, err := engine.New(engine.Config{Ledger: l, Client: client, Namespace: ns}).Apply(ctx, engine.ApplyRequest{Spec: plan.Spec, Targets: plan.Targets})
		must(b, err)
		b.StartTimer()

		t0 := time.Now()
		stop := runProcs(b, 3, r.Addr, ns, url, 20, nil)
		res := awaitRollout(b, l, plan.Spec.ID, 60*time.Minute)
		walls = append(walls, time.Since(t0).Seconds())
		stop()

		b.StopTimer()
		requireCompleted(b, res)
		st := sim.Stats()
		requireExactlyOnce(b, st, f.ids)
		if lim := st.RateLimited["ResetInstance"] + st.RateLimited["DescribeInstances"]; lim > 0 {
			b.Errorf("%d calls rate-limited by the simulator", lim)
		}
		wipe(b, r.Client, ns)
		b.StartTimer()
	}
	w := median(walls)
	b.ReportMetric(w, "wall-s")
	b.ReportMetric(min.Seconds(), "min-s")
	b.ReportMetric(w/min.Seconds(), "ratio")
}

// theoreticalMin is the lower bound for a plan: per wave the longer
// of its reset calls at the rate and one reinstall, plus the soaks between
// waves.
func theoreticalMin(plan *planner.Plan, rate float64, reset time.Duration) time.Duration {
	var total float64
	for k, w := range plan.Spec.Waves {
		total += math.Max(float64(w.Size)/rate, reset.Seconds())
		if k < len(plan.Spec.Waves)-1 {
			total += w.Soak.Seconds()
		}
	}
	return time.Duration(total * float64(time.Second))
}

func waveSizes(plan *planner.Plan) string {
	s := ""
	for k, w := range plan.Spec.Waves {
		if k > 0 {
			s += ", "
		}
		s += fmt.Sprint(w.Size)
	}
	return "[" + s + "]"
}
