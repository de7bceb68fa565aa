package cli

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fleetreset/fleetreset/control"
	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/embedded"
	"github.com/fleetreset/fleetreset/journal"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/fleetreset/fleetreset/worker"
)

// Exit codes of run.
const (
	exitFailed  = 1 // some instance failed, or the rollout was aborted
	exitUsage   = 2
	exitStopped = 3 // paused or awaiting approval with nobody to answer
)

func runCmd(ctx context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "run", "[flags] PLAN", "Run a whole rollout in this process: an embedded Redis (unless REDIS_URL is set), in-process workers and, with --simulate, an in-process simulator seeded with the plan's instances. Exit status: 0 when every instance was reset and verified, 1 when any failed or the rollout was aborted, 3 when it paused")
	var a apiFlags
	a.register(fs)
	simulate := fs.Bool("simulate", false, "run against an in-process CVM simulator seeded with the plan's instances")
	autoApprove := fs.Bool("auto-approve", false, "approve manual gates without asking")
	retryFailed := fs.Bool("retry-failed", false, "give instances that failed in an earlier run of this plan a new attempt (with the journal, or on REDIS_URL)")
	wait := fs.Bool("wait", false, "keep waiting when the rollout pauses (resume it from another terminal) instead of exiting with status 3")
	concurrency := fs.Int("concurrency", worker.ConcurrencyDefault, "reset tasks handled at once")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus /metrics on this address while the rollout runs (e.g. 127.0.0.1:9464)")
	stateDir := fs.String("state-dir", ".fleetreset", "directory of the crash-safety journal (embedded Redis only; with --simulate a temporary one, since the simulator itself is gone after the run)")
	grace := fs.Duration("reconcile-grace", 0, "how long after an unanswered call to wait before asking the API whether it landed (default 2m; 5s with --simulate)")
	// The demo's simulator accepts a request 30 s after signing, not 5 min,
	// so that a lost request is retried within the demo's patience.
	simCfg := cvmsim.Config{ResetDuration: 2 * time.Second, ReplayWindow: 30 * time.Second}
	simFlags(fs, &simCfg, "sim-")
	plan, err := loadPlanArg(env, fs, &a, args, true)
	if err != nil {
		return err
	}
	log := c.logger(env, true)
	out := env.Stdout

	// Redis: REDIS_URL, or an embedded one with a journal on disk.
	url := c.redisURL
	var jrnl *journal.Journal
	var recovered ledger.CreateOptions
	if url == "" {
		er, err := embedded.Start("")
		if err != nil {
			return err
		}
		defer er.Close()
		url = er.URL()
		dir := *stateDir
		if *simulate {
			// The in-process simulator forgets its fleet when the process
			// ends, so a journal would only describe resets of a simulator
			// that no longer exists: keep it for this run alone.
			tmp, err := os.MkdirTemp("", "fleetreset-demo-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		}
		jpath := journal.Path(dir, plan.Spec.ID, plan.Spec.PlanHash)
		if recovered, err = journal.Recover(jpath); err != nil {
			return err
		}
		recovered.Wave = min(recovered.Wave, len(plan.Spec.Waves)-1)
		if jrnl, err = journal.Open(jpath); err != nil {
			return err
		}
		defer jrnl.Close()
		if len(recovered.Seeds) > 0 {
			fmt.Fprintf(out, "Resuming from %s: %d instances already touched.\n", jpath, len(recovered.Seeds))
		}
		fmt.Fprintf(out, "Embedded Redis at %s (REDIS_URL=%s fleetreset status %s)\n", er.Addr(), url, plan.Spec.ID)
	}
	if h := env.Hooks; h != nil && h.Redis != nil {
		h.Redis(url)
	}
	cn, err := openURL(ctx, url, c.namespace)
	if err != nil {
		return err
	}
	defer cn.Close()

	// The API: a simulator, or the real one with credentials from the environment.
	var creds cvm.Credentials
	var sim *cvmsim.Server
	if *simulate {
		sim = cvmsim.New(simCfg)
		sim.AddInstances(fleetFromPlan(plan)...)
		simCtx, stopSim := context.WithCancel(context.WithoutCancel(ctx))
		defer stopSim()
		if a.endpoint, err = startSim(simCtx, sim, "", log); err != nil {
			return err
		}
		creds = cvm.Credentials{SecretID: cmp.Or(simCfg.SecretID, cvmsim.SecretIDDefault), SecretKey: cvm.Secret(cmp.Or(simCfg.SecretKey, cvmsim.SecretKeyDefault))}
		if *grace == 0 {
			// The simulator answers at once: short calls allow a short grace.
			*grace = 5 * time.Second
		}
		a.replay = cmp.Or(a.replay, simCfg.ReplayWindow, cvmsim.ReplayWindowDefault)
		fmt.Fprintf(out, "Simulator at %s with %d instances (reset takes %s)\n", a.endpoint, len(plan.Targets), cmp.Or(simCfg.ResetDuration, cvmsim.ResetDurationDefault))
		if h := env.Hooks; h != nil && h.Simulator != nil {
			h.Simulator(sim, a.endpoint)
		}
	} else if creds, err = cvm.DefaultCredentials(); err != nil {
		return err
	}
	a.timeout = callTimeout(a.timeout, *grace)
	apiFor := apiFactory(a, creds)

	var lim ratelimit.Limiter
	if jrnl != nil {
		lim = ratelimit.NewLocal(ratelimit.Config{})
	} else {
		lim = ratelimit.NewRedis(cn.rdb, ratelimit.Config{Prefix: cn.prefix})
	}
	ctl := cn.controller(c.namespace, log)
	wcfg := worker.Config{Redis: cn.opt, Controller: ctl, Limiter: lim, APIFunc: apiFor,
		Endpoint: a.endpoint, API: a.api, Credentials: &creds, Concurrency: *concurrency,
		ReconcileGrace: *grace, CallTimeout: a.timeout, ReplayWindow: a.replay, Logger: log, LookupEnv: env.lookupEnv()}
	if err := serveWorkerMetrics(ctx, *metricsAddr, cn, &wcfg, log); err != nil {
		return err
	}
	if jrnl != nil {
		wcfg.Journal = jrnl
	}
	w, err := worker.New(wcfg)
	if err != nil {
		return err
	}
	// Workers stop only after the progress loop is done, so that calls in
	// flight when Ctrl-C arrives finish and are recorded.
	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(wctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			stopWorkers()
			<-workerDone
		})
	}
	defer stop()

	api, err := apiFor(plan.Spec)
	if err != nil {
		return err
	}
	res, err := planner.Apply(ctx, plan, planner.ApplyConfig{
		Ledger: cn.ledger, Client: cn.client, Namespace: c.namespace, Recovered: recovered,
		Describe: describeFunc(api, lim, ratelimit.Key("DescribeInstances", cmp.Or(a.endpoint, plan.Spec.Endpoint, "default")+"|"+plan.Spec.Region, creds.SecretID), plan.Spec.DescribeRate),
	})
	if err != nil {
		return &ExitError{Code: exitFailed, Err: err}
	}
	if len(res.Skipped) > 0 {
		fmt.Fprintf(out, "Skipping %s already on the target image.\n", plural(len(res.Skipped), "instance"))
	}
	fmt.Fprintf(out, "Rollout %s: %s in %s.\n", plan.Spec.ID, plural(len(plan.Targets), "instance"), plural(len(plan.Spec.Waves), "wave"))
	if *retryFailed {
		rr, err := ctl.RetryFailed(ctx, plan.Spec.ID, false)
		if err != nil && !errors.Is(err, control.ErrNotChanged) {
			return err
		}
		fmt.Fprintf(out, "Retrying %s that failed before.\n", plural(len(rr.Requeue), "instance"))
	} else if len(recovered.Seeds) > 0 {
		// Failures remembered by the journal still count against the
		// budgets: a run that stopped on a breach stays stopped.
		if r, err := cn.ledger.Get(ctx, plan.Spec.ID); err == nil && r.Wave < len(r.Waves) {
			w := r.Waves[r.Wave]
			if err := ctl.AfterFinish(ctx, plan.Spec, ledger.FinishResult{Wave: r.Wave, WaveCounters: w.Counters, Overall: r.Counters, WaveComplete: w.Complete, WaveSize: w.Size, Total: r.Total}); err != nil {
				return err
			}
		}
	}

	r, err := watch(ctx, env, ctl, plan.Spec.ID, watchOpts{autoApprove: *autoApprove, wait: *wait})
	stop()
	if r != nil {
		printSummary(out, r)
	}
	if sim != nil && r != nil {
		printSimCheck(out, sim, plan)
	}
	if err != nil {
		return err
	}
	switch {
	case r.State == ledger.Completed && r.Counters.Failures() == 0 && r.Counters.Cancelled == 0:
		return nil
	case r.State == ledger.Paused || r.State == ledger.AwaitingApproval:
		hint := "after fixing the cause, run the same command with --retry-failed (or with --wait, and `fleetreset resume` from another terminal)"
		if r.State == ledger.AwaitingApproval {
			hint = "run the same command with --auto-approve, or with --wait and `fleetreset approve " + r.ID + "` from another terminal"
		}
		return &ExitError{Code: exitStopped, Err: fmt.Errorf("rollout %s is %s: %s; %s", r.ID, r.State, r.Reason, hint)}
	}
	return &ExitError{Code: exitFailed, Err: fmt.Errorf("rollout %s ended %s with %d failed; after fixing the cause, run the same command with --retry-failed", r.ID, r.State, r.Counters.Failures())}
}

