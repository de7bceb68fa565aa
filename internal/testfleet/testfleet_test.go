package testfleet_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/internal/testfleet"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/redis/go-redis/v9"
)

// recorder is a testing.TB that records failures instead of ending the
// test, so that the harness's own failures can be checked.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errs   []string
	failed bool
}

func (r *recorder) Helper() {}

func (r *recorder) record(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, msg)
}

func (r *recorder) Errorf(f string, a ...any) { r.record(fmt.Sprintf(f, a...)) }
func (r *recorder) Fatal(a ...any)            { r.record(fmt.Sprint(a...)); r.FailNow() }
func (r *recorder) Fatalf(f string, a ...any) { r.record(fmt.Sprintf(f, a...)); r.FailNow() }

func (r *recorder) FailNow() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
}

func (r *recorder) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

func TestIDs(t *testing.T) {
	ids := testfleet.IDs(300)
	if ids[0] != "ins-00000001" || ids[255] != "ins-00000100" {
		t.Errorf("IDs(300)[0], [255] = %s, %s; want ins-00000001, ins-00000100", ids[0], ids[255])
	}
	if !slices.Equal(testfleet.IDs(3), ids[:3]) {
		t.Errorf("IDs(3) = %v; want the first three of IDs(300)", testfleet.IDs(3))
	}
	seeded := testfleet.SeededIDs(300, 7)
	if !slices.Equal(seeded, testfleet.SeededIDs(300, 7)) || slices.Equal(seeded, testfleet.SeededIDs(300, 8)) {
		t.Errorf("SeededIDs is not a function of its seed")
	}
	for _, list := range [][]string{ids, seeded} {
		if len(list) != 300 || len(slices.Compact(slices.Sorted(slices.Values(list)))) != 300 {
			t.Errorf("%d IDs, not 300 distinct ones", len(list))
		}
	}
}

func TestFleet(t *testing.T) {
	ids := testfleet.IDs(4)
	def := testfleet.SimFleet(ids)
	if def[0].Zone != "ap-guangzhou-3" || def[1].Zone != "ap-guangzhou-4" || def[3].Zone != "ap-guangzhou-3" || def[2].ImageID != cvmsim.ImageLinuxOld {
		t.Errorf("SimFleet = %+v; want the three zones in turn on %s", def, cvmsim.ImageLinuxOld)
	}
	one := testfleet.Fleet{Image: "img-old00001", Zones: []string{"ap-guangzhou-3"}}.Instances(ids)
	for i, in := range one {
		if in.ID != ids[i] || in.Zone != "ap-guangzhou-3" || in.ImageID != "img-old00001" || in.State != cvmsim.StateRunning || in.OS != cvmsim.OSLinux {
			t.Errorf("instance %d = %+v", i, in)
		}
	}

	sim, url := testfleet.StartSim(t, cvmsim.Config{}, ids)
	for _, id := range ids {
		if v, ok := sim.Instance(id); !ok || v.ImageID != cvmsim.ImageLinuxOld {
			t.Errorf("the simulator holds %s: %v, %+v", id, ok, v)
		}
	}
	res, err := http.Get(url + "/admin/instances")
	if err != nil {
		t.Fatalf("the simulator is not served at %s: %v", url, err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), ids[3]) {
		t.Errorf("GET /admin/instances = %d without %s:\n%s", res.StatusCode, ids[3], body)
	}
}

func TestPlan(t *testing.T) {
	ids := testfleet.IDs(5)
	p := testfleet.Plan{Name: "inline", Endpoint: "http://127.0.0.1:1", KeepImageLogin: true,
		Verify: "{interval: 200ms, timeout: 1m}", Waves: "[{size: 2, approval: manual}, {size: 100%}]",
		FailureBudget: "{max: 1}", Extra: "rateLimit: {reset: 5, describe: 20}\n", Group: "web", Instances: ids}
	plan, err := planner.Parse("inline.yaml", []byte(p.YAML()), planner.Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, p.YAML())
	}
	if s := plan.Spec; s.ID != "inline" || s.Endpoint != p.Endpoint || len(s.Waves) != 2 || len(plan.Targets) != 5 || plan.Targets[4].InstanceID != ids[4] || s.Groups[0].Name != "web" {
		t.Errorf("parsed %+v, targets %+v", s, plan.Targets)
	}

	dir := t.TempDir()
	seeded := testfleet.SeededIDs(50, 3)
	path := testfleet.WritePlan(t, dir, testfleet.Plan{Name: "onfile", Waves: "[10, 100%]"}, seeded, "Test-Passw0rd")
	plan, err = planner.Load(path, planner.Options{ResolveSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(plan.Targets))
	for i, tg := range plan.Targets {
		got[i] = tg.InstanceID
	}
	if plan.Spec.ID != "onfile" || !slices.Equal(got, seeded) {
		t.Errorf("loaded %s with targets %v; want onfile with %v", plan.Spec.ID, got, seeded)
	}
	if _, err := planner.Load(testfleet.WritePlan(t, t.TempDir(), testfleet.Plan{Name: "weak", Waves: "[100%]"}, seeded, "x"), planner.Options{ResolveSecrets: true}); err == nil {
		t.Errorf("a plan with the password %q loaded; the password file was not used", "x")
	}
}

