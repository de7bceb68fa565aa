package worker_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/ledger"
)

// TestWavesAreStrictlyOrdered: a 200-instance plan with waves
// [1, 5, 20%, 100%] calls every wave's instances only after the previous
// wave verified and soaked; the simulator's arrival times prove it.
func TestWavesAreStrictlyOrdered(t *testing.T) {
	const soak = 300 * time.Millisecond
	b := setup(t, cvmsim.Config{ResetDuration: 100 * time.Millisecond,
		Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: 200, extra: fast, waves: fmt.Sprintf("[{size: 1, soak: %s}, {size: 5, soak: %s}, {size: 20%%, soak: %s}, {size: 100%%}]", soak, soak, soak)})
	b.apply(t)
	b.startWorkers(t, 2, nil)
	r := b.await(t, 2*time.Minute, ledger.Completed, ledger.Paused)
	if r.State != ledger.Completed {
		t.Fatalf("rollout %s: %s", r.State, r.Reason)
	}
	if got := []int{r.Waves[0].Size, r.Waves[1].Size, r.Waves[2].Size, r.Waves[3].Size}; !slices.Equal(got, []int{1, 5, 40, 154}) {
		t.Fatalf("wave sizes %v; want [1 5 40 154]", got)
	}
	b.exactlyOnce(t, nil)
	st := b.sim.Stats()
	var prevLast time.Time
	for k := range r.Waves {
		first, last := time.Time{}, time.Time{}
		for _, tg := range b.plan.WaveTargets(k) {
			at := st.ResetTimes[tg.InstanceID][0]
			if first.IsZero() || at.Before(first) {
				first = at
			}
			if at.After(last) {
				last = at
			}
		}
		// The next wave starts no earlier than the last reset of this one
		// plus its reinstall (verify) plus its soak.
		if k > 0 && first.Sub(prevLast) < soak {
			t.Errorf("wave %d started %s after wave %d's last reset; want at least the %s soak", k+1, first.Sub(prevLast), k, soak)
		}
		prevLast = last
	}
}

// TestFailureBudgetBoundaries: budgets trip when exceeded, not when reached,
// in counts and percents, per wave and overall. Missing instances fail at
// the wave's pre-flight, which makes the number of failures exact.
func TestFailureBudgetBoundaries(t *testing.T) {
	tests := []struct {
		name   string
		budget string // YAML
		wave   bool   // budget on wave 1 instead of the rollout
		fails  int
		paused bool
	}{
		{"wave-count-below", "{max: 2}", true, 1, false},
		{"wave-count-at", "{max: 2}", true, 2, false},
		{"wave-count-above", "{max: 2}", true, 3, true},
		{"wave-percent-below", "{percent: 20%, minSample: 10}", true, 1, false},
		{"wave-percent-at", "{percent: 20%, minSample: 10}", true, 2, false},
		{"wave-percent-above", "{percent: 20%, minSample: 10}", true, 3, true},
		{"overall-count-at", "{max: 2}", false, 2, false},
		{"overall-count-above", "{max: 2}", false, 3, true},
		{"overall-percent-at", "{percent: 10%, minSample: 20}", false, 2, false},
		{"overall-percent-above", "{percent: 10%, minSample: 20}", false, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// 20 instances: wave 1 has 10, wave 2 has 10. Failures are the
			// last instances of wave 1, so each is judged with a full sample.
			missing := map[int]bool{}
			for i := range tt.fails {
				missing[9-i] = true
			}
			waves, extra := "[{size: 10}, {size: 10}]", fast+"\nfailureBudget: {max: 100}"
			if tt.wave {
				waves = fmt.Sprintf("[{size: 10, failureBudget: %s}, {size: 10}]", tt.budget)
			} else {
				extra = fast + "\nfailureBudget: " + tt.budget
			}
			b := setup(t, cvmsim.Config{ResetDuration: 50 * time.Millisecond,
				Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}},
				planOpts{n: 20, waves: waves, extra: extra, missing: missing})
			b.apply(t)
			b.startWorkers(t, 1, nil)
			r := b.await(t, time.Minute, ledger.Completed, ledger.Paused)
			if got := r.State == ledger.Paused; got != tt.paused {
				t.Fatalf("%d failures: state %s (%s); want paused=%v", tt.fails, r.State, r.Reason, tt.paused)
			}
			if r.Counters.Failed != tt.fails {
				t.Errorf("%d failed; want %d", r.Counters.Failed, tt.fails)
			}
			if !tt.paused {
				return
			}
			if !strings.Contains(r.Reason, "budget exceeded") {
				t.Errorf("pause reason %q does not name the budget", r.Reason)
			}
			// No instance of wave 2 was called across the tripped gate
			// (an overall percentage with a sample of the whole plan can
			// only be judged at the end).
			st := b.sim.Stats()
			for _, tg := range b.plan.WaveTargets(1) {
				if tt.name == "overall-percent-above" {
					break
				}
				if st.AcceptedResets[tg.InstanceID] != 0 {
					t.Errorf("%s of wave 2 was reset although wave 1 breached its budget", tg.InstanceID)
				}
			}
			// Fix the cause, retry the failed and resume: the rollout
			// finishes without calling any succeeded instance again.
			var fixed []cvmsim.Instance
			for i := range missing {
				fixed = append(fixed, cvmsim.Instance{ID: ids(20)[i], Zone: "ap-guangzhou-3", ImageID: "img-old00001", OS: "linux", State: "RUNNING"})
			}
			b.sim.AddInstances(fixed...)
			if _, err := b.ctl.RetryFailed(t.Context(), b.plan.Spec.ID, false); err != nil {
				t.Fatal(err)
			}
			r = b.await(t, time.Minute, ledger.Completed)
			if r.Counters.Succeeded != 20 {
				t.Errorf("after retry-failed: %+v; want 20 succeeded", r.Counters)
			}
			b.exactlyOnce(t, nil)
		})
	}
}