type watchOpts struct {
	autoApprove bool
	wait        bool
}

// watch shows progress until the rollout ends, or stops where nobody can
// answer it (a pause without --wait, an approval without a terminal).
func watch(ctx context.Context, env *Env, ctl *control.Controller, id string, o watchOpts) (*ledger.Rollout, error) {
	cn := ctl.Ledger()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last string
	lastPrint := time.Time{}
	var stdin *bufio.Reader
	if env.Stdin != nil {
		stdin = bufio.NewReader(env.Stdin)
	}
	for {
		r, err := cn.Get(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, &ExitError{Code: 130, Err: errors.New("interrupted; calls in flight were allowed to finish")}
			}
			return nil, err
		}
		if h := env.Hooks; h != nil && h.Progress != nil {
			h.Progress(string(r.State))
		}
		line := progressLine(r)
		if env.Interactive {
			fmt.Fprintf(env.Stderr, "\r\033[K%s", line)
		} else if line != last && time.Since(lastPrint) > time.Second || r.State.Terminal() {
			fmt.Fprintln(env.Stdout, line)
			lastPrint = time.Now()
		}
		last = line
		switch r.State {
		case ledger.Completed, ledger.Aborted:
			if env.Interactive {
				fmt.Fprintln(env.Stderr)
			}
			return r, nil
		case ledger.Paused:
			if !o.wait {
				if env.Interactive {
					fmt.Fprintln(env.Stderr)
				}
				return r, nil
			}
		case ledger.AwaitingApproval:
			switch {
			case o.autoApprove:
				if _, err := ctl.Approve(ctx, id); err != nil && ctx.Err() == nil {
					return r, err
				}
			case env.Interactive && stdin != nil:
				fmt.Fprintf(env.Stderr, "\n%s. Approve? [y/N] ", r.Reason)
				ans, _ := stdin.ReadString('\n')
				if strings.HasPrefix(strings.ToLower(strings.TrimSpace(ans)), "y") {
					if _, err := ctl.Approve(ctx, id); err != nil {
						return r, err
					}
				} else {
					return r, nil
				}
			case !o.wait:
				return r, nil
			}
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(env.Stderr, "\ninterrupted: stopping workers (calls in flight finish)")
			r, _ := cn.Get(context.WithoutCancel(ctx), id)
			return r, &ExitError{Code: 130, Err: errors.New("interrupted; run the same command again to continue")}
		case <-tick.C:
		}
	}
}

