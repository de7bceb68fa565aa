package worker_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redisfit"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/metrics"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/worker"
)

// resetAtCloud resets every instance of the plan at the simulator, as a
// call whose record was lost would have: an aborted rollout's in-flight
// calls, a ledger restored from an old snapshot, a Redis that lost
// everything, a run started in another directory.
func (b *bundle) resetAtCloud(t *testing.T, api string) {
	t.Helper()
	c, err := cvm.New(cvm.Config{Generation: cvm.Generation(api), Endpoint: b.url, Region: "ap-guangzhou", Credentials: b.creds})
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range b.plan.Targets {
		req := cvm.ResetRequest{InstanceID: tg.InstanceID, ImageID: "img-new00001", ImageType: 1, KeepImageLogin: api == "v3"}
		if api == "v2" {
			req.Password = cvm.Secret(plantedPassword)
		}
		if _, err := c.ResetInstance(t.Context(), req); err != nil {
			t.Fatalf("reset %s at the simulator: %v", tg.InstanceID, err)
		}
	}
}

// TestRunningReinstallIsAdoptedNotRepeated: instances whose reinstall is
// already running when the rollout pre-flights them (the abort-and-re-apply
// and the lost-Redis re-apply of issue 16) are judged, never reset again.
// Before the fix pre-flight said Proceed, the worker retried
// InstanceOperationInProgress until the reinstall ended, then reset again.
func TestRunningReinstallIsAdoptedNotRepeated(t *testing.T) {
	for _, api := range []string{"v3", "v2"} {
		t.Run(api, func(t *testing.T) {
			t.Parallel()
			b := setup(t, cvmsim.Config{ResetDuration: 2 * time.Second,
				Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}},
				planOpts{n: 20, api: api, extra: fast})
			b.resetAtCloud(t, api)
			b.apply(t)
			b.startWorkers(t, 2, nil)
			r := b.await(t, time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted)
			if r.State != ledger.Completed || r.Counters.Succeeded != 20 {
				t.Fatalf("rollout %s (%s) with %+v; want all 20 succeeded", r.State, r.Reason, r.Counters)
			}
			b.exactlyOnce(t, nil)
			is, err := b.l.AllInstances(t.Context(), r)
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range is {
				if in.Adopted == "" || in.Resets != 0 {
					t.Errorf("%s: adopted %q, resets %d; want adopted with no call of ours", in.ID, in.Adopted, in.Resets)
				}
			}
		})
	}
}

// TestResetSincePreflightIsAdopted: the ledger says an instance was
// pre-flighted and never called, but the cloud shows a reinstall since
// (a Redis restored from a snapshot taken before the call was recorded).
// The check right before the call adopts it.
func TestResetSincePreflightIsAdopted(t *testing.T) {
	t.Parallel()
	b := setup(t, cvmsim.Config{ResetDuration: 200 * time.Millisecond,
		Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: 20, extra: fast})
	b.apply(t)
	// What the pre-flight recorded, then the calls whose records were lost.
	for _, tg := range b.plan.Targets {
		v, _ := b.sim.Instance(tg.InstanceID)
		if err := b.l.Preflight(t.Context(), b.plan.Spec.ID, tg.InstanceID, v.ImageID, v.LatestOperationRequestID); err != nil {
			t.Fatal(err)
		}
	}
	b.resetAtCloud(t, "v3")
	b.startWorkers(t, 2, nil)
	r := b.await(t, time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted)
	if r.State != ledger.Completed || r.Counters.Succeeded != 20 {
		t.Fatalf("rollout %s (%s) with %+v; want all 20 succeeded", r.State, r.Reason, r.Counters)
	}
	b.exactlyOnce(t, nil)
}

// TestRetryFailedReverifiesAcceptedResets: resets the cloud accepted but
// that were not verified in time fail VerifyTimeout; retry-failed must
// verify them again, not reset them again (issue 16).
func TestRetryFailedReverifiesAcceptedResets(t *testing.T) {
	t.Parallel()
	b := setup(t, cvmsim.Config{ResetDuration: 3 * time.Second,
		Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: 10, extra: fast + "\nfailureBudget: {max: 100}", verifyTimeout: "1s"})
	b.apply(t)
	b.startWorkers(t, 1, nil)
	r := b.await(t, time.Minute, ledger.Completed, ledger.Paused)
	if r.Counters.Failed != 10 {
		t.Fatalf("rollout %s with %+v; want all 10 failed VerifyTimeout first", r.State, r.Counters)
	}
	// The operator retries once the reinstalls have in fact finished.
	if !eventually(time.Minute, func() bool {
		for _, v := range b.sim.Instances() {
			if v.LatestOperationState != "SUCCESS" {
				return false
			}
		}
		return true
	}) {
		t.Fatal("the simulator's reinstalls did not finish")
	}
	if _, err := b.ctl.RetryFailed(t.Context(), b.plan.Spec.ID, false); err != nil {
		t.Fatal(err)
	}
	var last *ledger.Rollout
	if !eventually(time.Minute, func() bool {
		last, _ = b.l.Get(t.Context(), b.plan.Spec.ID)
		return last != nil && last.State == ledger.Completed && last.Counters.Succeeded == 10
	}) {
		t.Fatalf("after retry-failed: %+v; want all 10 succeeded", last)
	}
	b.exactlyOnce(t, nil)
}

