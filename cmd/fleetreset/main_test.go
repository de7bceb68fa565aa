package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
)

// runMainEnv makes the test binary act as fleetreset: the tests below run
// it as a child process, so that a real signal reaches the real main.
const runMainEnv = "FLEETRESET_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// syncBuffer collects a child's output while it runs.
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

func accepted(sim *cvmsim.Server) int {
	n := 0
	for _, v := range sim.Stats().AcceptedResets {
		n += v
	}
	return n
}

// TestRunSIGTERM sends a real SIGTERM to `fleetreset run` (as `docker
// stop` and systemd do) while resets are in flight. The process must not
// die of the signal: it stops starting calls, lets the accepted reinstalls
// be verified, says what is left and how to continue, and exits 3; the
// command it prints then finishes the rollout with every instance reset
// exactly once.
func TestRunSIGTERM(t *testing.T) {
	dir := t.TempDir()
	var ids []string
	var b strings.Builder
	for _, in := range cvmsim.GenerateSeed(12, 9) {
		ids = append(ids, in.ID)
		b.WriteString(in.ID + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "ids.txt"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	plan := filepath.Join(dir, "term.yaml")
	if err := os.WriteFile(plan, []byte(fmt.Sprintf(`version: 1
name: term
region: ap-guangzhou
api: v3
image: {id: %s}
os: linux
keepImageLogin: true
groups:
  - name: all
    instancesFile: ids.txt
waves: [100%%]
verify: {interval: 1s, timeout: 1m}
rateLimit: {reset: 3, describe: 40}
`, cvmsim.ImageLinuxNew)), 0o600); err != nil {
		t.Fatal(err)
	}
	sim := cvmsim.New(cvmsim.Config{ResetDuration: 500 * time.Millisecond})
	for _, id := range ids {
		sim.AddInstances(cvmsim.Instance{ID: id, Zone: "ap-guangzhou-3", ImageID: cvmsim.ImageLinuxOld, OS: "linux", State: "RUNNING"})
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	stateDir := filepath.Join(dir, "state")

	start := func(wd string, args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
		t.Helper()
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), runMainEnv+"=1", "REDIS_URL=",
			"TENCENTCLOUD_SECRET_ID="+cvmsim.SecretIDDefault, "TENCENTCLOUD_SECRET_KEY="+cvmsim.SecretKeyDefault)
		cmd.Dir = wd
		out, errb := &syncBuffer{}, &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		return cmd, out, errb
	}
	wait := func(cmd *exec.Cmd, within time.Duration) int {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					t.Errorf("fleetreset died of %v; want it to drain and exit 3", ws.Signal())
				}
				return ee.ExitCode()
			}
			if err != nil {
				t.Fatal(err)
			}
			return 0
		case <-time.After(within):
			t.Fatalf("fleetreset did not exit within %s", within)
		}
		return -1
	}

	cmd, out, errb := start(dir, "run", "--endpoint", srv.URL, "--state-dir", "state", "--reconcile-grace", "5s", "--log-format", "json", "term.yaml")
	deadline := time.Now().Add(time.Minute)
	for accepted(sim) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no reset accepted within a minute\n%s\n%s", out, errb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	atSignal := accepted(sim)
	if code := wait(cmd, time.Minute); code != 3 {
		t.Fatalf("run exited %d after SIGTERM; want 3\nstdout:\n%s\nstderr:\n%s", code, out, errb)
	}
	after := accepted(sim)
	if after-atSignal > 1 || after == len(ids) {
		t.Errorf("%d resets accepted at SIGTERM, %d at exit (of %d): calls went on starting", atSignal, after, len(ids))
	}
	for _, want := range []string{"Stopping (terminated signal received)", "Left running: 0 reinstalls", fmt.Sprintf("%d instances pending", len(ids)-after)} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	again := "fleetreset run --endpoint=" + srv.URL + " --log-format=json --reconcile-grace=5s --state-dir " + stateDir + " " + plan
	if !strings.Contains(errb.String(), "To continue: "+again) {
		t.Fatalf("stderr does not say how to continue (%q):\n%s", again, errb)
	}

	// The printed command, run from another directory, finishes the job.
	cmd, out, errb = start(t.TempDir(), strings.Fields(again)[1:]...)
	if code := wait(cmd, 2*time.Minute); code != 0 {
		t.Fatalf("continuing run exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errb)
	}
	if !strings.Contains(out.String(), "Resuming from") {
		t.Errorf("continuing run did not resume from the journal:\n%s", out)
	}
	for id, n := range sim.Stats().AcceptedResets {
		if n != 1 {
			t.Errorf("%s reset %d times; want 1", id, n)
		}
	}
}
