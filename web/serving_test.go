package web_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/health"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/web"
)

// TestInstanceShowsItsServingStep: an instance whose image is verified
// and whose health is being proven shows its step, hook results and the
// weight it was drained to, on its page, in the rollout's table and in
// its JSON.
func TestInstanceShowsItsServingStep(t *testing.T) {
	b := setupBig(t)
	ctx := t.Context()
	const id = "ins-00000004" // wave 1, pending, group web
	res, err := b.l.Begin(ctx, "big", id, 0)
	if err != nil || res.Action != ledger.ActProceed {
		t.Fatalf("Begin = %+v, %v", res, err)
	}
	if err := b.l.Called(ctx, "big", id, res.Token, "req-1"); err != nil {
		t.Fatal(err)
	}
	sv := ledger.Serving{Phase: ledger.PhaseHealth, VerifiedAt: time.Now(),
		Weights: []ledger.Weight{{LoadBalancerID: "lb-web00001", ListenerID: "lbl-web00001", Port: 80, Weight: 10}}, Zeroed: true,
		HookLog: []string{"before stop-app: ok", "after warm-cache: failed: exit code 1: curl: (7) refused"},
		Health:  health.State{Passes: 1, Probes: 3, Last: health.Pass, Check: "http http://127.1.0.4:8080/healthz", Detail: "503 Service Unavailable"}}
	if _, err := b.l.SetServing(ctx, "big", id, 0, []ledger.InstanceState{ledger.Resetting}, sv); err != nil {
		t.Fatal(err)
	}
	step := "health: 1 passes in a row; last trouble: http http://127.1.0.4:8080/healthz: 503 Service Unavailable"

	code, page := b.get(t, "/rollouts/big/instances/"+id)
	if code != http.StatusOK {
		t.Fatalf("GET the instance page = %d\n%s", code, page)
	}
	for _, want := range []string{`<dd id="step">` + step, "before stop-app: ok", "after warm-cache: failed: exit code 1", `id="drained"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the instance page lacks %q", want)
		}
	}
	if code, page := b.get(t, "/rollouts/big?state=resetting"); code != http.StatusOK || !strings.Contains(page, step) || !strings.Contains(page, "weight 0") {
		t.Errorf("the rollout's table (%d) does not show the step and the drained weight", code)
	}

	_, body := b.get(t, "/api/rollouts/big/instances/"+id)
	var api struct {
		Instance web.InstanceView `json:"instance"`
	}
	if err := json.Unmarshal([]byte(body), &api); err != nil {
		t.Fatal(err)
	}
	if got := api.Instance; got.Step != step || !got.Drained || len(got.Hooks) != 2 {
		t.Errorf("instance JSON: step %q, drained %v, hooks %q", got.Step, got.Drained, got.Hooks)
	}
}
