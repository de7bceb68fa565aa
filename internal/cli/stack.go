package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/clock"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/worker"
)

// Hooks let tests observe the parts a command starts. All optional.
type Hooks struct {
	// Simulator is called with the in-process simulator of `run --simulate`.
	Simulator func(sim *cvmsim.Server, url string)
	// Redis is called with the URL of the Redis a command uses.
	Redis func(url string)
	// Progress is called after every progress poll of `run`.
	Progress func(state string)
	// Sleep replaces the waits between pre-flight retries, so tests do
	// not sleep. It returns ctx.Err() when ctx ends first.
	Sleep func(ctx context.Context, d time.Duration) error
	// Clock replaces the wall clock of pre-flight retry deadlines and
	// progress.
	Clock clock.Clock
}

// apiFlags are the flags that point a command at an API.
type apiFlags struct {
	endpoint string
	api      string
	// timeout bounds each call; zero means cvm.TimeoutDefault.
	timeout time.Duration
	// replay is how long the API accepts a signed request; zero means
	// worker.ReplayWindowDefault (the real API's 5 minutes).
	replay time.Duration
	// oneKey signs every account of a plan with the default credentials:
	// run --simulate, whose simulator knows one key.
	oneKey bool
}

func (a *apiFlags) flags() []flagDef {
	return append(a.overrideFlags(),
		durationFlag(&a.timeout, "call-timeout", 0, "timeout of one API call (default 30s, or half of --reconcile-grace where that is shorter)"),
		durationFlag(&a.replay, "api-replay-window", 0, "how long the API accepts a signed request (default 5m, Tencent Cloud's; set a simulator's): after a reset call whose outcome is unknown and left no trace, the reset is called again only once the first request can no longer land"))
}

// overrideFlags are only the flags that override the plan (validate makes
// no call, so it has no --call-timeout).
func (a *apiFlags) overrideFlags() []flagDef {
	return []flagDef{
		stringFlag(&a.endpoint, "endpoint", "", "API base URL, overriding the plan's (e.g. http://127.0.0.1:8080 for a simulator)"),
		enumFlag(&a.api, "api", "", []string{"", "v2", "v3"}, "API generation `v2|v3`, overriding the plan's (the plan is validated under its rules)"),
	}
}

// planOptions returns the planner options that read a plan as these flags
// will run it: under the overridden API's rules, with the overrides in the
// rollout's spec (and so in its hash).
func (a *apiFlags) planOptions(env *Env, secrets bool) planner.Options {
	return planner.Options{ResolveSecrets: secrets, LookupEnvFunc: env.lookupEnv(),
		API:      planner.Override{Value: a.api, From: "--api"},
		Endpoint: planner.Override{Value: a.endpoint, From: "--endpoint"}}
}

// apiFactory builds CVM clients for rollouts with the overrides applied.
// A spec of a named account (spec.At a location) is signed with that
// account's credentials, resolved in this process.
func apiFactory(a apiFlags, creds cvm.CredentialProvider) func(spec rollout.Spec) (cvm.API, error) {
	return func(spec rollout.Spec) (cvm.API, error) {
		creds := creds
		if !a.oneKey {
			var err error
			if creds, err = specCredentials(context.Background(), spec, creds); err != nil {
				return nil, err
			}
		}
		return cvm.New(cvm.Config{
			Generation: cvm.Generation(cmp.Or(a.api, spec.API)),
			Endpoint:   cmp.Or(a.endpoint, spec.Endpoint),
			Region:     spec.Region,
			Provider:   creds,
			Timeout:    a.timeout,
		})
	}
}

// Retries of one pre-flight DescribeInstances batch. A describe changes
// nothing, so whatever may pass by itself (a gateway's 5xx, a dropped
// connection, throttling) is simply asked again; a person is waiting on
// plan and apply, so the budget is a minute or two, not the workers' half
// hour.
const (
	// preflightTriesDefault bounds the calls for one batch.
	preflightTriesDefault = 8
	// preflightDeadlineDefault bounds the time from a batch's first call
	// to the start of its last retry.
	preflightDeadlineDefault = 2 * time.Minute
	// preflightBaseDefault and preflightCapDefault shape the full-jitter
	// exponential backoff (AWS "Exponential Backoff and Jitter"): the n-th
	// retry waits a random time below min(cap, base·2ⁿ⁻¹).
	preflightBaseDefault = 500 * time.Millisecond
	preflightCapDefault  = 15 * time.Second
	// preflightProgressEvery is how often a long pre-flight reports how far
	// it got. Runs shorter than this print nothing.
	preflightProgressEvery = 5 * time.Second
)

