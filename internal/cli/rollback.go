package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/fleetreset/fleetreset/rollout"
)

type rollbackOpts struct {
	common
	api         apiFlags
	noPreflight bool
	yes, wait   bool
}

func (o *rollbackOpts) flags() []flagDef {
	return append(append(o.common.flags(), o.api.flags()...),
		boolFlag(&o.noPreflight, "no-preflight", false, "do not check the instances against the API before enqueueing (each wave still checks its own)"),
		boolFlag(&o.yes, "yes", false, "abort the rollout first when it is not over (without it, only say what would happen)"),
		boolFlag(&o.wait, "wait", false, "then block until the rollback ends or stops, with `fleetreset wait`'s exit status"))
}

// inFlightPoll is how often rollback reads the original while its resets in
// flight finish.
const inFlightPoll = time.Second

// rollbackCmd rolls a rollout back: a rollout of its own, ROLLOUT-rollback,
// that reinstalls every instance ROLLOUT reset with its earlier image.
func rollbackCmd(ctx context.Context, env *Env, o *rollbackOpts) error {
	c, id := &o.common, o.arg(0)
	cn, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer cn.Close()
	eng := cn.controller(c.namespace, c.logger(env, true))
	rbID := rollout.RollbackID(id)
	if _, st, err := cn.ledger.Spec(ctx, rbID); err == nil && st != ledger.Applying {
		fmt.Fprintf(env.Stdout, "Rollout %s is already rolled back by %s (state %s); nothing changed.\nWatch it: fleetreset status --watch %s\n", id, rbID, st, rbID)
		return o.then(ctx, env, eng, rbID)
	}
	p, err := eng.PlanRollback(ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		return &ExitError{Code: exitFailed, Err: fmt.Errorf("there is no rollout %q", id)}
	}
	if err != nil {
		return err
	}
	orig := p.Original
	if errors.Is(p.Err, rollout.ErrRollbackOfRollback) {
		return &ExitError{Code: exitFailed, Err: p.Err}
	}
	if !orig.State.Terminal() && !o.yes {
		printRollbackPreview(env.Stdout, p)
		return &ExitError{Code: exitFailed, Err: fmt.Errorf("rollback: rollout %s is %s; add --yes to abort it and roll it back", id, orig.State)}
	}
	var describe rollout.DescribeFunc
	if !o.noPreflight {
		creds, err := defaultCredentials(ctx, orig.Spec, o.api)
		if err != nil {
			return err
		}
		api, err := apiFactory(o.api, creds)(orig.Spec)
		if err != nil {
			return err
		}
		lim := ratelimit.NewRedis(cn.rdb, ratelimit.Config{Prefix: cn.prefix})
		// The rollback keeps the original's identity: its budget is the one
		// the original's workers share.
		key := ratelimit.AccountKey("DescribeInstances", cmp.Or(o.api.endpoint, orig.Spec.Endpoint), orig.Spec.Region, cmp.Or(orig.Spec.Identity, creds.Identity()))
		cfg := describeConfig{api: api, lim: lim, key: key, rate: orig.Spec.DescribeRate, progress: env.Stderr, total: len(p.Targets)}
		if h := env.Hooks; h != nil {
			cfg.sleep, cfg.clock = h.Sleep, h.Clock
		}
		describe = describeWith(cfg)
		if p.Spec.MultiLocation() || p.Spec.AccountName != "" {
			// Each instance is described where it is.
			describe = p.Spec.DescribeByLocation(p.Targets, locationDescribe(env, o.api, &planner.Plan{Spec: p.Spec, Targets: p.Targets}, lim, creds))
		}
	}
	res, err := rollbackSettled(ctx, env, eng, id, describe)
	switch {
	case errors.Is(err, rollout.ErrNothingToRollBack):
		fmt.Fprintf(env.Stdout, "Rollout %s reset no instance with a known earlier image: nothing to roll back.\n", id)
		printLeftOut(env.Stdout, res.LeftOut)
		return nil
	case errors.Is(err, engine.ErrRefused):
		return &ExitError{Code: exitFailed, Err: fmt.Errorf("%w (--no-preflight leaves each wave to fail only the instances that cannot be reset)", err)}
	case err != nil:
		return &ExitError{Code: exitFailed, Err: err}
	}
	if res.Aborted {
		fmt.Fprintf(env.Stdout, "Rollout %s aborted (rolled back).\n", id)
	}
	if !res.Created {
		fmt.Fprintf(env.Stdout, "Rollout %s is already rolled back by %s (state %s); nothing changed.\n", id, res.ID, res.State)
	} else {
		fmt.Fprintf(env.Stdout, "Rollback %s of %s applied: %s back to their earlier image (%s), %d skipped (already on it); state %s.\n",
			res.ID, id, plural(res.Instances, "instance"), imageCounts(res.Images), len(res.Skipped), res.State)
		printLeftOut(env.Stdout, res.LeftOut)
	}
	fmt.Fprintf(env.Stdout, "Watch it: fleetreset status --watch %s\n", res.ID)
	return o.then(ctx, env, eng, res.ID)
}

