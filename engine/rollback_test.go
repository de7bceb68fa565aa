package engine_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/google/go-cmp/cmp"
)

// rollbackFixture is a rollout of 8 instances in waves of 3, 3 and 2 on
// image img-new00001, applied through the engine. Its instances are
// driven through the ledger as workers would: tests call reset, fail and
// so on.
type rollbackFixture struct {
	t    *testing.T
	l    *ledger.Ledger
	eng  *engine.Engine
	spec rollout.Spec
	ids  []string
}

func newRollbackFixture(t *testing.T, onBreach string) *rollbackFixture {
	t.Helper()
	l, eng := newEngine(t, nil)
	spec, targets := fleetSpec("web", "h-web", 8)
	spec.OnBreach = onBreach
	spec.Groups[0].Password = &rollout.SecretRef{Env: "ROOT_PW"}
	no := rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit}
	spec.Waves = []rollout.Wave{{Size: 3, Budget: no}, {Size: 3, Budget: no}, {Size: 2, Budget: no}}
	for i := range targets {
		targets[i].Wave = i / 3
	}
	if _, err := eng.Apply(t.Context(), engine.ApplyRequest{Spec: spec, Targets: targets}); err != nil {
		t.Fatal(err)
	}
	return &rollbackFixture{t: t, l: l, eng: eng, spec: spec, ids: idsOf(targets)}
}

// call pre-flights instance i on old (none when ""), records the intent
// and the accepted call: the reset is in flight.
func (f *rollbackFixture) call(i int, old string) {
	f.t.Helper()
	ctx, id := f.t.Context(), f.ids[i]
	if old != "" {
		if err := f.l.Preflight(ctx, f.spec.ID, id, old, ""); err != nil {
			f.t.Fatal(err)
		}
	}
	b, err := f.l.Begin(ctx, f.spec.ID, id, 0)
	if err != nil || b.Action != ledger.ActProceed {
		f.t.Fatalf("Begin(%s) = %+v, %v", id, b, err)
	}
	if err := f.l.Called(ctx, f.spec.ID, id, b.Token, "req-"+id); err != nil {
		f.t.Fatal(err)
	}
}

// finish records instance i's outcome through the engine, as a worker's
// verification does (consequences included: breach, rollback).
func (f *rollbackFixture) finish(i int, from, to ledger.InstanceState) {
	f.t.Helper()
	o := ledger.Outcome{From: []ledger.InstanceState{from}, To: to}
	if to == ledger.Succeeded {
		o.NewImage = f.spec.Groups[0].ImageID
	}
	res, err := f.eng.Finish(f.t.Context(), f.spec, f.ids[i], o, engine.Adapter{})
	if err != nil || !res.Changed {
		f.t.Fatalf("Finish(%s → %s) = %+v, %v", f.ids[i], to, res, err)
	}
}

// reset resets instance i from old to the target: called, then verified.
func (f *rollbackFixture) reset(i int, old string) {
	f.t.Helper()
	f.call(i, old)
	f.finish(i, ledger.Resetting, ledger.Succeeded)
}

// advance passes the gate after wave k, as the gate's task does.
func (f *rollbackFixture) advance(k int) {
	f.t.Helper()
	if res, err := f.eng.Advance(f.t.Context(), f.spec, k, engine.Adapter{}); err != nil || !res.Passed {
		f.t.Fatalf("Advance(%d) = %+v, %v", k, res, err)
	}
}

// skipRest finishes every instance still pending as skipped.
func (f *rollbackFixture) skipRest() {
	f.t.Helper()
	is, err := f.l.Instances(f.t.Context(), f.spec.ID, f.ids)
	if err != nil {
		f.t.Fatal(err)
	}
	for i, in := range is {
		if in.State == ledger.Pending {
			f.finish(i, ledger.Pending, ledger.Skipped)
		}
	}
}

// rollbackOf reads the rollback's instances as "id=image@wave".
func (f *rollbackFixture) rollbackOf() (*ledger.Rollout, []string) {
	f.t.Helper()
	r, err := f.l.Get(f.t.Context(), rollout.RollbackID(f.spec.ID))
	if err != nil {
		f.t.Fatal(err)
	}
	is, err := f.l.AllInstances(f.t.Context(), r)
	if err != nil {
		f.t.Fatal(err)
	}
	var got []string
	for _, in := range is {
		got = append(got, fmt.Sprintf("%s=%s@%d", in.ID, r.Spec.Groups[in.Group].ImageID, in.Wave))
	}
	return r, got
}