// describeConfig configures the DescribeFunc of the CLI's pre-flights.
type describeConfig struct {
	api  cvm.API
	lim  ratelimit.Limiter
	key  string
	rate float64
	// tries and deadline bound the calls for one batch. Default
	// preflightTriesDefault and preflightDeadlineDefault.
	tries    int
	deadline time.Duration
	// base and cap shape the backoff between tries. Default
	// preflightBaseDefault and preflightCapDefault.
	base, cap time.Duration
	// sleep waits d, or returns ctx.Err() when ctx ends first. Defaults to
	// a timer.
	sleep func(ctx context.Context, d time.Duration) error
	// rand returns a float in [0,1) for jitter. Defaults to math/rand/v2.
	rand func() float64
	// clock reads the time for deadlines and progress. Defaults to the
	// wall clock.
	clock clock.Clock
	// progress, when set, receives a line every progressEvery while the
	// pre-flight of total instances runs. Defaults to no progress.
	progress      io.Writer
	total         int
	progressEvery time.Duration
}

// describeFunc adapts a CVM client to the planner's pre-flight, under the
// describe budget, retrying what may pass (see describeWith).
func describeFunc(api cvm.API, lim ratelimit.Limiter, key string, rate float64) rollout.DescribeFunc {
	return describeWith(describeConfig{api: api, lim: lim, key: key, rate: rate})
}

// preflightDescribe is the DescribeFunc of plan and apply: describeFunc's
// retries, with the test hooks, and progress on stderr for a long run.
func preflightDescribe(env *Env, plan *planner.Plan, api cvm.API, lim ratelimit.Limiter, key string) rollout.DescribeFunc {
	cfg := describeConfig{api: api, lim: lim, key: key, rate: plan.Spec.DescribeRate,
		progress: env.Stderr, total: len(plan.Targets)}
	if h := env.Hooks; h != nil {
		cfg.sleep, cfg.clock = h.Sleep, h.Clock
	}
	return describeWith(cfg)
}

// describeWith returns a DescribeFunc that calls DescribeInstances under
// the describe budget. Retryable and throttled errors (cvm.Classify) are
// asked again after a capped full-jitter exponential backoff, each try
// waiting for the limiter again, until cfg.tries or cfg.deadline run out; a
// throttle also slows every caller of the key (Limiter.Throttled).
// Permanent and fatal errors fail at once. A describe is always safe to
// repeat: unlike a reset, whether an earlier try landed does not matter.
// The DescribeFunc is safe for concurrent use.
func describeWith(cfg describeConfig) rollout.DescribeFunc {
	cfg.tries = cmp.Or(cfg.tries, preflightTriesDefault)
	cfg.deadline = cmp.Or(cfg.deadline, preflightDeadlineDefault)
	cfg.base = cmp.Or(cfg.base, preflightBaseDefault)
	cfg.cap = cmp.Or(cfg.cap, preflightCapDefault)
	cfg.progressEvery = cmp.Or(cfg.progressEvery, preflightProgressEvery)
	if cfg.sleep == nil {
		cfg.sleep = sleepCtx
	}
	if cfg.rand == nil {
		cfg.rand = rand.Float64
	}
	cfg.clock = clock.Or(cfg.clock)
	var prog *progress
	if cfg.progress != nil {
		prog = &progress{w: cfg.progress, total: cfg.total, every: cfg.progressEvery}
	}
	return func(ctx context.Context, ids []string) (map[string]rollout.Observed, error) {
		start := cfg.clock.Now()
		if prog != nil {
			prog.begin(start)
		}
		for try := 1; ; try++ {
			if _, err := cfg.lim.Wait(ctx, cfg.key, cfg.rate); err != nil {
				return nil, err
			}
			list, err := cfg.api.DescribeInstances(ctx, ids)
			if err == nil {
				out := make(map[string]rollout.Observed, len(list))
				for i := range list {
					out[list[i].InstanceID] = worker.Observe(&list[i])
				}
				if prog != nil {
					prog.add(len(ids), cfg.clock.Now())
				}
				return out, nil
			}
			if ctx.Err() != nil {
				// Our own deadline or Ctrl-C, not the API's trouble.
				return nil, fmt.Errorf("describe %d instances: %w", len(ids), err)
			}
			class := cvm.Classify(err)
			if class == cvm.Throttled {
				_ = cfg.lim.Throttled(ctx, cfg.key)
			}
			if class != cvm.Retryable && class != cvm.Throttled {
				return nil, fmt.Errorf("describe %d instances: %s error, not retried: %w", len(ids), class, err)
			}
			// Full jitter spreads the retries of several clients hit by
			// the same outage; the limiter still spaces every call.
			d := cfg.base << min(try-1, 20)
			if d > cfg.cap || d <= 0 {
				d = cfg.cap
			}
			d = time.Duration(cfg.rand() * float64(d))
			elapsed := cfg.clock.Now().Sub(start)
			if try >= cfg.tries || elapsed+d > cfg.deadline {
				return nil, fmt.Errorf("describe %d instances: gave up after %d tries in %s: %w", len(ids), try, elapsed.Round(time.Millisecond), err)
			}
			if serr := cfg.sleep(ctx, d); serr != nil {
				return nil, fmt.Errorf("describe %d instances: %w (while waiting to retry after: %w)", len(ids), serr, err)
			}
		}
	}
}