// then waits for the rollback when --wait says so.
func (o *rollbackOpts) then(ctx context.Context, env *Env, eng *engine.Engine, rbID string) error {
	if o.wait {
		return waitFor(ctx, env, eng, rbID, 0)
	}
	return nil
}

// rollbackSettled calls Rollback until the original's resets in flight
// have finished (they are verified first; see engine.ErrInFlight), reading
// the original every inFlightPoll in between.
func rollbackSettled(ctx context.Context, env *Env, eng *engine.Engine, id string, describe rollout.DescribeFunc) (engine.RollbackResult, error) {
	told := false
	for {
		res, err := eng.Rollback(ctx, id, describe)
		if !errors.Is(err, engine.ErrInFlight) {
			return res, err
		}
		if !told {
			fmt.Fprintf(env.Stdout, "Rollout %s aborted; waiting for %d reset(s) in flight to finish and be verified before rolling back (Ctrl-C stops waiting; run rollback again later).\n", id, res.InFlight)
			told = true
		}
		for left := res.InFlight; left > 0; {
			select {
			case <-ctx.Done():
				return res, fmt.Errorf("rollback of %s: %d reset(s) still in flight: %w", id, left, context.Cause(ctx))
			case <-time.After(inFlightPoll):
			}
			r, err := eng.Ledger().Get(ctx, id)
			if err != nil {
				return res, err
			}
			left = r.Total - r.Counters.Terminal
		}
	}
}

// printRollbackPreview says what rolling back a rollout that is not over
// would do.
func printRollbackPreview(out io.Writer, p engine.RollbackPlan) {
	r := p.Original
	fmt.Fprintf(out, "Rollout %s is %s. Rolling it back would:\n", r.ID, r.State)
	fmt.Fprintf(out, "  1. abort it: of its %s without an outcome yet, those not started are cancelled and resets in flight finish and are verified first;\n", plural(p.InFlight, "instance"))
	fmt.Fprintf(out, "  2. apply rollout %s: reinstall the %s it reset so far with their earlier image (%s), and those in flight,\n",
		rollout.RollbackID(r.ID), plural(len(p.Targets), "instance"), imageCounts(p.Images))
	fmt.Fprintln(out, "     in waves of the same sizes, without soak or approval.")
	fmt.Fprintln(out, "  A reinstall wipes the system disk again; the login comes from the plan's password reference or keys.")
	printLeftOut(out, p.LeftOut)
	fmt.Fprintln(out, "Nothing was changed.")
}

// printLeftOut lists up to ten instances a rollback leaves alone.
func printLeftOut(out io.Writer, left map[string]string) {
	if len(left) == 0 {
		return
	}
	fmt.Fprintf(out, "Left alone (%d), check them by hand:\n", len(left))
	for i, id := range sortedKeys(left) {
		if i == 10 {
			fmt.Fprintf(out, "  and %d more (fleetreset report lists every instance)\n", len(left)-10)
			break
		}
		fmt.Fprintf(out, "  %s: %s\n", id, left[id])
	}
}

// imageCounts writes {"img-a": 3, "img-b": 1} as "img-a: 3, img-b: 1".
func imageCounts(m map[string]int) string {
	var parts []string
	for _, img := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s: %d", img, m[img]))
	}
	return cmp.Or(strings.Join(parts, ", "), "none")
}

// linkRollbacks sets RolledBackBy on every view whose rollback is among
// views.
func linkRollbacks(views []rolloutJSON) {
	of := make(map[string]string, len(views))
	for _, v := range views {
		of[v.ID] = v.RollbackOf
	}
	by := rollout.RolledBackBy(of)
	for i, v := range views {
		views[i].RolledBackBy = by[v.ID]
	}
}
