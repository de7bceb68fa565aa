package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

func fleetSpec(id, hash string, n int) (rollout.Spec, []rollout.Target) {
	spec := rollout.Spec{ID: id, PlanHash: hash, API: "v3", Groups: []rollout.Group{{Name: "g", ImageID: "img-new00001"}},
		Waves:  []rollout.Wave{{Size: n, Budget: rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit}}},
		Budget: rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit}}
	targets := make([]rollout.Target, n)
	for i := range targets {
		targets[i] = rollout.Target{InstanceID: fmt.Sprintf("ins-%08d", i)}
	}
	return spec, targets
}

// TestApplyRacesOccurrence: applies of a plan racing the scheduled
// occurrence of a series over the same instances. Whoever claims first
// owns every instance; the others change nothing: no half-written
// rollout, no claim split between two rollouts.
func TestApplyRacesOccurrence(t *testing.T) {
	l, eng := newEngine(t, nil)
	ctx := t.Context()
	const n = 300
	series, targets := fleetSpec("nightly", "h-series", n)
	if _, err := eng.Apply(ctx, engine.ApplyRequest{Spec: series, Targets: targets}); err != nil {
		t.Fatal(err)
	}
	// The series' first occurrence completed and let its instances go.
	complete(t, l, series.ID)
	other, _ := fleetSpec("hotfix", "h-hotfix", n)
	at := time.Date(2026, 12, 3, 1, 0, 0, 0, time.UTC)
	occ := engine.OccurrenceID(series.ID, at)

	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		created, refused int
		unexpected       []error
	)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if i%2 == 0 {
				var res engine.ApplyResult
				res, err = eng.Apply(ctx, engine.ApplyRequest{Spec: other, Targets: targets})
				mu.Lock()
				if res.Created {
					created++
				}
				mu.Unlock()
			} else {
				err = eng.StartOccurrence(ctx, series.ID, at, nil)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, engine.ErrRefused):
				refused++
			case err != nil:
				unexpected = append(unexpected, err)
			}
		}()
	}
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected)
	}
	_, errApply := l.Get(ctx, other.ID)
	_, errOcc := l.Get(ctx, occ)
	applyExists, occExists := errApply == nil, errOcc == nil
	if applyExists == occExists {
		t.Fatalf("apply's rollout exists: %v, occurrence exists: %v; want exactly one", applyExists, occExists)
	}
	winner := occ
	if applyExists {
		winner = other.ID
		if created != 1 {
			t.Errorf("%d applies said created; want 1", created)
		}
	} else if created != 0 || refused != 10 {
		t.Errorf("occurrence won, yet %d applies created and %d were refused; want 0 and 10", created, refused)
	}
	// Every instance is claimed by the winner: nobody else can take one.
	// (Claim names at most 10 conflicts: ask one instance at a time.)
	for _, id := range idsOf(targets) {
		conflicts, err := l.Claim(ctx, "third", []string{id})
		if err != nil {
			t.Fatal(err)
		}
		if len(conflicts) != 1 || conflicts[0].Rollout != winner {
			t.Fatalf("%s: conflicts %+v; want it claimed by %s", id, conflicts, winner)
		}
	}
	w, err := l.Get(ctx, winner)
	if err != nil {
		t.Fatal(err)
	}
	if w.Total != n {
		t.Errorf("winner %s holds %d instances; want %d", winner, w.Total, n)
	}
}

// newEngine returns a ledger and an engine on r (a new test Redis when nil).
func newEngine(t *testing.T, r *redistest.Redis, cfg ...func(*engine.Config)) (*ledger.Ledger, *engine.Engine) {
	t.Helper()
	if r == nil {
		r = redistest.New(t)
	}
	client := asynq.NewClient(r.ConnOpt())
	t.Cleanup(func() { client.Close() })
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	c := engine.Config{Ledger: l, Client: client, Namespace: strings.TrimSuffix(r.Prefix, ":")}
	for _, f := range cfg {
		f(&c)
	}
	return l, engine.New(c)
}

// complete marks a rollout completed and releases its claims, as the gate
// after its last wave does.
func complete(t *testing.T, l *ledger.Ledger, id string) {
	t.Helper()
	ctx := t.Context()
	if _, err := l.SetState(ctx, id, []ledger.RolloutState{ledger.Scheduled, ledger.Running}, ledger.Completed, ""); err != nil {
		t.Fatal(err)
	}
	r, err := l.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.UnclaimAll(ctx, r); err != nil {
		t.Fatal(err)
	}
}

