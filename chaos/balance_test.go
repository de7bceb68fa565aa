package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/hibiken/asynq"
)

// balanceCode is the API 3.0 answer of a reset when the account is in
// arrears.
const balanceCode = "InvalidAccount.InsufficientBalance"

// inFlightSlack bounds how long after the pause a reset call that was
// already on its way (intent recorded, request being built and signed) may
// still arrive at the API, on a loaded 2-core machine. The exact property
// is checked from the ledger: every call after the pause had its intent
// recorded before it. A call whose intent came after the pause is refused
// by the ledger and never leaves the worker.
const inFlightSlack = 2 * time.Second

// TestBalancePause runs three workers at 40 resets/s (a raised quota,
// with 200 ms API round trips, so several calls are always in flight)
// until the simulator answers InsufficientBalance after 40 accepted
// resets. The rollout must pause with the reason, and the only reset calls
// after the first balance error may be those already in flight when the
// pause was recorded.
func TestBalancePause(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	redisURL := "redis://" + r.Addr
	const n, balanceAfter, procs, concurrency = 200, 40, 3, 20
	f := writePlan(t, planOpts{name: "chaos-balance", n: n, seed: 61, waves: "[100%]", reset: 40})
	sim := newSim(cvmsim.Config{ResetDuration: 300 * time.Millisecond,
		Faults: cvmsim.Faults{ResetRateLimit: 40, BalanceAfter: balanceAfter}}, f.ids)
	tp := newTap(sim, 100*time.Millisecond, 100*time.Millisecond, false)
	url := tp.serve(t)
	apply(t, redisURL, ns, url, f.path)
	ws := startWorkers(t, procs, redisURL, ns, url)
	l, _ := newLedger(t, r.Addr, ns)

	res := awaitRollout(t, l, f.plan.Spec.ID, 2*time.Minute, ledger.Paused, ledger.Completed, ledger.Aborted)
	if res.State != ledger.Paused || !strings.Contains(res.Reason, balanceCode) {
		t.Fatalf("rollout is %s (%q); want paused, naming %s", res.State, res.Reason, balanceCode)
	}
	pausedAt := res.UpdatedAt
	// Every reset task still queued runs into the pause and parks its
	// instance; once none is left, no further call can come.
	awaitResetQueueIdle(t, r.ConnOpt(), ns, time.Minute)
	ws.stop()

	var firstErr time.Time
	calls := tp.snapshot()
	for _, c := range calls {
		if c.action == "ResetInstance" && c.code == balanceCode && (firstErr.IsZero() || c.applied.Before(firstErr)) {
			firstErr = c.applied
		}
	}
	if firstErr.IsZero() {
		t.Fatal("the simulator never answered a balance error")
	}
	after, late := 0, 0
	for _, c := range calls {
		if c.action != "ResetInstance" || !c.start.After(firstErr) {
			continue
		}
		after++
		if !c.start.After(pausedAt) {
			continue
		}
		late++
		if c.start.After(pausedAt.Add(inFlightSlack)) {
			t.Errorf("reset of %s arrived %s after the pause (answered %q)", c.instance, c.start.Sub(pausedAt), c.code)
		}
		in, err := l.Instance(t.Context(), f.plan.Spec.ID, c.instance)
		if err != nil {
			t.Fatal(err)
		}
		// IntentAt has millisecond precision, as does the pause's time.
		if in.IntentAt.After(pausedAt) {
			t.Errorf("reset of %s arrived after the pause with its intent recorded %s after it", c.instance, in.IntentAt.Sub(pausedAt))
		}
	}
	st := sim.Stats()
	total := 0
	for _, c := range st.AcceptedResets {
		if c > 1 {
			t.Errorf("an instance was reset %d times", c)
		}
		total += c
	}
	t.Logf("first balance error %s; paused %s later; %d reset calls arrived after the first balance error (%d after the pause); %d accepted in all, %d balance errors",
		firstErr.Format(time.StampMilli), pausedAt.Sub(firstErr).Round(time.Millisecond), after, late, total, st.Errors[balanceCode])
	if total != balanceAfter {
		t.Errorf("%d resets accepted; want exactly the %d before the balance ran out", total, balanceAfter)
	}
	if after > procs*concurrency {
		t.Errorf("%d reset calls after the first balance error; at most %d handlers can be in flight", after, procs*concurrency)
	}
}

// awaitResetQueueIdle polls asynq until namespace ns's reset queue holds
// no task that can still run.
func awaitResetQueueIdle(t *testing.T, opt asynq.RedisConnOpt, ns string, within time.Duration) {
	t.Helper()
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	deadline := time.Now().Add(within)
	var last *asynq.QueueInfo
	for time.Now().Before(deadline) {
		info, err := insp.GetQueueInfo(ns)
		if err == nil {
			last = info
			if info.Pending+info.Active+info.Scheduled+info.Retry+info.Aggregating == 0 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("reset queue %s still busy after %s: %+v", ns, within, last)
}
