package cli

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/embedded"
	"github.com/fleetreset/fleetreset/journal"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/fleetreset/fleetreset/worker"
)

// Exit codes of run.
const (
	exitFailed  = 1 // some instance failed, or the rollout was aborted
	exitUsage   = 2
	exitStopped = 3 // paused, awaiting approval with nobody to answer, or stopped by Ctrl-C or SIGTERM
)

type runOpts struct {
	common
	api          apiFlags
	simulate     bool
	autoApprove  bool
	retryFailed  bool
	wait         bool
	concurrency  int
	metricsAddr  string
	stateDir     string
	adoptJournal bool
	drainTimeout time.Duration
	grace        time.Duration
	sim          cvmsim.Config
}

func (o *runOpts) flags() []flagDef {
	// The demo's simulator accepts a request 30 s after signing, not 5 min,
	// so that a lost request is retried within the demo's patience.
	o.sim = cvmsim.Config{ResetDuration: 2 * time.Second, ReplayWindow: 30 * time.Second}
	return append(append(append(o.common.flags(), o.api.flags()...),
		boolFlag(&o.simulate, "simulate", false, "run against an in-process CVM simulator seeded with the plan's instances (always on an embedded Redis: REDIS_URL is ignored)"),
		boolFlag(&o.autoApprove, "auto-approve", false, "approve manual gates without asking"),
		boolFlag(&o.retryFailed, "retry-failed", false, "give instances that failed in an earlier run of this plan a new attempt (with the journal, or on REDIS_URL)"),
		boolFlag(&o.wait, "wait", false, "keep waiting when the rollout pauses (resume it from another terminal) instead of exiting with status 3"),
		atLeastFlag(&o.concurrency, "concurrency", worker.ConcurrencyDefault, 1, "reset tasks handled at once"),
		stringFlag(&o.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this address while the rollout runs (e.g. 127.0.0.1:9464)"),
		stringFlag(&o.stateDir, "state-dir", ".fleetreset", "directory of the crash-safety journal, relative to the current directory (embedded Redis only; with --simulate a temporary one, since the simulator itself is gone after the run)"),
		boolFlag(&o.adoptJournal, "adopt-journal", false, "resume from a journal written against another endpoint or SecretId: the same fleet reached by another URL, or a rotated key"),
		durationFlag(&o.drainTimeout, "drain-timeout", 0, "after a pause, Ctrl-C or SIGTERM, how long to wait for reinstalls the cloud accepted to be verified before exiting (default: the plan's verify timeout)"),
		durationFlag(&o.grace, "reconcile-grace", 0, "how long after an unanswered call to wait before asking the API whether it landed (default 2m; 5s with --simulate)")),
		importFlags("sim-", func(fs *flag.FlagSet) { cvmsim.RegisterFlags(fs, &o.sim) })...)
}

func runCmd(ctx context.Context, env *Env, o *runOpts) error {
	fs, c, a, simCfg := o.fs, &o.common, o.api, o.sim
	simulate, autoApprove, retryFailed, wait, concurrency, metricsAddr := &o.simulate, &o.autoApprove, &o.retryFailed, &o.wait, &o.concurrency, &o.metricsAddr
	stateDir, adoptJournal, drainTimeout, grace := &o.stateDir, &o.adoptJournal, &o.drainTimeout, &o.grace
	plan, err := loadPlan(env, &a, o.arg(0), true)
	if err != nil {
		return err
	}
	if len(plan.Selections) > 0 {
		if *simulate {
			return &ExitError{Code: exitUsage, Err: errors.New("run: --simulate seeds its simulator with the plan's listed instances and cannot resolve select; start `fleetreset sim --fleet N` and run with --endpoint")}
		}
		creds, err := defaultCredentials(ctx, plan.Spec, a)
		if err != nil {
			return err
		}
		if plan, err = selectPlan(ctx, env, c, a, o.arg(0), true, plan, creds); err != nil {
			return err
		}
	}
	log := c.logger(env, true)
	out := env.Stdout
	id := plan.Spec.ID

	url := c.redisURL
	if *simulate && url != "" {
		if flagSet(fs, "redis") {
			return &ExitError{Code: exitUsage, Err: errors.New("run: --simulate always runs on its own embedded Redis; drop --redis")}
		}
		// The simulated fleet exists only in this process: nothing in a
		// shared Redis can concern it, and workers started there would
		// serve (and fail, against the simulator) the rollouts of others.
		fmt.Fprintln(out, "Ignoring REDIS_URL: --simulate runs on its own embedded Redis.")
		url = ""
	}

	// The API: a simulator, or the real one with credentials from the environment.
	var creds cvm.CredentialProvider
	var sim *cvmsim.Server
	if *simulate {
		if err := simCfg.Validate(); err != nil {
			return &ExitError{Code: exitUsage, Err: err}
		}
		simCfg = simServing(simCfg, plan)
		simCfg.Regions = append(simCfg.Regions, simRegions(plan)...)
		// The simulator knows one key: every account of the plan uses it.
		a.oneKey = true
		sim = cvmsim.New(simCfg)
		sim.AddInstances(fleetFromPlan(plan)...)
		// Health endpoints, when the plan checks health: one loopback
		// address per instance.
		if err := sim.Start(); err != nil {
			return &ExitError{Code: exitFailed, Err: fmt.Errorf("simulator: %w", err)}
		}
		defer sim.Close()
		simCtx, stopSim := context.WithCancel(context.WithoutCancel(ctx))
		defer stopSim()
		if a.endpoint, err = startSim(simCtx, sim, "", log); err != nil {
			return err
		}
		// The rollout keeps the endpoint it runs against, and its
		// Prometheus alarms are the simulator's (POST /admin/alert fires one).
		plan.Spec.Endpoint = a.endpoint
		if sw := plan.Spec.StopWhen; sw != nil {
			for i := range sw.Prometheus {
				sw.Prometheus[i].URL = a.endpoint + "/prometheus"
			}
		}
		creds = cvm.StaticProvider(cvm.Credentials{SecretID: cmp.Or(simCfg.SecretID, cvmsim.SecretIDDefault), SecretKey: cvm.Secret(cmp.Or(simCfg.SecretKey, cvmsim.SecretKeyDefault))})
		if *grace == 0 {
			// The simulator answers at once: short calls allow a short grace.
			*grace = 5 * time.Second
		}
		a.replay = cmp.Or(a.replay, simCfg.ReplayWindow, cvmsim.ReplayWindowDefault)
		fmt.Fprintf(out, "Simulator at %s with %d instances (reset takes %s)\n", a.endpoint, len(plan.Targets), cmp.Or(simCfg.ResetDuration, cvmsim.ResetDurationDefault))
		if h := env.Hooks; h != nil && h.Simulator != nil {
			h.Simulator(sim, a.endpoint)
		}
	} else if creds, err = defaultCredentials(ctx, plan.Spec, a); err != nil {
		return err
	}
	a.timeout = worker.CallTimeout(a.timeout, *grace)
	// The rollout keeps the credential identity it was applied with
	// (rollout.Account): workers holding another hand its tasks back.
	if plan.Spec.UsesDefaultAccount() {
		plan.Spec.Identity = creds.Identity()
	}
	apiFor := apiFactory(a, creds)

	// Redis: an embedded one with a journal on disk, or REDIS_URL under a
	// namespace of this rollout's own.
	ns := c.namespace
	var jrnl *journal.Journal
	var recovered ledger.CreateOptions
	redisEnv := env.getenv
	if url == "" {
		redisEnv = func(string) string { return "" } // the embedded Redis has no password
		er, err := embedded.Start("")
		if err != nil {
			return err
		}
		defer er.Close()
		url = er.URL()
		var closeJournal func()
		if jrnl, recovered, closeJournal, err = openJournal(env, plan, *stateDir, *simulate, *adoptJournal, scopeOf(ctx, a, plan, creds)); err != nil {
			return err
		}
		defer closeJournal()
		fmt.Fprintf(out, "Embedded Redis at %s (REDIS_URL=%s fleetreset status %s)\n", er.Addr(), url, id)
	} else {
		// Workers serve every rollout queued in their namespace, so the
		// workers of this process get a namespace no `apply` writes to:
		// they serve the rollout this command creates and nothing else.
		ns = runNamespace(c.namespace, id)
		if err := refuseApplied(ctx, redisEnv, url, c.namespace, id); err != nil {
			return err
		}
		fmt.Fprintf(out, "Rollout state in REDIS_URL under this run's own namespace %s (fleetreset status --namespace %s %s)\n", ns, ns, id)
	}
	if h := env.Hooks; h != nil && h.Redis != nil {
		h.Redis(url)
	}
	cn, err := openURL(ctx, redisEnv, url, ns)
	if err != nil {
		return err
	}
	defer cn.Close()

	var lim ratelimit.Limiter
	if jrnl != nil {
		lim = ratelimit.NewLocal(ratelimit.Config{})
	} else {
		// The API budget is the account's: share it with the workers of
		// the namespace this run was started in.
		lim = ratelimit.NewRedis(cn.rdb, ratelimit.Config{Prefix: cmp.Or(c.namespace, tasks.DefaultNamespace) + ":"})
	}
	ctl := cn.controller(ns, log)
	wcfg := worker.Config{Redis: cn.opt, Engine: ctl, Limiter: lim, APIFunc: apiFor,
		Endpoint: a.endpoint, API: a.api, Provider: creds, Concurrency: *concurrency,
		ReconcileGrace: *grace, CallTimeout: a.timeout, ReplayWindow: a.replay, Logger: log, LookupEnv: env.lookupEnv(),
		Reselect: reselector(env, a, creds, lim)}
	if a.oneKey {
		wcfg.AccountProvider = func(context.Context, rollout.AccountSource) (cvm.CredentialProvider, error) { return creds, nil }
	}
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
	// Workers stop only after the rollout was drained, so that calls in
	// flight when Ctrl-C or SIGTERM arrives finish and are recorded, and
	// accepted reinstalls get verified.
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
	req := engine.ApplyRequest{
		Spec: plan.Spec, Targets: plan.Targets, Overrides: plan.Overrides, Recovered: recovered, Source: plan.Source,
		Describe: describeFunc(api, lim, ratelimit.AccountKey("DescribeInstances", cmp.Or(a.endpoint, plan.Spec.Endpoint), plan.Spec.Region, creds.Identity()), plan.Spec.DescribeRate),
	}
	if plan.Spec.MultiLocation() || plan.Spec.AccountName != "" {
		req.DescribeAt = locationDescribe(env, a, plan, lim, creds)
	}
	res, err := ctl.Apply(ctx, req)
	if err != nil && ctx.Err() != nil {
		// Apply is all or nothing: an interrupted one started nothing.
		return &ExitError{Code: exitStopped, Err: fmt.Errorf("rollout %s stopped (%s) before it started; to start it: %s", id, context.Cause(ctx), continueCommand(fs, jrnl != nil && !*simulate, *stateDir))}
	}
	if err != nil {
		return &ExitError{Code: exitFailed, Err: err}
	}
	if len(res.Skipped) > 0 {
		fmt.Fprintf(out, "Skipping %s already on the target image.\n", plural(len(res.Skipped), "instance"))
	}
	fmt.Fprintf(out, "Rollout %s: %s in %s.\n", id, plural(len(plan.Targets), "instance"), plural(len(plan.Spec.Waves), "wave"))
	if *retryFailed {
		rr, err := ctl.RetryFailed(ctx, id, false)
		if err != nil && !errors.Is(err, engine.ErrNotChanged) {
			return err
		}
		fmt.Fprintf(out, "Retrying %s that failed before.\n", plural(len(rr.Requeue), "instance"))
	} else if len(recovered.Seeds) > 0 || !res.Created {
		// Failures remembered by the journal (or by Redis) still count
		// against the budgets: a run that stopped on a breach stays stopped.
		if err := recheckBudgets(ctx, ctl, plan); err != nil {
			return err
		}
	}

	r, err := watch(ctx, env, ctl, id, watchOpts{autoApprove: *autoApprove, wait: *wait})
	interrupted := errors.Is(err, errInterrupted)
	if err != nil && !interrupted {
		return err
	}
	bg := context.WithoutCancel(ctx)
	pausedHere := false
	if interrupted {
		fmt.Fprintf(out, "\nStopping (%s): no new reset starts; calls in flight finish.\n", context.Cause(ctx))
		// A pause stops new calls at the ledger, the one place every
		// handler asks before it calls, while verification goes on.
		if pausedHere, err = ctl.Interrupt(bg, id, interruptedReason); err != nil {
			return err
		}
	}
	drain(bg, out, cn.ledger, id, cmp.Or(*drainTimeout, plan.Spec.VerifyTimeout))
	stop()
	if r, err = cn.ledger.Get(bg, id); err != nil {
		return err
	}
	insts, err := cn.ledger.AllInstances(bg, r)
	if err != nil {
		return err
	}
	printSummary(out, r, insts)
	if sim != nil {
		printSimCheck(out, sim, plan)
	}
	if pausedHere && jrnl == nil {
		// In Redis the pause would outlive this process: give the rollout
		// back as it was, so that the same command continues it.
		if _, err := ctl.Resume(bg, id); err != nil && !errors.Is(err, engine.ErrNotChanged) {
			return err
		}
		if err := recheckBudgets(bg, ctl, plan); err != nil {
			return err
		}
	}
	again := continueCommand(fs, jrnl != nil && !*simulate, *stateDir)
	if *simulate {
		again += " (with --simulate it starts a new simulated fleet: the current one ends with this process)"
	}
	switch {
	case interrupted:
		left := leftRunning(insts)
		fmt.Fprintln(out, "Left running: "+left)
		return &ExitError{Code: exitStopped, Err: fmt.Errorf("rollout %s stopped (%s) with %s. To continue: %s", id, context.Cause(ctx), left, again)}
	case r.State == ledger.Completed && r.Counters.Failures() == 0 && r.Counters.Cancelled == 0:
		return nil
	case r.State == ledger.Paused || r.State == ledger.AwaitingApproval:
		fmt.Fprintln(out, "Left running: "+leftRunning(insts))
		nsFlag := ""
		if jrnl == nil {
			nsFlag = " --namespace " + ns
		}
		hint := "after fixing the cause, run " + withFlag(again, "retry-failed") + " (or the same command with --wait, and `fleetreset resume" + nsFlag + " " + id + "` from another terminal)"
		if r.State == ledger.AwaitingApproval {
			hint = "run " + withFlag(again, "auto-approve") + ", or with --wait and `fleetreset approve" + nsFlag + " " + id + "` from another terminal"
		}
		return &ExitError{Code: exitStopped, Err: fmt.Errorf("rollout %s is %s: %s; %s", id, r.State, r.Reason, hint)}
	}
	return &ExitError{Code: exitFailed, Err: fmt.Errorf("rollout %s ended %s with %d failed; after fixing the cause, run %s", id, r.State, r.Counters.Failures(), withFlag(again, "retry-failed"))}
}

type watchOpts struct {
	autoApprove bool
	wait        bool
	// noPrompt never asks for an approval on the terminal: the watch ends
	// there (fleetreset wait).
	noPrompt bool
}

// watch shows progress until the rollout ends, or stops where nobody can
// answer it (a pause without --wait, an approval without a terminal).
func watch(ctx context.Context, env *Env, ctl *engine.Engine, id string, o watchOpts) (*ledger.Rollout, error) {
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
				return nil, errInterrupted
			}
			return nil, err
		}
		if h := env.Hooks; h != nil && h.Progress != nil {
			h.Progress(string(r.State))
		}
		line := progressText(r)
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
			case env.Interactive && stdin != nil && !o.noPrompt:
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
			if env.Interactive {
				fmt.Fprintln(env.Stderr)
			}
			return r, errInterrupted
		case <-tick.C:
		}
	}
}

