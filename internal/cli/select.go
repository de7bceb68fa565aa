package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/clock"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/secretref"
)

// selectPlan resolves plan's selections, if it has any: it lists the
// instances each group's select matches with DescribeInstances (under the
// fleet-wide describe budget, like the pre-flight) and reads the plan at
// path again with them, so the planner cuts waves over the result. A plan
// without select is returned as it is. The resolved plan is what apply
// freezes into the ledger: an instance tagged later does not join it.
func selectPlan(ctx context.Context, env *Env, c *common, a apiFlags, path string, secrets bool, plan *planner.Plan, creds cvm.CredentialProvider) (*planner.Plan, error) {
	if len(plan.Selections) == 0 {
		return plan, nil
	}
	limit := func(region, identity string) (ratelimit.Limiter, string) {
		return previewLimiter(ctx, c, region, cmp.Or(a.endpoint, plan.Spec.Endpoint), identity)
	}
	selected, calls, err := listPlan(ctx, env, a, plan, creds, limit)
	if err != nil {
		return nil, &ExitError{Code: exitFailed, Err: err}
	}
	fmt.Fprintf(env.Stderr, "select: %d DescribeInstances calls for %s\n", calls, plural(len(plan.Selections), "selecting group"))
	opts := a.planOptions(env, secrets)
	opts.Selected = selected
	resolved, err := planner.Load(path, opts)
	if err != nil {
		return nil, &ExitError{Code: exitFailed, Err: err}
	}
	if resolved.Unresolved() {
		// The plan changed between the two reads (a select added).
		return nil, &ExitError{Code: exitFailed, Err: fmt.Errorf("select: %s changed while it was read; run again", path)}
	}
	return resolved, nil
}

// listPlan lists the instances each selecting group of plan matches,
// location by location: each group's region with its account's key
// (creds for the default account), every call under the describe budget
// limit gives for the region and credential. It returns the matches by
// group and the number of calls made.
func listPlan(ctx context.Context, env *Env, a apiFlags, plan *planner.Plan, creds cvm.CredentialProvider,
	limit func(region, identity string) (ratelimit.Limiter, string)) (map[int][]planner.Match, int, error) {
	var order []rollout.Location
	byLoc := map[rollout.Location][]planner.Selection{}
	for _, s := range plan.Selections {
		loc := plan.Spec.LocationOf(s.Group)
		if _, ok := byLoc[loc]; !ok {
			order = append(order, loc)
		}
		byLoc[loc] = append(byLoc[loc], s)
	}
	selected, calls := map[int][]planner.Match{}, 0
	for _, loc := range order {
		at := plan.Spec.At(loc)
		lc, err := creds, error(nil)
		if !a.oneKey {
			lc, err = specCredentials(ctx, at, creds)
		}
		if err != nil {
			return nil, calls, fmt.Errorf("select: %w", err)
		}
		api, err := apiFactory(a, lc)(at)
		if err != nil {
			return nil, calls, err
		}
		lister, ok := api.(cvm.Lister)
		if !ok {
			return nil, calls, fmt.Errorf("select: the %s client cannot list instances by filters", api.Generation())
		}
		lim, key := limit(loc.Region, lc.Identity())
		cfg := describeConfig{lim: lim, key: key, rate: plan.Spec.DescribeRate}
		if h := env.Hooks; h != nil {
			cfg.sleep, cfg.clock = h.Sleep, h.Clock
		}
		got, n, err := listSelections(ctx, cfg, lister, byLoc[loc])
		calls += n
		if err != nil {
			return nil, calls, err
		}
		maps.Copy(selected, got)
	}
	return selected, calls, nil
}

