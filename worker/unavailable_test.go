package worker_test

import (
	"cmp"
	"slices"
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

// TestMaxUnavailableCountsFromTheDrain: behind a load balancer an
// instance is unavailable from its drain until its weight is back after
// health. By the simulator's record of weight changes, never more than
// the cap of 3 instances are out of the load balancer at once.
func TestMaxUnavailableCountsFromTheDrain(t *testing.T) {
	const n, most = 12, 3
	b := setup(t, servingSim(cvmsim.Faults{}), planOpts{n: n, extraAt: healthYAML("30s", drainYAML+"maxUnavailable: 3\n")})
	b.apply(t)
	b.startWorkers(t, 2, nil)
	if r := b.await(t, time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted); r.State != ledger.Completed {
		t.Fatalf("rollout %s (%s); want completed", r.State, r.Reason)
	}
	b.exactlyOnce(t, nil)
	type event struct {
		at    time.Time
		delta int
	}
	var evs []event
	for _, id := range ids(n) {
		h := b.sim.WeightHistory(id)
		if len(h) != 2 || h[0].To != 0 || h[1].To == 0 {
			t.Fatalf("%s weight history %+v; want drained then restored", id, h)
		}
		evs = append(evs, event{h[0].At, +1}, event{h[1].At, -1})
	}
	slices.SortFunc(evs, func(a, b event) int { return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.delta, b.delta)) })
	out, peak := 0, 0
	for _, e := range evs {
		out += e.delta
		peak = max(peak, out)
	}
	if peak != most {
		t.Errorf("at most %d instances drained at once; want exactly %d (never more, and the cap reached)", peak, most)
	}
}
