package cli

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/testfleet"
)

// TestHealthWithDefaultVerifyInterval is the new-user audit's plan
// (2026-12-07): health probes every 3 s after a 4 s delay, with the
// default 10 s verify interval, so sweeps come due at fractions of a
// second. The verify sweeps lost their chain there and the canary waited
// in health forever; the rollout must complete.
func TestHealthWithDefaultVerifyInterval(t *testing.T) {
	dir := t.TempDir()
	plan := `version: 1
name: health-default-verify
region: ap-guangzhou
image: {type: 1, id: img-new00001}
keepImageLogin: true
waves: [1, 100%]
health:
  checks: [{http: "http://{privateIp}:18181/healthz"}]
  initialDelay: 4s
  interval: 3s
  timeout: 500ms
  healthyThreshold: 2
  deadline: 1m
groups:
  - name: web
    instances: [ins-aaaa0001, ins-aaaa0002, ins-aaaa0003]
`
	path := filepath.Join(dir, "health.yaml")
	if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	var sim *cvmsim.Server
	env, out, errb := testEnv(nil)
	env.Hooks = &Hooks{Simulator: func(s *cvmsim.Server, _ string) { sim = s }}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, env, []string{"run", "--simulate", "--sim-reset-duration", "1s", "--state-dir", t.TempDir(), path})
	}()
	// About 20 s; a lost sweep chain never ends (and a cancelled run
	// waits for its reinstall in flight).
	var code int
	select {
	case code = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the rollout did not finish within 2 minutes (a verify sweep chain lost?)\nstdout:\n%s\nstderr:\n%s", out, errb)
	}
	if code != 0 {
		t.Fatalf("run exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errb)
	}
	testfleet.RequireExactlyOnce(t, sim.Stats(), []string{"ins-aaaa0001", "ins-aaaa0002", "ins-aaaa0003"})
}