func idsOf(ts []rollout.Target) []string {
	ids := make([]string, len(ts))
	for i, t := range ts {
		ids[i] = t.InstanceID
	}
	return ids
}

// applySeries applies a scheduled five-instance series named id (with
// plan source src, when set) and completes its first occurrence, as the
// gate would.
func applySeries(t *testing.T, l *ledger.Ledger, eng *engine.Engine, id string, src *rollout.PlanSource) (rollout.Spec, []rollout.Target) {
	t.Helper()
	series, targets := fleetSpec(id, "h-"+id, 5)
	series.Schedule, series.StartAt, series.Identity = "0 3 * * *", time.Now(), "AKIDapply"
	if _, err := eng.Apply(t.Context(), engine.ApplyRequest{Spec: series, Targets: targets, Source: src}); err != nil {
		t.Fatal(err)
	}
	complete(t, l, series.ID)
	return series, targets
}

// TestSkippedOccurrenceKeepsTheSeries: an occurrence whose instances
// another rollout holds is skipped, and the series goes on from the
// rollout that exists (a recur task naming the skipped, never created
// occurrence would find nothing and end the schedule).
func TestSkippedOccurrenceKeepsTheSeries(t *testing.T) {
	r := redistest.New(t)
	insp := asynq.NewInspector(r.ConnOpt())
	defer insp.Close()
	l, eng := newEngine(t, r)
	ctx := t.Context()
	series, targets := applySeries(t, l, eng, "nightly", nil)
	other, _ := fleetSpec("hotfix", "h-hotfix", 5)
	if res, err := eng.Apply(ctx, engine.ApplyRequest{Spec: other, Targets: targets}); err != nil || !res.Created {
		t.Fatalf("hotfix: %+v, %v", res, err)
	}
	at := time.Now().Add(time.Hour).Truncate(time.Minute)
	if err := eng.StartOccurrence(ctx, series.ID, at, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Get(ctx, engine.OccurrenceID(series.ID, at)); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("skipped occurrence exists: %v", err)
	}
	scheduled, err := insp.ListScheduledTasks(eng.Queues().Control)
	if err != nil {
		t.Fatal(err)
	}
	var recurs []string
	for _, ti := range scheduled {
		if ti.Type == tasks.TypeRecur {
			recurs = append(recurs, string(ti.Payload))
		}
	}
	if len(recurs) != 1 || !strings.Contains(recurs[0], `"`+series.ID+`"`) {
		t.Fatalf("recur tasks %v; want one naming %s", recurs, series.ID)
	}
}

