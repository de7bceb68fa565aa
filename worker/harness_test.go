package worker_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/worker"
	"github.com/hibiken/asynq"
)

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

// bundle is a whole fleetreset stack against a simulator: Redis (real or
// miniredis), ledger, controller, simulator over HTTP and a signed client.
type bundle struct {
	r      *redistest.Redis
	ns     string
	l      *ledger.Ledger
	client *asynq.Client
	ctl    *engine.Engine
	sim    *cvmsim.Server
	url    string
	creds  cvm.Credentials
	logs   *lockedBuffer
	log    *slog.Logger
	plan   *planner.Plan
	replay time.Duration
}

type planOpts struct {
	n        int
	api      string
	waves    string // YAML list, e.g. "[{size: 10%}, {size: 100%}]"
	extra    string // more top-level YAML
	password bool   // password {env: FR_TEST_PASSWORD}
	missing  map[int]bool
	// verifyTimeout is the plan's verify timeout (default 1m).
	verifyTimeout string
	// redis, when set, is the Redis to use instead of redistest.New's.
	redis *redistest.Redis
}

const plantedPassword = "Pl4nted!Secr#77"

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("ins-%08x", i+1)
	}
	return out
}

func setup(t *testing.T, simCfg cvmsim.Config, o planOpts) *bundle {
	t.Helper()
	r := o.redis
	if r == nil {
		r = redistest.New(t)
	}
	ns := strings.TrimSuffix(r.Prefix, ":")
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := &bundle{r: r, ns: ns, logs: logs, log: log,
		l:      ledger.New(r.Client, ledger.Config{Prefix: ns + ":"}),
		client: asynq.NewClient(r.ConnOpt()),
	}
	t.Cleanup(func() { b.client.Close() })
	b.ctl = engine.New(engine.Config{Ledger: b.l, Client: b.client, Namespace: ns, Logger: log})
	b.ctl.TestSignals.State.Init(t, 10000)
	// A short replay window, told to the workers too, keeps the wait
	// before a re-call after a lost request (ReplayWindow) test-sized.
	simCfg.ReplayWindow = cmp.Or(simCfg.ReplayWindow, 3*time.Second)
	b.replay = simCfg.ReplayWindow
	b.sim = cvmsim.New(simCfg)
	srv := httptest.NewServer(b.sim)
	t.Cleanup(srv.Close)
	b.url = srv.URL
	b.creds = cvm.Credentials{SecretID: cvmsim.SecretIDDefault, SecretKey: cvm.Secret(cvmsim.SecretKeyDefault)}

	api := o.api
	if api == "" {
		api = "v3"
	}
	var y strings.Builder
	fmt.Fprintf(&y, "version: 1\nname: test\nregion: ap-guangzhou\napi: %s\nendpoint: %s\nimage: {type: 1, id: img-new00001}\nos: linux\n", api, srv.URL)
	switch {
	case o.password || api == "v2":
		y.WriteString("password: {env: FR_TEST_PASSWORD}\n")
	case api == "v3":
		y.WriteString("keepImageLogin: true\n")
	}
	fmt.Fprintf(&y, "verify: {interval: 200ms, timeout: %s}\nretry: {attempts: 50, deadline: 5m}\n", cmp.Or(o.verifyTimeout, "1m"))
	if o.waves == "" {
		o.waves = "[{size: 100%}]"
	}
	fmt.Fprintf(&y, "waves: %s\n%s\ngroups:\n  - name: all\n    instances:\n", o.waves, o.extra)
	var fleet []cvmsim.Instance
	for i, id := range ids(o.n) {
		fmt.Fprintf(&y, "      - %s\n", id)
		if !o.missing[i] {
			fleet = append(fleet, cvmsim.Instance{ID: id, Zone: "ap-guangzhou-3", ImageID: "img-old00001", OS: "linux", State: "RUNNING"})
		}
	}
	b.sim.AddInstances(fleet...)
	plan, err := planner.Parse("test.yaml", []byte(y.String()), planner.Options{})
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, y.String())
	}
	b.plan = plan
	return b
}

func (b *bundle) apply(t *testing.T) {
	t.Helper()
	res, err := engine.New(engine.Config{Ledger: b.l, Client: b.client, Namespace: b.ns}).Apply(t.Context(), engine.ApplyRequest{Spec: b.plan.Spec, Targets: b.plan.Targets})
	if err != nil || !res.Created {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
}

// startWorkers runs n worker "processes" (separate Redis clients and
// limiters) until the test ends, or until the returned stop is called.
func (b *bundle) startWorkers(t *testing.T, n int, tweak func(*worker.Config)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range n {
		cfg := worker.Config{
			Redis: b.r.ConnOpt(), Engine: b.ctl,
			Limiter:     ratelimit.NewRedis(b.r.Client, ratelimit.Config{Prefix: b.ns + ":"}),
			Credentials: &b.creds, Concurrency: 10, ReconcileGrace: time.Second, ReplayWindow: b.replay,
			RetryBase: 100 * time.Millisecond, RetryCap: time.Second,
			ShutdownTimeout: 5 * time.Second, Logger: b.log,
			LookupEnv: func(k string) (string, bool) {
				if k == "FR_TEST_PASSWORD" {
					return plantedPassword, true
				}
				return "", false
			},
		}
		if tweak != nil {
			tweak(&cfg)
		}
		w, err := worker.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { _ = w.Run(ctx) })
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds or within passes; it reports
// whether it held. Polling is the last resort of these tests: the events
// they wait for happen in other processes' worth of goroutines and Redis.
func eventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// await waits, on the engine's test signal, until the rollout reaches one
// of want, and returns it as the ledger has it then.
func (b *bundle) await(t *testing.T, within time.Duration, want ...ledger.RolloutState) *ledger.Rollout {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := b.l.Get(t.Context(), b.plan.Spec.ID)
		if err == nil && slices.Contains(want, r.State) {
			return r
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("rollout did not reach %v within %s; last: %+v (err %v)", want, within, r, err)
		}
		// An event is a hint to look again: one from before this wait
		// (already superseded) only costs a ledger read.
		b.ctl.TestSignals.State.WaitFor(left, func(e engine.StateEvent) bool {
			return e.Rollout == b.plan.Spec.ID && slices.Contains(want, e.State)
		})
	}
}

// exactlyOnce checks the simulator's count of accepted resets per instance.
func (b *bundle) exactlyOnce(t *testing.T, skip map[int]bool) {
	t.Helper()
	st := b.sim.Stats()
	for i, id := range ids(len(b.plan.Targets)) {
		if skip[i] {
			continue
		}
		if n := st.AcceptedResets[id]; n != 1 {
			t.Errorf("%s reset %d times; want exactly 1", id, n)
		}
	}
}

var _ = rollout.Spec{}
