package worker_test

import (
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/testfleet"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/worker"
)

// TestMaxUnavailablePerZone is issue 12's test: 200 instances in 3 zones,
// maxUnavailable 5 per zone, one wave. The simulator's own record never
// shows more than 5 reinstalls running at once in a zone, the cap is
// reached (so it was what held the workers back), and every instance is
// reset exactly once. The reinstall is scaled down from the 10 s
// to 1 s to keep the test under a minute; at ~14 rounds per zone and 200
// tasks competing for 15 places, the cap is under pressure all along.
// The plan names no zones: the workers take them from DescribeInstances.
func TestMaxUnavailablePerZone(t *testing.T) {
	const n, perZone = 200, 5
	b := setup(t, cvmsim.Config{ResetDuration: time.Second, Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: n, zones: testfleet.DefaultZones, extra: fast + "\nmaxUnavailable: {perZone: 5}"})
	if m := b.plan.Spec.MaxUnavailable; m == nil || m.PerZone != perZone {
		t.Fatalf("plan's MaxUnavailable = %+v; want %d per zone", m, perZone)
	}
	b.apply(t)
	start := time.Now()
	b.startWorkers(t, 2, func(c *worker.Config) { c.Concurrency = 40 })
	r := b.await(t, 2*time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted)
	if r.State != ledger.Completed || r.Counters.Succeeded != n {
		t.Fatalf("rollout %s (%s) with %+v; want completed with %d succeeded", r.State, r.Reason, r.Counters, n)
	}
	st := b.sim.Stats()
	for _, z := range testfleet.DefaultZones {
		if got := st.MaxConcurrentResetsPerZone[z]; got != perZone {
			t.Errorf("zone %s: at most %d reinstalls at once; want exactly %d (never more, and the cap reached)", z, got, perZone)
		}
	}
	if got, most := st.MaxConcurrentResets, perZone*len(testfleet.DefaultZones); got > most {
		t.Errorf("%d reinstalls at once overall; want at most %d", got, most)
	}
	b.exactlyOnce(t, nil)
	if left, err := b.l.Unavailable(t.Context(), b.plan.Spec.ID); err != nil || len(left) > 0 {
		t.Errorf("places still held after completion: %v, %v", left, err)
	}
	t.Logf("200 instances under %d per zone in %s", perZone, time.Since(start).Round(100*time.Millisecond))
}
