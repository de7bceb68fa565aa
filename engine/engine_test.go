package engine_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time { return c.t }

// sweepStack is a test Redis with an asynq client and inspector, and a
// maker of engines ("processes") on it with the clock clk.
func sweepStack(t *testing.T, clk *fixedClock) (ns string, insp *asynq.Inspector, newEngine func() *engine.Engine) {
	t.Helper()
	r := redistest.New(t)
	ns = r.Prefix[:len(r.Prefix)-1]
	client := asynq.NewClient(r.ConnOpt())
	t.Cleanup(func() { client.Close() })
	insp = asynq.NewInspector(r.ConnOpt())
	t.Cleanup(func() { insp.Close() })
	return ns, insp, func() *engine.Engine {
		return engine.New(engine.Config{Ledger: ledger.New(r.Client, ledger.Config{Prefix: r.Prefix}), Client: client, Namespace: ns, Clock: clk})
	}
}

// TestEnqueueVerifySharesAndFallsBack: every caller within one interval
// gets the same sweep; when that sweep's ID is taken (by another process:
// an engine asks Redis only once per sweep it scheduled), the next
// interval's sweep is scheduled, so no accepted instance is left without
// one.
func TestEnqueueVerifySharesAndFallsBack(t *testing.T) {
	clk := &fixedClock{time.Now().Add(time.Hour).Truncate(10 * time.Second).Add(time.Second)}
	ns, insp, newEngine := sweepStack(t, clk)
	ctl := newEngine()
	const interval = 10 * time.Second
	// Three processes, and the first asking again.
	for _, e := range []*engine.Engine{ctl, ctl, newEngine(), newEngine()} {
		if err := e.EnqueueVerify(t.Context(), "r", interval, time.Time{}); err != nil {
			t.Fatal(err)
		}
		clk.t = clk.t.Add(time.Second)
	}
	clk.t = clk.t.Add(-time.Second)
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
		// The first call scheduled the sweep; the other processes found
		// it taken and scheduled the following one, once.
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

// TestSweepChainSurvivesFractionalIntervals: health probes come due at
// fractions of a second (NextProbe - now), and asynq runs a scheduled task
// at the whole second of its time (it keeps Unix seconds): a sweep that
// ran at that whole second, before its own fractional time, found itself
// "already scheduled" and enqueued no successor, so instances waited in
// health forever (audit 2026-12-07). Sweep times are whole seconds now,
// and a sweep's successor is always scheduled.
func TestSweepChainSurvivesFractionalIntervals(t *testing.T) {
	// An hour ahead, so that asynq keeps the sweeps scheduled.
	clk := &fixedClock{time.Now().Add(time.Hour).Truncate(time.Second).Add(150 * time.Millisecond)}
	ns, insp, newEngine := sweepStack(t, clk)
	ctl := newEngine()
	const wait = 2600 * time.Millisecond // a probe due in 2.6 s
	if err := ctl.EnqueueVerify(t.Context(), "r", wait, time.Time{}); err != nil {
		t.Fatal(err)
	}
	var after time.Time
	for i := range 5 {
		ts, err := insp.ListScheduledTasks(tasks.QueuesFor(ns).Control)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) != 1 {
			t.Fatalf("sweep %d: %d sweeps scheduled; want exactly the next one", i, len(ts))
		}
		var p tasks.VerifyPayload
		if err := json.Unmarshal(ts[0].Payload, &p); err != nil {
			t.Fatal(err)
		}
		at := time.Unix(p.At, 0)
		if !ts[0].NextProcessAt.Equal(at) || !at.After(after) {
			t.Fatalf("sweep %d at %s (payload %s); want a whole second after %s", i, ts[0].NextProcessAt, at, after)
		}
		// asynq runs it at that second: the sweep is done and schedules
		// its successor with its own time.
		if err := insp.DeleteTask(tasks.QueuesFor(ns).Control, ts[0].ID); err != nil {
			t.Fatal(err)
		}
		clk.t, after = at, at
		if err := ctl.EnqueueVerify(t.Context(), "r", wait, at); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSweepAtIsAWholeSecondAfterNow: whatever the interval, a sweep's
// time is a whole second (what asynq can honour) and after now.
func TestSweepAtIsAWholeSecondAfterNow(t *testing.T) {
	base := time.Date(2026, 12, 7, 13, 47, 30, 0, time.UTC)
	for _, now := range []time.Time{base, base.Add(150 * time.Millisecond), base.Add(999 * time.Millisecond)} {
		for _, iv := range []time.Duration{0, 200 * time.Millisecond, time.Second, 1500 * time.Millisecond, 2600 * time.Millisecond, 10 * time.Second} {
			at := tasks.SweepAt(now, iv)
			if !at.After(now) || at.Nanosecond() != 0 || at.Sub(now) > max(iv, time.Second)+time.Second {
				t.Errorf("SweepAt(%s, %s) = %s; want a whole second after now, within the interval rounded up", now.Format("15:04:05.000"), iv, at.Format("15:04:05.000"))
			}
		}
	}
}

// TestBreachReasonNamesTheLimit: the pause reason says which budget
// breached (the wave's or the rollout's) and which limit (count or
// percent), with the counts it judged.
func TestBreachReasonNamesTheLimit(t *testing.T) {
	tests := []struct {
		name        string
		wave, total rollout.Budget
		outcomes    []ledger.InstanceState // in order, all in wave 2
		want        string
	}{
		{"waveCount", rollout.Budget{Max: 2, Percent: rollout.NoLimit}, rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit},
			[]ledger.InstanceState{ledger.Failed, ledger.Succeeded, ledger.Failed, ledger.Failed},
			"wave 2 failure budget exceeded: 3 failed of 4 finished (max 2)"},
		{"wavePercent", rollout.Budget{Max: rollout.NoLimit, Percent: 25, MinSample: 4}, rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit},
			[]ledger.InstanceState{ledger.Succeeded, ledger.Failed, ledger.Succeeded, ledger.Ambiguous},
			"wave 2 failure budget exceeded: 2 failed of 4 finished (max 25% once 4 finished)"},
		{"rolloutCount", rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit}, rollout.Budget{Max: 0, Percent: rollout.NoLimit},
			[]ledger.InstanceState{ledger.Succeeded, ledger.Failed},
			"rollout failure budget exceeded: 1 failed of 3 finished (max 0)"},
		{"both", rollout.Budget{Max: 0, Percent: rollout.NoLimit}, rollout.Budget{Max: rollout.NoLimit, Percent: 10},
			[]ledger.InstanceState{ledger.Failed},
			"wave 2 failure budget exceeded: 1 failed of 1 finished (max 0); rollout failure budget exceeded: 1 failed of 2 finished (max 10%)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := redistest.New(t)
			ctx := t.Context()
			client := asynq.NewClient(r.ConnOpt())
			defer client.Close()
			l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
			ctl := engine.New(engine.Config{Ledger: l, Client: client, Namespace: r.Prefix[:len(r.Prefix)-1]})
			spec := rollout.Spec{ID: "r", PlanHash: "h", API: "v3", Groups: []rollout.Group{{Name: "g", ImageID: "img-new00001"}},
				Budget: tt.total, OnBreach: "pause",
				Waves: []rollout.Wave{{Size: 1, Budget: rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit}}, {Size: 10, Budget: tt.wave}}}
			targets := []rollout.Target{{InstanceID: "ins-w0", Wave: 0}}
			for i := range 10 {
				targets = append(targets, rollout.Target{InstanceID: fmt.Sprintf("ins-w1%d", i), Wave: 1})
			}
			if _, err := l.Create(ctx, spec, targets, ledger.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := l.Activate(ctx, spec); err != nil {
				t.Fatal(err)
			}
			finish := func(id string, to ledger.InstanceState) ledger.FinishResult {
				t.Helper()
				res, err := l.Finish(ctx, "r", id, ledger.Outcome{From: []ledger.InstanceState{ledger.Pending}, To: to})
				if err != nil || !res.Changed {
					t.Fatalf("Finish(%s) = %+v, %v", id, res, err)
				}
				return res
			}
			finish("ins-w0", ledger.Succeeded)
			if out, _, err := l.Advance(ctx, "r", 0, false, true, false); err != nil || out != ledger.AdvStarted {
				t.Fatalf("Advance = %s, %v", out, err)
			}
			for i, st := range tt.outcomes {
				res := finish(fmt.Sprintf("ins-w1%d", i), st)
				if err := ctl.AfterFinish(ctx, spec, res); err != nil {
					t.Fatal(err)
				}
			}
			got, err := l.Get(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			if got.State != ledger.Paused || got.Reason != tt.want {
				t.Errorf("after %v: %s, %q; want paused, %q", tt.outcomes, got.State, got.Reason, tt.want)
			}
		})
	}
}
