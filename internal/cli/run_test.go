package cli

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
)

// quickPlan writes a one-wave plan of n generated instances (seeded by
// seed) with a one-second verify interval; extra is appended verbatim.
// It returns the plan's path and instance IDs.
func quickPlan(t *testing.T, name string, n int, seed int64, extra string) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	var ids []string
	var b strings.Builder
	for _, in := range cvmsim.GenerateSeed(n, seed) {
		ids = append(ids, in.ID)
		b.WriteString(in.ID + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, name+".txt"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	plan := fmt.Sprintf("version: 1\nname: %s\nregion: ap-guangzhou\napi: v3\nimage: {id: %s}\nos: linux\nkeepImageLogin: true\n"+
		"groups:\n  - name: all\n    instancesFile: %s.txt\nwaves: [100%%]\nverify: {interval: 1s, timeout: 1m}\n%s",
		name, cvmsim.ImageLinuxNew, name, extra)
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, ids
}

// simFor serves a simulator holding ids on cvmsim.ImageLinuxOld.
func simFor(t *testing.T, cfg cvmsim.Config, ids []string) (*cvmsim.Server, string) {
	t.Helper()
	sim := cvmsim.New(cfg)
	for _, id := range ids {
		sim.AddInstances(cvmsim.Instance{ID: id, Zone: "ap-guangzhou-3", ImageID: cvmsim.ImageLinuxOld, OS: "linux", State: "RUNNING"})
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

func totalAccepted(st cvmsim.Stats) int {
	n := 0
	for _, v := range st.AcceptedResets {
		n += v
	}
	return n
}

// summaryTotals reads the "total" row of run's summary by column name.
func summaryTotals(t *testing.T, out string) map[string]int {
	t.Helper()
	var header []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "wave" && len(f) > 2:
			header = f
		case len(f) > 0 && f[0] == "total" && header != nil:
			m := map[string]int{}
			for i, name := range header {
				if i < len(f) {
					m[name], _ = strconv.Atoi(f[i])
				}
			}
			return m
		}
	}
	t.Fatalf("no summary in output:\n%s", out)
	return nil
}

// TestRunPauseWaitsForReinstallsInFlight: when a breached budget pauses
// the rollout while reinstalls are in flight, run waits for them to be
// verified, and its summary counts every instance: the simulator's
// accepted resets all show up as succeeded, failed or in flight, and the
// columns add up to the plan.
func TestRunPauseWaitsForReinstallsInFlight(t *testing.T) {
	path, ids := quickPlan(t, "pause-drain", 30, 3, "failureBudget: {max: 0}\n")
	var sim *cvmsim.Server
	env, out, errb := testEnv(nil)
	env.Hooks = &Hooks{Simulator: func(s *cvmsim.Server, _ string) { sim = s }}
	// Every reinstall fails after a second: the first verification
	// breaches the budget while about ten more are accepted and unverified.
	code := Main(t.Context(), env, []string{"run", "--simulate", "--sim-fail-rate", "1", "--sim-reset-duration", "1s", path})
	if code != exitStopped {
		t.Fatalf("run exited %d; want %d (paused)\nstdout:\n%s\nstderr:\n%s", code, exitStopped, out, errb)
	}
	tot := summaryTotals(t, out.String())
	accepted := totalAccepted(sim.Stats())
	if got := tot["succeeded"] + tot["failed"] + tot["ambiguous"] + tot["in-flight"]; got != accepted || accepted < 2 {
		t.Errorf("summary counts %d reset (succeeded %d, failed %d, ambiguous %d, in flight %d); the simulator accepted %d\n%s",
			got, tot["succeeded"], tot["failed"], tot["ambiguous"], tot["in-flight"], accepted, out)
	}
	if tot["in-flight"] != 0 {
		t.Errorf("%d reinstalls still in flight after the drain; want 0 (they take 1s)", tot["in-flight"])
	}
	sum := tot["succeeded"] + tot["skipped"] + tot["failed"] + tot["ambiguous"] + tot["cancelled"] + tot["in-flight"] + tot["pending"]
	if sum != len(ids) || tot["size"] != len(ids) {
		t.Errorf("summary columns add up to %d of %d instances: %v", sum, len(ids), tot)
	}
	if !strings.Contains(out.String(), "Waiting up to 1m0s") {
		t.Errorf("run did not say it waits for reinstalls in flight:\n%s", out)
	}
	if !strings.Contains(errb.String(), "--retry-failed") {
		t.Errorf("the pause hint lacks the command to continue:\n%s", errb)
	}
}

// TestRunInterruptedDrains drives the drain of Ctrl-C/SIGTERM through
// Main with a cancelled context (TestRunSIGTERM in cmd/fleetreset sends
// a real SIGTERM): no reset starts after the cancel, accepted reinstalls
// are verified, it exits 3 and prints the command that continues, which
// then finishes the rollout: on the embedded Redis with the journal, and
// on REDIS_URL, where the rollout must not stay paused.
func TestRunInterruptedDrains(t *testing.T) {
	t.Setenv("TENCENTCLOUD_SECRET_ID", cvmsim.SecretIDDefault)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", cvmsim.SecretKeyDefault)
	for _, mode := range []string{"journal", "redis-url"} {
		t.Run(mode, func(t *testing.T) {
			path, ids := quickPlan(t, "interrupted", 20, 4, "rateLimit: {reset: 4, describe: 40}\n")
			sim, url := simFor(t, cvmsim.Config{ResetDuration: 500 * time.Millisecond}, ids)
			var vars map[string]string
			args := []string{"--endpoint=" + url, "--reconcile-grace=5s"}
			if mode == "redis-url" {
				r := redistest.New(t)
				vars = map[string]string{"REDIS_URL": "redis://" + r.Addr, "FLEETRESET_NAMESPACE": strings.TrimSuffix(r.Prefix, ":")}
			} else {
				args = append(args, "--state-dir", t.TempDir())
			}
			args = append(args, path)
			ctx, cancel := context.WithCancelCause(t.Context())
			env, out, errb := testEnv(vars)
			done := make(chan int, 1)
			go func() { done <- Main(ctx, env, append([]string{"run"}, args...)) }()
			awaitAccepted(t, sim, 3, 30*time.Second)
			cancel(fmt.Errorf("terminated signal received"))
			atCancel := totalAccepted(sim.Stats())
			var code int
			select {
			case code = <-done:
			case <-time.After(time.Minute):
				t.Fatalf("run did not end within a minute of the cancel\n%s\n%s", out, errb)
			}
			if code != exitStopped {
				t.Fatalf("run exited %d; want %d\nstdout:\n%s\nstderr:\n%s", code, exitStopped, out, errb)
			}
			after := totalAccepted(sim.Stats())
			if after-atCancel > 1 || after == len(ids) {
				t.Errorf("%d resets accepted at the cancel, %d when run ended (of %d): new calls started after it", atCancel, after, len(ids))
			}
			tot := summaryTotals(t, out.String())
			if tot["in-flight"] != 0 || tot["succeeded"] != after || tot["pending"] != len(ids)-after {
				t.Errorf("summary %v; want %d succeeded, 0 in flight, %d pending", tot, after, len(ids)-after)
			}
			want := "To continue: fleetreset run " + strings.Join(args, " ")
			if !strings.Contains(errb.String(), want) || !strings.Contains(out.String(), "Left running: 0 reinstalls") {
				t.Errorf("run did not say what was left and how to continue (%q):\nstdout:\n%s\nstderr:\n%s", want, out, errb)
			}
			// The printed command continues the rollout: every instance exactly once.
			env, out, errb = testEnv(vars)
			if code := Main(t.Context(), env, append([]string{"run"}, args...)); code != 0 {
				t.Fatalf("continuing run exited %d\n%s\n%s", code, out, errb)
			}
			for id, n := range sim.Stats().AcceptedResets {
				if n != 1 {
					t.Errorf("%s reset %d times; want 1", id, n)
				}
			}
		})
	}
}

// TestRunJournalScope: a journal resumes only runs against the endpoint,
// region and SecretId it was written for. A run of the same plan against
// another endpoint is refused with a way out for each case, instead of
// reporting as succeeded instances the new endpoint never saw.
func TestRunJournalScope(t *testing.T) {
	path, ids := quickPlan(t, "scoped", 3, 5, "")
	_, urlA := simFor(t, cvmsim.Config{ResetDuration: 200 * time.Millisecond}, ids)
	simB, urlB := simFor(t, cvmsim.Config{ResetDuration: 200 * time.Millisecond}, ids)
	t.Setenv("TENCENTCLOUD_SECRET_ID", cvmsim.SecretIDDefault)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", cvmsim.SecretKeyDefault)
	stateDir := t.TempDir()
	run := func(url, dir string, extra ...string) (int, string, string) {
		env, out, errb := testEnv(nil)
		args := append([]string{"run", "--endpoint", url, "--state-dir", dir}, extra...)
		code := Main(t.Context(), env, append(args, path))
		return code, out.String(), errb.String()
	}
	code, out, errb := run(urlA, stateDir)
	if code != 0 {
		t.Fatalf("first run exited %d\n%s\n%s", code, out, errb)
	}
	if !strings.Contains(out, "Journal: "+stateDir+"/scoped-") || !strings.Contains(errb, "starting fresh") || !strings.Contains(errb, "another directory or another host") {
		t.Errorf("first run did not say where its journal is and that it starts fresh:\n%s\n%s", out, errb)
	}
	code, out, errb = run(urlB, stateDir)
	if code == 0 || strings.Contains(out, "Resuming") {
		t.Errorf("a run against another endpoint resumed the first one's journal (exit %d)\n%s\n%s", code, out, errb)
	}
	for _, want := range []string{"written against endpoint " + urlA, "this run uses endpoint " + urlB, "--adopt-journal", "another --state-dir"} {
		if !strings.Contains(errb, want) {
			t.Errorf("refusal lacks %q:\n%s", want, errb)
		}
	}
	if n := totalAccepted(simB.Stats()); n != 0 {
		t.Errorf("the refused run reset %d instances", n)
	}
	// Another fleet, another --state-dir: a fresh start that resets them.
	if code, out, errb = run(urlB, t.TempDir()); code != 0 {
		t.Fatalf("run with its own --state-dir exited %d\n%s\n%s", code, out, errb)
	}
	if n := totalAccepted(simB.Stats()); n != len(ids) {
		t.Errorf("B accepted %d resets; want %d", n, len(ids))
	}
}

// TestRunServesOnlyItsOwnRollout: with REDIS_URL (and a namespace) in the
// environment, as for `apply` and `worker`, `run` must not touch a rollout
// that `apply` queued there: its state, instance records and queued tasks
// stay as they were, with --simulate (embedded Redis) and without it (a
// namespace of the run's own).
func TestRunServesOnlyItsOwnRollout(t *testing.T) {
	r := redistest.New(t)
	t.Setenv("TENCENTCLOUD_SECRET_ID", cvmsim.SecretIDDefault)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", cvmsim.SecretKeyDefault)
	ns := strings.TrimSuffix(r.Prefix, ":")
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr, "FLEETRESET_NAMESPACE": ns}
	other, _ := quickPlan(t, "queued", 60, 6, "")
	env, out, errb := testEnv(vars)
	if code := Main(t.Context(), env, []string{"apply", "--no-preflight", other}); code != 0 {
		t.Fatalf("apply exited %d\n%s\n%s", code, out, errb)
	}
	l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
	insp := asynq.NewInspector(r.ConnOpt())
	defer insp.Close()
	snapshot := func() map[string]string {
		t.Helper()
		m := map[string]string{}
		ro, err := l.Get(t.Context(), "queued")
		if err != nil {
			t.Fatal(err)
		}
		m["state"] = string(ro.State) + " " + ro.Reason
		insts, err := l.AllInstances(t.Context(), ro)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range insts {
			m[in.ID] = fmt.Sprintf("%s gen %d tries %d", in.State, in.Gen, in.Tries)
		}
		q := tasks.QueuesFor(ns)
		for _, name := range []string{q.Reset, q.Control} {
			info, err := insp.GetQueueInfo(name)
			if err != nil {
				continue
			}
			m["queue "+name] = fmt.Sprintf("pending %d active %d scheduled %d retry %d completed %d archived %d", info.Pending, info.Active, info.Scheduled, info.Retry, info.Completed, info.Archived)
			pend, _ := insp.ListPendingTasks(name, asynq.PageSize(1000))
			for _, ti := range pend {
				m["task "+ti.ID] = ti.State.String()
			}
		}
		return m
	}
	before := snapshot()

	t.Run("simulate", func(t *testing.T) {
		path, _ := quickPlan(t, "mine", 5, 7, "")
		env, out, errb := testEnv(vars)
		if code := Main(t.Context(), env, []string{"run", "--simulate", "--sim-reset-duration", "200ms", path}); code != 0 {
			t.Fatalf("run --simulate exited %d\n%s\n%s", code, out, errb)
		}
		if diff := cmp.Diff(before, snapshot()); diff != "" {
			t.Errorf("run --simulate changed the queued rollout (-before +after):\n%s", diff)
		}
		if !strings.Contains(out.String(), "Ignoring REDIS_URL") {
			t.Errorf("run --simulate did not say it ignores REDIS_URL:\n%s", out)
		}
	})
	t.Run("redis-url", func(t *testing.T) {
		path, ids := quickPlan(t, "mine-too", 5, 8, "")
		sim, url := simFor(t, cvmsim.Config{ResetDuration: 200 * time.Millisecond}, ids)
		env, out, errb := testEnv(vars)
		if code := Main(t.Context(), env, []string{"run", "--endpoint", url, "--reconcile-grace", "5s", path}); code != 0 {
			t.Fatalf("run exited %d\n%s\n%s", code, out, errb)
		}
		if diff := cmp.Diff(before, snapshot()); diff != "" {
			t.Errorf("run changed the queued rollout (-before +after):\n%s", diff)
		}
		if n := totalAccepted(sim.Stats()); n != len(ids) {
			t.Errorf("run reset %d of its %d instances", n, len(ids))
		}
	})
	t.Run("refuses-applied", func(t *testing.T) {
		// `run` of the plan `apply` queued would make a second rollout of
		// the same instances: refused, naming the commands to use.
		env, out, errb := testEnv(vars)
		if code := Main(t.Context(), env, []string{"run", "--endpoint", "http://127.0.0.1:1", other}); code == 0 {
			t.Fatalf("run of an applied plan succeeded\n%s", out)
		}
		if !strings.Contains(errb.String(), "fleetreset worker --namespace "+ns) {
			t.Errorf("refusal does not say how to serve the applied rollout:\n%s", errb)
		}
		if diff := cmp.Diff(before, snapshot()); diff != "" {
			t.Errorf("refused run changed the queued rollout (-before +after):\n%s", diff)
		}
	})
}

// awaitAccepted polls the simulator until it accepted n resets.
func awaitAccepted(t *testing.T, sim *cvmsim.Server, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for totalAccepted(sim.Stats()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the simulator accepted %d resets within %s; want %d", totalAccepted(sim.Stats()), within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
