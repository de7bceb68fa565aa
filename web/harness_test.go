package web_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/internal/testfleet"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/metrics"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/web"
	"github.com/fleetreset/fleetreset/worker"
	"github.com/hibiken/asynq"
)

// plantedPassword is the password of the test plan's group. It must never
// appear in any page, API answer, metric or log line. It satisfies the CVM
// Linux password rules so that the planner and the workers accept it.
// plantedPassword holds characters an echoing upstream escapes (& ').
const plantedPassword = "Zq9&p'X4wv#Kj7"

// webhookToken is the secret part of the test webhook's URL.
const webhookToken = "webhook-token-xyz"

// passwordEnv is the variable the plan names for the password.
const passwordEnv = "FR_WEBTEST_PASSWORD"

// testBundle is a whole fleetreset stack in one process: Redis, ledger,
// controller, a simulator over HTTP, workers reporting to a Metrics, and
// the UI served by httptest.
type testBundle struct {
	r      *redistest.Redis
	ns     string
	l      *ledger.Ledger
	client *asynq.Client
	ctl    *engine.Engine
	sim    *cvmsim.Server
	simURL string
	// hookURL is a local webhook receiver whose path holds a token, as
	// Slack's and WeCom's do; pages must show only its host.
	hookURL string
	plan    *planner.Plan
	metrics *metrics.Metrics
	logs    *testfleet.LockedBuffer
	log     *slog.Logger
	stack   *testfleet.Stack
	ui      *web.Server
	srv     *httptest.Server
	// lookups counts how often the password variable was read: proof that
	// the planted password was really resolved and used.
	lookups atomic.Int64
}

type setupOpts struct {
	allowActions bool
	basicAuth    string
}

// Instances of the test plan. Wave 1 holds one instance already on the
// target image (skipped) and one the cloud does not know (failed with a
// code), so that both show on the pages.
var (
	fleetIDs    = []string{"ins-a0000001", "ins-a0000002", "ins-a0000003", "ins-a0000004", "ins-a0000005", "ins-a0000006", "ins-a0000007", "ins-a0000008", "ins-a0000009", "ins-a000000a"}
	onTargetID  = "ins-a0000002"
	missingID   = "ins-a0000003"
	targetImage = "img-new00001"
)

// setup builds the stack with the UI; no rollout yet.
func setup(t *testing.T, o setupOpts) *testBundle {
	t.Helper()
	r := redistest.New(t)
	st := testfleet.NewStack(t, r)
	b := &testBundle{stack: st, r: r, ns: st.NS, l: st.Ledger, client: st.Client, ctl: st.Engine, logs: st.Logs, log: st.Log}

	b.sim = cvmsim.New(cvmsim.Config{ResetDuration: 300 * time.Millisecond,
		// Every instance's first reset answers SystemBusy, so the API-call
		// counters see an error code as well as successes; error answers
		// echo the request's password, as a careless upstream would.
		Faults: cvmsim.Faults{SystemBusyFirst: 1, EchoParams: true}})
	fleet := testfleet.Fleet{Image: "img-old00001", Zones: []string{"ap-guangzhou-3"}}
	for _, in := range fleet.Instances(fleetIDs) {
		switch in.ID {
		case missingID:
			continue
		case onTargetID:
			in.ImageID = targetImage
		}
		b.sim.AddInstances(in)
	}
	b.simURL = testfleet.Serve(t, b.sim)

	hook := testfleet.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	b.hookURL = hook + "/services/T0/B0/" + webhookToken

	insp := asynq.NewInspector(r.ConnOpt())
	t.Cleanup(func() { insp.Close() })
	q := b.ctl.Queues()
	b.metrics = metrics.New(metrics.Config{Inspector: insp, Queues: []string{q.Reset, q.Control}, Ledger: b.l, Logger: b.log})
	ui, err := web.New(web.Config{Ledger: b.l, Engine: b.ctl, RedisConnOpt: r.ConnOpt(), AllowActions: o.allowActions,
		BasicAuth: o.basicAuth, Hosts: []string{"127.0.0.1", "localhost", "::1"}, Metrics: b.metrics.Handler(),
		Refresh: time.Second, Logger: b.log})
	if err != nil {
		t.Fatal(err)
	}
	b.ui = ui
	b.srv = httptest.NewServer(ui)
	t.Cleanup(func() {
		b.srv.Close()
		ui.Close()
	})
	return b
}

func (b *testBundle) lookupEnv(k string) (string, bool) {
	if k == passwordEnv {
		b.lookups.Add(1)
		return plantedPassword, true
	}
	return "", false
}

// planYAML is a rollout of fleetIDs: wave 1 of four instances behind a
// manual gate, then the rest.
func (b *testBundle) planYAML(name string) string {
	return testfleet.Plan{Name: name, Endpoint: b.simURL, Image: "{id: " + targetImage + "}",
		Password: "{env: " + passwordEnv + "}", Verify: "{interval: 200ms, timeout: 1m}", Retry: "{attempts: 10, deadline: 5m}",
		Waves: "[{size: 4, approval: manual}, {size: 100%}]", FailureBudget: "{max: 5}", Webhook: b.hookURL,
		Group: "web", Instances: fleetIDs}.YAML()
}

// apply applies the test plan (secrets resolved, as the CLI does).
func (b *testBundle) apply(t *testing.T, name string) {
	t.Helper()
	plan, err := planner.Parse(name+".yaml", []byte(b.planYAML(name)), planner.Options{ResolveSecrets: true, LookupEnvFunc: b.lookupEnv})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	b.plan = plan
	b.stack.Apply(t, plan)
}

// startWorkers runs n workers until the test ends, reporting to b.metrics.
func (b *testBundle) startWorkers(t *testing.T, n int) {
	t.Helper()
	creds := testfleet.SimCredentials()
	ws := make([]testfleet.Runner, n)
	for i := range ws {
		w, err := worker.New(worker.Config{
			Redis: b.r.ConnOpt(), Engine: b.ctl,
			Limiter:     b.stack.Limiter(),
			Credentials: &creds, Concurrency: 5, ReconcileGrace: time.Second,
			RetryBase: 50 * time.Millisecond, RetryCap: 200 * time.Millisecond,
			ShutdownTimeout: 5 * time.Second, Logger: b.log, LookupEnv: b.lookupEnv,
			Observer: b.metrics,
		})
		if err != nil {
			t.Fatal(err)
		}
		ws[i] = w
	}
	testfleet.RunWorkers(t, ws...)
}

// await waits, on the engine's test signal, until the rollout reaches one
// of want, and returns it as the ledger has it then.
func (b *testBundle) await(t *testing.T, within time.Duration, want ...ledger.RolloutState) *ledger.Rollout {
	t.Helper()
	return b.stack.Await(t, b.plan.Spec.ID, within, want...)
}

// get fetches path from the UI and returns status and body.
func (b *testBundle) get(t *testing.T, path string) (int, string) {
	t.Helper()
	return b.do(t, "GET", path, nil, nil)
}

// do sends a request to the UI as a same-origin browser would.
func (b *testBundle) do(t *testing.T, method, path string, body io.Reader, hdr http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b2, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if loc := res.Header.Get("Location"); loc != "" {
		return res.StatusCode, loc
	}
	return res.StatusCode, string(b2)
}
