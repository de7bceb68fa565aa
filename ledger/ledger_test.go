package ledger_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

func setup(t *testing.T, waves ...int) (*ledger.Ledger, rollout.Spec, []rollout.Target) {
	t.Helper()
	r := redistest.New(t)
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	spec := rollout.Spec{ID: "r1", PlanHash: "h1", API: "v3", Groups: []rollout.Group{{Name: "g", ImageID: "img-new00001"}}}
	var targets []rollout.Target
	n := 0
	for k, size := range waves {
		spec.Waves = append(spec.Waves, rollout.Wave{Size: size})
		for range size {
			targets = append(targets, rollout.Target{InstanceID: fmt.Sprintf("ins-%08d", n), Wave: k})
			n++
		}
	}
	created, err := l.Create(t.Context(), spec, targets, ledger.CreateOptions{})
	if err != nil || !created {
		t.Fatalf("Create = %v, %v; want true, nil", created, err)
	}
	if err := l.Activate(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	return l, spec, targets
}

func TestCreateIsIdempotentAndRefusesChangedPlans(t *testing.T) {
	l, spec, targets := setup(t, 2)
	created, err := l.Create(t.Context(), spec, targets, ledger.CreateOptions{})
	if err != nil || created {
		t.Errorf("second Create = %v, %v; want false, nil", created, err)
	}
	spec.PlanHash = "h2"
	if _, err := l.Create(t.Context(), spec, targets, ledger.CreateOptions{}); !errors.Is(err, ledger.ErrPlanChanged) {
		t.Errorf("Create with another plan hash = %v; want ErrPlanChanged", err)
	}
}

func TestProtocolHappyPath(t *testing.T) {
	l, spec, _ := setup(t, 1, 1)
	ctx := t.Context()
	res, err := l.Begin(ctx, spec.ID, "ins-00000000", 0)
	if err != nil || res.Action != ledger.ActProceed || res.Token == 0 {
		t.Fatalf("Begin = %+v, %v; want proceed with a token", res, err)
	}
	// A duplicate delivery must not get permission to call.
	if dup, _ := l.Begin(ctx, spec.ID, "ins-00000000", 0); dup.Action != ledger.ActReconcile {
		t.Errorf("second Begin = %v; want reconcile", dup.Action)
	}
	if err := l.Called(ctx, spec.ID, "ins-00000000", res.Token, "req-1"); err != nil {
		t.Fatal(err)
	}
	if again, _ := l.Begin(ctx, spec.ID, "ins-00000000", 0); again.Action != ledger.ActVerify {
		t.Errorf("Begin after Called = %v; want verify", again.Action)
	}
	fr, err := l.Finish(ctx, spec.ID, "ins-00000000", ledger.Outcome{From: []ledger.InstanceState{ledger.Resetting}, To: ledger.Succeeded, NewImage: "img-new00001"})
	if err != nil || !fr.Changed || !fr.WaveComplete || fr.Overall.Succeeded != 1 {
		t.Fatalf("Finish = %+v, %v; want changed, wave complete, 1 succeeded", fr, err)
	}
	// Finishing twice counts once.
	fr2, _ := l.Finish(ctx, spec.ID, "ins-00000000", ledger.Outcome{From: []ledger.InstanceState{ledger.Resetting}, To: ledger.Succeeded})
	if fr2.Changed || fr2.Overall.Succeeded != 1 || fr2.Overall.Terminal != 1 {
		t.Errorf("second Finish = %+v; want unchanged counts", fr2)
	}
	in, _ := l.Instance(ctx, spec.ID, "ins-00000000")
	if in.State != ledger.Succeeded || in.RequestID != "req-1" || in.Resets != 1 {
		t.Errorf("instance = %+v", in)
	}
}

func TestLaterWaveIsHeldUntilItsGate(t *testing.T) {
	l, spec, _ := setup(t, 1, 1)
	res, _ := l.Begin(t.Context(), spec.ID, "ins-00000001", 0)
	if res.Action != ledger.ActHeld {
		t.Errorf("Begin of a wave-2 instance during wave 1 = %v; want held", res.Action)
	}
}

func TestFencing(t *testing.T) {
	l, spec, _ := setup(t, 1)
	ctx := t.Context()
	res, _ := l.Begin(ctx, spec.ID, "ins-00000000", 0)
	tok2, err := l.Retake(ctx, spec.ID, "ins-00000000", res.Token)
	if err != nil || tok2 == res.Token {
		t.Fatalf("Retake = %d, %v; want a new token", tok2, err)
	}
	if err := l.Called(ctx, spec.ID, "ins-00000000", res.Token, "late"); !errors.Is(err, ledger.ErrFenced) {
		t.Errorf("Called with the old token = %v; want ErrFenced", err)
	}
	if _, err := l.Retake(ctx, spec.ID, "ins-00000000", res.Token); !errors.Is(err, ledger.ErrFenced) {
		t.Errorf("Retake with the old token = %v; want ErrFenced", err)
	}
	if err := l.Called(ctx, spec.ID, "ins-00000000", tok2, "req"); err != nil {
		t.Errorf("Called with the new token = %v", err)
	}
}

// TestConcurrentBeginsGrantOnce races many deliveries of one task: exactly
// one may call the API.
func TestConcurrentBeginsGrantOnce(t *testing.T) {
	l, spec, _ := setup(t, 1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	proceeds := 0
	for range 20 {
		wg.Go(func() {
			res, err := l.Begin(t.Context(), spec.ID, "ins-00000000", 0)
			if err != nil {
				t.Error(err)
				return
			}
			if res.Action == ledger.ActProceed {
				mu.Lock()
				proceeds++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if proceeds != 1 {
		t.Errorf("%d of 20 concurrent Begins may call; want exactly 1", proceeds)
	}
}

func TestPauseHoldsAndResumeRequeues(t *testing.T) {
	l, spec, _ := setup(t, 3)
	ctx := t.Context()
	if ok, err := l.SetState(ctx, spec.ID, []ledger.RolloutState{ledger.Running}, ledger.Paused, "test"); !ok || err != nil {
		t.Fatalf("SetState = %v, %v", ok, err)
	}
	for _, id := range []string{"ins-00000000", "ins-00000001"} {
		if res, _ := l.Begin(ctx, spec.ID, id, 0); res.Action != ledger.ActHeld {
			t.Errorf("Begin while paused = %v; want held", res.Action)
		}
	}
	rr, err := l.Resume(ctx, spec.ID)
	if err != nil || !rr.Changed || len(rr.Requeue) != 2 {
		t.Fatalf("Resume = %+v, %v; want 2 requeued", rr, err)
	}
	for _, rq := range rr.Requeue {
		if rq.Gen != 1 {
			t.Errorf("requeued %s in gen %d; want 1", rq.ID, rq.Gen)
		}
		// The old task (gen 0) is stale now; the new one may proceed.
		if res, _ := l.Begin(ctx, spec.ID, rq.ID, 0); res.Action != ledger.ActStale {
			t.Errorf("old-generation Begin = %v; want stale", res.Action)
		}
		if res, _ := l.Begin(ctx, spec.ID, rq.ID, rq.Gen); res.Action != ledger.ActProceed {
			t.Errorf("new-generation Begin = %v; want proceed", res.Action)
		}
	}
}

func TestAbortCancelsWhatWasNotCalled(t *testing.T) {
	l, spec, _ := setup(t, 2, 1)
	ctx := t.Context()
	if ok, err := l.Abort(ctx, spec.ID, "test"); !ok || err != nil {
		t.Fatalf("Abort = %v, %v", ok, err)
	}
	if res, _ := l.Begin(ctx, spec.ID, "ins-00000000", 0); res.Action != ledger.ActDone {
		t.Errorf("Begin after abort = %v; want done (already cancelled)", res.Action)
	}
	r, _ := l.Get(ctx, spec.ID)
	if r.Counters.Cancelled != 3 || r.Counters.Terminal != r.Total || r.State != ledger.Aborted {
		t.Errorf("after abort: %+v, %s", r.Counters, r.State)
	}
}

func TestRetryFailedReopensOnlyFailures(t *testing.T) {
	l, spec, _ := setup(t, 2)
	ctx := t.Context()
	for i, to := range []ledger.InstanceState{ledger.Failed, ledger.Succeeded} {
		id := fmt.Sprintf("ins-%08d", i)
		res, _ := l.Begin(ctx, spec.ID, id, 0)
		if _, err := l.Finish(ctx, spec.ID, id, ledger.Outcome{From: []ledger.InstanceState{ledger.Calling}, Token: res.Token, To: to}); err != nil {
			t.Fatal(err)
		}
	}
	rr, err := l.RetryFailed(ctx, spec.ID, false)
	if err != nil || len(rr.Requeue) != 1 || rr.Requeue[0].ID != "ins-00000000" {
		t.Fatalf("RetryFailed = %+v, %v; want only the failed instance", rr, err)
	}
	r, _ := l.Get(ctx, spec.ID)
	if r.Counters.Failed != 0 || r.Counters.Succeeded != 1 || r.Counters.Terminal != 1 || r.Attempt != 2 {
		t.Errorf("counters after retry-failed = %+v, attempt %d", r.Counters, r.Attempt)
	}
}

func TestAdvanceGate(t *testing.T) {
	l, spec, _ := setup(t, 1, 1)
	ctx := t.Context()
	if out, _, _ := l.Advance(ctx, spec.ID, 0, false, true, false); out != ledger.AdvIncomplete {
		t.Errorf("Advance of an unfinished wave = %v; want incomplete", out)
	}
	res, _ := l.Begin(ctx, spec.ID, "ins-00000000", 0)
	_, _ = l.Finish(ctx, spec.ID, "ins-00000000", ledger.Outcome{From: []ledger.InstanceState{ledger.Calling}, Token: res.Token, To: ledger.Succeeded})
	if out, _, _ := l.Advance(ctx, spec.ID, 0, true, true, false); out != ledger.AdvAwaiting {
		t.Errorf("Advance with approval = %v; want awaiting", out)
	}
	if out, _, _ := l.Advance(ctx, spec.ID, 0, true, true, false); out != ledger.AdvBlocked {
		t.Errorf("Advance while awaiting approval = %v; want blocked", out)
	}
	if _, err := l.Approve(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := l.Advance(ctx, spec.ID, 0, true, false, false); out != ledger.AdvWindow {
		t.Errorf("Advance outside the window = %v; want window", out)
	}
	out, cur, _ := l.Advance(ctx, spec.ID, 0, true, true, false)
	if out != ledger.AdvStarted || cur != 1 {
		t.Errorf("Advance = %v, %d; want started, 1", out, cur)
	}
	if out, cur, _ := l.Advance(ctx, spec.ID, 0, false, true, false); out != ledger.AdvStale || cur != 1 {
		t.Errorf("repeated Advance = %v, %d; want stale, 1", out, cur)
	}
}

// live records an active rollout named id (claims of rollouts that are
// not active are free).
func live(t *testing.T, l *ledger.Ledger, id string) {
	t.Helper()
	spec := rollout.Spec{ID: id, PlanHash: "h", Waves: []rollout.Wave{{Size: 1}}, Groups: []rollout.Group{{Name: "g"}}}
	if _, err := l.Create(t.Context(), spec, []rollout.Target{{InstanceID: "ins-" + id}}, ledger.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Activate(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
}

func TestClaimsOfFinishedOrMissingRolloutsAreFree(t *testing.T) {
	r := redistest.New(t)
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	ctx := t.Context()
	live(t, l, "a")
	for _, owner := range []string{"a", "ghost"} { // "ghost" has no record at all
		if c, err := l.Claim(ctx, owner, []string{"ins-" + owner + "-1"}); err != nil || len(c) != 0 {
			t.Fatalf("Claim = %v, %v", c, err)
		}
	}
	if c, _ := l.Claim(ctx, "b", []string{"ins-a-1"}); len(c) != 1 {
		t.Errorf("claim of a running rollout taken: %v", c)
	}
	// Just claimed and not yet written (an apply between Claim and
	// Create) is not the same as gone: it blocks while its claiming mark
	// lasts (the creation lease), then it is free.
	if c, _ := l.Claim(ctx, "b", []string{"ins-ghost-1"}); len(c) != 1 {
		t.Errorf("claim of a rollout being applied taken: %v", c)
	}
	if err := r.Client.Del(ctx, r.Prefix+"{ghost}:claiming").Err(); err != nil { // the mark expired
		t.Fatal(err)
	}
	if c, _ := l.Claim(ctx, "b", []string{"ins-ghost-1"}); len(c) != 0 {
		t.Errorf("claim of a rollout that no longer exists still blocks: %v", c)
	}
	if _, err := l.Abort(ctx, "a", "test"); err != nil {
		t.Fatal(err)
	}
	if c, _ := l.Claim(ctx, "b", []string{"ins-a-1"}); len(c) != 0 {
		t.Errorf("claim of an aborted rollout still blocks: %v", c)
	}
	// A creation under way blocks; one whose creator died (its lease ran
	// out and it never activated) does not.
	dead := rollout.Spec{ID: "dead", PlanHash: "h", Waves: []rollout.Wave{{Size: 1}}, Groups: []rollout.Group{{Name: "g"}}}
	if c, err := l.Claim(ctx, dead.ID, []string{"ins-dead-1"}); err != nil || len(c) != 0 {
		t.Fatalf("Claim = %v, %v", c, err)
	}
	if _, err := l.Create(ctx, dead, []rollout.Target{{InstanceID: "ins-dead-1"}}, ledger.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Del(ctx, r.Prefix+"{dead}:claiming").Err(); err != nil {
		t.Fatal(err)
	}
	if c, _ := l.Claim(ctx, "b", []string{"ins-dead-1"}); len(c) != 1 {
		t.Errorf("claim of a rollout being created taken: %v", c)
	}
	if err := r.Client.Del(ctx, r.Prefix+"{dead}:applying").Err(); err != nil { // the creator died
		t.Fatal(err)
	}
	if c, _ := l.Claim(ctx, "b", []string{"ins-dead-1"}); len(c) != 0 {
		t.Errorf("claim of a dead creation still blocks: %v", c)
	}
}

func TestClaimsAreAllOrNothing(t *testing.T) {
	r := redistest.New(t)
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	ctx := t.Context()
	live(t, l, "a")
	if c, err := l.Claim(ctx, "a", []string{"ins-1", "ins-2"}); err != nil || len(c) != 0 {
		t.Fatalf("Claim = %v, %v", c, err)
	}
	c, err := l.Claim(ctx, "b", []string{"ins-3", "ins-2"})
	if err != nil || len(c) != 1 || c[0] != (ledger.Conflict{InstanceID: "ins-2", Rollout: "a"}) {
		t.Fatalf("clashing Claim = %v, %v; want ins-2 held by a", c, err)
	}
	// Nothing of b's claim was taken: ins-3 is still free.
	if c, _ := l.Claim(ctx, "c", []string{"ins-3"}); len(c) != 0 {
		t.Errorf("ins-3 was claimed by the refused rollout: %v", c)
	}
	if err := l.Unclaim(ctx, "a", []string{"ins-1", "ins-2"}); err != nil {
		t.Fatal(err)
	}
	if c, _ := l.Claim(ctx, "b", []string{"ins-2"}); len(c) != 0 {
		t.Errorf("after Unclaim: %v", c)
	}
}

func TestSeedsFromJournal(t *testing.T) {
	r := redistest.New(t)
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	spec := rollout.Spec{ID: "r", PlanHash: "h", Groups: []rollout.Group{{}}, Waves: []rollout.Wave{{Size: 2}}}
	targets := []rollout.Target{{InstanceID: "ins-a"}, {InstanceID: "ins-b"}}
	at := time.UnixMilli(1_700_000_000_000)
	_, err := l.Create(t.Context(), spec, targets, ledger.CreateOptions{Seq: 1, Seeds: map[string]ledger.Seed{
		"ins-a": {State: ledger.Succeeded},
		"ins-b": {State: ledger.Calling, Token: 7, IntentAt: at},
	}})
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Activate(t.Context(), spec)
	res, _ := l.Begin(t.Context(), "r", "ins-b", 0)
	if res.Action != ledger.ActReconcile || res.Token != 7 || !res.IntentAt.Equal(at) {
		t.Errorf("Begin of a journalled intent = %+v; want reconcile with token 7 at %v", res, at)
	}
	if tok, _ := l.Retake(t.Context(), "r", "ins-b", 7); tok <= 7 {
		t.Errorf("token after a journalled 7 = %d; must be larger", tok)
	}
	got, _ := l.Get(t.Context(), "r")
	if got.Counters.Succeeded != 1 || got.Counters.Terminal != 1 {
		t.Errorf("seeded counters = %+v", got.Counters)
	}
}

func TestAdoptMovesAnIntentToResettingWithoutCountingACall(t *testing.T) {
	l, spec, _ := setup(t, 1)
	ctx := t.Context()
	res, err := l.Begin(ctx, spec.ID, "ins-00000000", 0)
	if err != nil || res.Action != ledger.ActProceed {
		t.Fatalf("Begin = %+v, %v", res, err)
	}
	if err := l.Adopt(ctx, spec.ID, "ins-00000000", res.Token+1, "req-x", "why"); !errors.Is(err, ledger.ErrFenced) {
		t.Errorf("Adopt with a stale token = %v; want ErrFenced", err)
	}
	for range 2 { // a replayed script call succeeds again
		if err := l.Adopt(ctx, spec.ID, "ins-00000000", res.Token, "req-x", "a reinstall is running"); err != nil {
			t.Fatalf("Adopt = %v", err)
		}
	}
	in, err := l.Instance(ctx, spec.ID, "ins-00000000")
	if err != nil {
		t.Fatal(err)
	}
	if in.State != ledger.Resetting || in.RequestID != "req-x" || in.Resets != 0 || in.Adopted != "a reinstall is running" {
		t.Errorf("after Adopt: %+v; want resetting under req-x, no call counted, the reason kept", in)
	}
	if ids, _ := l.Resetting(ctx, spec.ID); len(ids) != 1 {
		t.Errorf("resetting set = %v; want the adopted instance", ids)
	}
}

func TestOnceIsOncePerEvent(t *testing.T) {
	l, spec, _ := setup(t, 1)
	var firsts int
	for range 3 {
		for _, ev := range []string{"a", "b"} {
			first, err := l.Once(t.Context(), spec.ID, ev)
			if err != nil {
				t.Fatal(err)
			}
			if first {
				firsts++
			}
		}
	}
	if firsts != 2 {
		t.Errorf("%d first calls; want one per event", firsts)
	}
}

func TestOneApplyWritesAtATime(t *testing.T) {
	r := redistest.New(t)
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	spec := rollout.Spec{ID: "r1", PlanHash: "h1", Waves: []rollout.Wave{{Size: 1}}, Groups: []rollout.Group{{Name: "g"}}}
	targets := []rollout.Target{{InstanceID: "ins-00000001"}}
	if created, err := l.Create(t.Context(), spec, targets, ledger.CreateOptions{}); err != nil || !created {
		t.Fatalf("first Create = %v, %v", created, err)
	}
	// The first apply has not activated yet: a second must not rewrite.
	if _, err := l.Create(t.Context(), spec, targets, ledger.CreateOptions{}); !errors.Is(err, ledger.ErrApplying) {
		t.Errorf("Create during another apply = %v; want ErrApplying", err)
	}
	if err := l.Activate(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	if err := l.Activate(t.Context(), spec); !errors.Is(err, ledger.ErrApplying) {
		t.Errorf("second Activate = %v; want ErrApplying", err)
	}
	if created, err := l.Create(t.Context(), spec, targets, ledger.CreateOptions{}); err != nil || created {
		t.Errorf("Create after activation = %v, %v; want false, nil", created, err)
	}
}

// TestAbortedRolloutHoldsInstancesInFlight: an aborted rollout frees its
// instances for other rollouts, except those whose reset call is under
// way with no answer (calling) and those it drained, until the call is
// answered and the weights are back; and UnclaimAll keeps their claims.
func TestAbortedRolloutHoldsInstancesInFlight(t *testing.T) {
	l, spec, _ := setup(t, 5)
	ctx := t.Context()
	ids := []string{"ins-00000000", "ins-00000001", "ins-00000002", "ins-00000003", "ins-00000004"}
	if c, err := l.Claim(ctx, spec.ID, ids); err != nil || len(c) != 0 {
		t.Fatalf("Claim = %v, %v", c, err)
	}
	// ins-0 is calling (intent recorded, answer not yet back), ins-1
	// resetting (accepted, not verified), ins-4 drained and not yet called
	// (waiting out its drain time), ins-2 and ins-3 untouched.
	a, _ := l.Begin(ctx, spec.ID, ids[0], 0)
	b, _ := l.Begin(ctx, spec.ID, ids[1], 0)
	if err := l.Called(ctx, spec.ID, ids[1], b.Token, "req-1"); err != nil {
		t.Fatal(err)
	}
	drained := ledger.Serving{Phase: ledger.PhaseDrain, Zeroed: true, Weights: []ledger.Weight{{LoadBalancerID: "lb-a", ListenerID: "lbl-a", Port: 80, Weight: 10}}}
	ver, err := l.SetServing(ctx, spec.ID, ids[4], 0, []ledger.InstanceState{ledger.Pending}, drained)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Abort(ctx, spec.ID, "operator"); err != nil {
		t.Fatal(err)
	}
	// Before any unclaim: the owner is aborted, yet holds its calls and
	// the drained instance (cancelled by the abort, weights not back).
	c, err := l.Claim(ctx, "next", ids)
	if err != nil {
		t.Fatal(err)
	}
	// ins-1's reinstall was accepted: the cloud shows it, and a new
	// rollout adopts it rather than calling, so it is not kept.
	want := []ledger.Conflict{{InstanceID: ids[0], Rollout: spec.ID, InFlight: true}, {InstanceID: ids[4], Rollout: spec.ID, InFlight: true}}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Errorf("Claim over an aborted rollout with calls in flight = %v; want %v", c, want)
	}
	r, err := l.Get(ctx, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.UnclaimAll(ctx, r); err != nil {
		t.Fatal(err)
	}
	// UnclaimAll kept the two claims (had it dropped them, next would
	// take the instances now).
	if c, err := l.Claim(ctx, "next", ids); err != nil || fmt.Sprint(c) != fmt.Sprint(want) {
		t.Errorf("Claim after UnclaimAll = %v, %v; want %v", c, err, want)
	}
	// The rollback of the aborted rollout takes over the drained one (an
	// instance left at weight 0 is the rollback's to give back).
	if c, err := l.Claim(ctx, rollout.RollbackID(spec.ID), []string{ids[4]}); err != nil || len(c) != 0 {
		t.Errorf("Claim by the rollback = %v, %v; want the drained instance taken over", c, err)
	}
	if err := l.Unclaim(ctx, rollout.RollbackID(spec.ID), []string{ids[4]}); err != nil {
		t.Fatal(err)
	}
	// The calls end and the weights come back: every instance is free.
	if _, err := l.Finish(ctx, spec.ID, ids[0], ledger.Outcome{From: []ledger.InstanceState{ledger.Calling}, Token: a.Token, To: ledger.Cancelled}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.SetServing(ctx, spec.ID, ids[4], ver, []ledger.InstanceState{ledger.Cancelled}, ledger.Serving{}); err != nil {
		t.Fatal(err)
	}
	fr, err := l.Finish(ctx, spec.ID, ids[1], ledger.Outcome{From: []ledger.InstanceState{ledger.Resetting}, To: ledger.Succeeded})
	if err != nil || fr.State != ledger.Aborted {
		t.Fatalf("Finish = %+v, %v; want the rollout's state aborted reported", fr, err)
	}
	if c, err := l.Claim(ctx, "next", ids); err != nil || len(c) != 0 {
		t.Errorf("Claim after the calls ended = %v, %v; want every instance free", c, err)
	}
}

// TestRetakeOnlyWhileRunning: a new token for a call that never landed is
// issued only while the rollout runs, in the same script: a pause or an
// abort after the reconcile's read stops the call.
func TestRetakeOnlyWhileRunning(t *testing.T) {
	l, spec, _ := setup(t, 1)
	ctx := t.Context()
	res, err := l.Begin(ctx, spec.ID, "ins-00000000", 0)
	if err != nil || res.Action != ledger.ActProceed {
		t.Fatalf("Begin = %+v, %v", res, err)
	}
	if _, err := l.SetState(ctx, spec.ID, nil, ledger.Paused, "operator"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Retake(ctx, spec.ID, "ins-00000000", res.Token); !errors.Is(err, ledger.ErrNotRunning) {
		t.Errorf("Retake while paused = %v; want ErrNotRunning", err)
	}
	if _, err := l.Resume(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	tok, err := l.Retake(ctx, spec.ID, "ins-00000000", res.Token)
	if err != nil || tok <= res.Token {
		t.Errorf("Retake once running = %d, %v; want a new token", tok, err)
	}
}
