package worker_test

import (
	"cmp"
	"log/slog"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/internal/testfleet"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/worker"
	"github.com/hibiken/asynq"
)

// bundle is a whole fleetreset stack against a simulator: Redis (real or
// miniredis), ledger, engine, simulator over HTTP and a signed client.
type bundle struct {
	r      *redistest.Redis
	ns     string
	l      *ledger.Ledger
	client *asynq.Client
	ctl    *engine.Engine
	sim    *cvmsim.Server
	url    string
	creds  cvm.Credentials
	logs   *testfleet.LockedBuffer
	log    *slog.Logger
	plan   *planner.Plan
	replay time.Duration
	stack  *testfleet.Stack
}

type planOpts struct {
	n     int
	api   string
	waves string // YAML list, e.g. "[{size: 10%}, {size: 100%}]"
	extra string // more top-level YAML
	// extraAt, when set, adds top-level YAML that needs the running
	// simulator (its URL, its health port).
	extraAt  func(b *bundle) string
	password bool // password {env: FR_TEST_PASSWORD}
	missing  map[int]bool
	// verifyTimeout is the plan's verify timeout (default 1m).
	verifyTimeout string
	// redis, when set, is the Redis to use instead of redistest.New's.
	redis *redistest.Redis
	// zones spread the simulated instances round robin (default one zone).
	zones []string
}

const plantedPassword = "Pl4nted!Secr#77"

// Images of the test fleet: every instance starts on oldImage.
const (
	oldImage    = "img-old00001"
	targetImage = "img-new00001"
)

// ids are the instance IDs of an n-instance test plan.
func ids(n int) []string { return testfleet.IDs(n) }

func setup(t *testing.T, simCfg cvmsim.Config, o planOpts) *bundle {
	t.Helper()
	r := o.redis
	if r == nil {
		r = redistest.New(t)
	}
	s := testfleet.NewStack(t, r)
	b := &bundle{stack: s, r: r, ns: s.NS, l: s.Ledger, client: s.Client, ctl: s.Engine, logs: s.Logs, log: s.Log,
		creds: testfleet.SimCredentials()}
	// A short replay window, told to the workers too, keeps the wait
	// before a re-call after a lost request (ReplayWindow) test-sized.
	simCfg.ReplayWindow = cmp.Or(simCfg.ReplayWindow, 3*time.Second)
	b.replay = simCfg.ReplayWindow
	b.sim = cvmsim.New(simCfg)
	b.url = testfleet.Serve(t, b.sim)

	p := testfleet.Plan{API: cmp.Or(o.api, "v3"), Endpoint: b.url, Image: "{type: 1, id: " + targetImage + "}",
		Verify: "{interval: 200ms, timeout: " + cmp.Or(o.verifyTimeout, "1m") + "}", Retry: "{attempts: 50, deadline: 5m}",
		Waves: cmp.Or(o.waves, "[{size: 100%}]"), Extra: o.extra, Instances: ids(o.n)}
	if simCfg.HealthPort != 0 {
		if err := b.sim.Start(); err != nil {
			t.Fatalf("simulator health endpoints: %v", err)
		}
		t.Cleanup(func() { b.sim.Close() })
	}
	if o.extraAt != nil {
		p.Extra += o.extraAt(b)
	}
	switch {
	case o.password || p.API == "v2":
		p.Password = "{env: FR_TEST_PASSWORD}"
	case p.API == "v3":
		p.KeepImageLogin = true
	}
	var present []string
	for i, id := range p.Instances {
		if !o.missing[i] {
			present = append(present, id)
		}
	}
	zones := o.zones
	if len(zones) == 0 {
		zones = []string{"ap-guangzhou-3"}
	}
	b.sim.AddInstances(testfleet.Fleet{Image: oldImage, Zones: zones}.Instances(present)...)
	plan, err := planner.Parse("test.yaml", []byte(p.YAML()), planner.Options{})
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, p.YAML())
	}
	b.plan = plan
	return b
}

func (b *bundle) apply(t *testing.T) {
	t.Helper()
	b.stack.Apply(t, b.plan)
}

// startWorkers runs n worker "processes" (separate Redis clients and
// limiters) until the test ends, or until the returned stop is called.
func (b *bundle) startWorkers(t *testing.T, n int, tweak func(*worker.Config)) (stop func()) {
	t.Helper()
	ws := make([]testfleet.Runner, n)
	for i := range ws {
		cfg := worker.Config{
			Redis: b.r.ConnOpt(), Engine: b.ctl,
			Limiter:     b.stack.Limiter(),
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
		ws[i] = w
	}
	return testfleet.RunWorkers(t, ws...)
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
	return b.stack.Await(t, b.plan.Spec.ID, within, want...)
}

// exactlyOnce checks the simulator's count of accepted resets per instance.
func (b *bundle) exactlyOnce(t *testing.T, skip map[int]bool) {
	t.Helper()
	var want []string
	for i, id := range ids(len(b.plan.Targets)) {
		if !skip[i] {
			want = append(want, id)
		}
	}
	testfleet.CheckExactlyOnce(t, b.sim.Stats(), want)
}
