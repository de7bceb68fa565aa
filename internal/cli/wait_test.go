package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
)

// TestWaitExitStatus: `fleetreset wait` returns run's exit status for each
// way a rollout ends or stops, and gives up at --timeout with 3 while the
// rollout is still running; when the rollout finishes while it waits, it
// returns then.
func TestWaitExitStatus(t *testing.T) {
	allOK := fixture{id: "clean", state: ledger.Completed, waves: [][]ledger.InstanceState{{ledger.Succeeded}, {ledger.Succeeded, ledger.Skipped}}}
	paused := runningMidway
	paused.id, paused.state, paused.reason = "paused", ledger.Paused, "wave 2 failure budget exceeded"
	tests := []struct {
		name string
		f    fixture
		args []string
		code int
		says string
	}{
		{"completed clean", allOK, nil, 0, "clean completed: 2 succeeded, 1 skipped, 0 failed"},
		{"completed with failures", completedWithFailures, nil, exitFailed, "ended completed with 2 failed"},
		{"aborted", abortedMidway, nil, exitFailed, "ended aborted"},
		{"paused", paused, nil, exitStopped, "is paused: wave 2 failure budget exceeded"},
		{"running past the timeout", runningMidway, []string{"--timeout", "300ms"}, exitStopped, "still running (--timeout 300ms passed)"},
		{"no such rollout", fixture{id: "ghost"}, nil, exitFailed, `no rollout "ghost"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := redistest.New(t)
			vars, ns := ctlEnv(r)
			if tt.f.waves != nil {
				buildFixture(t, r, ns, tt.f)
			}
			env, out, errb := testEnv(vars)
			code := Main(t.Context(), env, append([]string{"wait", "--namespace", ns, tt.f.id}, tt.args...))
			if code != tt.code {
				t.Fatalf("wait exited %d; want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errb)
			}
			if all := out.String() + errb.String(); !strings.Contains(all, tt.says) {
				t.Errorf("wait said:\n%s\nwant it to say %q", all, tt.says)
			}
		})
	}

	t.Run("returns when the rollout ends", func(t *testing.T) {
		r := redistest.New(t)
		vars, ns := ctlEnv(r)
		buildFixture(t, r, ns, runningMidway)
		env, out, errb := testEnv(vars)
		done := make(chan int, 1)
		go func() { done <- Main(context.Background(), env, []string{"wait", "--namespace", ns, runningMidway.id}) }()
		select {
		case code := <-done:
			t.Fatalf("wait returned %d while the rollout runs\n%s%s", code, out, errb)
		case <-time.After(500 * time.Millisecond): // it is waiting; now end the rollout
		}
		l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
		if ok, err := l.Abort(t.Context(), runningMidway.id, "test"); err != nil || !ok {
			t.Fatalf("Abort = %v, %v", ok, err)
		}
		select {
		case code := <-done:
			if code != exitFailed {
				t.Errorf("wait exited %d after the abort; want %d", code, exitFailed)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("wait did not return after the rollout was aborted")
		}
	})
}