// TestRollbackOfCompletedRollout: the rollback holds exactly the instances
// the original reset, each going back to its own old image, in waves re-cut
// from the original's sizes; the rest is reported or left alone.
func TestRollbackOfCompletedRollout(t *testing.T) {
	f := newRollbackFixture(t, rollout.OnBreachPause)
	ctx := t.Context()
	f.reset(0, "img-old00001")
	f.reset(1, "img-old00002")
	f.reset(2, "img-old00001")
	f.advance(0)
	f.reset(3, "")             // no pre-flight record: old image unknown
	f.reset(4, "img-new00001") // re-imaged onto the image it had
	f.finish(5, ledger.Pending, ledger.Skipped)
	f.advance(1)
	f.finish(6, ledger.Pending, ledger.Failed) // refused at pre-flight: never called
	f.reset(7, "img-old00002")
	f.advance(2)

	res, err := f.eng.Rollback(ctx, f.spec.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Aborted || res.ID != "web-rollback" || res.Instances != 4 {
		t.Errorf("Rollback = %+v; want web-rollback created with 4 instances, the original not aborted", res)
	}
	if diff := cmp.Diff(map[string]int{"img-old00001": 2, "img-old00002": 2}, res.Images); diff != "" {
		t.Errorf("images (-want +got):\n%s", diff)
	}
	if _, ok := res.LeftOut[f.ids[3]]; !ok || len(res.LeftOut) != 2 {
		t.Errorf("left out %v; want the unknown old image (%s) and the one already on target (%s)", res.LeftOut, f.ids[3], f.ids[4])
	}
	r, got := f.rollbackOf()
	want := []string{ // the original's waves of 3, 3 and 2, over 4
		f.ids[0] + "=img-old00001@0", f.ids[1] + "=img-old00002@0", f.ids[2] + "=img-old00001@0",
		f.ids[7] + "=img-old00002@1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rollback instances (-want +got):\n%s", diff)
	}
	if r.Spec.RollbackOf != "web" || r.Spec.OnBreach != rollout.OnBreachPause || r.State != ledger.Running {
		t.Errorf("rollback %s: rollback of %q, on breach %q; want running, of web, pause", r.State, r.Spec.RollbackOf, r.Spec.OnBreach)
	}
	for _, g := range r.Spec.Groups {
		if g.Password == nil || g.Password.Env != "ROOT_PW" {
			t.Errorf("group %s password %+v; want the original's reference", g.Name, g.Password)
		}
	}
}

// TestRollbackTwiceMakesOne: concurrent and repeated rollbacks of one
// rollout create one rollback; the others find it.
func TestRollbackTwiceMakesOne(t *testing.T) {
	f := newRollbackFixture(t, rollout.OnBreachPause)
	f.reset(0, "img-old00001")
	f.reset(1, "img-old00001")
	f.skipRest()
	complete(t, f.l, f.spec.ID)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		errs    []error
	)
	for range 6 {
		wg.Go(func() {
			res, err := f.eng.Rollback(t.Context(), f.spec.ID, nil)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if res.Created {
				created++
			}
		})
	}
	wg.Wait()
	if created != 1 || len(errs) > 0 {
		t.Fatalf("%d of 6 rollbacks created one, errors %v; want exactly 1, none", created, errs)
	}
	res, err := f.eng.Rollback(t.Context(), f.spec.ID, nil)
	if err != nil || res.Created || res.ID != "web-rollback" || res.State != ledger.Running {
		t.Errorf("Rollback again = %+v, %v; want the existing running rollback", res, err)
	}
	rs, err := f.l.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Errorf("%d rollouts; want the original and one rollback", len(rs))
	}
	// A rollback is not rolled back.
	if _, err := f.eng.Rollback(t.Context(), "web-rollback", nil); !errors.Is(err, rollout.ErrRollbackOfRollback) {
		t.Errorf("Rollback(web-rollback) = %v; want ErrRollbackOfRollback", err)
	}
}

