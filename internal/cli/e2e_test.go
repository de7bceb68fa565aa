package cli

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
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
