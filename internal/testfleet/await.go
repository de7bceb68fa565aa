package testfleet

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

// PollInterval is how often a rollout driven by other processes is read.
const PollInterval = 20 * time.Millisecond

// Finished are the states a rollout rests in until someone acts: an
// ending, or a pause.
var Finished = []ledger.RolloutState{ledger.Completed, ledger.Aborted, ledger.Paused}

// AwaitRollout waits until rollout id reaches one of want and returns it
// as the ledger has it then; it fails the test after within.
//
// When e is the engine that drives the rollout and its state signal is
// armed (NewStack arms it), it reads the ledger again only when e reports
// a state change. Otherwise (e nil: other processes drive the rollout, as
// in chaos and bench) polling is the only view there is, and it reads the
// ledger every PollInterval.
func AwaitRollout(tb testing.TB, l *ledger.Ledger, e *engine.Engine, id string, within time.Duration, want ...ledger.RolloutState) *ledger.Rollout {
	tb.Helper()
	var events <-chan engine.StateEvent
	if e != nil {
		events = e.TestSignals.State.C()
	}
	r, err := await(l, events, id, within, want)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// PollRollout is AwaitRollout by polling for goroutines other than the
// test's: it returns an error instead of failing the test.
func PollRollout(l *ledger.Ledger, id string, within time.Duration, want ...ledger.RolloutState) (*ledger.Rollout, error) {
	return await(l, nil, id, within, want)
}

// await reads rollout id until it is in one of want, after each event on
// events or, when events is nil, every PollInterval.
func await(l *ledger.Ledger, events <-chan engine.StateEvent, id string, within time.Duration, want []ledger.RolloutState) (*ledger.Rollout, error) {
	deadline := time.Now().Add(within)
	timer := time.NewTimer(within)
	defer timer.Stop()
	var last *ledger.Rollout
	var lastErr error
	for {
		r, err := l.Get(context.Background(), id)
		if err == nil {
			last = r
			if slices.Contains(want, r.State) {
				return r, nil
			}
		} else {
			lastErr = err
		}
		left := time.Until(deadline)
		if left <= 0 {
			if last == nil {
				return nil, fmt.Errorf("rollout %s never appeared in the ledger within %s (last error %v)", id, within, lastErr)
			}
			return nil, fmt.Errorf("rollout %s did not reach %v within %s; last state %s (%s), counters %+v of %d (last error %v)",
				id, want, within, last.State, last.Reason, last.Counters, last.Total, lastErr)
		}
		wait := PollInterval
		if events != nil {
			// Any event is a hint to look again: one from before this
			// wait, or of another rollout, costs one ledger read.
			wait = left
		}
		timer.Reset(min(wait, left))
		select {
		case <-events:
		case <-timer.C:
		}
	}
}

// maxNamed bounds how many instances never reset, and how many reset more
// than once, a failed check names one by one.
const maxNamed = 10

// CheckExactlyOnce reports an error unless the simulator accepted exactly
// one reset of each of ids, naming the first offenders of each kind (with
// the times of repeated resets), and returns how many were never reset and
// how many more than once.
func CheckExactlyOnce(tb testing.TB, st cvmsim.Stats, ids []string) (never, twice int) {
	tb.Helper()
	for _, id := range ids {
		n := st.AcceptedResets[id]
		switch {
		case n == 0:
			never++
		case n > 1:
			twice++
		default:
			continue
		}
		if (n == 0 && never <= maxNamed) || (n > 1 && twice <= maxNamed) {
			tb.Errorf("%s reset %d times (at %v); want exactly 1", id, n, st.ResetTimes[id])
		}
	}
	if never > maxNamed || twice > maxNamed {
		tb.Errorf("%d of %d instances not reset exactly once: %d never, %d more than once", never+twice, len(ids), never, twice)
	}
	return never, twice
}

// RequireExactlyOnce is CheckExactlyOnce that ends the test on a failure.
func RequireExactlyOnce(tb testing.TB, st cvmsim.Stats, ids []string) {
	tb.Helper()
	if never, twice := CheckExactlyOnce(tb, st, ids); never+twice > 0 {
		tb.FailNow()
	}
}

// CheckSucceeded reports an error unless r completed with every instance
// succeeded, and returns whether it did.
func CheckSucceeded(tb testing.TB, r *ledger.Rollout) bool {
	tb.Helper()
	if r.State != ledger.Completed || r.Counters.Succeeded != r.Total {
		tb.Errorf("rollout %s: %s (%s), counters %+v of %d; want completed with all succeeded", r.ID, r.State, r.Reason, r.Counters, r.Total)
		return false
	}
	return true
}

// RequireSucceeded is CheckSucceeded that ends the test on a failure.
func RequireSucceeded(tb testing.TB, r *ledger.Rollout) {
	tb.Helper()
	if !CheckSucceeded(tb, r) {
		tb.FailNow()
	}
}

// AwaitRecur waits until the one recur task of queue q is scheduled (a
// completed occurrence of a series schedules it right after it completes;
// asynq announces nothing, so it is polled every PollInterval) and returns
// it. It fails the test after within, or when more than one is scheduled.
func AwaitRecur(tb testing.TB, insp *asynq.Inspector, q string, within time.Duration) *asynq.TaskInfo {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		scheduled, err := insp.ListScheduledTasks(q)
		if err != nil {
			tb.Fatal(err)
		}
		var found []*asynq.TaskInfo
		for _, ti := range scheduled {
			if ti.Type == tasks.TypeRecur {
				found = append(found, ti)
			}
		}
		if len(found) > 1 {
			tb.Fatalf("%d recur tasks scheduled in %s; want 1", len(found), q)
		}
		if len(found) == 1 {
			return found[0]
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no recur task scheduled in %s within %s", q, within)
		}
		time.Sleep(PollInterval)
	}
}
