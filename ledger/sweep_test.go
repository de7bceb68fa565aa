package ledger_test

import (
	"context"
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

// TestSweepsHoldRedisOneChunkAtATime: no abort or retry-failed script call
// examines more than one chunk of instances, and together they examine
// each instance once.
func TestSweepsHoldRedisOneChunkAtATime(t *testing.T) {
	for _, op := range []string{"abort", "retry-failed"} {
		t.Run(op, func(t *testing.T) {
			m := setupMixed(t)
			var calls, most, total int
			ledger.ObserveSweeps(m.l, func(n int) {
				calls++
				most = max(most, n)
				total += n
			})
			var err error
			if op == "abort" {
				_, err = m.l.Abort(t.Context(), m.spec.ID, "test")
			} else {
				_, err = m.l.RetryFailed(t.Context(), m.spec.ID, true)
			}
			if err != nil {
				t.Fatal(err)
			}
			if most > ledger.SweepChunk || total != len(m.ids) || calls < len(m.ids)/ledger.SweepChunk {
				t.Errorf("%d script calls examined %d instances, at most %d in one call; want each of %d once, at most %d per call",
					calls, total, most, len(m.ids), ledger.SweepChunk)
			}
		})
	}
}

// consistent checks that the counters of the rollout are what its
// instances' states add up to.
func (m mixed) consistent(t *testing.T) snapshot {
	t.Helper()
	got := m.snapshot(t)
	want := got
	m.recount(&want)
	if diff := cmp.Diff(want.Counters, got.Counters); diff != "" {
		t.Errorf("overall counters do not add up (-from the instances +counted):\n%s", diff)
	}
	if diff := cmp.Diff(want.Waves, got.Waves); diff != "" {
		t.Errorf("wave counters do not add up (-from the instances +counted):\n%s", diff)
	}
	return got
}

// TestAbortInterruptedWhileWorkersFinish: an abort whose sweep is
// interrupted after two chunks, while workers finish calls in flight and
// take pending instances (which Begin cancels), is completed by a second
// Abort; every instance not called is cancelled and counted once.
func TestAbortInterruptedWhileWorkersFinish(t *testing.T) {
	m := setupMixed(t)
	ctx := t.Context()
	before := m.snapshot(t)
	var resetting, pending []string
	for _, id := range m.ids {
		switch before.Instances[id].State {
		case ledger.Resetting:
			resetting = append(resetting, id)
		case ledger.Pending:
			pending = append(pending, id)
		}
	}
	// Between chunks, workers act on instances of every wave.
	calls := 0
	first, cancel := context.WithCancel(ctx)
	ledger.ObserveSweeps(m.l, func(int) {
		calls++
		for _, id := range every(resetting, calls%7, 7) {
			if _, err := m.l.Finish(ctx, m.spec.ID, id, ledger.Outcome{From: []ledger.InstanceState{ledger.Resetting}, To: ledger.Succeeded}); err != nil {
				t.Error(err)
			}
		}
		for _, id := range every(pending, calls%50, 50) {
			if _, err := m.l.Begin(ctx, m.spec.ID, id, 0); err != nil {
				t.Error(err)
			}
		}
		if calls == 2 {
			cancel()
		}
	})
	if _, err := m.l.Abort(first, m.spec.ID, "test"); err == nil {
		t.Fatal("Abort with its context cancelled during the sweep returned no error")
	}
	mid := m.consistent(t)
	if mid.State != ledger.Aborted {
		t.Fatalf("rollout %s after an interrupted abort; want aborted", mid.State)
	}
	if ok, err := m.l.Abort(ctx, m.spec.ID, "again"); err != nil || ok {
		t.Fatalf("second Abort = %v, %v; want false (already aborted), nil", ok, err)
	}
	got := m.consistent(t)
	for _, id := range m.ids {
		was, is := before.Instances[id].State, got.Instances[id].State
		switch {
		case was == ledger.Pending || was == ledger.Held:
			if is != ledger.Cancelled {
				t.Errorf("%s was %s, is %s after abort; want cancelled", id, was, is)
			}
		case was == ledger.Resetting:
			if is != ledger.Resetting && is != ledger.Succeeded {
				t.Errorf("%s was resetting, is %s after abort", id, is)
			}
		case is != was:
			t.Errorf("%s was %s, is %s after abort; want unchanged", id, was, is)
		}
	}
	if got.Held != 0 {
		t.Errorf("%d instances still held after abort", got.Held)
	}
}

// TestRetryFailedInterruptedWhileWorkersFinish: a retry-failed interrupted
// after two chunks, while workers finish other instances, is completed by
// a second call that returns every reopened instance once, each in one new
// generation, and starts one new attempt.
func TestRetryFailedInterruptedWhileWorkersFinish(t *testing.T) {
	m := setupMixed(t)
	ctx := t.Context()
	before := m.snapshot(t)
	var resetting []string
	want := map[string]int{} // instance: wave
	for i, id := range m.ids {
		switch before.Instances[id].State {
		case ledger.Resetting:
			resetting = append(resetting, id)
		case ledger.Failed:
			want[id] = m.waves[i]
		}
	}
	calls := 0
	first, cancel := context.WithCancel(ctx)
	ledger.ObserveSweeps(m.l, func(int) {
		calls++
		for _, id := range every(resetting, calls%7, 7) {
			if _, err := m.l.Finish(ctx, m.spec.ID, id, ledger.Outcome{From: []ledger.InstanceState{ledger.Resetting}, To: ledger.Failed}); err != nil {
				t.Error(err)
			}
		}
		if calls == 2 {
			cancel()
		}
	})
	if _, err := m.l.RetryFailed(first, m.spec.ID, false); err == nil {
		t.Fatal("RetryFailed with its context cancelled during the sweep returned no error")
	}
	m.consistent(t)
	ledger.ObserveSweeps(m.l, nil)
	rr, err := m.l.RetryFailed(ctx, m.spec.ID, false)
	if err != nil || !rr.Changed {
		t.Fatalf("second RetryFailed = %+v, %v", rr, err)
	}
	got := m.consistent(t)
	if got.Attempt != before.Attempt+1 || got.State != ledger.Running {
		t.Errorf("attempt %d, state %s; want %d, running", got.Attempt, got.State, before.Attempt+1)
	}
	seen := map[string]bool{}
	for _, r := range rr.Requeue {
		if seen[r.ID] {
			t.Errorf("%s requeued twice", r.ID)
		}
		seen[r.ID] = true
		in := got.Instances[r.ID]
		if in.State != ledger.Pending || in.Gen != 1 || r.Gen != 1 {
			t.Errorf("requeued %s in gen %d is %s in gen %d; want pending in gen 1", r.ID, r.Gen, in.State, in.Gen)
		}
	}
	// Every instance that failed before is back, and so is every one
	// that failed during the sweep in a chunk not yet swept.
	for id, w := range want {
		if !seen[id] {
			t.Errorf("failed %s (wave %d) not requeued", id, w)
		}
	}
	for id, in := range got.Instances {
		if in.State == ledger.Failed && seen[id] {
			t.Errorf("%s requeued but still failed", id)
		}
	}
}

// every returns ids[from], ids[from+step], ...
func every(ids []string, from, step int) []string {
	var out []string
	for i := from; i < len(ids); i += step {
		out = append(out, ids[i])
	}
	return out
}
