package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/worker"
)

type validateOpts struct {
	common
	api     apiFlags
	secrets bool
}

func (o *validateOpts) flags() []flagDef {
	return append(append(o.common.flags(), o.api.overrideFlags()...),
		boolFlag(&o.secrets, "secrets", true, "resolve password references and check them against the API's password rules"))
}

func validateCmd(ctx context.Context, env *Env, o *validateOpts) error {
	a := &o.api
	bad := 0
	for _, path := range o.args {
		plan, err := planner.Load(path, a.planOptions(env, o.secrets))
		if oe := (*planner.OverrideError)(nil); errors.As(err, &oe) {
			return &ExitError{Code: exitUsage, Err: err} // the same for every plan
		}
		if err != nil {
			fmt.Fprintln(env.Stderr, err)
			bad++
			continue
		}
		for _, w := range plan.Warnings {
			fmt.Fprintln(env.Stderr, "warning:", w)
		}
		if plan.Unresolved() {
			fmt.Fprintf(env.Stdout, "%s: ok: rollout %s, %s listed and %s resolved at plan, apply and run\n", path, plan.Spec.ID, plural(len(plan.Targets), "instance"), plural(len(plan.Selections), "select"))
			continue
		}
		fmt.Fprintf(env.Stdout, "%s: ok: rollout %s, %s in %s\n", path, plan.Spec.ID, plural(len(plan.Targets), "instance"), plural(len(plan.Spec.Waves), "wave"))
	}
	if bad > 0 {
		return &ExitError{Code: exitFailed}
	}
	return nil
}

type planOpts struct {
	common
	api     apiFlags
	offline bool
}

func (o *planOpts) flags() []flagDef {
	return append(append(o.common.flags(), o.api.flags()...),
		boolFlag(&o.offline, "offline", false, "skip the API pre-flight"))
}

func planCmd(ctx context.Context, env *Env, o *planOpts) error {
	c, a := &o.common, o.api
	plan, err := loadPlan(env, &a, o.arg(0), true)
	if err != nil {
		return err
	}
	var pf *rollout.PreflightReport
	if !o.offline {
		creds, err := defaultCredentials(ctx, plan.Spec, a)
		if err != nil {
			return err
		}
		if plan, err = selectPlan(ctx, env, c, a, o.arg(0), true, plan, creds); err != nil {
			return err
		}
		api, err := apiFactory(a, creds)(plan.Spec)
		if err != nil {
			return err
		}
		lim, key := previewLimiter(ctx, c, plan.Spec.Region, cmp.Or(a.endpoint, plan.Spec.Endpoint), creds.Identity())
		describeAt := func(rollout.Location) rollout.DescribeFunc { return preflightDescribe(env, plan, api, lim, key) }
		if plan.Spec.MultiLocation() || plan.Spec.AccountName != "" {
			describeAt = locationDescribe(env, a, plan, lim, creds)
		}
		res, err := rollout.PreflightAllAt(ctx, plan.Spec, plan.Targets, describeAt)
		if err != nil {
			return err
		}
		pf = &res
	}
	printPreview(env, plan, planner.MakePreview(plan, pf))
	if pf != nil && len(pf.Refused) > 0 {
		return &ExitError{Code: exitFailed, Err: fmt.Errorf("%s", pf.RefusedSummary(20))}
	}
	return nil
}

// previewLimiter shares the fleet's describe budget when REDIS_URL is set,
// so a preview does not starve running workers; else it limits locally.
func previewLimiter(ctx context.Context, c *common, region, endpoint, identity string) (ratelimit.Limiter, string) {
	key := ratelimit.AccountKey("DescribeInstances", endpoint, region, identity)
	if c.redisURL != "" {
		if cn, err := c.open(ctx); err == nil {
			return ratelimit.NewRedis(cn.rdb, ratelimit.Config{Prefix: cn.prefix}), key
		}
	}
	return ratelimit.NewLocal(ratelimit.Config{}), key
}

