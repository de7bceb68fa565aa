package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/hibiken/asynq"
)

// gateway wraps the simulator and answers the first left DescribeInstances
// requests with an HTML 502 (or status), as a load balancer in front of the
// API does (issue 16). left < 0 fails every one. Other actions pass through.
type gateway struct {
	next   http.Handler
	status int // defaults to 502
	mu     sync.Mutex
	left   int
	// describes counts the DescribeInstances requests that reached the
	// gateway; failed counts the ones it answered 502.
	describes, failed int
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-TC-Action") == "DescribeInstances" {
		g.mu.Lock()
		g.describes++
		fail := g.left != 0
		if g.left > 0 {
			g.left--
		}
		if fail {
			g.failed++
		}
		g.mu.Unlock()
		if fail {
			w.Header().Set("Content-Type", "text/html")
			status := cmp.Or(g.status, http.StatusBadGateway)
			w.WriteHeader(status)
			fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>", status, http.StatusText(status))
			return
		}
	}
	g.next.ServeHTTP(w, r)
}

func (g *gateway) counts() (describes, failed int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.describes, g.failed
}

// fakeTime is a clock that moves only when told, or by step on every
// reading; its sleep records the wait and moves the clock instead of
// sleeping.
type fakeTime struct {
	mu     sync.Mutex
	now    time.Time
	step   time.Duration
	sleeps []time.Duration
}

func newFakeTime(step time.Duration) *fakeTime {
	return &fakeTime{now: time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC), step: step}
}

func (f *fakeTime) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(f.step)
	return f.now
}

func (f *fakeTime) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sleeps = append(f.sleeps, d)
	f.now = f.now.Add(d)
	return ctx.Err()
}

func (f *fakeTime) slept() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

// preflightSetup serves a simulator holding ids behind a gateway that
// fails the first fail describes, and points the credentials at it.
func preflightSetup(t *testing.T, ids []string, fail int) (*gateway, string) {
	t.Helper()
	sim := cvmsim.New(cvmsim.Config{})
	for _, id := range ids {
		sim.AddInstances(cvmsim.Instance{ID: id, Zone: "ap-guangzhou-3", ImageID: cvmsim.ImageLinuxOld, OS: "linux", State: "RUNNING"})
	}
	gw := &gateway{next: sim, left: fail}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	t.Setenv("TENCENTCLOUD_SECRET_ID", cvmsim.SecretIDDefault)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", cvmsim.SecretKeyDefault)
	return gw, srv.URL
}

func testIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("ins-%08d", i)
	}
	return ids
}

// TestPreflightRetriesGatewayErrors (issue 16): a 502 from a gateway on a
// describe no longer fails the whole pre-flight: plan and apply ask again
// with backoff (through the injected sleep: no real waiting) and go on.
func TestPreflightRetriesGatewayErrors(t *testing.T) {
	for _, cmd := range []string{"plan", "apply"} {
		t.Run(cmd, func(t *testing.T) {
			r := redistest.New(t)
			ns := strings.TrimSuffix(r.Prefix, ":")
			ids := testIDs(250) // three batches
			gw, url := preflightSetup(t, ids, 3)
			path := writePlan(t, t.TempDir(), "flaky-"+cmd, ids, "")
			ft := newFakeTime(0)
			env, out, errb := testEnv(map[string]string{"REDIS_URL": "redis://" + r.Addr})
			env.Hooks = &Hooks{Sleep: ft.Sleep, Clock: ft}
			if code := Main(t.Context(), env, []string{cmd, "--namespace", ns, "--endpoint", url, path}); code != 0 {
				t.Fatalf("%s exited %d\nstdout:\n%s\nstderr:\n%s", cmd, code, out, errb)
			}
			describes, failed := gw.counts()
			if failed != 3 || describes != 3+3 {
				t.Errorf("%d describes, %d answered 502; want 6 and 3 (three batches, three retried)", describes, failed)
			}
			sleeps := ft.slept()
			if len(sleeps) != 3 {
				t.Errorf("slept %v; want three waits, one per retry", sleeps)
			}
			for _, d := range sleeps {
				if d < 0 || d > preflightCapDefault {
					t.Errorf("slept %s; want within [0, %s]", d, preflightCapDefault)
				}
			}
			insp := asynq.NewInspector(r.ConnOpt())
			defer insp.Close()
			n := queueTotal(t, insp, ns)
			switch {
			case cmd == "plan" && n != 0:
				t.Errorf("plan enqueued %d tasks", n)
			case cmd == "apply" && n == 0:
				t.Errorf("apply enqueued nothing:\n%s", out)
			}
		})
	}
}