// TestRolloutGoneIsSaidOnce: tasks of a rollout that Redis no longer holds
// (state lost) call nothing, and the worker says why, once (issue 14).
func TestRolloutGoneIsSaidOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, cvmsim.Config{}, planOpts{n: 3, extra: fast})
	for _, id := range ids(3) {
		if err := b.ctl.EnqueueReset(t.Context(), "ghost", ledger.Requeue{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	b.startWorkers(t, 1, nil)
	const msg = `"msg":"rollout not found in Redis`
	if !eventually(30*time.Second, func() bool {
		return strings.Count(b.logs.String(), `task failed`) >= 3
	}) {
		t.Fatalf("the ghost rollout's tasks did not all run:\n%s", b.logs.String())
	}
	if n := strings.Count(b.logs.String(), msg); n != 1 {
		t.Errorf("%q logged %d times; want once", msg, n)
	}
	if st := b.sim.Stats(); st.TotalCalls != 0 {
		t.Errorf("%d API calls; want none for a rollout that does not exist", st.TotalCalls)
	}
}

// TestConcurrentAppliesResetOnce: twenty applies of one plan at the same
// moment, while workers already run. Whatever their interleaving, every
// instance is reset exactly once (issue 10, bug 1).
func TestConcurrentAppliesResetOnce(t *testing.T) {
	t.Parallel()
	const n = 60
	b := setup(t, cvmsim.Config{ResetDuration: 300 * time.Millisecond,
		Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: n, extra: fast})
	b.startWorkers(t, 2, nil)
	var wg sync.WaitGroup
	created := make(chan bool, 20)
	for range 20 {
		wg.Go(func() {
			res, err := engine.New(engine.Config{Ledger: b.l, Client: b.client, Namespace: b.ns}).Apply(t.Context(), engine.ApplyRequest{Spec: b.plan.Spec, Targets: b.plan.Targets})
			if err != nil {
				t.Errorf("Apply: %v", err)
			}
			created <- res.Created
		})
	}
	wg.Wait()
	close(created)
	r := b.await(t, time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted)
	if r.State != ledger.Completed || r.Counters.Succeeded != n {
		t.Fatalf("rollout %s (%s) with %+v; want all %d succeeded", r.State, r.Reason, r.Counters, n)
	}
	b.exactlyOnce(t, nil)
}

// TestOOMPausesOnceWritesWork: Redis reaches maxmemory (noeviction) in the
// middle of a rollout. Tasks that meet the refused writes do not spin; once
// Redis accepts writes again the rollout pauses, naming the cause, and no
// instance was reset twice (issue 14).
func TestOOMPausesOnceWritesWork(t *testing.T) {
	t.Parallel()
	r := redistest.Server(t, "--maxmemory", "16mb", "--maxmemory-policy", "noeviction")
	b := setup(t, cvmsim.Config{ResetDuration: 3 * time.Second,
		Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: 60, redis: r, extra: "rateLimit: {reset: 5, describe: 40}"})
	b.apply(t)
	b.startWorkers(t, 1, nil)
	accepted := func() int {
		n := 0
		for _, c := range b.sim.Stats().AcceptedResets {
			n += c
		}
		return n
	}
	if !eventually(30*time.Second, func() bool { return accepted() >= 3 }) {
		t.Fatal("no reset was accepted")
	}
	ctx := t.Context()
	// Fill Redis to maxmemory and keep it there (what the rollout frees,
	// the filler takes), until a task has met the refusal.
	fill := strings.Repeat("x", 16<<10)
	var keys []string
	full := make(chan struct{})
	var fullOnce sync.Once
	stop := make(chan struct{})
	filled := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				filled <- nil
				return
			default:
			}
			k := fmt.Sprintf("%sfill:%d", r.Prefix, i)
			err := r.Client.Set(ctx, k, fill, 0).Err()
			switch {
			case redisfit.IsOOM(err):
				fullOnce.Do(func() { close(full) })
			case err != nil:
				filled <- err
				return
			default:
				keys = append(keys, k)
			}
		}
	}()
	<-full
	const said = "Redis refused a write (out of memory)"
	met := eventually(30*time.Second, func() bool { return strings.Contains(b.logs.String(), said) })
	close(stop)
	if err := <-filled; err != nil {
		t.Fatal(err)
	}
	if !met {
		t.Fatalf("no task met the OOM:\n%s", b.logs.String())
	}
	for start := 0; start < len(keys); start += 500 {
		if err := r.Client.Del(ctx, keys[start:min(start+500, len(keys))]...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	got := b.await(t, time.Minute, ledger.Paused, ledger.Completed, ledger.Aborted)
	if got.State != ledger.Paused || !strings.Contains(got.Reason, "OOM") {
		t.Errorf("rollout %s (%q); want paused, naming the OOM", got.State, got.Reason)
	}
	for id, n := range b.sim.Stats().AcceptedResets {
		if n > 1 {
			t.Errorf("%s reset %d times", id, n)
		}
	}
}

// TestWorkerServesOnlyItsEndpoint: a rollout keeps the endpoint it was
// applied with; a worker started with another --endpoint calls nothing for
// it, says so once, counts it, and leaves its tasks to a worker that
// matches (issue 15: a worker without the apply's --endpoint sent the
// rollout's calls to the real API).
func TestWorkerServesOnlyItsEndpoint(t *testing.T) {
	t.Parallel()
	// The plan of the account cases names account main (MAIN_*), which
	// resolved to the simulator's key where it was applied.
	const mainAccount = "accounts: {main: {env: MAIN}}\naccount: main\n"
	keyOf := func(id string, b *bundle) func(context.Context, rollout.AccountSource) (cvm.CredentialProvider, error) {
		return func(context.Context, rollout.AccountSource) (cvm.CredentialProvider, error) {
			return cvm.StaticProvider(cvm.Credentials{SecretID: id, SecretKey: b.creds.SecretKey}), nil
		}
	}
	for _, tt := range []struct {
		name  string
		extra string
		// spec sets what apply stored (the identities).
		spec func(*rollout.Spec)
		// other makes the worker that must not serve the rollout; good,
		// when set, the one that must.
		other, good func(b *bundle, c *worker.Config)
	}{
		{name: "endpoint", other: func(_ *bundle, c *worker.Config) { c.Endpoint = "http://127.0.0.1:9" }},
		{name: "identity", spec: func(s *rollout.Spec) { s.Identity = cvmsim.SecretIDDefault }, other: func(b *bundle, c *worker.Config) {
			// A worker holding another account's key (the simulator
			// would even accept it): it must not judge this rollout.
			c.Credentials = &cvm.Credentials{SecretID: "AKIDanotheraccount", SecretKey: b.creds.SecretKey}
		}},
		{name: "no default credentials", other: func(_ *bundle, c *worker.Config) {
			c.Credentials, c.Provider = nil, cvm.NoCredentials{Err: cvm.ErrNoCredentials}
		}},
		{name: "named account's identity", extra: mainAccount,
			spec: func(s *rollout.Spec) { s.AccountIdentities = map[string]string{"main": cvmsim.SecretIDDefault} },
			other: func(b *bundle, c *worker.Config) {
				// Its MAIN_* variables hold another account's key.
				c.AccountProvider = keyOf("AKIDanotheraccount", b)
			},
			good: func(b *bundle, c *worker.Config) { c.AccountProvider = keyOf(cvmsim.SecretIDDefault, b) }},
		{name: "named accounts only, worker without default credentials serves", extra: mainAccount,
			spec:  func(s *rollout.Spec) { s.AccountIdentities = map[string]string{"main": cvmsim.SecretIDDefault} },
			other: func(b *bundle, c *worker.Config) { c.Endpoint = "http://127.0.0.1:9" },
			good: func(b *bundle, c *worker.Config) {
				c.Credentials, c.Provider = nil, cvm.NoCredentials{Err: cvm.ErrNoCredentials}
				c.AccountProvider = keyOf(cvmsim.SecretIDDefault, b)
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			testServesOnly(t, tt.extra, tt.spec, tt.other, tt.good)
		})
	}
}

func testServesOnly(t *testing.T, extra string, spec func(*rollout.Spec), other, good func(*bundle, *worker.Config)) {
	b := setup(t, cvmsim.Config{ResetDuration: 50 * time.Millisecond,
		Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: 5, extra: fast + "\n" + extra})
	if spec != nil {
		spec(&b.plan.Spec)
	}
	b.apply(t)
	m := metrics.New(metrics.Config{})
	stopOther := b.startWorkers(t, 1, func(c *worker.Config) { other(b, c); c.Observer = m })
	const said = `not serving this rollout`
	if !eventually(30*time.Second, func() bool { return strings.Contains(b.logs.String(), said) }) {
		t.Fatalf("the worker did not say it does not serve the rollout:\n%s", b.logs.String())
	}
	if n := strings.Count(b.logs.String(), said); n != 1 {
		t.Errorf("said %d times; want once", n)
	}
	if st := b.sim.Stats(); st.TotalCalls != 0 {
		t.Errorf("%d API calls from a worker for another endpoint", st.TotalCalls)
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := false
	for _, f := range fams {
		if f.GetName() == "fleetreset_tasks_not_served_total" {
			for _, mm := range f.GetMetric() {
				counted = counted || mm.GetCounter().GetValue() > 0
			}
		}
	}
	if !counted {
		t.Error("fleetreset_tasks_not_served_total did not count the handed-back task")
	}
	// The tasks it handed back come back within 5 s to whoever asks; with
	// the other worker gone, to the matching one.
	stopOther()
	b.startWorkers(t, 1, func(c *worker.Config) {
		if good != nil {
			good(b, c)
		}
	})
	r := b.await(t, time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted)
	if r.State != ledger.Completed {
		t.Fatalf("rollout %s (%s); want completed by the matching worker", r.State, r.Reason)
	}
	b.exactlyOnce(t, nil)
}
