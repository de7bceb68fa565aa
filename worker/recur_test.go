package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/testfleet"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/fleetreset/fleetreset/worker"
	"github.com/hibiken/asynq"
)

// TestScheduledReimaging: a plan with a cron schedule and skipMatching:
// false runs now (startAt), schedules its next occurrence when it
// completes, and that occurrence reinstalls the same instances again (they
// already run the target image) as a new rollout.
func TestScheduledReimaging(t *testing.T) {
	b := scheduledBundle(t, 5)
	b.apply(t)
	b.startWorkers(t, 1, nil)
	b.await(t, time.Minute, ledger.Completed)

	insp := asynq.NewInspector(b.r.ConnOpt())
	defer insp.Close()
	next := testfleet.AwaitRecur(t, insp, tasks.QueuesFor(b.ns).Control, 30*time.Second)
	if h := next.NextProcessAt.UTC(); h.Hour() != 3 || h.Minute() != 0 || h.Before(time.Now()) {
		t.Errorf("next occurrence at %v; want the next 03:00 UTC", h)
	}
	// Run that occurrence now instead of waiting for 03:00.
	if err := insp.RunTask(tasks.QueuesFor(b.ns).Control, next.ID); err != nil {
		t.Fatal(err)
	}
	var p tasks.RecurPayload
	_ = json.Unmarshal(next.Payload, &p)
	id := engine.OccurrenceID(b.plan.Spec.ID, time.Unix(p.At, 0))
	var r *ledger.Rollout
	if !eventually(time.Minute, func() bool {
		got, err := b.l.Get(t.Context(), id)
		r = got
		return err == nil && got.State == ledger.Completed
	}) {
		t.Fatalf("occurrence %s did not complete: %+v", id, r)
	}
	if r.Counters.Succeeded != 5 || r.Spec.Series != b.plan.Spec.ID {
		t.Errorf("occurrence %s: %+v, series %q", id, r.Counters, r.Spec.Series)
	}
	for _, idn := range ids(5) {
		if n := b.sim.Stats().AcceptedResets[idn]; n != 2 {
			t.Errorf("%s reset %d times over two occurrences; want 2", idn, n)
		}
	}
}

// TestOccurrenceStartsOnlyOnAServingWorker: the next occurrence is
// created by a worker that serves the series (its endpoint, API and
// credentials), since resolving a select lists instances with that
// worker's key. A worker for another endpoint hands the recur task back,
// says so and creates nothing; a serving one then starts the occurrence.
func TestOccurrenceStartsOnlyOnAServingWorker(t *testing.T) {
	b := scheduledBundle(t, 3)
	b.apply(t)
	stop := b.startWorkers(t, 1, nil)
	b.await(t, time.Minute, ledger.Completed)
	stop()

	insp := asynq.NewInspector(b.r.ConnOpt())
	defer insp.Close()
	q := tasks.QueuesFor(b.ns).Control
	next := testfleet.AwaitRecur(t, insp, q, 30*time.Second)
	var p tasks.RecurPayload
	if err := json.Unmarshal(next.Payload, &p); err != nil {
		t.Fatal(err)
	}
	occ := engine.OccurrenceID(b.plan.Spec.ID, time.Unix(p.At, 0))
	stopOther := b.startWorkers(t, 1, func(c *worker.Config) { c.Endpoint = "http://127.0.0.1:9" })
	if err := insp.RunTask(q, next.ID); err != nil {
		t.Fatal(err)
	}
	if !eventually(30*time.Second, func() bool { return strings.Contains(b.logs.String(), "not serving this rollout") }) {
		t.Fatalf("the worker for another endpoint did not hand the recur task back:\n%s", b.logs.String())
	}
	if _, err := b.l.Get(t.Context(), occ); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("occurrence %s created by a worker that does not serve the series: %v", occ, err)
	}
	stopOther()
	b.startWorkers(t, 1, nil)
	if !eventually(time.Minute, func() bool {
		r, err := b.l.Get(t.Context(), occ)
		return err == nil && r.State == ledger.Completed
	}) {
		t.Fatalf("occurrence %s not completed by the serving worker", occ)
	}
}

// scheduledBundle is a test fleet of n instances whose plan runs now
// (startAt), re-images (skipMatching: false) and recurs daily at 03:00.
func scheduledBundle(t *testing.T, n int) *bundle {
	t.Helper()
	start := time.Now().Add(-time.Second).UTC().Format(time.RFC3339)
	return setup(t, cvmsim.Config{ResetDuration: 50 * time.Millisecond,
		Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: n, extra: fast + "\nschedule: \"0 3 * * *\"\nskipMatching: false\nstartAt: " + start})
}

// TestRecurOutOfTriesSkipsAndGoesOn: a recur task whose occurrence cannot
// be started (its select cannot be listed) on its last try skips the
// occurrence, announces it, and schedules the next, instead of being
// archived and silently ending the series.
func TestRecurOutOfTriesSkipsAndGoesOn(t *testing.T) {
	b := scheduledBundle(t, 3)
	ctx := t.Context()
	src := &rollout.PlanSource{Path: "/plans/test.yaml", Files: map[string][]byte{"/plans/test.yaml": []byte("version: 1\n")}}
	if _, err := b.ctl.Apply(ctx, engine.ApplyRequest{Spec: b.plan.Spec, Targets: b.plan.Targets, Source: src}); err != nil {
		t.Fatal(err)
	}
	var listings atomic.Int32
	failing := func(context.Context, rollout.Spec, rollout.PlanSource) (rollout.Spec, []rollout.Target, error) {
		listings.Add(1)
		return rollout.Spec{}, nil, errors.New("DescribeInstances: InternalError")
	}
	stop := b.startWorkers(t, 1, func(c *worker.Config) { c.Reselect = failing })
	b.await(t, time.Minute, ledger.Completed)
	insp := asynq.NewInspector(b.r.ConnOpt())
	defer insp.Close()
	q := tasks.QueuesFor(b.ns).Control
	next := testfleet.AwaitRecur(t, insp, q, 30*time.Second)
	stop()
	// The same recur task, on its last try.
	if err := insp.DeleteTask(q, next.ID); err != nil {
		t.Fatal(err)
	}
	last := asynq.NewTask(tasks.TypeRecur, next.Payload, asynq.Queue(q), asynq.MaxRetry(0))
	if _, err := b.client.Enqueue(last); err != nil {
		t.Fatal(err)
	}
	b.startWorkers(t, 1, func(c *worker.Config) { c.Reselect = failing })
	if !eventually(30*time.Second, func() bool { return strings.Contains(b.logs.String(), "scheduled occurrence skipped") }) {
		t.Fatalf("the occurrence was not skipped:\n%s", b.logs.String())
	}
	again := testfleet.AwaitRecur(t, insp, q, 30*time.Second)
	if string(again.Payload) != string(next.Payload) {
		t.Errorf("next occurrence scheduled %s; want %s again (the series goes on from its latest rollout)", again.Payload, next.Payload)
	}
	if archived, _ := insp.ListArchivedTasks(q); len(archived) != 0 {
		t.Errorf("%d archived tasks; want none", len(archived))
	}
	if n := listings.Load(); n != 1 {
		t.Errorf("listed %d times; want once, on the last try", n)
	}
}