// TestPreflightFailsOnLastingFault: a gateway that never recovers makes
// apply give up after a bounded number of tries, and credentials the API
// refuses fail at once; either way the error says why and nothing is
// enqueued or recorded.
func TestPreflightFailsOnLastingFault(t *testing.T) {
	tests := []struct {
		name       string
		fail       int    // describes the gateway answers 502; -1 for all
		secretKey  string // "" for the simulator's
		wantCalls  int
		wantSleeps int
		want       []string
	}{
		{"gatewayDown", -1, "", preflightTriesDefault, preflightTriesDefault - 1,
			[]string{"pre-flight", fmt.Sprintf("gave up after %d tries", preflightTriesDefault), "HTTPStatus.502"}},
		{"badCredentials", 0, "not-the-key", 1, 0,
			[]string{"pre-flight", "fatal", "not retried", "AuthFailure"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := redistest.New(t)
			ns := strings.TrimSuffix(r.Prefix, ":")
			ids := testIDs(20)
			gw, url := preflightSetup(t, ids, tt.fail)
			if tt.secretKey != "" {
				t.Setenv("TENCENTCLOUD_SECRET_KEY", tt.secretKey)
			}
			path := writePlan(t, t.TempDir(), "broken", ids, "")
			ft := newFakeTime(0)
			env, out, errb := testEnv(map[string]string{"REDIS_URL": "redis://" + r.Addr})
			env.Hooks = &Hooks{Sleep: ft.Sleep, Clock: ft}
			if code := Main(t.Context(), env, []string{"apply", "--namespace", ns, "--endpoint", url, path}); code != exitFailed {
				t.Fatalf("apply exited %d; want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailed, out, errb)
			}
			for _, w := range tt.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("apply's error lacks %q:\n%s", w, errb)
				}
			}
			if describes, _ := gw.counts(); describes != tt.wantCalls {
				t.Errorf("%d DescribeInstances calls; want %d", describes, tt.wantCalls)
			}
			if n := len(ft.slept()); n != tt.wantSleeps {
				t.Errorf("%d waits between tries; want %d", n, tt.wantSleeps)
			}
			insp := asynq.NewInspector(r.ConnOpt())
			defer insp.Close()
			if n := queueTotal(t, insp, ns); n != 0 {
				t.Errorf("a failed pre-flight enqueued %d tasks", n)
			}
			l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
			if _, err := l.Get(t.Context(), "broken"); err == nil {
				t.Errorf("a failed pre-flight recorded the rollout")
			}
		})
	}
}

// TestPreflightProgress (issue 15): a long pre-flight prints how far it
// got to stderr every few seconds, and a short one prints nothing.
func TestPreflightProgress(t *testing.T) {
	ids := testIDs(1000) // ten batches
	_, url := preflightSetup(t, ids, 0)
	path := writePlan(t, t.TempDir(), "progress", ids, "")
	tests := []struct {
		name string
		step time.Duration // how far the clock moves at each reading
		want []string
	}{
		{"short", 0, nil},
		{"long", time.Second, []string{"pre-flight: 1,000 / 1,000 instances"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := newFakeTime(tt.step)
			env, out, errb := testEnv(nil)
			env.Hooks = &Hooks{Sleep: ft.Sleep, Clock: ft}
			if code := Main(t.Context(), env, []string{"plan", "--endpoint", url, path}); code != 0 {
				t.Fatalf("plan exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errb)
			}
			var lines []string
			for line := range strings.Lines(errb.String()) {
				if strings.HasPrefix(line, "pre-flight: ") {
					lines = append(lines, strings.TrimSpace(line))
				}
			}
			if len(tt.want) == 0 {
				if len(lines) != 0 {
					t.Errorf("a short pre-flight printed progress: %q", lines)
				}
				return
			}
			if len(lines) < 2 {
				t.Fatalf("progress lines %q; want several", lines)
			}
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, tt.want[0]) {
				t.Errorf("last progress line %q; want it to start %q", last, tt.want[0])
			}
			if strings.Contains(out.String(), "pre-flight: ") {
				t.Errorf("progress went to stdout, which holds the preview:\n%s", out)
			}
		})
	}
}

// countingLimiter is a real local limiter that counts what it is told.
type countingLimiter struct {
	ratelimit.Limiter
	mu               sync.Mutex
	waits, throttles int
}

func (c *countingLimiter) Wait(ctx context.Context, key string, rate float64) (time.Duration, error) {
	c.mu.Lock()
	c.waits++
	c.mu.Unlock()
	return c.Limiter.Wait(ctx, key, rate)
}

func (c *countingLimiter) Throttled(ctx context.Context, key string) error {
	c.mu.Lock()
	c.throttles++
	c.mu.Unlock()
	return c.Limiter.Throttled(ctx, key)
}