func printPreview(env *Env, plan *planner.Plan, p planner.Preview) {
	out := env.Stdout
	fmt.Fprintf(out, "Rollout %s (%s, API %s, %s)\n", plan.Spec.ID, plan.Spec.Region, plan.Spec.API, cmp.Or(plan.Spec.Endpoint, "default endpoint"))
	fmt.Fprintf(out, "  %-5s %6s %8s %10s %-9s %s\n", "wave", "size", "to reset", "soak", "approval", "failure budget")
	for _, w := range p.Waves {
		appr := ""
		if w.Approval {
			appr = "manual"
		}
		fmt.Fprintf(out, "  %-5d %6d %8d %10s %-9s %s\n", w.Index+1, w.Size, w.ToReset, w.Soak, appr, w.Budget.String())
	}
	fmt.Fprintf(out, "  overall failure budget: %s, on breach: %s\n", plan.Spec.Budget.String(), plan.Spec.OnBreach)
	if b := plan.Spec.RegionBudget; b != nil {
		fmt.Fprintf(out, "  failure budget of each region: %s\n", b.String())
	}
	for _, l := range timingLines(plan.Spec) {
		fmt.Fprintf(out, "  %s\n", l)
	}
	if p.MaxUnavailable != "" {
		fmt.Fprintf(out, "  maxUnavailable: %s\n", p.MaxUnavailable)
	}
	if lines := plan.SelectionLines(); len(lines) > 0 {
		fmt.Fprintf(out, "Selected (protect tag %s):\n", plan.ProtectTag)
		for _, l := range lines {
			fmt.Fprintln(out, "  "+l)
		}
		if plan.Source != nil {
			fmt.Fprintln(out, "  each occurrence of the schedule resolves the selects again: instances tagged later join the next one")
		}
	}
	if lines := p.LocationLines(); len(lines) > 0 {
		how := "in parallel"
		if len(plan.Spec.RegionOrder) > 0 {
			how = "regions one after another (regionOrder)"
		}
		fmt.Fprintf(out, "Locations (%s, each on its own rate budget):\n", how)
		for _, l := range lines {
			fmt.Fprintln(out, "  "+l)
		}
	}
	fmt.Fprintln(out, "Zones:")
	for _, z := range sortedKeys(p.ZoneCounts) {
		fmt.Fprintf(out, "  %-20s %d\n", cmp.Or(z, "(unknown)"), p.ZoneCounts[z])
	}
	if pf := p.Preflight; pf != nil {
		fmt.Fprintf(out, "Pre-flight: %d DescribeInstances calls; %d to skip, %d refused.\n", pf.DescribeCalls, len(pf.Skipped), len(pf.Refused))
		for _, id := range sortedKeys(pf.Skipped) {
			fmt.Fprintf(out, "  skip   %s: %s\n", id, pf.Skipped[id])
		}
		if n := len(pf.Awaited); n > 0 {
			fmt.Fprintf(out, "  %s with an operation running: waited for and judged, never reset again while it runs\n", plural(n, "instance"))
		}
		for _, id := range sortedKeys(pf.Refused) {
			fmt.Fprintf(out, "  refuse %s: %s\n", id, pf.Refused[id])
		}
	} else {
		fmt.Fprintln(out, "Pre-flight: skipped (--offline).")
	}
	fmt.Fprintf(out, "API calls: %d ResetInstance at %g/s, about %d DescribeInstances at %g/s (pre-flight and one verify poll per 100 instances per wave; more polls while reinstalls run).\n",
		p.ResetCalls, plan.Spec.ResetRate, p.DescribeCalls, plan.Spec.DescribeRate)
	if lines := p.ServingLines(); len(lines) > 0 {
		for _, l := range lines {
			fmt.Fprintln(out, l)
		}
		fmt.Fprintf(out, "Minimum wall time: %s (reset budget, soaks, drains and health checks; each wave also waits for its reinstalls to finish).\n", p.ETA())
	} else {
		fmt.Fprintf(out, "Minimum wall time: %s (reset budget and soaks; each wave also waits for its reinstalls to finish).\n", p.ETA())
	}
	fmt.Fprintln(out, "Nothing was enqueued.")
}

type applyOpts struct {
	common
	api         apiFlags
	noPreflight bool
	secrets     bool
	wait        bool
}

