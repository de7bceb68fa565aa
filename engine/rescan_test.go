package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

// TestRescanRequeuesStrandedInstances: a Redis failover can keep a reset
// task's completion while losing the ledger write before it, leaving the
// instance pending with its task done (asynq refuses the task's ID again).
// A rescan (here: pause and resume) gives such an instance a task of its
// own, once however often it rescans.
func TestRescanRequeuesStrandedInstances(t *testing.T) {
	r := redistest.New(t)
	insp := asynq.NewInspector(r.ConnOpt())
	defer insp.Close()
	l, eng := newEngine(t, r, func(c *engine.Config) { c.Inspector = insp })
	ctx := t.Context()
	spec, targets := fleetSpec("stranded", "h", 3)
	if _, err := eng.Apply(ctx, engine.ApplyRequest{Spec: spec, Targets: targets}); err != nil {
		t.Fatal(err)
	}
	stored, st, err := l.Spec(ctx, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	ad := engine.Adapter{Describe: func(_ context.Context, ids []string) (map[string]rollout.Observed, error) {
		obs := map[string]rollout.Observed{}
		for _, id := range ids {
			obs[id] = rollout.Observed{Found: true, ImageID: "img-old00001", State: "RUNNING"}
		}
		return obs, nil
	}}
	if err := eng.StartWave(ctx, stored, st, 0, 0, ad); err != nil {
		t.Fatal(err)
	}
	q := eng.Queues()
	// The reset tasks run and complete, and the ledger never hears of it:
	// what a failover that lost the ledger's writes leaves behind.
	done := make(chan struct{}, 3)
	srv := asynq.NewServer(r.ConnOpt(), asynq.Config{Queues: map[string]int{q.Reset: 1}, Concurrency: 3, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeReset, func(context.Context, *asynq.Task) error { done <- struct{}{}; return nil })
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("reset tasks did not run")
		}
	}
	srv.Shutdown()
	completed := func() int {
		ts, _ := insp.ListCompletedTasks(q.Reset)
		return len(ts)
	}
	for deadline := time.Now().Add(30 * time.Second); completed() < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d reset tasks completed; want 3", completed())
		}
	}

	if err := eng.Pause(ctx, spec.ID, "test"); err != nil {
		t.Fatal(err)
	}
	res, err := eng.Resume(ctx, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	stored, st, _ = l.Spec(ctx, spec.ID)
	for range 2 { // the second rescan adds nothing: the first one's tasks are queued
		if err := eng.StartWave(ctx, stored, st, 0, res.Seq, ad); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := insp.ListPendingTasks(q.Reset)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 3 {
		t.Fatalf("%d reset tasks queued after the rescan; want 3 (one per stranded instance)", len(pending))
	}
	for _, ti := range pending {
		if !strings.HasSuffix(ti.ID, ":r1") {
			t.Errorf("task %s; want the first rescan's own ID", ti.ID)
		}
	}
}
