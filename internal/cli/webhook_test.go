package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/notify"
	"github.com/fleetreset/fleetreset/rollout"
)

// TestCommandDrainsWebhooks: webhooks are posted in the background, so a
// command that announces an event (pause) waits for it before it exits;
// otherwise the event would die with the process.
func TestCommandDrainsWebhooks(t *testing.T) {
	r := redistest.New(t)
	vars, ns := ctlEnv(r)
	var mu sync.Mutex
	var got []notify.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var e notify.Event
		_ = json.NewDecoder(req.Body).Decode(&e)
		// A receiver that takes its time: the command must still wait.
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}))
	defer hook.Close()
	l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
	spec := rollout.Spec{ID: "hooked", PlanHash: "h", Region: "ap-guangzhou", API: "v3", Webhook: hook.URL + "/t/token",
		Groups: []rollout.Group{{Name: "web", OS: "linux", ImageID: fixtureTarget}}, Waves: []rollout.Wave{{Size: 1}}}
	if ok, err := l.Create(t.Context(), spec, []rollout.Target{{InstanceID: "ins-hooked01"}}, ledger.CreateOptions{}); err != nil || !ok {
		t.Fatalf("Create = %v, %v", ok, err)
	}
	if err := l.Activate(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	env, _, errb := testEnv(vars)
	if code := Main(t.Context(), env, []string{"pause", "--namespace", ns, "--reason", "checking", "hooked"}); code != 0 {
		t.Fatalf("pause exited %d: %s", code, errb)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Kind != notify.RolloutPaused || got[0].Reason != "checking" {
		t.Errorf("webhook got %+v by the time pause exited; want one rollout_paused", got)
	}
}
