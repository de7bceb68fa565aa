package ledger_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/fleetreset/fleetreset/ledger"
)

const (
	zoneA = "ap-guangzhou-3"
	zoneB = "ap-guangzhou-4"
)

// take asks for a place for instance id (generation 0) and fails the test
// on a Redis error.
func take(t *testing.T, l *ledger.Ledger, rollout, id string, p ledger.Place) ledger.TakeResult {
	t.Helper()
	res, err := l.Take(t.Context(), rollout, id, 0, p)
	if err != nil {
		t.Fatalf("Take %s: %v", id, err)
	}
	return res
}

// unavailable returns the instances holding a place, by zone, sorted.
func unavailable(t *testing.T, l *ledger.Ledger, rollout string) map[string][]string {
	t.Helper()
	m, err := l.Unavailable(t.Context(), rollout)
	if err != nil {
		t.Fatal(err)
	}
	for _, ids := range m {
		slices.Sort(ids)
	}
	return m
}

func TestTakeIsIdempotentAndHonoursTheCaps(t *testing.T) {
	l, spec, tg := setup(t, 10)
	id := func(i int) string { return tg[i].InstanceID }
	p := func(zone string) ledger.Place { return ledger.Place{Zone: zone, Total: 3, PerZone: 2} }
	for _, step := range []struct {
		i     int
		place ledger.Place
		want  ledger.TakeVerdict
		n, z  int
	}{
		{0, p(zoneA), ledger.TakeTaken, 1, 1},
		{0, p(zoneA), ledger.TakeHolding, 1, 1}, // a redelivery keeps its place, counted once
		{1, p(zoneA), ledger.TakeTaken, 2, 2},
		{2, p(zoneA), ledger.TakeZone, 2, 2}, // zone A is full
		{3, p(zoneB), ledger.TakeTaken, 3, 1},
		{4, p(zoneB), ledger.TakeTotal, 3, 1}, // the rollout is full
		{1, p(zoneA), ledger.TakeHolding, 3, 2},
		// An instance the cloud shows down already is counted over the caps.
		{5, ledger.Place{Zone: zoneB, Total: 3, PerZone: 2, Force: true}, ledger.TakeTaken, 4, 2},
		{6, p(zoneB), ledger.TakeTotal, 4, 2},
		{7, ledger.Place{Zone: zoneB}, ledger.TakeTaken, 5, 3}, // no caps: always a place
	} {
		got := take(t, l, spec.ID, id(step.i), step.place)
		if got.Verdict != step.want || got.Unavailable != step.n || got.InZone != step.z {
			t.Errorf("Take %s in %s = %+v; want %s with %d overall, %d in zone", id(step.i), step.place.Zone, got, step.want, step.n, step.z)
		}
		if got.Verdict.Allowed() != (step.want == ledger.TakeTaken || step.want == ledger.TakeHolding) {
			t.Errorf("%s.Allowed() = %v", got.Verdict, got.Verdict.Allowed())
		}
	}
	want := map[string][]string{zoneA: {id(0), id(1)}, zoneB: {id(3), id(5), id(7)}}
	if got := unavailable(t, l, spec.ID); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Unavailable = %v; want %v", got, want)
	}
}

