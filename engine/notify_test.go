package engine_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/notify"
	"github.com/fleetreset/fleetreset/rollout"
)

// TestNotifyDoesNotWaitForWebhook: a receiver that holds the request
// (as one that hangs for its whole timeout would) does not hold up the
// caller of Notify, a task handler deciding a gate; the event still
// arrives once the receiver answers, and Close waits for it.
func TestNotifyDoesNotWaitForWebhook(t *testing.T) {
	r := redistest.New(t)
	arrived := make(chan notify.Event, 1)
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var e notify.Event
		_ = json.NewDecoder(req.Body).Decode(&e)
		arrived <- e
		<-release
	}))
	defer hook.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	hooks := notify.NewSender(notify.SenderConfig{})
	ctl := engine.New(engine.Config{Ledger: ledger.New(r.Client, ledger.Config{Prefix: r.Prefix}), Webhooks: hooks})
	spec := rollout.Spec{ID: "hooked", Webhook: hook.URL + "/t/secret"}

	returned := make(chan struct{})
	go func() {
		ctl.Notify(t.Context(), spec, notify.WavePassed, 0, "")
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Notify waited for the webhook to answer")
	}
	// Notify returned; the receiver has the request and still holds it.
	if e := <-arrived; e.Rollout != "hooked" || e.Kind != notify.WavePassed || e.Wave != 1 {
		t.Errorf("webhook got %+v", e)
	}
	if hooks.SentCount() != 0 {
		t.Fatal("counted sent before the receiver answered")
	}
	close(release)
	if err := hooks.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if hooks.SentCount() != 1 {
		t.Errorf("sent = %d; want 1", hooks.SentCount())
	}
}
