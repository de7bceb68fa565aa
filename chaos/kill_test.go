package chaos

import (
	"context"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
)

// TestKillWorkers SIGKILLs worker processes during a rollout with 20%
// SystemBusy answers, preferring a worker whose reset call is in flight
// (found through the call's source port), and restarts each at once.
// Reset calls take effect even when their caller is dead, as on the real
// cloud, so every mid-call kill leaves an intent whose outcome only the
// cloud knows. asynq hands a killed worker's tasks to another worker
// 60-120 s after the kill (asynq.md §3), so the rollout ends that long
// after the last kill.
//
// Short form: 200 instances, 2 kills. Long form: 1,000 instances, a kill
// every 2 s until the simulator has accepted a reset of every instance.
func TestKillWorkers(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	redisURL := "redis://" + r.Addr
	f := writePlan(t, planOpts{name: "chaos-kill", n: size(200, 1000), seed: 41, waves: size("[10, 100%]", "[5, 10%, 50%, 100%]")})
	sim := newSim(cvmsim.Config{ResetDuration: 300 * time.Millisecond, Faults: cvmsim.Faults{SystemBusyRate: 0.2}}, f.ids)
	tp := newTap(sim, 100*time.Millisecond, 200*time.Millisecond, true)
	url := tp.serve(t)
	apply(t, redisURL, ns, url, f.path)
	ws := startWorkers(t, 3, redisURL, ns, url, "--concurrency", "10")
	l, _ := newLedger(t, r.Addr, ns)

	// Let the rollout get going: past its first wave.
	awaitAccepted(t, sim, size(30, 100), 2*time.Minute)
	maxKills := size(2, 1<<30)
	kills, midCall := 0, 0
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	killUntil := time.Now().Add(size(time.Minute, 20*time.Minute))
	for kills < maxKills && time.Now().Before(killUntil) && accepted(sim) < len(f.ids) {
		victim := -1
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if c, err := tp.await(ctx, resetInFlight(false)); err == nil {
			if pid, ok := pidOfPort(c.port, ws.pids()); ok {
				victim = ws.slotOf(pid)
			}
		}
		cancel()
		if victim >= 0 {
			midCall++
		} else {
			victim = rand.IntN(len(ws.slots))
		}
		ws.slots[victim].signal(t, syscall.SIGKILL)
		kills++
		ws.restart(victim)
		if kills < maxKills {
			<-tick.C
		}
	}
	t.Logf("%d kills, %d of them while the victim had a reset call in flight", kills, midCall)
	if midCall == 0 {
		t.Errorf("no kill hit a worker in the middle of a reset call")
	}
	res := awaitRollout(t, l, f.plan.Spec.ID, size(5*time.Minute, 30*time.Minute), ledger.Completed, ledger.Paused, ledger.Aborted)
	ws.stop()
	checkSucceeded(t, res)
	checkExactlyOnce(t, sim, f.ids)
	checkNoRateLimited(t, sim)
}

// TestTermWorkerMidCall SIGTERMs a worker while its reset call is in
// flight (a 2 s simulated API latency), then lets the other worker finish
// the rollout. Three ways the call can end:
//
//   - drain: the shutdown timeout (45 s default) outlasts the call, which
//     completes and is recorded before the process exits;
//   - abandon: a 500 ms shutdown timeout; asynq requeues the task and
//     cancels the handler, the HTTP request is cancelled and the simulator
//     drops it unprocessed: the intent's call never landed;
//   - land: as abandon, but the request takes effect anyway (it had
//     arrived): the intent's call landed and nobody saw the answer.
func TestTermWorkerMidCall(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		shutdown string
		land     bool
		// logged is what a worker must log about the victim's instance.
		logged string
	}{
		{"drain", "45s", false, "reset accepted"},
		{"abandon", "500ms", false, "reconciled: the earlier call never landed"},
		{"land", "500ms", true, "reconciled: the earlier call had landed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := redistest.New(t)
			ns := strings.TrimSuffix(r.Prefix, ":")
			redisURL := "redis://" + r.Addr
			f := writePlan(t, planOpts{name: "chaos-term-" + c.name, n: 30, seed: 43, waves: "[100%]"})
			sim := newSim(cvmsim.Config{ResetDuration: 300 * time.Millisecond}, f.ids)
			var tp *tap
			if c.land {
				tp = newTap(sim, 2*time.Second, 0, true)
			} else {
				sim.SetFaults(cvmsim.Faults{Latency: 2 * time.Second})
				tp = newTap(sim, 0, 0, false)
			}
			url := tp.serve(t)
			apply(t, redisURL, ns, url, f.path)
			// A 6 s grace allows 3 s API calls (half the grace), above
			// the 2 s latency.
			ws := startWorkers(t, 2, redisURL, ns, url, "--shutdown-timeout", c.shutdown, "--reconcile-grace", "6s")
			l, _ := newLedger(t, r.Addr, ns)

			// A call younger than 500 ms is still in flight when a 500 ms
			// shutdown timeout ends.
			var victim *proc
			var instance string
			for victim == nil {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				call, err := tp.await(ctx, resetStarted(300*time.Millisecond))
				cancel()
				must(t, err)
				if pid, ok := pidOfPort(call.port, ws.pids()); ok {
					victim, instance = ws.slots[ws.slotOf(pid)], call.instance
				}
			}
			victim.signal(t, syscall.SIGTERM)
			if code := victim.wait(t, time.Minute); code != 0 {
				t.Errorf("worker exited %d after SIGTERM; want 0\n%s", code, tail(victim.log, 20))
			}
			res := awaitRollout(t, l, f.plan.Spec.ID, 3*time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted)
			ws.stop()
			checkSucceeded(t, res)
			checkExactlyOnce(t, sim, f.ids)
			checkNoRateLimited(t, sim)
			if !ws.logged(c.logged, instance) {
				t.Errorf("no worker logged %q for %s, the instance whose call was in flight", c.logged, instance)
			}
		})
	}
}

// checkNoRateLimited checks that the simulator never answered
// RequestLimitExceeded: killed workers must not break the shared budget.
func checkNoRateLimited(t *testing.T, sim *cvmsim.Server) {
	t.Helper()
	if rl := sim.Stats().RateLimited; rl["ResetInstance"]+rl["DescribeInstances"] > 0 {
		t.Errorf("the simulator rate-limited calls: %v", rl)
	}
}
