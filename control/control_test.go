package control_test

import (
	"sort"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/control"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time { return c.t }

// TestEnqueueVerifySharesAndFallsBack: every caller within one interval
// gets the same sweep; when that sweep's ID is taken, the next interval's
// sweep is scheduled, so no accepted instance is left without one.
func TestEnqueueVerifySharesAndFallsBack(t *testing.T) {
	r := redistest.New(t)
	ns := r.Prefix[:len(r.Prefix)-1]
	client := asynq.NewClient(r.ConnOpt())
	defer client.Close()
	insp := asynq.NewInspector(r.ConnOpt())
	defer insp.Close()
	clk := &fixedClock{time.Now().Add(time.Hour).Truncate(10 * time.Second).Add(time.Second)}
	ctl := control.New(control.Config{Ledger: ledger.New(r.Client, ledger.Config{Prefix: r.Prefix}), Client: client, Namespace: ns, Clock: clk})
	const interval = 10 * time.Second
	for range 3 {
		if err := ctl.EnqueueVerify(t.Context(), "r", interval, time.Time{}); err != nil {
			t.Fatal(err)
		}
		clk.t = clk.t.Add(time.Second)
	}
	scheduled := func() []int64 {
		ts, err := insp.ListScheduledTasks(tasks.QueuesFor(ns).Control)
		if err != nil {
			t.Fatal(err)
		}
		var at []int64
		for _, ti := range ts {
			at = append(at, ti.NextProcessAt.Unix())
		}
		sort.Slice(at, func(i, j int) bool { return at[i] < at[j] })
		return at
	}
	first := tasks.SweepAt(clk.t, interval).Unix()
	if got := scheduled(); len(got) != 2 || got[0] != first || got[1] != first+10 {
		// The first call scheduled the sweep; the next two found it taken
		// and scheduled the following one, once.
		t.Errorf("sweeps at %v; want [%d %d]", got, first, first+10)
	}
	// A sweep scheduling its successor passes its own time.
	if err := ctl.EnqueueVerify(t.Context(), "r", interval, time.Unix(first+10, 0)); err != nil {
		t.Fatal(err)
	}
	if got := scheduled(); len(got) != 3 || got[2] != first+20 {
		t.Errorf("after a sweep's own enqueue: %v; want a third at %d", got, first+20)
	}
}