// TestDescribeWith drives the retrying DescribeFunc with the real client
// against the simulator behind a faulty gateway, one batch per case.
func TestDescribeWith(t *testing.T) {
	ids := testIDs(3)
	tests := []struct {
		name      string
		status    int // the gateway's answer to the first fail describes
		fail      int
		cfg       describeConfig
		cancel    bool // the sleep finds ctx cancelled
		wantSleep []time.Duration
		wantWaits int // limiter waits, one per call
		wantThr   int // throttles reported to the limiter
		wantErr   string
	}{
		{name: "ok", wantWaits: 1},
		{name: "throttled", status: http.StatusTooManyRequests, fail: 2,
			wantSleep: []time.Duration{500 * time.Millisecond, time.Second}, wantWaits: 3, wantThr: 2}, // throttles slow the whole fleet too
		{name: "backoffCapped", fail: 4, cfg: describeConfig{base: time.Second, cap: 3 * time.Second},
			wantSleep: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}, wantWaits: 5},
		{name: "deadline", fail: -1, cfg: describeConfig{base: time.Second, tries: 100, deadline: 5 * time.Second},
			wantSleep: []time.Duration{time.Second, 2 * time.Second}, wantWaits: 3, // 3s gone, 4s more would pass 5s
			wantErr: "describe 3 instances: gave up after 3 tries in 3s: cvm: v3 DescribeInstances: HTTPStatus.502"},
		{name: "tries", fail: -1, cfg: describeConfig{tries: 2},
			wantSleep: []time.Duration{500 * time.Millisecond}, wantWaits: 2,
			wantErr: "describe 3 instances: gave up after 2 tries in 500ms: cvm: v3 DescribeInstances: HTTPStatus.502"},
		{name: "permanent", status: http.StatusBadRequest, fail: 1, wantWaits: 1,
			wantErr: "describe 3 instances: permanent error, not retried: cvm: v3 DescribeInstances: HTTPStatus.400"},
		{name: "cancelled", fail: 1, cancel: true, wantSleep: []time.Duration{500 * time.Millisecond}, wantWaits: 1,
			wantErr: "describe 3 instances: context canceled (while waiting to retry after: cvm: v3 DescribeInstances: HTTPStatus.502"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw, url := preflightSetup(t, ids, tt.fail)
			gw.status = tt.status
			api, err := cvm.New(cvm.Config{Endpoint: url, Region: "ap-guangzhou",
				Credentials: cvm.Credentials{SecretID: cvmsim.SecretIDDefault, SecretKey: cvm.Secret(cvmsim.SecretKeyDefault)}})
			if err != nil {
				t.Fatal(err)
			}
			lim := &countingLimiter{Limiter: ratelimit.NewLocal(ratelimit.Config{})}
			ft := newFakeTime(0)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			cfg := tt.cfg
			cfg.api, cfg.lim, cfg.key, cfg.rate, cfg.clock = api, lim, "DescribeInstances:test", 1000, ft
			cfg.rand = func() float64 { return 1 - 1e-9 } // the top of each jitter range
			cfg.sleep = func(ctx context.Context, d time.Duration) error {
				if tt.cancel {
					cancel()
				}
				return ft.Sleep(ctx, d)
			}
			got, err := describeWith(cfg)(ctx, ids)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("describe = %v; want no error", err)
			case tt.wantErr == "" && len(got) != len(ids):
				t.Errorf("describe found %d of %d instances", len(got), len(ids))
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Errorf("describe error = %v; want it to start %q", err, tt.wantErr)
			}
			if tt.cancel && !errors.Is(err, context.Canceled) {
				t.Errorf("describe error = %v; want it to wrap context.Canceled", err)
			}
			sleeps := ft.slept()
			for i := range sleeps {
				sleeps[i] = sleeps[i].Round(time.Millisecond)
			}
			if diff := cmpDurations(tt.wantSleep, sleeps); diff != "" {
				t.Errorf("waits between tries: %s", diff)
			}
			if lim.waits != tt.wantWaits || lim.throttles != tt.wantThr {
				t.Errorf("limiter saw %d waits and %d throttles; want %d and %d", lim.waits, lim.throttles, tt.wantWaits, tt.wantThr)
			}
		})
	}
}

func cmpDurations(want, got []time.Duration) string {
	if fmt.Sprint(want) == fmt.Sprint(got) {
		return ""
	}
	return fmt.Sprintf("got %v; want %v", got, want)
}

// TestProgressLines: the first line only after `every`, then at most one
// per `every`, and a closing line only for a run that printed.
func TestProgressLines(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		total int
		adds  []time.Duration // when each batch of 100 finished, after t0
		want  string
	}{
		{"quiet", 300, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, ""},
		{"long", 200_000, nil, "pre-flight: 12,300 / 200,000 instances\n"},
		{"everyFewSeconds", 500, []time.Duration{4 * time.Second, 5 * time.Second, 6 * time.Second, 10 * time.Second, 11 * time.Second},
			"pre-flight: 200 / 500 instances\npre-flight: 400 / 500 instances\npre-flight: 500 / 500 instances in 11s\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			p := &progress{w: &b, total: tt.total, every: 5 * time.Second}
			p.begin(t0)
			if tt.adds == nil {
				// 123 batches: one line, at 12,300.
				p.add(12_200, t0.Add(time.Second))
				p.add(100, t0.Add(6*time.Second))
				p.add(100, t0.Add(7*time.Second))
			}
			for _, d := range tt.adds {
				p.add(100, t0.Add(d))
			}
			if got := b.String(); got != tt.want {
				t.Errorf("progress printed %q; want %q", got, tt.want)
			}
		})
	}
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 12300: "12,300", 200000: "200,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q; want %q", n, got, want)
		}
	}
}