func TestConcurrentTakesNeverExceedTheCap(t *testing.T) {
	l, spec, tg := setup(t, 50)
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for _, target := range tg {
		wg.Go(func() {
			for range 2 { // and each one twice, as a redelivery would
				res, err := l.Take(t.Context(), spec.ID, target.InstanceID, 0, ledger.Place{Zone: zoneA, PerZone: 5})
				if err != nil {
					t.Error(err)
					return
				}
				if res.Verdict == ledger.TakeTaken {
					mu.Lock()
					granted++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if got := unavailable(t, l, spec.ID); granted != 5 || len(got[zoneA]) != 5 {
		t.Errorf("%d places granted, %v hold one; want 5", granted, got)
	}
}

func TestTakeRefusesWhatIsNotInThisAttempt(t *testing.T) {
	l, spec, tg := setup(t, 4)
	ctx := t.Context()
	a, b := tg[0].InstanceID, tg[1].InstanceID
	if res, err := l.Take(ctx, spec.ID, a, 1, ledger.Place{Zone: zoneA}); err != nil || res.Verdict != ledger.TakeGone {
		t.Errorf("Take of another generation = %+v, %v; want gone", res, err)
	}
	if _, err := l.Finish(ctx, spec.ID, b, ledger.Outcome{From: []ledger.InstanceState{ledger.Pending}, To: ledger.Skipped}); err != nil {
		t.Fatal(err)
	}
	if res := take(t, l, spec.ID, b, ledger.Place{Zone: zoneA}); res.Verdict != ledger.TakeGone {
		t.Errorf("Take of a terminal instance = %+v; want gone", res)
	}
	if res := take(t, l, spec.ID, "ins-nothere", ledger.Place{Zone: zoneA}); res.Verdict != ledger.TakeGone {
		t.Errorf("Take of an unknown instance = %+v; want gone", res)
	}
	if _, err := l.SetState(ctx, spec.ID, nil, ledger.Paused, "test"); err != nil {
		t.Fatal(err)
	}
	if res := take(t, l, spec.ID, a, ledger.Place{Zone: zoneA}); res.Verdict != ledger.TakeStopped {
		t.Errorf("Take in a paused rollout = %+v; want stopped", res)
	}
	if got := unavailable(t, l, spec.ID); len(got) != 0 {
		t.Errorf("Unavailable = %v; want none", got)
	}
}

// TestEveryWayOutGivesThePlaceBack walks one instance down each path that
// ends its attempt or sends it back without a call, and checks its place
// is free afterwards (and held while it must be).
func TestEveryWayOutGivesThePlaceBack(t *testing.T) {
	place := ledger.Place{Zone: zoneA, PerZone: 1}
	for _, tc := range []struct {
		name string
		// out takes instance id, which holds the only place, down its path;
		// it returns whether the place must still be held afterwards.
		out func(t *testing.T, l *ledger.Ledger, rollout, id string) (kept bool)
	}{
		{"verified: finish succeeded", func(t *testing.T, l *ledger.Ledger, r, id string) bool {
			tok := begin(t, l, r, id)
			mustOK(t, l.Called(t.Context(), r, id, tok, "req-1"))
			finish(t, l, r, id, ledger.Resetting, ledger.Succeeded)
			return false
		}},
		{"verify failed: finish failed", func(t *testing.T, l *ledger.Ledger, r, id string) bool {
			tok := begin(t, l, r, id)
			mustOK(t, l.Called(t.Context(), r, id, tok, "req-1"))
			finish(t, l, r, id, ledger.Resetting, ledger.Failed)
			return false
		}},
		{"ambiguous after a lost answer", func(t *testing.T, l *ledger.Ledger, r, id string) bool {
			begin(t, l, r, id)
			finish(t, l, r, id, ledger.Calling, ledger.Ambiguous)
			return false
		}},
		{"before hook abandoned: finish from pending", func(t *testing.T, l *ledger.Ledger, r, id string) bool {
			finish(t, l, r, id, ledger.Pending, ledger.Failed)
			return false
		}},
		{"adopted and verified", func(t *testing.T, l *ledger.Ledger, r, id string) bool {
			tok := begin(t, l, r, id)
			mustOK(t, l.Adopt(t.Context(), r, id, tok, "req-0", "running already"))
			finish(t, l, r, id, ledger.Resetting, ledger.Succeeded)
			return false
		}},
		{"refused call: release to pending", func(t *testing.T, l *ledger.Ledger, r, id string) bool {
			tok := begin(t, l, r, id)
			mustOK(t, l.Release(t.Context(), r, id, tok, ledger.Pending, "RequestLimitExceeded", "throttled"))
			return false
		}},
		{"refused call of a drained instance: kept", func(t *testing.T, l *ledger.Ledger, r, id string) bool {
			drain(t, l, r, id)
			tok := begin(t, l, r, id)
			mustOK(t, l.Release(t.Context(), r, id, tok, ledger.Pending, "RequestLimitExceeded", "throttled"))
			return true
		}},
		{"fatal error: release to held", func(t *testing.T, l *ledger.Ledger, r, id string) bool {
			drain(t, l, r, id)
			tok := begin(t, l, r, id)
			mustOK(t, l.Release(t.Context(), r, id, tok, ledger.Held, "AuthFailure", "bad key"))
			return false
		}},
		{"paused while draining: begin parks", func(t *testing.T, l *ledger.Ledger, r, id string) bool {
			drain(t, l, r, id)
			if _, err := l.SetState(t.Context(), r, nil, ledger.Paused, "test"); err != nil {
				t.Fatal(err)
			}
			if res, err := l.Begin(t.Context(), r, id, 0); err != nil || res.Action != ledger.ActHeld {
				t.Fatalf("Begin = %+v, %v; want held", res, err)
			}
			return false
		}},
		{"aborted before its sweep: begin cancels", func(t *testing.T, l *ledger.Ledger, r, id string) bool {
			if _, err := l.SetState(t.Context(), r, nil, ledger.Aborted, "test"); err != nil {
				t.Fatal(err)
			}
			if res, err := l.Begin(t.Context(), r, id, 0); err != nil || res.Action != ledger.ActCancelled {
				t.Fatalf("Begin = %+v, %v; want cancelled", res, err)
			}
			return false
		}},
		{"abort sweep cancels a pending holder", func(t *testing.T, l *ledger.Ledger, r, id string) bool {
			if _, err := l.Abort(t.Context(), r, "test"); err != nil {
				t.Fatal(err)
			}
			return false
		}},
		{"abort keeps a call in flight", func(t *testing.T, l *ledger.Ledger, r, id string) bool {
			tok := begin(t, l, r, id)
			mustOK(t, l.Called(t.Context(), r, id, tok, "req-1"))
			if _, err := l.Abort(t.Context(), r, "test"); err != nil {
				t.Fatal(err)
			}
			return true // down until verification finishes it
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, spec, tg := setup(t, 2)
			id, other := tg[0].InstanceID, tg[1].InstanceID
			if res := take(t, l, spec.ID, id, place); res.Verdict != ledger.TakeTaken {
				t.Fatalf("Take = %+v; want taken", res)
			}
			kept := tc.out(t, l, spec.ID, id)
			got := unavailable(t, l, spec.ID)
			if kept {
				if want := []string{id}; !slices.Equal(got[zoneA], want) {
					t.Errorf("Unavailable = %v; want %s still holding its place", got, id)
				}
				return
			}
			if len(got) != 0 {
				t.Errorf("Unavailable = %v; want the place given back", got)
			}
			if in, err := l.Instance(t.Context(), spec.ID, id); err != nil {
				t.Fatal(err)
			} else if in.State == ledger.Pending {
				// Back to pending: its next attempt must ask again, and gets it.
				if res := take(t, l, spec.ID, id, place); res.Verdict != ledger.TakeTaken {
					t.Errorf("Take again = %+v; want taken", res)
				}
				return
			}
			// The place is free for another instance, when the rollout still runs.
			if st, _, _ := l.State(t.Context(), spec.ID); st == ledger.Running {
				if res := take(t, l, spec.ID, other, place); res.Verdict != ledger.TakeTaken {
					t.Errorf("Take of another instance = %+v; want taken", res)
				}
			}
		})
	}
}

func TestPruneDeletesTheUnavailableSets(t *testing.T) {
	x := newRetention(t)
	ctx := t.Context()
	ids := x.rollout(t, "old", "", 0, 4)
	for i, id := range ids[:3] {
		zone := []string{zoneA, zoneB, ""}[i]
		if res, err := x.l.Take(ctx, "old", id, 0, ledger.Place{Zone: zone, PerZone: 2}); err != nil || res.Verdict != ledger.TakeTaken {
			t.Fatalf("Take = %+v, %v", res, err)
		}
		// Called: still unavailable when the rollout is aborted.
		res, err := x.l.Begin(ctx, "old", id, 0)
		if err != nil || res.Action != ledger.ActProceed {
			t.Fatalf("Begin = %+v, %v", res, err)
		}
		mustOK(t, x.l.Called(ctx, "old", id, res.Token, "req"))
	}
	x.finish(t, "old", ledger.Aborted)
	before := x.of(t, x.keys(t), "old")
	for _, k := range []string{"u", "uzs", "uz:" + zoneA, "uz:" + zoneB, "uz:"} {
		if !slices.Contains(before, x.r.Prefix+"{old}:"+k) {
			t.Fatalf("setup: no key %s among %v", k, before)
		}
	}
	x.clk.Add(40 * day)
	if _, err := x.l.Prune(ctx, ledger.PruneOptions{OlderThan: 30 * day}); err != nil {
		t.Fatal(err)
	}
	if left := x.of(t, x.keys(t), "old"); len(left) > 0 {
		t.Errorf("keys left after the prune: %v", left)
	}
}

func begin(t *testing.T, l *ledger.Ledger, rollout, id string) int64 {
	t.Helper()
	res, err := l.Begin(t.Context(), rollout, id, 0)
	if err != nil || res.Action != ledger.ActProceed {
		t.Fatalf("Begin %s = %+v, %v; want proceed", id, res, err)
	}
	return res.Token
}

func finish(t *testing.T, l *ledger.Ledger, rollout, id string, from, to ledger.InstanceState) {
	t.Helper()
	res, err := l.Finish(t.Context(), rollout, id, ledger.Outcome{From: []ledger.InstanceState{from}, To: to})
	if err != nil || !res.Changed {
		t.Fatalf("Finish %s %s → %s = %+v, %v", id, from, to, res, err)
	}
}

// drain records instance id drained (weights kept, not restored), as the
// worker does before its reset.
func drain(t *testing.T, l *ledger.Ledger, rollout, id string) {
	t.Helper()
	sv := ledger.Serving{Phase: ledger.PhaseReady, Zeroed: true,
		Weights: []ledger.Weight{{LoadBalancerID: "lb-1", ListenerID: "lbl-1", Port: 80, Weight: 10}}}
	if _, err := l.SetServing(t.Context(), rollout, id, 0, []ledger.InstanceState{ledger.Pending}, sv); err != nil {
		t.Fatal(err)
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
