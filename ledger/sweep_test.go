package ledger_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/google/go-cmp/cmp"
)

// mixed is a rollout of 2,500 instances over waves of 1,000, 1,000 and
// 500 (more than one sweep chunk per wave) in every instance state: seeded
// terminal, calling and resetting instances, held ones (Begin of a later
// wave parks them) and pending ones.
type mixed struct {
	l     *ledger.Ledger
	spec  rollout.Spec
	ids   []string
	waves []int // wave of each instance
}

func setupMixed(t *testing.T) mixed {
	t.Helper()
	r := redistest.New(t)
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	m := mixed{l: l, spec: rollout.Spec{ID: "big", PlanHash: "h", Groups: []rollout.Group{{Name: "g"}}}}
	var targets []rollout.Target
	seeds := map[string]ledger.Seed{}
	for k, size := range []int{1000, 1000, 500} {
		m.spec.Waves = append(m.spec.Waves, rollout.Wave{Size: size})
		for range size {
			i := len(m.ids)
			id := fmt.Sprintf("ins-%08d", i)
			m.ids = append(m.ids, id)
			m.waves = append(m.waves, k)
			targets = append(targets, rollout.Target{InstanceID: id, Wave: k})
			switch {
			case i%4 == 0:
				seeds[id] = ledger.Seed{State: ledger.Failed, Code: "Boom", Error: "boom"}
			case i%11 == 0:
				seeds[id] = ledger.Seed{State: ledger.Ambiguous, Code: "Unknown"}
			case i%13 == 0:
				seeds[id] = ledger.Seed{State: ledger.Succeeded}
			case i%17 == 0:
				seeds[id] = ledger.Seed{State: ledger.Resetting, RequestID: "req", Token: int64(i)}
			case i%19 == 0:
				seeds[id] = ledger.Seed{State: ledger.Calling, Token: int64(i)}
			case i%23 == 0:
				seeds[id] = ledger.Seed{State: ledger.Skipped}
			}
		}
	}
	if created, err := l.Create(t.Context(), m.spec, targets, ledger.CreateOptions{Seeds: seeds}); err != nil || !created {
		t.Fatalf("Create = %v, %v", created, err)
	}
	if err := l.Activate(t.Context(), m.spec); err != nil {
		t.Fatal(err)
	}
	// Park every fifth pending instance of the later waves.
	for i, id := range m.ids {
		if _, seeded := seeds[id]; !seeded && m.waves[i] > 0 && i%5 == 0 {
			if res, err := l.Begin(t.Context(), m.spec.ID, id, 0); err != nil || res.Action != ledger.ActHeld {
				t.Fatalf("Begin of %s = %+v, %v; want held", id, res, err)
			}
		}
	}
	return m
}

// snapshot is what abort and retry-failed may change.
type snapshot struct {
	State     ledger.RolloutState
	Attempt   int
	Counters  ledger.Counters
	Waves     []ledger.Counters
	Complete  []bool
	Instances map[string]instanceView
	Held      int
}

type instanceView struct {
	State ledger.InstanceState
	Gen   int
	Tries int
	Code  string
	Done  bool
}

