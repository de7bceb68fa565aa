package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a command.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testEnv(vars map[string]string) (*Env, *syncBuffer, *syncBuffer) {
	out, errb := &syncBuffer{}, &syncBuffer{}
	return &Env{Stdout: out, Stderr: errb, Getenv: func(k string) string { return vars[k] }}, out, errb
}

// TestRunDemoExactlyOnce runs the README's demo command through the real
// CLI code path and checks, from the simulator's own counts, that every
// instance was reset exactly once and now runs its target image.
func TestRunDemoExactlyOnce(t *testing.T) {
	var sim *cvmsim.Server
	env, out, errb := testEnv(nil)
	env.Hooks = &Hooks{Simulator: func(s *cvmsim.Server, _ string) { sim = s }}
	code := Main(t.Context(), env, []string{"run", "--simulate", "--sim-reset-duration", "300ms", "--state-dir", t.TempDir(), "../../plans/demo.yaml"})
	if code != 0 {
		t.Fatalf("run exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errb)
	}
	plan, err := planner.Load("../../plans/demo.yaml", planner.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := sim.Stats()
	for _, tg := range plan.Targets {
		if n := st.AcceptedResets[tg.InstanceID]; n != 1 {
			t.Errorf("%s reset %d times; want exactly 1", tg.InstanceID, n)
		}
		v, ok := sim.Instance(tg.InstanceID)
		if want := plan.Spec.Groups[tg.Group].ImageID; !ok || v.ImageID != want {
			t.Errorf("%s is on %q; want %q", tg.InstanceID, v.ImageID, want)
		}
	}
	if len(plan.Spec.Waves) < 2 || len(plan.Targets) < 20 {
		t.Errorf("demo plan has %d instances in %d waves; the demo should show tens of instances in several waves", len(plan.Targets), len(plan.Spec.Waves))
	}
	if !strings.Contains(out.String(), "completed") {
		t.Errorf("output does not report completion:\n%s", out)
	}
}

// TestApplyAndTwoWorkers runs the multi-process setup in one test process:
// a simulator, `apply` into Redis, and two `worker` commands sharing it.
func TestApplyAndTwoWorkers(t *testing.T) {
	r := redistest.New(t)
	sim := cvmsim.New(cvmsim.Config{ResetDuration: 200 * time.Millisecond})
	plan, err := planner.Load("../../plans/demo.yaml", planner.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sim.AddInstances(fleetFromPlan(plan)...)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	t.Setenv("TENCENTCLOUD_SECRET_ID", cvmsim.SecretIDDefault)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", cvmsim.SecretKeyDefault)
	ns := strings.TrimSuffix(r.Prefix, ":")
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr}
	common := []string{"--namespace", ns, "--endpoint", srv.URL}

	env, out, errb := testEnv(vars)
	if code := Main(t.Context(), env, append(append([]string{"apply"}, common...), "../../plans/demo.yaml")); code != 0 {
		t.Fatalf("apply exited %d\n%s\n%s", code, out, errb)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env, out, errb := testEnv(vars)
			if code := Main(ctx, env, append([]string{"worker", "--concurrency", "5", "--reconcile-grace", "5s"}, common...)); code != 0 {
				t.Errorf("worker %d exited %d\n%s\n%s", i, code, out, errb)
			}
		}()
	}
	l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
	rr := awaitState(t, l, plan.Spec.ID, 60*time.Second, ledger.Completed)
	cancel()
	wg.Wait()
	if rr.Counters.Succeeded != len(plan.Targets) {
		t.Errorf("succeeded %d of %d: %+v", rr.Counters.Succeeded, len(plan.Targets), rr.Counters)
	}
	st := sim.Stats()
	for _, tg := range plan.Targets {
		if n := st.AcceptedResets[tg.InstanceID]; n != 1 {
			t.Errorf("%s reset %d times; want exactly 1", tg.InstanceID, n)
		}
	}
	// Applying the same plan again enqueues nothing.
	insp := asynq.NewInspector(r.ConnOpt())
	defer insp.Close()
	before := queueTotal(t, insp, ns)
	env, out, _ = testEnv(vars)
	if code := Main(t.Context(), env, append(append([]string{"apply"}, common...), "../../plans/demo.yaml")); code != 0 {
		t.Fatalf("second apply exited %d: %s", code, out)
	}
	if !strings.Contains(out.String(), "already applied") {
		t.Errorf("second apply said %q; want it to say the plan was already applied", out)
	}
	if after := queueTotal(t, insp, ns); after != before {
		t.Errorf("second apply changed the queues: %d tasks before, %d after", before, after)
	}
}

func queueTotal(t *testing.T, insp *asynq.Inspector, ns string) int {
	t.Helper()
	n := 0
	q := tasks.QueuesFor(ns)
	for _, name := range []string{q.Reset, q.Control} {
		info, err := insp.GetQueueInfo(name)
		if err != nil {
			continue // a queue that never got a task does not exist
		}
		n += info.Size + info.Completed
	}
	return n
}

// awaitState polls the ledger until the rollout reaches one of want.
func awaitState(t *testing.T, l *ledger.Ledger, id string, within time.Duration, want ...ledger.RolloutState) *ledger.Rollout {
	t.Helper()
	deadline := time.Now().Add(within)
	var last *ledger.Rollout
	for time.Now().Before(deadline) {
		r, err := l.Get(t.Context(), id)
		if err == nil {
			last = r
			for _, s := range want {
				if r.State == s {
					return r
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("rollout %s did not reach %v within %s; last: %+v", id, want, within, last)
	return nil
}

func writePlan(t *testing.T, dir, name string, ids []string, extra string) string {
	t.Helper()
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, name+".txt"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	plan := fmt.Sprintf("version: 1\nname: %s\nregion: ap-guangzhou\nimage: {type: 1, id: img-new00001}\nkeepImageLogin: true\nwaves: [1, 10%%, 100%%]\ngroups:\n  - name: all\n    instancesFile: %s.txt\n%s", name, name, extra)
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPlanPreviewsTenThousandInstances: `plan` pre-flights 10,000 targets
// in 100 batched DescribeInstances calls within the describe budget,
// prints its preview and enqueues nothing.
func TestPlanPreviewsTenThousandInstances(t *testing.T) {
	r := redistest.New(t)
	fleet := cvmsim.Generate(10_000)
	sim := cvmsim.New(cvmsim.Config{})
	sim.AddInstances(fleet...)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	t.Setenv("TENCENTCLOUD_SECRET_ID", cvmsim.SecretIDDefault)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", cvmsim.SecretKeyDefault)
	ids := make([]string, len(fleet))
	for i, in := range fleet {
		ids[i] = in.ID
	}
	// A few already run the target image: the preview skips them.
	fleet[7].ImageID, fleet[42].ImageID = "img-new00001", "img-new00001"
	sim.AddInstances(fleet[7], fleet[42])
	path := writePlan(t, t.TempDir(), "big", ids, "")
	ns := strings.TrimSuffix(r.Prefix, ":")
	env, out, errb := testEnv(map[string]string{"REDIS_URL": "redis://" + r.Addr})
	if code := Main(t.Context(), env, []string{"plan", "--namespace", ns, "--endpoint", srv.URL, path}); code != 0 {
		t.Fatalf("plan exited %d\n%s\n%s", code, out, errb)
	}
	st := sim.Stats()
	calls := 0
	for _, n := range st.Calls["DescribeInstances"] {
		calls += n
	}
	if calls != 100 || st.RateLimited["DescribeInstances"] != 0 {
		t.Errorf("%d DescribeInstances calls, %d rate-limited; want 100 and 0", calls, st.RateLimited["DescribeInstances"])
	}
	if st.MaxCallsPerSecond["DescribeInstances"] > 40 {
		t.Errorf("%d describe calls in one second; the budget is 40", st.MaxCallsPerSecond["DescribeInstances"])
	}
	for _, want := range []string{"2 to skip", "Minimum wall time", "Nothing was enqueued", "ap-guangzhou-3"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("preview lacks %q:\n%s", want, out)
		}
	}
	insp := asynq.NewInspector(r.ConnOpt())
	defer insp.Close()
	if n := queueTotal(t, insp, ns); n != 0 {
		t.Errorf("plan enqueued %d tasks", n)
	}
	if keys, _ := r.Client.Keys(t.Context(), ns+":{*").Result(); len(keys) != 0 {
		t.Errorf("plan wrote rollout keys: %v", keys)
	}
}

// TestOneRolloutPerInstance: a plan that targets an instance of another
// active rollout is refused, naming both, and changes nothing.
func TestOneRolloutPerInstance(t *testing.T) {
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	dir := t.TempDir()
	first := writePlan(t, dir, "first", []string{"ins-aaaaaaa1", "ins-aaaaaaa2"}, "")
	second := writePlan(t, dir, "second", []string{"ins-aaaaaaa3", "ins-aaaaaaa2"}, "")
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr}
	env, out, errb := testEnv(vars)
	if code := Main(t.Context(), env, []string{"apply", "--namespace", ns, "--no-preflight", first}); code != 0 {
		t.Fatalf("first apply exited %d: %s %s", code, out, errb)
	}
	env, out, errb = testEnv(vars)
	code := Main(t.Context(), env, []string{"apply", "--namespace", ns, "--no-preflight", second})
	if code == 0 {
		t.Fatalf("second apply succeeded: %s", out)
	}
	if msg := errb.String(); !strings.Contains(msg, "ins-aaaaaaa2") || !strings.Contains(msg, `"first"`) || !strings.Contains(msg, "second") {
		t.Errorf("refusal %q does not name the instance and both rollouts", msg)
	}
	l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
	if _, err := l.Get(t.Context(), "second"); err == nil {
		t.Errorf("the refused rollout was recorded")
	}
	// ins-aaaaaaa3 was not claimed by the refused plan.
	if c, _ := l.Claim(t.Context(), "third", []string{"ins-aaaaaaa3"}); len(c) != 0 {
		t.Errorf("the refused plan kept a claim: %v", c)
	}
}

// TestBadPlanChangesNothing: validate and apply name file, line and field,
// and a bad plan enqueues nothing.
func TestBadPlanChangesNothing(t *testing.T) {
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("version: 1\nname: bad\nregion: ap-guangzhou\nimage: {type: 9, id: img-new00001}\npassword: hunter2hunter2\nwaves: [0]\ngroups:\n  - name: g\n    instances: [ins-1, ins-aaaaaaa1, ins-aaaaaaa1]\n"), 0o600)
	for _, cmd := range []string{"validate", "apply"} {
		env, out, errb := testEnv(map[string]string{"REDIS_URL": "redis://" + r.Addr})
		if code := Main(t.Context(), env, []string{cmd, "--namespace", ns, path}); code == 0 {
			t.Fatalf("%s accepted a bad plan: %s", cmd, out)
		}
		for _, want := range []string{path + ":4: image.type", path + ":5: password", path + ":6: waves[0]", path + ":9: groups[0].instances"} {
			if !strings.Contains(errb.String(), want) {
				t.Errorf("%s output lacks %q:\n%s", cmd, want, errb)
			}
		}
		if strings.Contains(errb.String(), "hunter2hunter2") {
			t.Errorf("%s printed the inline password", cmd)
		}
	}
	insp := asynq.NewInspector(r.ConnOpt())
	defer insp.Close()
	if n := queueTotal(t, insp, ns); n != 0 {
		t.Errorf("a bad plan enqueued %d tasks", n)
	}
}

// TestPlannerRateCeilingMatchesLimiter: a plan may not ask for a rate the
// workers' limiter refuses.
func TestPlannerRateCeilingMatchesLimiter(t *testing.T) {
	if planner.MaxRate != ratelimit.MaxRate {
		t.Errorf("planner.MaxRate = %v, ratelimit.MaxRate = %v; they must agree", planner.MaxRate, ratelimit.MaxRate)
	}
}
