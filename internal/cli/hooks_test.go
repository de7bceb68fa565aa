package cli

import (
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

// TestCompleteHookCommand: complete-hook completes a registered token once,
// refuses unknown tokens and rollouts, another result, and usage mistakes,
// and never prints the token.
func TestCompleteHookCommand(t *testing.T) {
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	ctx := t.Context()
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	spec := rollout.Spec{ID: "hk", PlanHash: "h", API: "v3", Waves: []rollout.Wave{{Size: 1}}}
	if _, err := l.Create(ctx, spec, []rollout.Target{{InstanceID: "ins-1"}}, ledger.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Activate(ctx, spec); err != nil {
		t.Fatal(err)
	}
	const token = "Tq3xw9Kp0LmZ-aB_cD4eFg"
	if err := l.RegisterHookToken(ctx, "hk", token, "ins-1"); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr, "FLEETRESET_NAMESPACE": ns}

	// In order: the first success fixes the result.
	tests := []struct {
		name     string
		args     []string
		wantCode int
		// wantOut must occur in stdout (success) or stderr (failure).
		wantOut string
	}{
		{name: "no-result", args: []string{"hk", token}, wantCode: exitUsage, wantOut: "--result continue|abandon is required"},
		{name: "bad-result", args: []string{"hk", token, "--result", "maybe"}, wantCode: exitUsage, wantOut: "must be continue or abandon"},
		{name: "no-token", args: []string{"hk", "--result", "continue"}, wantCode: exitUsage},
		{name: "unknown-rollout", args: []string{"nope", token, "--result", "continue"}, wantCode: exitFailed, wantOut: "not found"},
		{name: "unknown-token", args: []string{"hk", "wrong-token", "--result", "continue"}, wantCode: exitFailed, wantOut: "no hook step of rollout hk waits for that token"},
		{name: "continue", args: []string{"hk", token, "--result", "continue"}, wantOut: "Hook step of rollout hk completed: continue."},
		{name: "continue-again", args: []string{"hk", token, "--result", "continue"}, wantOut: "completed: continue"},
		{name: "abandon-after-continue", args: []string{"hk", token, "--result", "abandon"}, wantCode: exitFailed, wantOut: "already completed with another result (continue)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, out, errb := testEnv(vars)
			code := Main(ctx, env, append([]string{"complete-hook"}, tc.args...))
			if code != tc.wantCode {
				t.Fatalf("complete-hook %v exited %d; want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.wantCode, out, errb)
			}
			got := out.String()
			if code != 0 {
				got = errb.String()
			}
			if !strings.Contains(got, tc.wantOut) {
				t.Errorf("complete-hook %v said %q; want %q", tc.args, got, tc.wantOut)
			}
			if strings.Contains(out.String()+errb.String(), token) {
				t.Errorf("complete-hook %v printed the token:\n%s%s", tc.args, out, errb)
			}
		})
	}
	if res, ok, err := l.HookResult(ctx, "hk", token); err != nil || !ok || res != "continue" {
		t.Errorf("HookResult = %q, %v, %v; want continue", res, ok, err)
	}
}