// reselector resolves the select of a scheduled series again at each
// occurrence (engine.Reselect), as apply did: the plan read from the
// source kept with the series (its instances files included), each
// selecting group listed where it is with this process's credentials,
// under the fleet-wide describe budget of lim, and the waves cut over
// what matches now. A plan that no longer reads (a user data file gone
// from the worker, say), a listing the API refuses for good (Fatal) or a
// select of nothing skips the occurrence; a listing that fails otherwise
// is retried with the task.
func reselector(env *Env, a apiFlags, creds cvm.CredentialProvider, lim ratelimit.Limiter) engine.Reselect {
	return func(ctx context.Context, prev rollout.Spec, src rollout.PlanSource) (rollout.Spec, []rollout.Target, error) {
		// Secrets are resolved as the worker will at each reset: a password
		// this worker cannot read skips the occurrence, announced, rather
		// than create one whose every reset pauses.
		opts := planner.Options{ResolveSecrets: true, LookupEnvFunc: env.lookupEnv(), ReadFileFunc: src.ReadFile(secretref.ReadFile),
			API:      planner.Override{Value: prev.API, From: "the series"},
			Endpoint: planner.Override{Value: prev.Endpoint, From: "the series"}}
		parse := func() (*planner.Plan, error) {
			plan, err := planner.Parse(src.Path, src.Files[src.Path], opts)
			if err != nil {
				return nil, fmt.Errorf("%w: its plan, as applied, no longer reads: %w", engine.ErrSkipOccurrence, err)
			}
			return plan, nil
		}
		plan, err := parse()
		if err != nil {
			return rollout.Spec{}, nil, err
		}
		limit := func(region, identity string) (ratelimit.Limiter, string) {
			return lim, ratelimit.AccountKey("DescribeInstances", cmp.Or(a.endpoint, plan.Spec.Endpoint), region, identity)
		}
		if opts.Selected, _, err = listPlan(ctx, env, a, plan, creds, limit); err != nil {
			if cvm.Classify(err) == cvm.Fatal || errors.Is(err, cvm.ErrInvalidRequest) {
				// No try can list with these credentials and filters (a
				// permission missing, a region the account lacks): say so
				// now rather than after a day of retries.
				return rollout.Spec{}, nil, fmt.Errorf("%w: %w", engine.ErrSkipOccurrence, err)
			}
			return rollout.Spec{}, nil, err
		}
		if plan, err = parse(); err != nil {
			return rollout.Spec{}, nil, err
		}
		if plan.Unresolved() {
			return rollout.Spec{}, nil, fmt.Errorf("%w: a select of its plan was left unresolved", engine.ErrSkipOccurrence)
		}
		return plan.Spec, plan.Targets, nil
	}
}

// listSelections lists, per selecting group, the instances its filters
// match: each of Selection.Requests (at most 10 filters of at most 5
// values, never with InstanceIds) paged with Offset and Limit 100 until
// TotalCount. Each call waits for the describe budget and is retried like
// a pre-flight describe (see describeWith). It returns the matches by
// group and the number of calls made.
func listSelections(ctx context.Context, cfg describeConfig, l cvm.Lister, sels []planner.Selection) (map[int][]planner.Match, int, error) {
	out := map[int][]planner.Match{}
	calls := 0
	for _, s := range sels {
		ms := []planner.Match{}
		for _, req := range s.Requests() {
			fs := make([]cvm.Filter, len(req))
			for i, f := range req {
				fs[i] = cvm.Filter{Name: f.Name, Values: f.Values}
			}
			for offset := 0; ; {
				var page []cvm.Instance
				var total int
				err := retryDescribe(ctx, cfg, func() (err error) {
					calls++
					page, total, err = l.DescribeInstancesFiltered(ctx, fs, offset, cvm.MaxLimit)
					return err
				})
				if err != nil {
					return nil, calls, fmt.Errorf("select: group %s: list instances at offset %d: %w", s.GroupName, offset, err)
				}
				for _, in := range page {
					ms = append(ms, planner.Match{InstanceID: in.InstanceID, Zone: in.Zone, Tags: in.Tags})
				}
				offset += len(page)
				// An empty page ends it too: TotalCount may shrink while
				// we page, and a page must bring something to go on.
				if len(page) == 0 || offset >= total {
					break
				}
			}
		}
		out[s.Group] = ms
	}
	return out, calls, nil
}

// retryDescribe runs call, a DescribeInstances, under cfg's describe
// budget, retrying what may pass (retryable and throttled errors) with
// capped full-jitter backoff until cfg's tries or deadline run out, as
// describeWith does for the pre-flight.
func retryDescribe(ctx context.Context, cfg describeConfig, call func() error) error {
	tries := cmp.Or(cfg.tries, preflightTriesDefault)
	deadline := cmp.Or(cfg.deadline, preflightDeadlineDefault)
	base, ceiling := cmp.Or(cfg.base, preflightBaseDefault), cmp.Or(cfg.cap, preflightCapDefault)
	sleep := cfg.sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	random := cfg.rand
	if random == nil {
		random = rand.Float64
	}
	clk := clock.Or(cfg.clock)
	start := clk.Now()
	for try := 1; ; try++ {
		if _, err := cfg.lim.Wait(ctx, cfg.key, cfg.rate); err != nil {
			return err
		}
		err := call()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		class := cvm.Classify(err)
		if class == cvm.Throttled {
			_ = cfg.lim.Throttled(ctx, cfg.key)
		}
		if class != cvm.Retryable && class != cvm.Throttled {
			if errors.Is(err, cvm.ErrInvalidRequest) {
				return err
			}
			return fmt.Errorf("%s error, not retried: %w", class, err)
		}
		d := base << min(try-1, 20)
		if d > ceiling || d <= 0 {
			d = ceiling
		}
		d = time.Duration(random() * float64(d))
		elapsed := clk.Now().Sub(start)
		if try >= tries || elapsed+d > deadline {
			return fmt.Errorf("gave up after %d tries in %s: %w", try, elapsed.Round(time.Millisecond), err)
		}
		if serr := sleep(ctx, d); serr != nil {
			return fmt.Errorf("%w (while waiting to retry after: %w)", serr, err)
		}
	}
}
