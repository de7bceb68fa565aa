package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

const fast = "rateLimit: {reset: 100, describe: 200, unsafeAboveApiLimit: true}"

// TestSystemBusyEveryInstanceOnce: with 30% SystemBusy, every instance of a
// 500-instance plan ends verified and was reset exactly once.
func TestSystemBusyEveryInstanceOnce(t *testing.T) {
	b := setup(t, cvmsim.Config{ResetDuration: 100 * time.Millisecond,
		Faults: cvmsim.Faults{SystemBusyRate: 0.3, ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: 500, waves: "[{size: 10%}, {size: 100%}]", extra: fast})
	b.apply(t)
	b.startWorkers(t, 3, nil)
	r := b.await(t, 2*time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted)
	if r.State != ledger.Completed || r.Counters.Succeeded != 500 {
		t.Fatalf("rollout %s (%s) with %+v; want completed with 500 succeeded", r.State, r.Reason, r.Counters)
	}
	b.exactlyOnce(t, nil)
	if busy := b.sim.Stats().Errors["OperationFail.SystemBusy"] + b.sim.Stats().Errors["InternalError"]; busy == 0 {
		t.Errorf("the simulator answered no SystemBusy; the fault did not apply")
	}
}

// TestLostAnswersNeverResetTwice drops the answer of half of all calls,
// after (or before) the simulator applied them: redelivered tasks must
// reconcile through DescribeInstances and never reset an instance twice.
func TestLostAnswersNeverResetTwice(t *testing.T) {
	for _, tc := range []struct {
		name       string
		api        string
		afterApply bool
	}{
		{"v3-answer-lost", "v3", true},
		{"v3-request-lost", "v3", false},
		{"v2-answer-lost", "v2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t, cvmsim.Config{ResetDuration: 100 * time.Millisecond,
				Faults: cvmsim.Faults{DropRate: 0.4, DropAfterApply: tc.afterApply, ResetRateLimit: -1, DescribeRateLimit: -1}},
				planOpts{n: 40, api: tc.api, extra: fast})
			b.apply(t)
			b.startWorkers(t, 2, nil)
			r := b.await(t, 2*time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted)
			if r.State != ledger.Completed || r.Counters.Succeeded != 40 {
				t.Fatalf("rollout %s (%s) with %+v; want all 40 succeeded", r.State, r.Reason, r.Counters)
			}
			b.exactlyOnce(t, nil)
			if b.sim.Stats().Dropped == 0 {
				t.Errorf("no connection was dropped; the fault did not apply")
			}
		})
	}
}

// TestBalanceErrorPauses: a balance error stops the whole rollout; only
// calls already in flight may follow it.
func TestBalanceErrorPauses(t *testing.T) {
	const workers, concurrency = 2, 10
	b := setup(t, cvmsim.Config{ResetDuration: 100 * time.Millisecond,
		Faults: cvmsim.Faults{BalanceAfter: 15, ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: 100, extra: fast})
	b.apply(t)
	b.startWorkers(t, workers, nil)
	r := b.await(t, time.Minute, ledger.Paused)
	if !strings.Contains(r.Reason, "InsufficientBalance") && !strings.Contains(r.Reason, "AccountBalanceNotEnough") {
		t.Errorf("paused for %q; want the balance error named", r.Reason)
	}
	// Wait until no reset task is left to run, then count the calls the
	// balance error did not prevent.
	insp := asynq.NewInspector(b.r.ConnOpt())
	defer insp.Close()
	q := tasks.QueuesFor(b.ns)
	eventually(30*time.Second, func() bool {
		info, err := insp.GetQueueInfo(q.Reset)
		return err == nil && info.Pending+info.Active+info.Retry+info.Scheduled == 0
	})
	st := b.sim.Stats()
	refused := st.Errors["InvalidAccount.InsufficientBalance"]
	if refused == 0 || refused > workers*concurrency {
		t.Errorf("%d reset calls answered the balance error; want between 1 and the %d that can be in flight", refused, workers*concurrency)
	}
	accepted := 0
	for _, n := range st.AcceptedResets {
		accepted += n
	}
	if accepted != 15 {
		t.Errorf("%d resets accepted; the simulator allowed exactly 15", accepted)
	}
	held := 0
	is, _ := b.l.AllInstances(t.Context(), r)
	for _, in := range is {
		if in.State == ledger.Held || in.State == ledger.Pending {
			held++
		}
	}
	if held != 100-15 {
		t.Errorf("%d instances parked; want the 85 never reset", held)
	}
}

// TestPlantedPasswordLeaksNowhere resolves a password from a reference and
// then scans every Redis key, the logs and the ledger for it.
func TestPlantedPasswordLeaksNowhere(t *testing.T) {
	b := setup(t, cvmsim.Config{ResetDuration: 50 * time.Millisecond,
		Faults: cvmsim.Faults{SystemBusyRate: 0.2, ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: 20, password: true, extra: fast})
	b.apply(t)
	b.startWorkers(t, 1, nil)
	r := b.await(t, time.Minute, ledger.Completed, ledger.Paused)
	if r.State != ledger.Completed {
		t.Fatalf("rollout %s: %s", r.State, r.Reason)
	}
	if strings.Contains(b.logs.String(), plantedPassword) {
		t.Errorf("the password is in the logs")
	}
	ctx := context.Background()
	keys, err := b.r.Client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("no keys to scan")
	}
	for _, k := range keys {
		var vals []string
		switch typ, _ := b.r.Client.Type(ctx, k).Result(); typ {
		case "string":
			v, _ := b.r.Client.Get(ctx, k).Result()
			vals = []string{v}
		case "hash":
			m, _ := b.r.Client.HGetAll(ctx, k).Result()
			for f, v := range m {
				vals = append(vals, f, v)
			}
		case "list":
			vals, _ = b.r.Client.LRange(ctx, k, 0, -1).Result()
		case "set":
			vals, _ = b.r.Client.SMembers(ctx, k).Result()
		case "zset":
			vals, _ = b.r.Client.ZRange(ctx, k, 0, -1).Result()
		}
		for _, v := range append(vals, k) {
			if strings.Contains(v, plantedPassword) {
				t.Errorf("the password is in Redis key %s", k)
			}
		}
	}
	if b.sim.Stats().Errors["InvalidParameterValue.InvalidPassword"] != 0 {
		t.Errorf("the simulator rejected the password; it was not sent as planned")
	}
}