// TestRollbackOfRunningRollout: a running original is aborted first and
// releases its claims; while a reset is in flight no rollback is made
// (ErrInFlight), and once it finishes the rollback includes it.
func TestRollbackOfRunningRollout(t *testing.T) {
	f := newRollbackFixture(t, rollout.OnBreachPause)
	ctx := t.Context()
	f.reset(0, "img-old00001")
	f.call(1, "img-old00001") // in flight
	res, err := f.eng.Rollback(ctx, f.spec.ID, nil)
	if !errors.Is(err, engine.ErrInFlight) || !res.Aborted || res.InFlight != 1 {
		t.Fatalf("Rollback = %+v, %v; want the original aborted and ErrInFlight for 1", res, err)
	}
	orig, err := f.l.Get(ctx, f.spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if orig.State != ledger.Aborted || orig.Reason != "rolled back" {
		t.Errorf("original %s (%q); want aborted, rolled back", orig.State, orig.Reason)
	}
	// Its claims are free: another rollout may take the cancelled ones.
	other, _ := fleetSpec("other", "h-other", 0)
	if _, err := f.eng.Apply(ctx, engine.ApplyRequest{Spec: other, Targets: []rollout.Target{{InstanceID: f.ids[5]}}}); err != nil {
		t.Errorf("apply over a cancelled instance of the aborted original: %v", err)
	}
	f.finish(1, ledger.Resetting, ledger.Succeeded)
	res, err = f.eng.Rollback(ctx, f.spec.ID, nil)
	if err != nil || !res.Created || res.Aborted {
		t.Fatalf("Rollback after the call finished = %+v, %v; want created", res, err)
	}
	if _, got := f.rollbackOf(); !cmp.Equal(got, []string{f.ids[0] + "=img-old00001@0", f.ids[1] + "=img-old00001@0"}) {
		t.Errorf("rollback instances %v; want both reset instances", got)
	}
}

// TestOnBreachRollback: a breach of a rollout with onBreach rollback aborts
// it at once and, when its last reset in flight finishes, rolls it back.
// A rollout aborted by a person is not rolled back by a later outcome.
func TestOnBreachRollback(t *testing.T) {
	f := newRollbackFixture(t, rollout.OnBreachRollback)
	ctx := t.Context()
	f.spec.Budget = rollout.Budget{Max: 0, Percent: rollout.NoLimit}
	f.reset(0, "img-old00001")
	f.call(1, "img-old00001") // in flight at the breach
	f.call(2, "img-old00002")
	f.finish(2, ledger.Resetting, ledger.Failed) // breaches the budget
	orig, err := f.l.Get(ctx, f.spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if orig.State != ledger.Aborted || !strings.HasPrefix(orig.Reason, "rolled back: rollout failure budget exceeded") {
		t.Fatalf("after the breach: %s (%q); want aborted, rolled back: ...", orig.State, orig.Reason)
	}
	if _, _, err := f.l.Spec(ctx, "web-rollback"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("rollback made while a reset is in flight: %v", err)
	}
	f.finish(1, ledger.Resetting, ledger.Succeeded)
	r, got := f.rollbackOf()
	want := []string{f.ids[0] + "=img-old00001@0", f.ids[1] + "=img-old00001@0", f.ids[2] + "=img-old00002@0"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rollback instances (-want +got):\n%s", diff)
	}
	if r.Spec.OnBreach != rollout.OnBreachPause {
		t.Errorf("rollback on breach %q; want pause", r.Spec.OnBreach)
	}

	// Aborted by a person: a failure afterwards rolls nothing back.
	g := newRollbackFixture(t, rollout.OnBreachRollback)
	g.spec.Budget = rollout.Budget{Max: 0, Percent: rollout.NoLimit}
	g.reset(0, "img-old00001")
	g.call(1, "img-old00001")
	if _, err := g.eng.Abort(ctx, g.spec.ID, ""); err != nil {
		t.Fatal(err)
	}
	g.finish(1, ledger.Resetting, ledger.Failed)
	if _, _, err := g.l.Spec(ctx, "web-rollback"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("a rollout aborted by a person was rolled back: %v", err)
	}
}
