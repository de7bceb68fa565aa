// Chaos tests of issue 16, "five ways to reset an instance twice": an
// adversarial run found instances whose system disk was wiped twice while
// fleetreset reported success. The common cause: pre-flight
// (rollout.Preflight) lets an instance whose LatestOperationState is
// OPERATING proceed, a reset call refused with
// OperationDenied.InstanceOperationInProgress is retried until that
// reinstall ends and then made again, and the worker never describes an
// instance right before its ResetInstance call. Each test below reaches
// that state another way an operator or the infrastructure can, with real
// `fleetreset` processes and simulated reinstalls that last 30-60 s like
// real ones, and checks the simulator's own counts at the end.
package chaos

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
)

// Real reinstalls take minutes; these take 30-60 s, each drawn from the
// simulator's seeded source, so that fleetreset meets instances in the
// middle of a reinstall at every step of these tests.
const (
	reinstallMin = 30 * time.Second
	reinstallMax = 60 * time.Second
)

// slowSim returns a simulator holding ids whose reinstalls last 30-60 s.
func slowSim(ids []string, seed int64, cfg cvmsim.Config) *cvmsim.Server {
	cfg.ResetDuration, cfg.ResetDurationMax = reinstallMin, reinstallMax
	cfg.Seed = seed
	return newSim(cfg, ids)
}

