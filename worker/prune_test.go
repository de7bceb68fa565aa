package worker_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/fleetreset/fleetreset/worker"
	"github.com/hibiken/asynq"
)

// laterClock is the wall clock moved by a fixed offset.
type laterClock struct{ by time.Duration }

func (c laterClock) Now() time.Time { return time.Now().Add(c.by) }

// finishedRollout records a rollout of n instances that finished now
// (wall clock), aborted, or one left running when !abort.
func finishedRollout(t *testing.T, l *ledger.Ledger, id string, n int, abort bool) {
	t.Helper()
	ctx := t.Context()
	spec := rollout.Spec{ID: id, PlanHash: "h", API: "v3", Waves: []rollout.Wave{{Size: n}}}
	var targets []rollout.Target
	for i := range n {
		targets = append(targets, rollout.Target{InstanceID: fmt.Sprintf("%s-ins-%d", id, i)})
	}
	if _, err := l.Create(ctx, spec, targets, ledger.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Activate(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if abort {
		if _, err := l.Abort(ctx, id, "test"); err != nil {
			t.Fatal(err)
		}
	}
}

// pruneTasks lists the prune tasks of the control queue by ID and state.
func pruneTasks(t *testing.T, insp *asynq.Inspector, ns string) map[string]string {
	t.Helper()
	q := tasks.QueuesFor(ns).Control
	out := map[string]string{}
	lists := []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
		insp.ListPendingTasks, insp.ListActiveTasks, insp.ListScheduledTasks, insp.ListRetryTasks, insp.ListCompletedTasks, insp.ListArchivedTasks,
	}
	for _, list := range lists {
		tis, err := list(q)
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			t.Fatal(err)
		}
		for _, ti := range tis {
			if ti.Type == tasks.TypePrune {
				// The lists are read one after another, in lifecycle
				// order: a task that moved on meanwhile shows up in two,
				// and the later one is where it is now.
				out[ti.ID] = ti.State.String()
			}
		}
	}
	return out
}

// TestWorkersPruneOncePerPeriod: three workers started together, 31 days
// after two rollouts ended, run one prune: the finished rollout is
// deleted, the running one kept, and the next period's prune is scheduled.
func TestWorkersPruneOncePerPeriod(t *testing.T) {
	b := setup(t, cvmsim.Config{}, planOpts{n: 1})
	finishedRollout(t, b.l, "old", 50, true)
	finishedRollout(t, b.l, "running", 5, false)
	clk := laterClock{by: 31 * 24 * time.Hour}
	period := tasks.PrunePeriod(clk.Now())
	b.startWorkers(t, 3, func(c *worker.Config) { c.Clock = clk })
	insp := asynq.NewInspector(b.r.ConnOpt())
	defer insp.Close()

	if !eventually(30*time.Second, func() bool {
		_, err := b.l.Get(t.Context(), "old")
		return errors.Is(err, ledger.ErrNotFound)
	}) {
		t.Fatal("the finished rollout was not pruned")
	}
	next := fmt.Sprintf("prune:%d", period.Add(tasks.PruneEvery).Unix())
	if !eventually(10*time.Second, func() bool {
		return strings.Count(b.logs.String(), "retention prune scheduled") == 3 && pruneTasks(t, insp, b.ns)[next] == "scheduled"
	}) {
		t.Fatalf("the workers did not all ask for a prune, or the next one was not scheduled: %v\n%s", pruneTasks(t, insp, b.ns), b.logs)
	}
	// Every worker asked for this period's prune; one task exists for it.
	want := map[string]string{fmt.Sprintf("prune:%d", period.Unix()): "completed", next: "scheduled"}
	if !eventually(10*time.Second, func() bool { return fmt.Sprint(pruneTasks(t, insp, b.ns)) == fmt.Sprint(want) }) {
		t.Errorf("prune tasks %v; want %v", pruneTasks(t, insp, b.ns), want)
	}
	if n := strings.Count(b.logs.String(), "pruned finished rollouts"); n != 1 {
		t.Errorf("%d prunes deleted something; want 1", n)
	}
	if r, err := b.l.Get(t.Context(), "running"); err != nil || r.State != ledger.Running {
		t.Errorf("the running rollout after the prune: %v, %v", r, err)
	}
	var p tasks.PrunePayload
	ti, err := insp.GetTaskInfo(tasks.QueuesFor(b.ns).Control, next)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(ti.Payload, &p)
	if p.At != period.Add(tasks.PruneEvery).Unix() {
		t.Errorf("the next prune is for period %d; want %d", p.At, period.Add(tasks.PruneEvery).Unix())
	}
}

// TestRetentionOffKeepsEverything: a worker with a negative retention
// schedules no prune, and one that receives a prune deletes nothing but
// passes the chain on.
func TestRetentionOffKeepsEverything(t *testing.T) {
	b := setup(t, cvmsim.Config{}, planOpts{n: 1})
	finishedRollout(t, b.l, "old", 5, true)
	clk := laterClock{by: 365 * 24 * time.Hour}
	b.startWorkers(t, 1, func(c *worker.Config) { c.Clock = clk; c.Retention = -1 })
	insp := asynq.NewInspector(b.r.ConnOpt())
	defer insp.Close()
	if !eventually(10*time.Second, func() bool { return strings.Contains(b.logs.String(), "retention off") }) {
		t.Fatalf("the worker did not start:\n%s", b.logs)
	}
	if got := pruneTasks(t, insp, b.ns); len(got) != 0 {
		t.Errorf("a worker with retention off scheduled %v", got)
	}
	// Another worker's chain reaches this one.
	period := tasks.PrunePeriod(clk.Now())
	task, err := tasks.NewPrune(tasks.QueuesFor(b.ns), period, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	next := fmt.Sprintf("prune:%d", period.Add(tasks.PruneEvery).Unix())
	if !eventually(10*time.Second, func() bool { return pruneTasks(t, insp, b.ns)[next] == "scheduled" }) {
		t.Fatalf("the chain was not passed on: %v", pruneTasks(t, insp, b.ns))
	}
	if _, err := b.l.Get(t.Context(), "old"); err != nil {
		t.Errorf("a worker with retention off pruned: %v", err)
	}
}