func (o *applyOpts) flags() []flagDef {
	return append(append(o.common.flags(), o.api.flags()...),
		boolFlag(&o.noPreflight, "no-preflight", false, "do not check targets against the API before enqueueing"),
		boolFlag(&o.secrets, "secrets", true, "resolve password references here too (turn off when only the workers' hosts hold them)"),
		boolFlag(&o.wait, "wait", false, "then block until the rollout ends or stops, with `fleetreset wait`'s exit status"))
}

func applyCmd(ctx context.Context, env *Env, o *applyOpts) error {
	c, a := &o.common, o.api
	plan, err := loadPlan(env, &a, o.arg(0), o.secrets)
	if err != nil {
		return err
	}
	cn, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer cn.Close()
	if len(plan.Selections) > 0 {
		// Even with --no-preflight: the selection is the rollout's targets.
		creds, err := defaultCredentials(ctx, plan.Spec, a)
		if err != nil {
			return err
		}
		if plan, err = selectPlan(ctx, env, c, a, o.arg(0), o.secrets, plan, creds); err != nil {
			return err
		}
	}
	req := engine.ApplyRequest{Spec: plan.Spec, Targets: plan.Targets, Overrides: plan.Overrides, Source: plan.Source}
	if !o.noPreflight {
		creds, err := defaultCredentials(ctx, plan.Spec, a)
		if err != nil {
			return err
		}
		api, err := apiFactory(a, creds)(plan.Spec)
		if err != nil {
			return err
		}
		lim := ratelimit.NewRedis(cn.rdb, ratelimit.Config{Prefix: cn.prefix})
		key := ratelimit.AccountKey("DescribeInstances", cmp.Or(a.endpoint, plan.Spec.Endpoint), plan.Spec.Region, creds.Identity())
		req.Describe = preflightDescribe(env, plan, api, lim, key)
		if plan.Spec.MultiLocation() || plan.Spec.AccountName != "" {
			req.DescribeAt = locationDescribe(env, a, plan, lim, creds)
		}
		// The rollout keeps the credential identities it was applied with
		// (rollout.Account): workers holding others hand its tasks back.
		if plan.Spec.UsesDefaultAccount() {
			req.Spec.Identity = creds.Identity()
		}
		if !a.oneKey {
			if req.Spec.AccountIdentities, err = accountIdentities(ctx, plan.Spec, creds); err != nil {
				return err
			}
		}
	}
	eng := cn.controller(c.namespace, c.logger(env, true))
	res, err := eng.Apply(ctx, req)
	if err != nil {
		return &ExitError{Code: exitFailed, Err: err}
	}
	switch {
	case !res.Created && res.State == ledger.Applying:
		fmt.Fprintf(env.Stdout, "Rollout %s is being applied by another apply right now (or by one interrupted less than 2 minutes ago); nothing enqueued. If `fleetreset status %s` does not show it running soon, apply again.\n", plan.Spec.ID, plan.Spec.ID)
	case !res.Created:
		fmt.Fprintf(env.Stdout, "Rollout %s was already applied (state %s); nothing enqueued.\n", plan.Spec.ID, res.State)
	default:
		fmt.Fprintf(env.Stdout, "Rollout %s applied: %s in %s, %d skipped (already on target); state %s.\nWatch it: fleetreset status --watch %s\n",
			plan.Spec.ID, plural(len(plan.Targets), "instance"), plural(len(plan.Spec.Waves), "wave"), len(res.Skipped), res.State, plan.Spec.ID)
	}
	if o.wait {
		return waitFor(ctx, env, eng, plan.Spec.ID, 0)
	}
	return nil
}

type workerOpts struct {
	common
	api         apiFlags
	concurrency int
	grace       time.Duration
	shutdown    time.Duration
	metricsAddr string
	retention   time.Duration
}