// printSummary prints every instance of r (insts, from the ledger) in one
// column: succeeded, skipped, failed, ambiguous, cancelled, in flight (the
// cloud accepted the reinstall, not verified yet) and pending (not called).
func printSummary(out io.Writer, r *ledger.Rollout, insts []*ledger.Instance) {
	fmt.Fprintf(out, "\nRollout %s: %s", r.ID, r.State)
	if r.Reason != "" {
		fmt.Fprintf(out, " (%s)", r.Reason)
	}
	fmt.Fprintln(out)
	open := make([]struct{ inFlight, pending int }, len(r.Waves))
	for _, in := range insts {
		if in.Wave < 0 || in.Wave >= len(open) {
			continue
		}
		switch in.State {
		case ledger.Calling, ledger.Resetting:
			open[in.Wave].inFlight++
		case ledger.Pending, ledger.Held:
			open[in.Wave].pending++
		}
	}
	const row = "  %-6v %6v %9v %8v %7v %9v %10v %9v %7v\n"
	fmt.Fprintf(out, row, "wave", "size", "succeeded", "skipped", "failed", "ambiguous", "cancelled", "in-flight", "pending")
	var inFlight, pending int
	for _, w := range r.Waves {
		o := open[w.Index]
		inFlight, pending = inFlight+o.inFlight, pending+o.pending
		fmt.Fprintf(out, row, w.Index+1, w.Size, w.Counters.Succeeded, w.Counters.Skipped, w.Counters.Failed, w.Counters.Ambiguous, w.Counters.Cancelled, o.inFlight, o.pending)
	}
	c := r.Counters
	fmt.Fprintf(out, row, "total", r.Total, c.Succeeded, c.Skipped, c.Failed, c.Ambiguous, c.Cancelled, inFlight, pending)
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
	drained, zero, healthy, hooks := 0, 0, 0, 0
	for _, t := range plan.Targets {
		if h := sim.WeightHistory(t.InstanceID); len(h) > 0 {
			drained++
			if h[len(h)-1].To == 0 {
				zero++
			}
		}
		if _, ok := sim.Health(t.InstanceID); ok {
			healthy++
		}
		hooks += len(sim.Invocations(t.InstanceID))
	}
	if drained > 0 || hooks > 0 {
		fmt.Fprintf(out, "Simulator: %d drained on the load balancer, %d left at weight 0; %d healthy now; %d hook commands run.\n",
			drained, zero, healthy, hooks)
	}
}

func sumMap(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