// TestOccurrenceResolvesItsSelect: a series applied with a plan source
// hands it, with the completed occurrence's spec, to reselect at the next
// occurrence and creates what that returns, keeping the series' name,
// credential identities and source. A selection that cannot run skips the
// occurrence and schedules the next; a listing that fails is retried (the
// error is returned and nothing is created); a worker without reselect
// creates nothing rather than repeating stale targets.
func TestOccurrenceResolvesItsSelect(t *testing.T) {
	src := &rollout.PlanSource{Path: "plans/web.yaml", Files: map[string][]byte{"plans/web.yaml": []byte("version: 1\n")}}
	errList := errors.New("DescribeInstances: RequestLimitExceeded")
	tests := []struct {
		name     string
		reselect func(n int) engine.Reselect // n: the targets to return
		n        int
		wantErr  error // returned by StartOccurrence; nil for none
		created  bool
		recurs   int // recur tasks scheduled afterwards
	}{
		{name: "resolved", n: 7, created: true},
		{name: "skipped by the resolver", reselect: func(int) engine.Reselect {
			return func(context.Context, rollout.Spec, rollout.PlanSource) (rollout.Spec, []rollout.Target, error) {
				return rollout.Spec{}, nil, fmt.Errorf("%w: its plan no longer reads", engine.ErrSkipOccurrence)
			}
		}, recurs: 1},
		{name: "nothing matches", n: 0, recurs: 1},
		{name: "listing fails", wantErr: errList, reselect: func(int) engine.Reselect {
			return func(context.Context, rollout.Spec, rollout.PlanSource) (rollout.Spec, []rollout.Target, error) {
				return rollout.Spec{}, nil, errList
			}
		}},
		{name: "no resolver here", reselect: func(int) engine.Reselect { return nil }, wantErr: engine.ErrCannotResolve},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := redistest.New(t)
			insp := asynq.NewInspector(r.ConnOpt())
			defer insp.Close()
			l, eng := newEngine(t, r)
			ctx := t.Context()
			series, _ := applySeries(t, l, eng, "weekly", src)
			var gotPrev rollout.Spec
			var gotSrc rollout.PlanSource
			reselect := func(ctx context.Context, prev rollout.Spec, s rollout.PlanSource) (rollout.Spec, []rollout.Target, error) {
				gotPrev, gotSrc = prev, s
				spec, ts := fleetSpec("weekly", "h-2", tt.n)
				spec.Schedule = series.Schedule
				for i := range ts {
					ts[i].InstanceID = fmt.Sprintf("ins-new%04d", i)
				}
				return spec, ts, nil
			}
			if tt.reselect != nil {
				reselect = tt.reselect(tt.n)
			}
			at := time.Now().Add(time.Hour).Truncate(time.Minute)
			occ := engine.OccurrenceID(series.ID, at)
			err := eng.StartOccurrence(ctx, series.ID, at, reselect)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("StartOccurrence: %v; want %v", err, tt.wantErr)
			}
			got, gerr := l.Get(ctx, occ)
			if created := gerr == nil; created != tt.created {
				t.Fatalf("occurrence created %v (%v); want %v", created, gerr, tt.created)
			}
			if tt.created {
				if gotPrev.ID != series.ID || gotSrc.Path != src.Path {
					t.Errorf("reselect got spec %q and source %q; want %q and %q", gotPrev.ID, gotSrc.Path, series.ID, src.Path)
				}
				is, err := l.AllInstances(ctx, got)
				if err != nil {
					t.Fatal(err)
				}
				if len(is) != tt.n || is[0].ID != "ins-new0000" {
					t.Errorf("occurrence holds %d instances, first %s; want %d new ones", len(is), is[0].ID, tt.n)
				}
				if got.Spec.Series != series.ID || got.Spec.Identity != "AKIDapply" || got.Spec.PlanHash != "h-2" || !got.Spec.StartAt.IsZero() {
					t.Errorf("occurrence spec: series %q identity %q hash %q startAt %v", got.Spec.Series, got.Spec.Identity, got.Spec.PlanHash, got.Spec.StartAt)
				}
				if s, err := l.Source(ctx, occ); err != nil || s == nil || s.Path != src.Path {
					t.Errorf("occurrence source %v, %v; want the series'", s, err)
				}
			}
			scheduled, err := insp.ListScheduledTasks(eng.Queues().Control)
			if err != nil {
				t.Fatal(err)
			}
			recurs := 0
			for _, ti := range scheduled {
				if ti.Type == tasks.TypeRecur && strings.Contains(string(ti.Payload), `"`+series.ID+`"`) {
					recurs++
				}
			}
			if recurs != tt.recurs {
				t.Errorf("%d recur tasks of %s scheduled; want %d", recurs, series.ID, tt.recurs)
			}
		})
	}
}

