package cli

import (
	"strings"
	"testing"
)

// TestPlanPreviewsServing: `plan` lists the drain, hooks, checks and
// alarms of plans/web-behind-clb.yaml and adds their time to the ETA.
func TestPlanPreviewsServing(t *testing.T) {
	env, out, errb := testEnv(nil)
	if code := Main(t.Context(), env, []string{"plan", "--offline", "../../plans/web-behind-clb.yaml"}); code != 0 {
		t.Fatalf("plan exited %d\n%s\n%s", code, out, errb)
	}
	for _, want := range []string{"Serving again (around each reset", "lbl-demo0001", "stop-app", "warm-cache", "{privateIp}:8080/healthz",
		"HighErrorRate", "hooks up to", "drains and health checks", "Nothing was enqueued"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the preview lacks %q:\n%s", want, out)
		}
	}
}