func (o *workerOpts) flags() []flagDef {
	return append(append(o.common.flags(), o.api.flags()...),
		atLeastFlag(&o.concurrency, "concurrency", worker.ConcurrencyDefault, 1, "tasks handled at once"),
		durationFlag(&o.grace, "reconcile-grace", worker.ReconcileGraceDefault, "how long after an unanswered reset call to wait before asking the API whether it landed; must exceed --call-timeout"),
		durationFlag(&o.shutdown, "shutdown-timeout", worker.ShutdownTimeoutDefault, "how long calls in flight may take to finish on SIGTERM"),
		stringFlag(&o.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this address (e.g. 127.0.0.1:9464)"),
		durationFlag(&o.retention, "retention", ledger.DefaultRetention, "delete finished rollouts this long after they ended, hourly (negative: keep them forever)"))
}

func workerCmd(ctx context.Context, env *Env, o *workerOpts) error {
	c, a := &o.common, o.api
	concurrency, grace, shutdown, metricsAddr, retention := &o.concurrency, &o.grace, &o.shutdown, &o.metricsAddr, &o.retention
	log := c.logger(env, false)
	cn, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer cn.Close()
	// A worker without default credentials serves the rollouts whose
	// every group names an account, and hands the others back.
	creds := cvm.DefaultOrNone(ctx)
	if none, ok := creds.(cvm.NoCredentials); ok {
		log.Warn("no default credentials: serving only rollouts whose every group names an account", "why", none.Err)
	}
	a.timeout = worker.CallTimeout(a.timeout, *grace)
	lim := ratelimit.NewRedis(cn.rdb, ratelimit.Config{Prefix: cn.prefix})
	wcfg := worker.Config{Redis: cn.opt, Engine: cn.controller(c.namespace, log), Reselect: reselector(env, a, creds, lim),
		Limiter: lim, APIFunc: apiFactory(a, creds),
		Endpoint: a.endpoint, API: a.api, Provider: creds, Concurrency: *concurrency,
		ReconcileGrace: *grace, CallTimeout: a.timeout, ReplayWindow: a.replay, ShutdownTimeout: *shutdown, Logger: log, LookupEnv: env.lookupEnv(), Retention: *retention}
	if err := serveWorkerMetrics(ctx, *metricsAddr, cn, &wcfg, log); err != nil {
		return err
	}
	w, err := worker.New(wcfg)
	if err != nil {
		return err
	}
	sctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("worker started", "concurrency", *concurrency, "namespace", c.namespace)
	return w.Run(sctx)
}

type simOpts struct {
	common
	listen   string
	fleet    int
	planPath string
	sim      cvmsim.Config
}

func (o *simOpts) flags() []flagDef {
	return append(append(o.common.flags(),
		stringFlag(&o.listen, "listen", "127.0.0.1:8080", "address to listen on"),
		intFlag(&o.fleet, "fleet", 0, "generate this many instances (mixed Linux/Windows, on old images)"),
		stringFlag(&o.planPath, "plan", "", "seed the simulator with the instances of this plan")),
		importFlags("", func(fs *flag.FlagSet) { cvmsim.RegisterFlags(fs, &o.sim) })...)
}

func simCmd(ctx context.Context, env *Env, o *simOpts) error {
	c, cfg := &o.common, o.sim
	listen, fleet, planPath := &o.listen, &o.fleet, &o.planPath
	if err := cfg.Validate(); err != nil {
		return &ExitError{Code: exitUsage, Err: err}
	}
	log := c.logger(env, false)
	var plan *planner.Plan
	if *planPath != "" {
		var err error
		if plan, err = planner.Load(*planPath, planner.Options{}); err != nil {
			return &ExitError{Code: exitFailed, Err: err}
		}
		cfg = simServing(cfg, plan)
	}
	sim := cvmsim.New(cfg)
	n := 0
	if *fleet > 0 {
		sim.AddInstances(cvmsim.Generate(*fleet)...)
		n += *fleet
	}
	if plan != nil {
		sim.AddInstances(fleetFromPlan(plan)...)
		n += len(plan.Targets)
	}
	if err := sim.Start(); err != nil {
		return &ExitError{Code: exitFailed, Err: fmt.Errorf("sim: %w", err)}
	}
	defer sim.Close()
	if n == 0 {
		return &ExitError{Code: exitUsage, Err: errors.New("sim: give --fleet N or --plan PLAN")}
	}
	sctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	url, err := startSim(sctx, sim, *listen, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Simulator serving %d instances at %s (admin: %s/admin/stats)\n", n, url, url)
	<-sctx.Done()
	return nil
}
