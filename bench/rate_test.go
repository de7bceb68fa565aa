package bench

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/hibiken/asynq"
)

// rateSeconds is how long each rate-fidelity rollout keeps the reset
// budget busy: the plan has budget × rateSeconds instances.
const rateSeconds = 12

// BenchmarkRateFidelity runs rollouts with 1 and 3 worker processes
// (separate worker.Worker instances with their own Redis connections, as
// separate `fleetreset worker` processes have) at reset budgets of 10/s
// and 40/s, against a simulator that enforces the same limit per second of
// arrival, as the real API does (10/s is ResetInstance's documented
// limit; 40/s stands for a raised quota, with unsafeAboveApiLimit). The
// baseline is the budget itself. Metrics, medians over iterations:
//
//	used        reset calls / (budget × seconds from the first to the last call)
//	worst-1s    most reset calls the simulator counted in one second of arrival
//	worst-slide most reset calls in any sliding one-second window
//	limited     RequestLimitExceeded answers, reset and describe (must be 0)
//	worst-desc  most DescribeInstances calls in one second (limit 40)
//
// It fails when a window holds more calls than the budget or the
// simulator rejected any call for its rate.
func BenchmarkRateFidelity(b *testing.B) {
	for _, c := range []struct {
		procs  int
		budget int
	}{{1, 10}, {3, 10}, {1, 40}, {3, 40}} {
		b.Run(fmt.Sprintf("procs=%d/budget=%d", c.procs, c.budget), func(b *testing.B) {
			benchRate(b, c.procs, c.budget)
		})
	}
}

func benchRate(b *testing.B, procs, budget int) {
	r := benchRedis(b)
	ctx := context.Background()
	n := budget * rateSeconds
	f := writePlan(b, b.TempDir(), n, int64(100+budget), planOpts{name: "bench-rate", waves: "[100%]",
		reset: float64(budget), describe: 40})
	plan, err := planner.Load(f.path, planner.Options{ResolveSecrets: true})
	must(b, err)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	defer client.Close()
	var used, worst, slide, limited, worstDesc []float64
	for b.Loop() {
		b.StopTimer()
		ns := namespace(r, "rate")
		sim, url := startSim(b, cvmsim.Config{ResetDuration: 200 * time.Millisecond,
			Faults: cvmsim.Faults{ResetRateLimit: budget, DescribeRateLimit: cvmsim.DescribeRateLimitDefault}}, f.ids)
		l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
		plan.Spec.Endpoint = url // the rollout keeps the endpoint its workers serve
		_, err := engine.New(engine.Config{Ledger: l, Client: client, Namespace: ns}).Apply(ctx, engine.ApplyRequest{Spec: plan.Spec, Targets: plan.Targets})
		must(b, err)
		b.StartTimer()

		stop := runProcs(b, procs, r.Addr, ns, url, 20, nil)
		res := awaitRollout(b, l, plan.Spec.ID, 10*time.Minute)
		stop()

		b.StopTimer()
		requireCompleted(b, res)
		st := sim.Stats()
		requireExactlyOnce(b, st, f.ids)
		times := resetTimes(st)
		span := times[len(times)-1].Sub(times[0]).Seconds()
		used = append(used, float64(len(times)-1)/(float64(budget)*span))
		w := st.MaxCallsPerSecond["ResetInstance"]
		sw := slidingMax(times, time.Second)
		worst = append(worst, float64(w))
		slide = append(slide, float64(sw))
		lim := st.RateLimited["ResetInstance"] + st.RateLimited["DescribeInstances"]
		limited = append(limited, float64(lim))
		worstDesc = append(worstDesc, float64(st.MaxCallsPerSecond["DescribeInstances"]))
		if w > budget || lim > 0 {
			b.Errorf("budget %d/s: worst second %d calls, %d rate-limited; want at most %d and 0", budget, w, lim, budget)
		}
		if u := used[len(used)-1]; u < 0.95 {
			b.Logf("budget %d/s with %d processes: used %.3f of the budget, below 0.95", budget, procs, u)
		}
		wipe(b, r.Client, ns)
		b.StartTimer()
	}
	b.ReportMetric(median(used), "used")
	b.ReportMetric(median(worst), "worst-1s")
	b.ReportMetric(median(slide), "worst-slide")
	b.ReportMetric(median(limited), "limited")
	b.ReportMetric(median(worstDesc), "worst-desc")
}

// resetTimes returns the arrival times of every accepted reset, in order.
func resetTimes(st cvmsim.Stats) []time.Time {
	var ts []time.Time
	for _, id := range slices.Sorted(maps.Keys(st.ResetTimes)) {
		ts = append(ts, st.ResetTimes[id]...)
	}
	slices.SortFunc(ts, time.Time.Compare)
	return ts
}

// slidingMax is the most times in any half-open window [t, t+w).
func slidingMax(ts []time.Time, w time.Duration) int {
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}