// fr runs a fleetreset command to its end and fails the test unless it
// exits 0; it returns the combined output.
func fr(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = baseEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fleetreset %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// requireFlag fails the test at once unless `fleetreset CMD` has --flag.
func requireFlag(t *testing.T, cmd, flag string) {
	t.Helper()
	out, _ := exec.Command(bin, cmd, "-h").CombinedOutput()
	if !strings.Contains(string(out), "-"+flag+" ") {
		t.Fatalf("fleetreset %s has no --%s flag (the issue 16 fix adds it); its flags:\n%s", cmd, flag, out)
	}
}

// operating counts the instances of ids whose reinstall is running at the
// simulator.
func operating(sim *cvmsim.Server, ids []string) int {
	n := 0
	for _, id := range ids {
		if v, ok := sim.Instance(id); ok && v.LatestOperationState == cvmsim.OperationOperating {
			n++
		}
	}
	return n
}

// awaitReinstallsEnded polls the simulator until no instance of ids is
// reinstalling.
func awaitReinstallsEnded(t *testing.T, sim *cvmsim.Server, ids []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for operating(sim, ids) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d reinstalls still running after %s", operating(sim, ids), within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// resetCounts summarises the simulator's accepted resets per instance, as
// "resets:instances" pairs, e.g. "1:30 2:10".
func resetCounts(sim *cvmsim.Server, ids []string) string {
	st := sim.Stats()
	h := map[int]int{}
	for _, id := range ids {
		h[st.AcceptedResets[id]]++
	}
	var keys []int
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %d:%d", k, h[k])
	}
	if rl := st.RateLimited; len(rl) > 0 {
		fmt.Fprintf(&b, " (rate-limited by the API: %v)", rl)
	}
	return strings.TrimSpace(b.String())
}

// checkFinished checks the ledger: the rollout completed, every instance
// succeeded or was skipped (already on target: a reset this rollout found
// done), none failed, ambiguous or cancelled.
func checkFinished(t *testing.T, r *ledger.Rollout) {
	t.Helper()
	c := r.Counters
	if r.State != ledger.Completed || c.Failures() > 0 || c.Cancelled > 0 || c.Succeeded+c.Skipped != r.Total {
		t.Errorf("rollout %s: %s (%s), counters %+v of %d; want completed with every instance succeeded or skipped", r.ID, r.State, r.Reason, c, r.Total)
	}
}

// TestDoubleResetAbortReapply aborts a rollout while many of its
// reinstalls are running, then applies the same plan under a new name, as
// docs/operations.md advises ("give it a new name, and apply it; instances
// already on the target image are skipped"). The instances the aborted
// rollout had reset are still reinstalling, not yet on the target image:
// the new rollout must neither reset them again nor forget the instances
// the aborted one never reached.
//
// Short form: 40 instances. Long form: 200.
func TestDoubleResetAbortReapply(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	redisURL := "redis://" + r.Addr
	n := size(40, 200)
	f := writePlan(t, planOpts{name: "dbl-abort", n: n, seed: 101, waves: "[100%]"})
	sim := slowSim(f.ids, 101, cvmsim.Config{})
	url := newTap(sim, 0, 0, true).serve(t)
	apply(t, redisURL, ns, url, f.path)
	ws := startWorkers(t, 2, redisURL, ns, url)
	l, _ := newLedger(t, r.Addr, ns)

	awaitAccepted(t, sim, n/2, 2*time.Minute)
	out := fr(t, "abort", "--redis", redisURL, "--namespace", ns, "--reason", "chaos: abort mid-rollout", f.plan.Spec.ID)
	t.Logf("aborted after %d accepted resets, %d reinstalls running: %s", accepted(sim), operating(sim, f.ids), out)
	awaitRollout(t, l, f.plan.Spec.ID, time.Minute, ledger.Aborted)

	// The same instances under a new name, applied at once.
	f2 := writePlan(t, planOpts{name: "dbl-abort-again", n: n, seed: 101, waves: "[100%]"})
	applyAfterAbort(t, redisURL, ns, url, f2.path)
	t.Logf("re-applied as %s with %d reinstalls still running", f2.plan.Spec.ID, operating(sim, f.ids))
	res := awaitRollout(t, l, f2.plan.Spec.ID, size(6*time.Minute, 20*time.Minute), ledger.Completed, ledger.Paused, ledger.Aborted)
	ws.stop()
	t.Logf("resets per instance (resets:instances): %s", resetCounts(sim, f.ids))
	checkFinished(t, res)
	checkExactlyOnce(t, sim, f.ids)
}

// TestDoubleResetRetryFailedAfterVerifyTimeout runs a plan whose
// verify.timeout (10 s) is shorter than the reinstalls (30-60 s): every
// accepted reset ends failed with VerifyTimeout although it goes on and
// finishes on the target image. Once every reinstall has finished, the
// operator retries the failed instances, with `fleetreset retry-failed`
// (workers on a shared Redis) or `fleetreset run --retry-failed` (the
// journal of single-process mode). A retry must find that the accepted
// reset did finish on target and verify it instead of wiping the disk a
// second time; every instance ends succeeded.
//
// Short form: 30 instances per variant. Long form: 150.
func TestDoubleResetRetryFailedAfterVerifyTimeout(t *testing.T) {
	t.Parallel()
	n := size(30, 150)
	opts := func(name string, seed int64) planOpts {
		// Every instance may fail without pausing the rollout.
		return planOpts{name: name, n: n, seed: seed, waves: "[100%]",
			verify: "{interval: 1s, timeout: 10s}", budget: fmt.Sprintf("{max: %d}", n)}
	}
	// checkTimedOut checks the premise: every instance failed VerifyTimeout.
	checkTimedOut := func(t *testing.T, r *ledger.Rollout, sim *cvmsim.Server, ids []string) {
		t.Helper()
		if r.State != ledger.Completed || r.Counters.Failed != n {
			t.Fatalf("first attempt: rollout %s (%s), counters %+v; want completed with all %d failed VerifyTimeout", r.State, r.Reason, r.Counters, n)
		}
		if got := resetCounts(sim, ids); got != fmt.Sprintf("1:%d", n) {
			t.Fatalf("first attempt: resets per instance %s; want every instance reset once", got)
		}
	}

	t.Run("retry-failed", func(t *testing.T) {
		t.Parallel()
		r := redistest.New(t)
		ns := strings.TrimSuffix(r.Prefix, ":")
		redisURL := "redis://" + r.Addr
		f := writePlan(t, opts("dbl-verify-timeout", 103))
		sim := slowSim(f.ids, 103, cvmsim.Config{})
		url := newTap(sim, 0, 0, true).serve(t)
		apply(t, redisURL, ns, url, f.path)
		ws := startWorkers(t, 2, redisURL, ns, url)
		l, _ := newLedger(t, r.Addr, ns)

		res := awaitRollout(t, l, f.plan.Spec.ID, 3*time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted)
		checkTimedOut(t, res, sim, f.ids)
		awaitReinstallsEnded(t, sim, f.ids, 2*time.Minute)
		out := fr(t, "retry-failed", "--redis", redisURL, "--namespace", ns, f.plan.Spec.ID)
		t.Logf("every reinstall finished on target; %s", out)
		res = awaitRollout(t, l, f.plan.Spec.ID, size(5*time.Minute, 15*time.Minute), ledger.Completed, ledger.Paused, ledger.Aborted)
		ws.stop()
		t.Logf("resets per instance (resets:instances): %s", resetCounts(sim, f.ids))
		checkSucceeded(t, res)
		checkExactlyOnce(t, sim, f.ids)
	})

	t.Run("run --retry-failed", func(t *testing.T) {
		t.Parallel()
		f := writePlan(t, opts("dbl-verify-timeout-run", 105))
		sim := slowSim(f.ids, 105, cvmsim.Config{})
		url := newTap(sim, 0, 0, true).serve(t)
		stateDir, logDir := t.TempDir(), t.TempDir()
		args := []string{"run", "--endpoint", url, "--state-dir", stateDir, "--reconcile-grace", "3s", "--call-timeout", "2500ms", "--api-replay-window", chaosReplay.String(), "--log-format", "json", f.path}

		p := start(t, logDir, "run-1", baseEnv(), args...)
		if code := p.wait(t, 3*time.Minute); code != 1 {
			t.Fatalf("first run exited %d; want 1 (every instance failed VerifyTimeout)\n%s", code, tail(p.log, 30))
		}
		if got := resetCounts(sim, f.ids); got != fmt.Sprintf("1:%d", n) {
			t.Fatalf("first run: resets per instance %s; want every instance reset once", got)
		}
		awaitReinstallsEnded(t, sim, f.ids, 2*time.Minute)
		p = start(t, logDir, "run-2", baseEnv(), append([]string{"run", "--retry-failed"}, args[1:]...)...)
		code := p.wait(t, size(5*time.Minute, 15*time.Minute))
		t.Logf("resets per instance (resets:instances): %s", resetCounts(sim, f.ids))
		if code != 0 {
			t.Errorf("run --retry-failed exited %d; want 0 (every instance verified)\n%s", code, tail(p.log, 30))
		}
		checkExactlyOnce(t, sim, f.ids)
	})
}

// TestDoubleResetRunKilledRerunElsewhere SIGKILLs `fleetreset run`
// (embedded Redis and the journal in --state-dir A) while half the fleet
// is reinstalling, then runs the same plan from another directory
// (--state-dir B: a fresh journal and a fresh embedded Redis, as on
// another machine or after the directory was lost). Nothing remembers the
// first run's calls but the cloud: the second run must not reset the
// instances whose reinstalls are still running.
//
// Short form: 40 instances. Long form: 200.
func TestDoubleResetRunKilledRerunElsewhere(t *testing.T) {
	t.Parallel()
	n := size(40, 200)
	f := writePlan(t, planOpts{name: "dbl-run-elsewhere", n: n, seed: 107, waves: "[100%]"})
	sim := slowSim(f.ids, 107, cvmsim.Config{})
	url := newTap(sim, 0, 0, true).serve(t)
	logDir := t.TempDir()
	args := func(stateDir string) []string {
		return []string{"run", "--endpoint", url, "--state-dir", stateDir, "--reconcile-grace", "3s", "--call-timeout", "2500ms", "--api-replay-window", chaosReplay.String(), "--log-format", "json", f.path}
	}
	p := start(t, logDir, "run-A", baseEnv(), args(filepath.Join(t.TempDir(), "A"))...)
	awaitAccepted(t, sim, n/2, 2*time.Minute)
	p.signal(t, syscall.SIGKILL)
	t.Logf("run A killed after %d accepted resets, %d reinstalls running", accepted(sim), operating(sim, f.ids))

	p = start(t, logDir, "run-B", baseEnv(), args(filepath.Join(t.TempDir(), "B"))...)
	code := p.wait(t, size(6*time.Minute, 20*time.Minute))
	t.Logf("resets per instance (resets:instances): %s", resetCounts(sim, f.ids))
	if code != 0 {
		t.Errorf("run B exited %d; want 0\n%s", code, tail(p.log, 30))
	}
	checkExactlyOnce(t, sim, f.ids)
}

// TestDoubleResetRedisSnapshotRestore runs workers on a redis-server that
// persists RDB snapshots only, takes a snapshot (SAVE) mid-rollout, lets
// the rollout go on until 25 more resets were accepted (about 5 s at 5
// calls/s), SIGKILLs Redis and restarts it on the same port from the
// older snapshot, as a restore from backup would. The ledger and asynq's
// queues are rolled back: the resets accepted after the snapshot are
// forgotten, and their tasks are pending (or active under an expired
// lease) again. The workers keep running; the cloud is the only witness,
// and every instance must still be reset exactly once.
//
// Once the restored queues run dry, the rollout must end completed by
// itself; this test does not `fleetreset resume` it (an operator could,
// but a rollout that hangs in "running" after a restore is a finding).
//
// Short form: 60 instances. Long form: 300.
func TestDoubleResetRedisSnapshotRestore(t *testing.T) {
	t.Parallel()
	rs := startRedisWith(t, "--appendonly", "no", "--save", "", "--dbfilename", "dump.rdb")
	n := size(60, 300)
	f := writePlan(t, planOpts{name: "dbl-snapshot", n: n, seed: 109, waves: "[100%]", reset: 5})
	sim := slowSim(f.ids, 109, cvmsim.Config{})
	url := newTap(sim, 0, 0, true).serve(t)
	apply(t, rs.url(), "dbl", url, f.path)
	ws := startWorkers(t, 3, rs.url(), "dbl", url)
	l, rdb := newLedger(t, rs.addr(), "dbl")

	awaitAccepted(t, sim, n/4, 2*time.Minute)
	must(t, rdb.Save(context.Background()).Err())
	atSnapshot, snapshotAt := accepted(sim), time.Now()
	dump, snap := filepath.Join(rs.dir, "dump.rdb"), filepath.Join(t.TempDir(), "snapshot.rdb")
	copyFile(t, dump, snap)
	awaitAccepted(t, sim, atSnapshot+size(25, 100), 2*time.Minute)
	rs.p.signal(t, syscall.SIGKILL)
	copyFile(t, snap, dump)
	rs.start()
	t.Logf("Redis restored from a snapshot %s old: %d resets accepted at the snapshot, %d now, %d reinstalls running",
		time.Since(snapshotAt).Round(100*time.Millisecond), atSnapshot, accepted(sim), operating(sim, f.ids))

	res := awaitRollout(t, l, f.plan.Spec.ID, size(6*time.Minute, 20*time.Minute), ledger.Completed, ledger.Paused, ledger.Aborted)
	ws.stop()
	t.Logf("resets per instance (resets:instances): %s", resetCounts(sim, f.ids))
	checkFinished(t, res)
	checkExactlyOnce(t, sim, f.ids)
}

// TestDoubleResetRedisLostReapply runs workers on a redis-server that
// persists nothing, SIGKILLs it while half the fleet is reinstalling,
// restarts it empty on the same port and applies the same plan again, as
// an operator would after losing Redis. The new rollout knows nothing of
// the first one's calls; it must not reset the instances whose reinstalls
// are still running.
//
// Short form: 40 instances. Long form: 200.
func TestDoubleResetRedisLostReapply(t *testing.T) {
	t.Parallel()
	rs := startRedisWith(t, "--appendonly", "no", "--save", "")
	n := size(40, 200)
	f := writePlan(t, planOpts{name: "dbl-redis-lost", n: n, seed: 113, waves: "[100%]"})
	sim := slowSim(f.ids, 113, cvmsim.Config{})
	url := newTap(sim, 0, 0, true).serve(t)
	apply(t, rs.url(), "dbl", url, f.path)
	ws := startWorkers(t, 3, rs.url(), "dbl", url)
	l, rdb := newLedger(t, rs.addr(), "dbl")

	awaitAccepted(t, sim, n/2, 2*time.Minute)
	rs.p.signal(t, syscall.SIGKILL)
	rs.start()
	if keys, err := rdb.DBSize(context.Background()).Result(); err != nil || keys != 0 {
		t.Fatalf("restarted redis-server holds %d keys (%v); want an empty one", keys, err)
	}
	apply(t, rs.url(), "dbl", url, f.path)
	t.Logf("Redis lost after %d accepted resets; plan re-applied with %d reinstalls running", accepted(sim), operating(sim, f.ids))

	res := awaitRollout(t, l, f.plan.Spec.ID, size(6*time.Minute, 20*time.Minute), ledger.Completed, ledger.Paused, ledger.Aborted)
	ws.stop()
	t.Logf("resets per instance (resets:instances): %s", resetCounts(sim, f.ids))
	checkFinished(t, res)
	checkExactlyOnce(t, sim, f.ids)
}

// lateLandingReplayWindow is the simulator's replay window in
// TestDoubleResetLateLanding, and what the workers are told it is. It is
// longer than the hold, so that the held request is still valid when it
// lands.
const lateLandingReplayWindow = 60 * time.Second

// TestDoubleResetLateLanding holds the first ResetInstance request of a
// few chosen instances in transit (a tap in front of the simulator) for up
// to 45 s, longer than the workers' call timeout plus reconcile grace
// (5 s + 20 s). The worker's call times out, the reconcile after the grace
// finds no trace of it and calls again. The held request lands just before
// that second call reaches the simulator (and at least 26 s after it was
// sent), or after 45 s if no second call comes first; its signature is
// still valid (the simulator's replay window is 60 s).
// A second call made while the held request's reinstall runs must not end
// in a second reset once that reinstall is over; a worker that knows the
// API's replay window (--api-replay-window) can instead wait until the
// first request can no longer land.
//
// Every instance must be reset at most once (a chosen instance may end
// ambiguous, which the failure budget allows), the others exactly once,
// and the rollout must complete.
//
// Short form: 20 instances, 3 held. Long form: 100, 10 held.
func TestDoubleResetLateLanding(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	redisURL := "redis://" + r.Addr
	n, k := size(20, 100), size(3, 10)
	const callTimeout, grace, maxHold = 5 * time.Second, 20 * time.Second, 45 * time.Second
	f := writePlan(t, planOpts{name: "dbl-late", n: n, seed: 127, waves: "[100%]", budget: fmt.Sprintf("{max: %d}", k)})
	sim := slowSim(f.ids, 127, cvmsim.Config{ReplayWindow: lateLandingReplayWindow})
	chosen := map[string]bool{}
	for i := range k {
		chosen[f.ids[(2*i+1)*n/(2*k)]] = true
	}
	requireFlag(t, "worker", "api-replay-window")
	tp := newTap(sim, 0, 0, true)
	tr := &transit{tp: tp, chosen: chosen, min: callTimeout + grace + time.Second, max: maxHold, first: map[string]*heldRequest{}}
	tp.hold = tr.hold
	url := tp.serve(t)
	apply(t, redisURL, ns, url, f.path)
	ws := startWorkers(t, 2, redisURL, ns, url, "--call-timeout", callTimeout.String(), "--reconcile-grace", grace.String(),
		"--api-replay-window", lateLandingReplayWindow.String())
	l, _ := newLedger(t, r.Addr, ns)

	res := awaitRollout(t, l, f.plan.Spec.ID, size(6*time.Minute, 20*time.Minute), ledger.Completed, ledger.Paused, ledger.Aborted)
	ws.stop()
	st := sim.Stats()
	t.Logf("resets per instance (resets:instances): %s", resetCounts(sim, f.ids))
	calls := tp.snapshot()
	for _, id := range f.ids {
		resets := st.AcceptedResets[id]
		in, err := l.Instance(context.Background(), f.plan.Spec.ID, id)
		must(t, err)
		if chosen[id] {
			h := tr.get(id)
			var answers []string
			for _, c := range calls {
				if c.instance == id {
					answers = append(answers, fmt.Sprintf("%s->%s", c.start.Format("15:04:05"), cmp.Or(c.code, "accepted")))
				}
			}
			t.Logf("%s: first request held %s (%s), answered %q; %d reset calls %v; %d accepted; ledger %s %s",
				id, h.held().Round(100*time.Millisecond), h.why, h.call.code, len(answers), answers, resets, in.State, in.Code)
		}
		switch {
		case resets > 1:
			t.Errorf("%s reset %d times (at %v); ledger: %s", id, resets, st.ResetTimes[id], in.State)
		case resets == 0 && !chosen[id]:
			t.Errorf("%s was never reset", id)
		case resets == 0 && in.State == ledger.Succeeded:
			t.Errorf("%s is succeeded in the ledger but was never reset", id)
		}
	}
	if res.State != ledger.Completed {
		t.Errorf("rollout %s (%s), counters %+v; want completed", res.State, res.Reason, res.Counters)
	}
}

// transit holds the first reset request of each chosen instance in
// transit for at least min: until a later reset request of the same
// instance arrives at the tap, or max has passed. The held request then
// reaches the simulator first, and the later one only once the simulator
// has processed it.
type transit struct {
	tp       *tap
	chosen   map[string]bool
	min, max time.Duration

	mu    sync.Mutex
	first map[string]*heldRequest
}

type heldRequest struct {
	call     *call
	released chan struct{} // closed by a later request
	once     sync.Once
	until    time.Time // when it went on to the simulator
	why      string
}

func (h *heldRequest) held() time.Duration {
	if h.until.IsZero() {
		return 0
	}
	return h.until.Sub(h.call.start)
}

func (tr *transit) get(id string) *heldRequest {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if h := tr.first[id]; h != nil {
		return h
	}
	return &heldRequest{call: &call{}}
}

func (tr *transit) hold(c *call) {
	if !tr.chosen[c.instance] {
		return
	}
	tr.mu.Lock()
	h := tr.first[c.instance]
	if h == nil {
		h = &heldRequest{call: c, released: make(chan struct{})}
		tr.first[c.instance] = h
		tr.mu.Unlock()
		why := "held the full " + tr.max.String()
		select {
		case <-h.released:
			why = "released by a later call"
			// In transit for at least min, whenever the later call came.
			time.Sleep(time.Until(c.start.Add(tr.min)))
		case <-time.After(tr.max):
		}
		tr.mu.Lock()
		h.until, h.why = time.Now(), why
		tr.mu.Unlock()
		return
	}
	tr.mu.Unlock()
	// A later request: let the held one land first.
	h.once.Do(func() { close(h.released) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr.tp.awaitApplied(ctx, h.call)
}

// awaitApplied blocks until the simulator has processed c.
func (tp *tap) awaitApplied(ctx context.Context, c *call) error {
	for {
		tp.mu.Lock()
		done := !c.applied.IsZero()
		ch := tp.changed
		tp.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// copyFile copies src to dst (a Redis snapshot).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	must(t, err)
	defer in.Close()
	out, err := os.Create(dst)
	must(t, err)
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	must(t, out.Close())
}
