package cli

import (
	"cmp"
	"context"
	"fmt"
	"sync"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/worker"
)

// specCredentials returns the credentials of spec's account: def for the
// default account, else the named account's source.
func specCredentials(ctx context.Context, spec rollout.Spec, def cvm.CredentialProvider) (cvm.CredentialProvider, error) {
	src, ok := spec.AccountSource()
	if !ok {
		if spec.AccountName != "" {
			return nil, fmt.Errorf("account %q is not in the plan's accounts", spec.AccountName)
		}
		return def, nil
	}
	p, err := worker.AccountProvider(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("credentials of account %s: %w", spec.AccountName, err)
	}
	return p, nil
}

// defaultCredentials returns the process's default credentials when the
// spec needs them (a group without an account, or --one-key); when every
// group names an account it returns them if the process has any, else
// cvm.NoCredentials: plan and apply then need no default key.
func defaultCredentials(ctx context.Context, spec rollout.Spec, a apiFlags) (cvm.CredentialProvider, error) {
	if a.oneKey || spec.UsesDefaultAccount() {
		return cvm.DefaultProvider(ctx)
	}
	return cvm.DefaultOrNone(ctx), nil
}

// accountIdentities resolves the credential source of every named account
// the spec's groups use and returns the identity each has here, for
// rollout.Spec.AccountIdentities.
func accountIdentities(ctx context.Context, spec rollout.Spec, def cvm.CredentialProvider) (map[string]string, error) {
	var out map[string]string
	for _, loc := range spec.Locations() {
		if loc.Account == "" {
			continue
		}
		p, err := specCredentials(ctx, spec.At(loc), def)
		if err != nil {
			return nil, err
		}
		if id := p.Identity(); id != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[loc.Account] = id
		}
	}
	return out, nil
}

// locationDescribe returns the pre-flight describe of each of the plan's
// locations: a client with the location's region and account, under the
// location's own DescribeInstances budget. Built once per location.
func locationDescribe(env *Env, a apiFlags, plan *planner.Plan, lim ratelimit.Limiter, def cvm.CredentialProvider) func(rollout.Location) rollout.DescribeFunc {
	var mu sync.Mutex
	made := map[rollout.Location]rollout.DescribeFunc{}
	return func(loc rollout.Location) rollout.DescribeFunc {
		mu.Lock()
		defer mu.Unlock()
		if d, ok := made[loc]; ok {
			return d
		}
		at := plan.Spec.At(loc)
		creds, err := def, error(nil)
		if !a.oneKey {
			creds, err = specCredentials(context.Background(), at, def)
		}
		var d rollout.DescribeFunc
		if err == nil {
			var api cvm.API
			if api, err = apiFactory(a, creds)(at); err == nil {
				key := ratelimit.AccountKey("DescribeInstances", cmp.Or(a.endpoint, plan.Spec.Endpoint), loc.Region, creds.Identity())
				d = preflightDescribe(env, plan, api, lim, key)
			}
		}
		if err != nil {
			d = func(context.Context, []string) (map[string]rollout.Observed, error) {
				return nil, fmt.Errorf("%s: %w", loc, err)
			}
		}
		made[loc] = d
		return d
	}
}
