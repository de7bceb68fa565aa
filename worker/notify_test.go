package worker_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/notify"
)

// TestWebhookEvents: a rollout posts start, each wave passed, a pause with
// its reason, and completion to its webhook.
func TestWebhookEvents(t *testing.T) {
	var mu sync.Mutex
	var events []notify.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e notify.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}))
	defer hook.Close()
	b := setup(t, cvmsim.Config{ResetDuration: 50 * time.Millisecond,
		Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: 6, extra: fast + "\nwebhook: " + hook.URL, waves: "[{size: 1}, {size: 100%}]", missing: map[int]bool{3: true}})
	b.apply(t)
	b.startWorkers(t, 1, nil)
	r := b.await(t, time.Minute, ledger.Paused)
	b.sim.AddInstances(cvmsim.Instance{ID: ids(6)[3], ImageID: "img-old00001", OS: "linux", State: "RUNNING"})
	if _, err := b.ctl.RetryFailed(t.Context(), r.ID, false); err != nil {
		t.Fatal(err)
	}
	b.await(t, time.Minute, ledger.Completed)
	// Delivery is asynchronous to the state change: wait for the last event.
	var kinds []string
	eventually(10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		kinds = kinds[:0]
		for _, e := range events {
			kinds = append(kinds, e.Kind)
		}
		return slices.Contains(kinds, notify.RolloutCompleted)
	})
	want := []string{notify.RolloutStarted, notify.WavePassed, notify.RolloutPaused, notify.RolloutCompleted}
	for _, k := range want {
		if !slices.Contains(kinds, k) {
			t.Errorf("no %s event; got %v", k, kinds)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range events {
		if e.Kind == notify.RolloutPaused && e.Reason == "" {
			t.Errorf("pause event without a reason: %+v", e)
		}
		if e.Rollout != b.plan.Spec.ID {
			t.Errorf("event for %q; want %q", e.Rollout, b.plan.Spec.ID)
		}
	}
}

// TestTransitionsAnnouncedOnce: with 30% of the API requests answering 502,
// start tasks and verify sweeps run again and again; each transition is
// still logged and posted once (issue 16: duplicate "rollout started",
// "wave started" and "instance verified" after describe retries).
func TestTransitionsAnnouncedOnce(t *testing.T) {
	var mu sync.Mutex
	posted := map[string]int{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e notify.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err == nil {
			mu.Lock()
			posted[e.Kind]++
			mu.Unlock()
		}
	}))
	defer hook.Close()
	const n = 30
	b := setup(t, cvmsim.Config{ResetDuration: 50 * time.Millisecond,
		Faults: cvmsim.Faults{ServerErrorRate: 0.3, ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: n, extra: fast + "\nwebhook: " + hook.URL, waves: "[{size: 5}, {size: 100%}]"})
	b.apply(t)
	b.startWorkers(t, 2, nil)
	r := b.await(t, 2*time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted)
	if r.State != ledger.Completed {
		t.Fatalf("rollout %s (%s); want completed", r.State, r.Reason)
	}
	if st := b.sim.Stats(); st.ServerErrors == 0 {
		t.Fatal("no request answered 502; the fault did not apply")
	}
	logs := b.logs.String()
	for msg, want := range map[string]int{`"msg":"rollout started"`: 1, `"msg":"wave started"`: 2, `"msg":"instance verified"`: n} {
		if got := strings.Count(logs, msg); got != want {
			t.Errorf("%s logged %d times; want %d", msg, got, want)
		}
	}
	eventually(10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return posted[notify.RolloutCompleted] > 0 })
	mu.Lock()
	defer mu.Unlock()
	if posted[notify.RolloutStarted] != 1 {
		t.Errorf("%s posted %d times; want 1 (%v)", notify.RolloutStarted, posted[notify.RolloutStarted], posted)
	}
}