// sleepCtx waits d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// progress reports how far a pre-flight got: a line like
// "pre-flight: 12,300 / 200,000 instances" once every `every`, the first
// only after `every` has passed, so short runs stay quiet; and a last line
// when the pre-flight that printed ends. Safe for concurrent use.
type progress struct {
	w     io.Writer
	total int
	every time.Duration

	mu                sync.Mutex
	start, last       time.Time
	done              int
	printed, finished bool
}

// begin notes the start of a batch at now; the first one starts the clock.
func (p *progress) begin(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.start.IsZero() {
		p.start, p.last = now, now
	}
}

// add counts n more instances described at now and prints when due.
func (p *progress) add(n int, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	switch {
	case p.finished:
	case p.done >= p.total && p.printed:
		p.finished = true
		fmt.Fprintf(p.w, "pre-flight: %s / %s instances in %s\n", thousands(p.done), thousands(p.total), now.Sub(p.start).Round(time.Second))
	case p.done < p.total && now.Sub(p.last) >= p.every:
		p.printed, p.last = true, now
		fmt.Fprintf(p.w, "pre-flight: %s / %s instances\n", thousands(p.done), thousands(p.total))
	}
}

// thousands formats n with commas: 200000 is "200,000".
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// fleetFromPlan builds simulated instances for every target of a plan, on
// an image other than their target so that each needs a reset.
func fleetFromPlan(p *planner.Plan) []cvmsim.Instance {
	zones := []string{"ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6"}
	out := make([]cvmsim.Instance, 0, len(p.Targets))
	for i, t := range p.Targets {
		g := p.Spec.Groups[t.Group]
		img := cvmsim.ImageLinuxOld
		if g.OS == "windows" {
			img = cvmsim.ImageWindowsOld
		}
		if img == g.ImageID {
			img = "img-0ld00000"
		}
		in := cvmsim.Instance{ID: t.InstanceID, Zone: cmp.Or(t.Zone, zones[i%len(zones)]),
			ImageID: img, OS: cmp.Or(g.OS, "linux"), State: "RUNNING"}
		if r := p.Spec.LocationOf(t.Group).Region; r != cvmsim.RegionDefault {
			// A group of another region: the simulator serves it too
			// (simRegions).
			in.Region, in.Zone = r, cmp.Or(t.Zone, r+zones[i%len(zones)][len("ap-guangzhou"):])
		}
		out = append(out, in)
	}
	return out
}

// startSim serves a simulator on a free loopback port until ctx ends.
func startSim(ctx context.Context, sim *cvmsim.Server, addr string, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", cmp.Or(addr, "127.0.0.1:0"))
	if err != nil {
		return "", fmt.Errorf("simulator: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("simulator stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return "http://" + ln.Addr().String(), nil
}

// loadPlan loads and validates the plan at path with the --api and
// --endpoint overrides applied: the shared prologue of run, plan and apply.
func loadPlan(env *Env, a *apiFlags, path string, secrets bool) (*planner.Plan, error) {
	plan, err := planner.Load(path, a.planOptions(env, secrets))
	if oe := (*planner.OverrideError)(nil); errors.As(err, &oe) {
		return nil, &ExitError{Code: exitUsage, Err: err}
	}
	if err != nil {
		return nil, &ExitError{Code: exitFailed, Err: err}
	}
	return plan, nil
}

// simRegions are the regions of a plan's groups besides the simulator's
// default one.
func simRegions(p *planner.Plan) []string {
	var out []string
	for _, l := range p.Spec.Locations() {
		if l.Region != cvmsim.RegionDefault && !slices.Contains(out, l.Region) {
			out = append(out, l.Region)
		}
	}
	return out
}
