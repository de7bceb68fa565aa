package chaos

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
)

// TestRunKilledAndRerun SIGKILLs `fleetreset run` (embedded Redis, which
// dies with it, and the journal in --state-dir) while one of its reset
// calls has taken effect but its answer is held back, then runs the same
// plan with the same --state-dir again, against the same external
// simulator. The journal must stop the new run from calling the killed
// call's instance again, and nothing may be forgotten. The final run must
// exit 0.
//
// Short form: 150 instances, one kill. Long form: 500 instances, three
// kills, one per run.
func TestRunKilledAndRerun(t *testing.T) {
	t.Parallel()
	n, kills := size(150, 500), size(1, 3)
	f := writePlan(t, planOpts{name: "chaos-run", n: n, seed: 47, waves: "[10, 50%, 100%]"})
	sim := newSim(cvmsim.Config{ResetDuration: 300 * time.Millisecond}, f.ids)
	tp := newTap(sim, 100*time.Millisecond, 300*time.Millisecond, true)
	url := tp.serve(t)
	stateDir, logDir := t.TempDir(), t.TempDir()
	args := []string{"run", "--endpoint", url, "--state-dir", stateDir, "--reconcile-grace", "3s", "--call-timeout", "2500ms", "--api-replay-window", chaosReplay.String(), "--log-format", "json", f.path}
	var killed []string // instances whose call was in flight at a kill
	for i := range kills {
		p := start(t, logDir, fmt.Sprintf("run-%d", i), baseEnv(), args...)
		awaitAccepted(t, sim, (i+1)*n/(kills+1), 3*time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		c, err := tp.await(ctx, resetInFlight(true))
		cancel()
		must(t, err)
		p.signal(t, syscall.SIGKILL)
		killed = append(killed, c.instance)
		t.Logf("run %d killed with the landed call of %s unanswered, %d resets accepted so far", i, c.instance, accepted(sim))
	}
	p := start(t, logDir, "run-final", baseEnv(), args...)
	code := p.wait(t, 5*time.Minute)
	out, _ := os.ReadFile(p.log)
	if code != 0 {
		t.Errorf("final run exited %d; want 0\n%s", code, tail(p.log, 40))
	}
	if !strings.Contains(string(out), "Resuming from") {
		t.Errorf("final run did not say it resumed from the journal:\n%s", tail(p.log, 40))
	}
	checkExactlyOnce(t, sim, f.ids)
	for _, id := range killed {
		if st := sim.Stats(); st.AcceptedResets[id] != 1 {
			t.Errorf("%s, in flight at a kill, was reset %d times", id, st.AcceptedResets[id])
		}
	}
}
