package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/internal/redistest"
)

// TestUIRefusesOpenActionsWithoutAuth: actions on a non-loopback address
// need basic auth; the refusal names both flags and is a usage error.
func TestUIRefusesOpenActionsWithoutAuth(t *testing.T) {
	r := redistest.New(t)
	vars, ns := ctlEnv(r)
	env, out, errb := testEnv(vars)
	// Before the fix the UI started; the timeout ends it with status 0.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	code := Main(ctx, env, []string{"ui", "--namespace", ns, "--allow-actions", "--listen", "0.0.0.0:0"})
	if code != exitUsage {
		t.Fatalf("ui --allow-actions on 0.0.0.0 without auth exited %d; want %d\nstdout: %s\nstderr: %s", code, exitUsage, out, errb)
	}
	for _, want := range []string{"--allow-actions", "--basic-auth-env"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("refusal does not name %s: %s", want, errb)
		}
	}
	if strings.Contains(out.String(), "fleetreset UI at") {
		t.Errorf("the UI started: %s", out)
	}
}