// TestAwaitRollout: with an engine, AwaitRollout sees what the engine
// changes and nothing else (it waits for the signal, it does not poll);
// without, it polls the ledger and sees any change.
func TestAwaitRollout(t *testing.T) {
	s := testfleet.NewStack(t, redistest.New(t))
	plan, err := planner.Parse("await.yaml", []byte(testfleet.Plan{Name: "await", KeepImageLogin: true, Waves: "[100%]", Instances: testfleet.IDs(3)}.YAML()), planner.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Apply(t, plan)
	id := plan.Spec.ID
	if r := s.Await(t, id, 5*time.Second, ledger.Running, ledger.Scheduled); r.ID != id {
		t.Fatalf("Await returned %+v", r)
	}

	go func() {
		time.Sleep(50 * time.Millisecond)
		if err := s.Engine.Pause(context.Background(), id, "by the test"); err != nil {
			t.Errorf("Pause: %v", err)
		}
	}()
	if r := s.Await(t, id, 10*time.Second, ledger.Paused); r.Reason != "by the test" {
		t.Errorf("paused with reason %q", r.Reason)
	}

	// Waiting on the signal reads the ledger once at the start and once at
	// the deadline; polling reads it all along.
	var n commands
	rdb := redis.NewClient(&redis.Options{Addr: s.Redis.Addr})
	t.Cleanup(func() { rdb.Close() })
	rdb.AddHook(&n)
	counted := ledger.New(rdb, ledger.Config{Prefix: s.NS + ":"})
	if _, err := counted.Get(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	perGet := n.take()
	rec := &recorder{TB: t}
	if r := testfleet.AwaitRollout(rec, counted, s.Engine, id, 500*time.Millisecond, ledger.Completed); r != nil || !rec.failed {
		t.Errorf("AwaitRollout of a state nothing reaches returned %+v, failed %v; want a timeout", r, rec.failed)
	}
	if errs := rec.errors(); len(errs) != 1 || !strings.Contains(errs[0], "last state paused") {
		t.Errorf("timeout reported %q; want the last state seen", errs)
	}
	if got := n.take(); got > 2*perGet {
		t.Errorf("waiting on the signal sent %d commands; want at most two reads of %d", got, perGet)
	}
	testfleet.AwaitRollout(&recorder{TB: t}, counted, nil, id, 500*time.Millisecond, ledger.Completed)
	if got := n.take(); got < 5*perGet {
		t.Errorf("polling sent %d commands in 500ms; want at least five reads of %d", got, perGet)
	}

	// A change the engine does not make: only polling sees it.
	go func() {
		time.Sleep(50 * time.Millisecond)
		if ok, err := s.Ledger.SetState(context.Background(), id, []ledger.RolloutState{ledger.Paused}, ledger.Running, "behind the engine"); err != nil || !ok {
			t.Errorf("SetState = %v, %v", ok, err)
		}
	}()
	if r := testfleet.AwaitRollout(t, s.Ledger, nil, id, 5*time.Second, ledger.Running); r.Reason != "behind the engine" {
		t.Errorf("polling found reason %q", r.Reason)
	}
	if _, err := testfleet.PollRollout(s.Ledger, "no-such-rollout", 100*time.Millisecond, ledger.Running); err == nil || !strings.Contains(err.Error(), "never appeared") {
		t.Errorf("PollRollout of a missing rollout = %v", err)
	}
}

// commands counts the Redis commands a client sends.
type commands struct{ n atomic.Int64 }

func (c *commands) take() int64 { return c.n.Swap(0) }

func (c *commands) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *commands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func TestCheckExactlyOnce(t *testing.T) {
	ids := testfleet.IDs(30)
	counts := func(f func(i int) int) cvmsim.Stats {
		st := cvmsim.Stats{AcceptedResets: map[string]int{}}
		for i, id := range ids {
			if n := f(i); n > 0 {
				st.AcceptedResets[id] = n
			}
		}
		return st
	}
	for _, tc := range []struct {
		name         string
		st           cvmsim.Stats
		never, twice int
		errs         int
	}{
		{"all once", counts(func(int) int { return 1 }), 0, 0, 0},
		{"one twice", counts(func(i int) int { return 1 + btoi(i == 7) }), 0, 1, 1},
		{"one never", counts(func(i int) int { return btoi(i != 0) }), 1, 0, 1},
		{"none", counts(func(int) int { return 0 }), 30, 0, 11}, // ten named and a summary
		{"many of both", counts(func(i int) int { return 2 * (i % 2) }), 15, 15, 21},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			never, twice := testfleet.CheckExactlyOnce(rec, tc.st, ids)
			if never != tc.never || twice != tc.twice || len(rec.errors()) != tc.errs || rec.failed {
				t.Errorf("CheckExactlyOnce = %d never, %d twice, errors %q, failed %v; want %d, %d, %d errors",
					never, twice, rec.errors(), rec.failed, tc.never, tc.twice, tc.errs)
			}
			rec = &recorder{TB: t}
			testfleet.RequireExactlyOnce(rec, tc.st, ids)
			if rec.failed != (tc.errs > 0) {
				t.Errorf("RequireExactlyOnce failed = %v; want %v", rec.failed, tc.errs > 0)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestCheckSucceeded(t *testing.T) {
	for _, tc := range []struct {
		r  ledger.Rollout
		ok bool
	}{
		{ledger.Rollout{State: ledger.Completed, Total: 3, Counters: ledger.Counters{Succeeded: 3}}, true},
		{ledger.Rollout{State: ledger.Completed, Total: 3, Counters: ledger.Counters{Succeeded: 2, Failed: 1}}, false},
		{ledger.Rollout{State: ledger.Paused, Total: 3, Counters: ledger.Counters{Succeeded: 3}}, false},
	} {
		rec := &recorder{TB: t}
		if ok := testfleet.CheckSucceeded(rec, &tc.r); ok != tc.ok || len(rec.errors()) != btoi(!tc.ok) || rec.failed {
			t.Errorf("CheckSucceeded(%+v) = %v, errors %q", tc.r, ok, rec.errors())
		}
		rec = &recorder{TB: t}
		if testfleet.RequireSucceeded(rec, &tc.r); rec.failed == tc.ok {
			t.Errorf("RequireSucceeded(%+v) failed = %v", tc.r, rec.failed)
		}
	}
}

func TestLockedBuffer(t *testing.T) {
	var b testfleet.LockedBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprint(&b, "line\n")
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "line\n"); n != 800 {
		t.Errorf("%d lines; want 800", n)
	}
}

// runner runs until ctx ends, or fails at once with err.
type runner struct {
	err     error
	stopped chan struct{}
}

func (r *runner) Run(ctx context.Context) error {
	if r.err != nil {
		return r.err
	}
	<-ctx.Done()
	close(r.stopped)
	return nil
}

func TestRunWorkers(t *testing.T) {
	a, b := &runner{stopped: make(chan struct{})}, &runner{stopped: make(chan struct{})}
	rec := &recorder{TB: t}
	stop := testfleet.RunWorkers(rec, a, b, &runner{err: errors.New("cannot start")})
	select {
	case <-a.stopped:
		t.Fatal("a worker stopped before stop")
	case <-time.After(50 * time.Millisecond):
	}
	stop()
	for _, r := range []*runner{a, b} {
		select {
		case <-r.stopped:
		default:
			t.Error("stop returned before a worker stopped")
		}
	}
	stop() // a second stop, and the cleanup's, are no-ops
	if errs := rec.errors(); len(errs) != 1 || !strings.Contains(errs[0], "cannot start") {
		t.Errorf("errors %q; want the worker that could not start", errs)
	}
}