// TestOccurrenceResolvesOnce: every creator of one occurrence creates
// from the first resolution of its select. A recur task redelivered after
// the occurrence was created lists nothing and changes nothing, though the
// tags changed; a creator that finds a resolution recorded (a second
// worker, a takeover after a crash) creates from it without listing.
func TestOccurrenceResolvesOnce(t *testing.T) {
	src := &rollout.PlanSource{Path: "web.yaml", Files: map[string][]byte{"web.yaml": []byte("version: 1\n")}}
	resolveTo := func(prefix string, n int, calls *int) engine.Reselect {
		return func(context.Context, rollout.Spec, rollout.PlanSource) (rollout.Spec, []rollout.Target, error) {
			*calls++
			spec, ts := fleetSpec("weekly", fmt.Sprintf("h-%s%d", prefix, n), n)
			for i := range ts {
				ts[i].InstanceID = fmt.Sprintf("ins-%s%04d", prefix, i)
			}
			return spec, ts, nil
		}
	}
	setup := func(t *testing.T) (*ledger.Ledger, *engine.Engine, rollout.Spec) {
		l, eng := newEngine(t, nil)
		series, _ := applySeries(t, l, eng, "weekly", src)
		return l, eng, series
	}
	holds := func(t *testing.T, l *ledger.Ledger, id, first string, n int) {
		t.Helper()
		r, err := l.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		is, err := l.AllInstances(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		if len(is) != n || is[0].ID != first {
			t.Fatalf("%s holds %d instances from %s; want %d from %s", id, len(is), is[0].ID, n, first)
		}
	}
	at := time.Now().Add(time.Hour).Truncate(time.Minute)

	t.Run("redelivered after creation", func(t *testing.T) {
		l, eng, series := setup(t)
		occ := engine.OccurrenceID(series.ID, at)
		calls := 0
		if err := eng.StartOccurrence(t.Context(), series.ID, at, resolveTo("a", 4, &calls)); err != nil {
			t.Fatal(err)
		}
		// Two more instances tagged since: the same prefix, a new plan.
		if err := eng.StartOccurrence(t.Context(), series.ID, at, resolveTo("a", 6, &calls)); err != nil {
			t.Fatalf("redelivered: %v", err)
		}
		if calls != 1 {
			t.Errorf("listed %d times; want once", calls)
		}
		holds(t, l, occ, "ins-a0000", 4)
		for _, id := range []string{"ins-a0000", "ins-a0003"} {
			if c, err := l.Claim(t.Context(), "other", []string{id}); err != nil || len(c) != 1 || c[0].Rollout != occ {
				t.Errorf("claim of %s by another rollout = %+v, %v; want it held by %s", id, c, err, occ)
			}
		}
	})
	t.Run("resolution recorded first", func(t *testing.T) {
		l, eng, series := setup(t)
		occ := engine.OccurrenceID(series.ID, at)
		spec, ts := fleetSpec("weekly", "h-c", 3)
		spec.ID, spec.Series = occ, series.ID
		for i := range ts {
			ts[i].InstanceID = fmt.Sprintf("ins-c%04d", i)
		}
		if _, err := l.Resolve(t.Context(), occ, ledger.Resolved{Spec: spec, Targets: ts}); err != nil {
			t.Fatal(err)
		}
		calls := 0
		if err := eng.StartOccurrence(t.Context(), series.ID, at, resolveTo("d", 6, &calls)); err != nil {
			t.Fatal(err)
		}
		if calls != 0 {
			t.Errorf("listed %d times; want none: the recorded resolution stands", calls)
		}
		holds(t, l, occ, "ins-c0000", 3)
	})
}

// TestRacingVersionsKeepTheWinnersClaims: two versions of one plan (one
// name, overlapping instances) applied at the same moment. One creates the
// rollout; the other is refused as a changed plan and must not release the
// claims the winner holds on the instances both name — else a third
// rollout could take an instance the winner is about to reset.
func TestRacingVersionsKeepTheWinnersClaims(t *testing.T) {
	r := redistest.New(t)
	for round := range 20 {
		rr := *r
		rr.Prefix = fmt.Sprintf("%sv%d:", r.Prefix, round)
		l, eng := newEngine(t, &rr)
		ctx := t.Context()
		v1, t1 := fleetSpec("web", "h-v1", 200)
		v2, t2 := fleetSpec("web", "h-v2", 200)
		for i := range t2 {
			t2[i].InstanceID = fmt.Sprintf("ins-%08d", i+100) // 100 shared with v1
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, 2)
		for i, req := range []engine.ApplyRequest{{Spec: v1, Targets: t1}, {Spec: v2, Targets: t2}} {
			wg.Go(func() {
				<-start
				_, errs[i] = eng.Apply(ctx, req)
			})
		}
		close(start)
		wg.Wait()
		w, err := l.Get(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		winner := t1
		if w.Spec.PlanHash == "h-v2" {
			winner = t2
		}
		for _, e := range errs {
			if e != nil && !errors.Is(e, ledger.ErrPlanChanged) && !errors.Is(e, ledger.ErrApplying) {
				t.Fatalf("round %d: %v", round, e)
			}
		}
		for _, id := range idsOf(winner) {
			conflicts, err := l.Claim(ctx, "third", []string{id})
			if err != nil {
				t.Fatal(err)
			}
			if len(conflicts) != 1 || conflicts[0].Rollout != "web" {
				t.Fatalf("round %d: %s of the winner (%s): conflicts %+v; want it claimed by web", round, id, w.Spec.PlanHash, conflicts)
			}
		}
	}
}

// TestOccurrenceCreationCutOffIsTakenOver: an occurrence whose creator
// died after the ledger recorded it (still applying) is not taken for
// started: StartOccurrence says it is still being created while the
// creator's lease lasts, and once the lease lapses creates it from the
// recorded resolution, so the series goes on.
func TestOccurrenceCreationCutOffIsTakenOver(t *testing.T) {
	r := redistest.New(t)
	l, eng := newEngine(t, r)
	ctx := t.Context()
	src := &rollout.PlanSource{Path: "/plans/web.yaml", Files: map[string][]byte{"/plans/web.yaml": []byte("version: 1\n")}}
	series, _ := applySeries(t, l, eng, "weekly", src)
	at := time.Now().Add(time.Hour).Truncate(time.Minute)
	occ := engine.OccurrenceID(series.ID, at)
	spec, ts := fleetSpec(occ, "h-occ", 4)
	spec.Series = series.ID
	if _, err := l.Resolve(ctx, occ, ledger.Resolved{Spec: spec, Targets: ts}); err != nil {
		t.Fatal(err)
	}
	// The dying creator got as far as the ledger's record.
	if created, err := l.Create(ctx, spec, ts, ledger.CreateOptions{Source: src}); err != nil || !created {
		t.Fatalf("Create = %v, %v", created, err)
	}
	listed := func(context.Context, rollout.Spec, rollout.PlanSource) (rollout.Spec, []rollout.Target, error) {
		t.Error("listed again; the recorded resolution stands")
		return rollout.Spec{}, nil, errors.New("listed")
	}
	if err := eng.StartOccurrence(ctx, series.ID, at, listed); !errors.Is(err, engine.ErrOccurrenceApplying) {
		t.Fatalf("StartOccurrence while the creator's lease lasts = %v; want ErrOccurrenceApplying", err)
	}
	// The lease lapses.
	if err := r.Client.Del(ctx, r.Prefix+"{"+occ+"}:applying").Err(); err != nil {
		t.Fatal(err)
	}
	if err := eng.StartOccurrence(ctx, series.ID, at, listed); err != nil {
		t.Fatalf("StartOccurrence after the lease = %v", err)
	}
	got, err := l.Get(ctx, occ)
	if err != nil || got.State == ledger.Applying || got.Total != 4 {
		t.Fatalf("occurrence after the takeover: %+v, %v; want it created with 4 instances", got, err)
	}
	if _, ok, err := l.Resolution(ctx, occ); err != nil || ok {
		t.Errorf("resolution kept after creation (%v, %v); want it dropped", ok, err)
	}
}

// TestSkipOccurrenceKeepsTheSeries: skipping an occurrence that could not
// be started (a recur task out of tries) announces it and schedules the
// next one from the series' latest rollout.
func TestSkipOccurrenceKeepsTheSeries(t *testing.T) {
	r := redistest.New(t)
	insp := asynq.NewInspector(r.ConnOpt())
	defer insp.Close()
	l, eng := newEngine(t, r)
	series, _ := applySeries(t, l, eng, "weekly", nil)
	at := time.Now().Add(time.Hour).Truncate(time.Minute)
	if err := eng.SkipOccurrence(t.Context(), series.ID, at, "it could not be started: listing failed"); err != nil {
		t.Fatal(err)
	}
	scheduled, err := insp.ListScheduledTasks(eng.Queues().Control)
	if err != nil {
		t.Fatal(err)
	}
	if len(scheduled) != 1 || scheduled[0].Type != tasks.TypeRecur || !strings.Contains(string(scheduled[0].Payload), `"`+series.ID+`"`) {
		t.Fatalf("scheduled after the skip: %d tasks; want the next occurrence of %s", len(scheduled), series.ID)
	}
	if _, err := l.Get(t.Context(), engine.OccurrenceID(series.ID, at)); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("skipped occurrence exists: %v", err)
	}
}