// TestManualGateWaitsForApproval: the next wave starts only after approve.
func TestManualGateWaitsForApproval(t *testing.T) {
	b := setup(t, cvmsim.Config{ResetDuration: 50 * time.Millisecond,
		Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: 6, extra: fast, waves: "[{size: 2, approval: manual}, {size: 100%}]"})
	b.apply(t)
	b.startWorkers(t, 1, nil)
	r := b.await(t, time.Minute, ledger.AwaitingApproval)
	if r.Waves[0].Counters.Succeeded != 2 {
		t.Errorf("awaiting approval with wave 1 at %+v; want both verified", r.Waves[0].Counters)
	}
	st := b.sim.Stats()
	for _, tg := range b.plan.WaveTargets(1) {
		if st.AcceptedResets[tg.InstanceID] != 0 {
			t.Fatalf("%s of wave 2 was reset before approval", tg.InstanceID)
		}
	}
	if _, err := b.ctl.Approve(t.Context(), b.plan.Spec.ID); err != nil {
		t.Fatal(err)
	}
	b.await(t, time.Minute, ledger.Completed)
	b.exactlyOnce(t, nil)
}

// TestAbortStopsNewCalls: after abort nothing new is called; what was in
// flight finishes, the rest is cancelled.
func TestAbortStopsNewCalls(t *testing.T) {
	b := setup(t, cvmsim.Config{ResetDuration: 50 * time.Millisecond,
		Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: 30, extra: fast, waves: "[{size: 5, approval: manual}, {size: 100%}]"})
	b.apply(t)
	b.startWorkers(t, 1, nil)
	b.await(t, time.Minute, ledger.AwaitingApproval)
	inFlight, err := b.ctl.Abort(t.Context(), b.plan.Spec.ID, "test")
	if err != nil || inFlight != 0 {
		t.Fatalf("Abort = %d, %v; want nothing in flight at a gate", inFlight, err)
	}
	before := b.sim.Stats().AcceptedResets
	// Approving an aborted rollout does nothing.
	if _, err := b.ctl.Approve(t.Context(), b.plan.Spec.ID); err == nil {
		t.Errorf("Approve after abort succeeded")
	}
	r := b.await(t, time.Second, ledger.Aborted)
	after := b.sim.Stats().AcceptedResets
	total := func(m map[string]int) (n int) {
		for _, v := range m {
			n += v
		}
		return n
	}
	if total(before) != 5 || total(after) != 5 {
		t.Errorf("resets before/after abort: %d/%d; want 5/5", total(before), total(after))
	}
	if r.Counters.Succeeded != 5 || r.Counters.Cancelled != 25 || r.Counters.Terminal != r.Total {
		t.Errorf("%+v; want the 5 canaries succeeded and the other 25 cancelled", r.Counters)
	}
}