func progressLine(r *ledger.Rollout) string {
	done := r.Counters.Terminal
	width := 24
	filled := 0
	if r.Total > 0 {
		filled = done * width / r.Total
	}
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	return fmt.Sprintf("[wave %d/%d] %s %d/%d  ok %d  skipped %d  failed %d  · %s",
		min(r.Wave+1, len(r.Waves)), len(r.Waves), bar, done, r.Total,
		r.Counters.Succeeded, r.Counters.Skipped, r.Counters.Failures(), r.State)
}

func printSummary(out io.Writer, r *ledger.Rollout) {
	fmt.Fprintf(out, "\nRollout %s: %s", r.ID, r.State)
	if r.Reason != "" {
		fmt.Fprintf(out, " (%s)", r.Reason)
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "  %-6s %6s %9s %8s %7s %9s %10s\n", "wave", "size", "succeeded", "skipped", "failed", "ambiguous", "cancelled")
	for _, w := range r.Waves {
		fmt.Fprintf(out, "  %-6d %6d %9d %8d %7d %9d %10d\n", w.Index+1, w.Size, w.Counters.Succeeded, w.Counters.Skipped, w.Counters.Failed, w.Counters.Ambiguous, w.Counters.Cancelled)
	}
	c := r.Counters
	fmt.Fprintf(out, "  %-6s %6d %9d %8d %7d %9d %10d\n", "total", r.Total, c.Succeeded, c.Skipped, c.Failed, c.Ambiguous, c.Cancelled)
}

// printSimCheck prints what the simulator saw: how many times each target
// was reset, and whether it runs its target image now.
func printSimCheck(out io.Writer, sim *cvmsim.Server, plan *planner.Plan) {
	st := sim.Stats()
	once, twice, never, onTarget := 0, 0, 0, 0
	for _, t := range plan.Targets {
		switch n := st.AcceptedResets[t.InstanceID]; {
		case n == 0:
			never++
		case n == 1:
			once++
		default:
			twice++
		}
		if v, ok := sim.Instance(t.InstanceID); ok && v.ImageID == plan.Spec.Groups[t.Group].ImageID {
			onTarget++
		}
	}
	fmt.Fprintf(out, "Simulator: %d reset exactly once, %d more than once, %d never; %d/%d on the target image; %d API calls, %d rate-limited.\n",
		once, twice, never, onTarget, len(plan.Targets), st.TotalCalls, sumMap(st.RateLimited))
}

func sumMap(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
