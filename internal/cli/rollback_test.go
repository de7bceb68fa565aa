package cli

import (
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
)

// TestRollbackRestoresOldImages runs the demo plan to completion against
// the simulator with a worker, then `rollback --wait`: every instance is
// back on the image it had before, from exactly one more accepted reset
// each (the simulator's own count). Rolling back again changes nothing.
func TestRollbackRestoresOldImages(t *testing.T) {
	r := redistest.New(t)
	sim := cvmsim.New(cvmsim.Config{ResetDuration: 100 * time.Millisecond})
	plan, err := planner.Load("../../plans/demo.yaml", planner.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fleet := fleetFromPlan(plan)
	before := map[string]string{}
	for i := range fleet {
		if i%3 == 0 { // a second earlier image: the rollback needs two groups
			fleet[i].ImageID = "img-prev0002"
		}
		before[fleet[i].ID] = fleet[i].ImageID
	}
	sim.AddInstances(fleet...)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	t.Setenv("TENCENTCLOUD_SECRET_ID", cvmsim.SecretIDDefault)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", cvmsim.SecretKeyDefault)
	ns := strings.TrimSuffix(r.Prefix, ":")
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr}
	common := []string{"--namespace", ns, "--endpoint", srv.URL}
	run := func(ctx context.Context, args ...string) (int, string, string) {
		env, out, errb := testEnv(vars)
		code := Main(ctx, env, append(append(args[:1:1], common...), args[1:]...))
		return code, out.String(), errb.String()
	}

	if code, out, errb := run(t.Context(), "apply", "../../plans/demo.yaml"); code != 0 {
		t.Fatalf("apply exited %d\n%s\n%s", code, out, errb)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		if code, out, errb := run(ctx, "worker", "--concurrency", "8", "--reconcile-grace", "5s"); code != 0 {
			t.Errorf("worker exited %d\n%s\n%s", code, out, errb)
		}
	})
	defer wg.Wait()
	defer cancel()
	l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
	awaitState(t, l, plan.Spec.ID, 60*time.Second, ledger.Completed)

	code, out, errb := run(t.Context(), "rollback", "--wait", plan.Spec.ID)
	if code != 0 {
		t.Fatalf("rollback exited %d\n%s\n%s", code, out, errb)
	}
	rb := plan.Spec.ID + "-rollback"
	for _, want := range []string{"Rollback " + rb + " of demo applied: 40 instances", "img-lnxold01: 26, img-prev0002: 14", "fleetreset status --watch " + rb, "completed: 40 succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("rollback output lacks %q:\n%s", want, out)
		}
	}
	st := sim.Stats()
	for _, tg := range plan.Targets {
		if n := st.AcceptedResets[tg.InstanceID]; n != 2 {
			t.Errorf("%s reset %d times; want exactly 2 (the rollout, its rollback)", tg.InstanceID, n)
		}
		if v, _ := sim.Instance(tg.InstanceID); v.ImageID != before[tg.InstanceID] {
			t.Errorf("%s is on %s; want its earlier %s", tg.InstanceID, v.ImageID, before[tg.InstanceID])
		}
	}

	// Status and list say which is which.
	views := []struct{ args []string }{
		{[]string{"status", plan.Spec.ID}}, {[]string{"status", rb}}, {[]string{"list", "--json"}},
	}
	wants := [][]string{
		{"rolled back by " + rb + ": fleetreset status " + rb},
		{"rollback of demo: its instances go back"},
		{`"rolled_back_by": "` + rb + `"`, `"rollback_of": "demo"`},
	}
	for i, v := range views {
		env, outb, errb := testEnv(vars)
		if code := Main(t.Context(), env, append(v.args, "--namespace", ns)); code != 0 {
			t.Fatalf("%v exited %d\n%s", v.args, code, errb)
		}
		out := outb.String()
		for _, w := range wants[i] {
			if !strings.Contains(out, w) {
				t.Errorf("%v lacks %q:\n%s", v.args, w, out)
			}
		}
	}

	// Again: the same rollback, nothing new.
	if code, out, errb := run(t.Context(), "rollback", plan.Spec.ID); code != 0 || !strings.Contains(out, "already rolled back by "+rb) {
		t.Errorf("second rollback exited %d; want 0 and \"already rolled back\":\n%s\n%s", code, out, errb)
	}
	// A rollback is not rolled back.
	if code, _, errb := run(t.Context(), "rollback", rb); code != exitFailed || !strings.Contains(errb, "apply the original plan again") {
		t.Errorf("rollback of the rollback exited %d; want %d:\n%s", code, exitFailed, errb)
	}
	if after := sim.Stats(); len(after.AcceptedResets) != len(st.AcceptedResets) {
		t.Errorf("rolling back again reset more instances")
	}
	for id, n := range sim.Stats().AcceptedResets {
		if n != st.AcceptedResets[id] {
			t.Errorf("%s reset %d times after rolling back again; was %d", id, n, st.AcceptedResets[id])
		}
	}
}

// TestRollbackRunningNeedsYes: a rollout that is not over is not aborted
// without --yes; rollback says what it would do and changes nothing. With
// --yes it is aborted, and with nothing reset there is nothing to roll back.
func TestRollbackRunningNeedsYes(t *testing.T) {
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr}
	env, out, errb := testEnv(vars)
	if code := Main(t.Context(), env, []string{"apply", "--namespace", ns, "--no-preflight", "../../plans/demo.yaml"}); code != 0 {
		t.Fatalf("apply exited %d\n%s\n%s", code, out, errb)
	}
	env, out, errb = testEnv(vars)
	if code := Main(t.Context(), env, []string{"rollback", "--namespace", ns, "demo"}); code != exitFailed {
		t.Errorf("rollback without --yes exited %d; want %d", code, exitFailed)
	}
	for _, want := range []string{"Rollout demo is running. Rolling it back would:", "of its 40 instances without an outcome yet", "apply rollout demo-rollback", "Nothing was changed."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("preview lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errb.String(), "add --yes") {
		t.Errorf("refusal does not name --yes: %s", errb)
	}
	l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
	if st, _, err := l.State(t.Context(), "demo"); err != nil || st != ledger.Running {
		t.Fatalf("after the refusal demo is %s, %v; want running", st, err)
	}

	env, out, errb = testEnv(vars)
	if code := Main(t.Context(), env, []string{"rollback", "--namespace", ns, "--yes", "--no-preflight", "demo"}); code != 0 {
		t.Fatalf("rollback --yes exited %d\n%s\n%s", code, out, errb)
	}
	if !strings.Contains(out.String(), "nothing to roll back") {
		t.Errorf("rollback --yes of a rollout that reset nothing said:\n%s", out)
	}
	got, err := l.Get(t.Context(), "demo")
	if err != nil || got.State != ledger.Aborted || got.Reason != "rolled back" {
		t.Errorf("demo is %+v, %v; want aborted, rolled back", got, err)
	}
	if _, _, err := l.Spec(t.Context(), "demo-rollback"); err == nil {
		t.Errorf("a rollback was made of a rollout that reset nothing")
	}
}
