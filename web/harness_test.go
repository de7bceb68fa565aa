package web_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/metrics"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/ratelimit"
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

// lockedBuffer collects log output from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

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
	logs    *lockedBuffer
	log     *slog.Logger
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
	ns := strings.TrimSuffix(r.Prefix, ":")
	b := &testBundle{r: r, ns: ns, logs: &lockedBuffer{}}
	b.log = slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b.l = ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
	b.client = asynq.NewClient(r.ConnOpt())
	t.Cleanup(func() { b.client.Close() })
	b.ctl = engine.New(engine.Config{Ledger: b.l, Client: b.client, Namespace: ns, Logger: b.log})

	b.sim = cvmsim.New(cvmsim.Config{ResetDuration: 300 * time.Millisecond,
		// Every instance's first reset answers SystemBusy, so the API-call
		// counters see an error code as well as successes; error answers
		// echo the request's password, as a careless upstream would.
		Faults: cvmsim.Faults{SystemBusyFirst: 1, EchoParams: true}})
	for _, id := range fleetIDs {
		if id == missingID {
			continue
		}
		img := "img-old00001"
		if id == onTargetID {
			img = targetImage
		}
		b.sim.AddInstances(cvmsim.Instance{ID: id, Zone: "ap-guangzhou-3", ImageID: img, OS: "linux", State: "RUNNING"})
	}
	simSrv := httptest.NewServer(b.sim)
	t.Cleanup(simSrv.Close)
	b.simURL = simSrv.URL

	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(hook.Close)
	b.hookURL = hook.URL + "/services/T0/B0/" + webhookToken

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
	var y strings.Builder
	fmt.Fprintf(&y, "version: 1\nname: %s\nregion: ap-guangzhou\napi: v3\nendpoint: %s\n", name, b.simURL)
	fmt.Fprintf(&y, "image: {id: %s}\nos: linux\npassword: {env: %s}\n", targetImage, passwordEnv)
	y.WriteString("verify: {interval: 200ms, timeout: 1m}\nretry: {attempts: 10, deadline: 5m}\n")
	y.WriteString("waves:\n  - {size: 4, approval: manual}\n  - {size: 100%}\n")
	fmt.Fprintf(&y, "failureBudget: {max: 5}\nwebhook: %s\n", b.hookURL)
	y.WriteString("groups:\n  - name: web\n    instances:\n")
	for _, id := range fleetIDs {
		fmt.Fprintf(&y, "      - %s\n", id)
	}
	return y.String()
}

// apply applies the test plan (secrets resolved, as the CLI does).
func (b *testBundle) apply(t *testing.T, name string) {
	t.Helper()
	plan, err := planner.Parse(name+".yaml", []byte(b.planYAML(name)), planner.Options{ResolveSecrets: true, LookupEnvFunc: b.lookupEnv})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	b.plan = plan
	res, err := engine.New(engine.Config{Ledger: b.l, Client: b.client, Namespace: b.ns}).Apply(t.Context(), engine.ApplyRequest{Spec: plan.Spec, Targets: plan.Targets})
	if err != nil || !res.Created {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
}

// startWorkers runs n workers until the test ends, reporting to b.metrics.
func (b *testBundle) startWorkers(t *testing.T, n int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	creds := cvm.Credentials{SecretID: cvmsim.SecretIDDefault, SecretKey: cvm.Secret(cvmsim.SecretKeyDefault)}
	var wg sync.WaitGroup
	for range n {
		w, err := worker.New(worker.Config{
			Redis: b.r.ConnOpt(), Engine: b.ctl,
			Limiter:     ratelimit.NewRedis(b.r.Client, ratelimit.Config{Prefix: b.ns + ":"}),
			Credentials: &creds, Concurrency: 5, ReconcileGrace: time.Second,
			RetryBase: 50 * time.Millisecond, RetryCap: 200 * time.Millisecond,
			ShutdownTimeout: 5 * time.Second, Logger: b.log, LookupEnv: b.lookupEnv,
			Observer: b.metrics,
		})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { _ = w.Run(ctx) })
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// await polls the ledger until the rollout reaches one of want.
func (b *testBundle) await(t *testing.T, within time.Duration, want ...ledger.RolloutState) *ledger.Rollout {
	t.Helper()
	deadline := time.Now().Add(within)
	var last *ledger.Rollout
	for time.Now().Before(deadline) {
		if r, err := b.l.Get(t.Context(), b.plan.Spec.ID); err == nil {
			last = r
			for _, s := range want {
				if r.State == s {
					return r
				}
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	if last == nil {
		t.Fatalf("rollout %s never appeared in the ledger", b.plan.Spec.ID)
	}
	t.Fatalf("rollout did not reach %v within %s; last state %s (%s), counters %+v", want, within, last.State, last.Reason, last.Counters)
	return nil
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
