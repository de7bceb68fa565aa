package engine_test

import (
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
	series, targets := fleetSpec("nightly", "h-series", 5)
	series.Schedule = "0 3 * * *"
	series.StartAt = time.Now()
	if _, err := eng.Apply(ctx, engine.ApplyRequest{Spec: series, Targets: targets}); err != nil {
		t.Fatal(err)
	}
	complete(t, l, series.ID)
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