func (m mixed) snapshot(t *testing.T) snapshot {
	t.Helper()
	ctx := t.Context()
	r, err := m.l.Get(ctx, m.spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot{State: r.State, Attempt: r.Attempt, Counters: r.Counters, Instances: map[string]instanceView{}}
	for _, w := range r.Waves {
		s.Waves = append(s.Waves, w.Counters)
		s.Complete = append(s.Complete, w.Complete)
	}
	is, err := m.l.Instances(ctx, m.spec.ID, m.ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range is {
		s.Instances[in.ID] = instanceView{State: in.State, Gen: in.Gen, Tries: in.Tries, Code: in.Code, Done: !in.DoneAt.IsZero()}
	}
	a, err := m.l.Activity(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	s.Held = a.Held
	return s
}

// recount rebuilds the counters of s from its instances, the way the
// scripts must have kept them.
func (m mixed) recount(s *snapshot) {
	s.Counters = ledger.Counters{}
	s.Waves = make([]ledger.Counters, len(m.spec.Waves))
	for i, id := range m.ids {
		for _, c := range []*ledger.Counters{&s.Counters, &s.Waves[m.waves[i]]} {
			switch s.Instances[id].State {
			case ledger.Succeeded:
				c.Succeeded++
			case ledger.Skipped:
				c.Skipped++
			case ledger.Failed:
				c.Failed++
			case ledger.Ambiguous:
				c.Ambiguous++
			case ledger.Cancelled:
				c.Cancelled++
			}
			if s.Instances[id].State.Terminal() {
				c.Terminal++
			}
		}
	}
}

// TestAbortOverManyChunks: abort cancels every pending and held instance
// of every wave, counts each once, and leaves the rest alone.
func TestAbortOverManyChunks(t *testing.T) {
	m := setupMixed(t)
	before := m.snapshot(t)
	if ok, err := m.l.Abort(t.Context(), m.spec.ID, "test"); err != nil || !ok {
		t.Fatalf("Abort = %v, %v", ok, err)
	}
	want := before
	want.State = ledger.Aborted
	want.Held = 0
	want.Instances = map[string]instanceView{}
	for id, in := range before.Instances {
		if in.State == ledger.Pending || in.State == ledger.Held {
			in.State, in.Done = ledger.Cancelled, true
		}
		want.Instances[id] = in
	}
	m.recount(&want)
	if want.Counters.Cancelled < 1000 {
		t.Fatalf("only %d instances to cancel; the test wants more than two chunks", want.Counters.Cancelled)
	}
	got := m.snapshot(t)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after Abort (-want +got):\n%s", diff)
	}
	// Aborting again changes nothing.
	if ok, err := m.l.Abort(t.Context(), m.spec.ID, "again"); err != nil || ok {
		t.Errorf("second Abort = %v, %v; want false, nil", ok, err)
	}
	if diff := cmp.Diff(got, m.snapshot(t)); diff != "" {
		t.Errorf("second Abort changed (-before +after):\n%s", diff)
	}
}

// TestRetryFailedOverManyChunks: retry-failed reopens every failed (and
// ambiguous, when asked) instance of every wave in a new generation,
// returns each once, and counts them out of the counters.
func TestRetryFailedOverManyChunks(t *testing.T) {
	for _, amb := range []bool{false, true} {
		t.Run(fmt.Sprintf("ambiguous=%v", amb), func(t *testing.T) {
			m := setupMixed(t)
			before := m.snapshot(t)
			rr, err := m.l.RetryFailed(t.Context(), m.spec.ID, amb)
			if err != nil || !rr.Changed {
				t.Fatalf("RetryFailed = %+v, %v", rr, err)
			}
			want := before
			want.Attempt++
			want.Instances = map[string]instanceView{}
			var wantRQ []ledger.Requeue
			for i, id := range m.ids {
				in := before.Instances[id]
				if in.State == ledger.Failed || (amb && in.State == ledger.Ambiguous) {
					in = instanceView{State: ledger.Pending, Gen: in.Gen + 1}
					wantRQ = append(wantRQ, ledger.Requeue{ID: id, Gen: in.Gen, Wave: m.waves[i]})
					want.Complete[m.waves[i]] = false
				}
				want.Instances[id] = in
			}
			m.recount(&want)
			if len(wantRQ) < 600 {
				t.Fatalf("only %d instances to retry; the test wants more than one chunk", len(wantRQ))
			}
			if diff := cmp.Diff(want, m.snapshot(t)); diff != "" {
				t.Errorf("after RetryFailed (-want +got):\n%s", diff)
			}
			slices.SortFunc(rr.Requeue, func(a, b ledger.Requeue) int { return strings.Compare(a.ID, b.ID) })
			if diff := cmp.Diff(wantRQ, rr.Requeue); diff != "" {
				t.Errorf("requeued (-want +got):\n%s", diff)
			}
			if rr.Wave != 0 || rr.Seq != 1 {
				t.Errorf("RetryFailed wave %d seq %d; want 0, 1", rr.Wave, rr.Seq)
			}
			// Nothing is left to retry.
			if again, err := m.l.RetryFailed(t.Context(), m.spec.ID, amb); err != nil || again.Changed || len(again.Requeue) != 0 {
				t.Errorf("second RetryFailed = %+v, %v; want no change", again, err)
			}
		})
	}
}
