package worker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/internal/testfleet"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/worker"
)

// TestTwoRegionsTwoAccounts is issue 12's test of locations: a plan with
// a group in ap-guangzhou under one account and a group in ap-shanghai
// under another. Each location's calls stay under the plan's rate on their
// own budget (the simulator's per-second record per region and SecretId),
// every request goes to the region of its instances, and the locations
// run in parallel: the whole rollout's reset calls span well under the sum
// of the two locations' spans.
func TestTwoRegionsTwoAccounts(t *testing.T) {
	t.Parallel()
	st, gz, sh, _ := runTwoLocations(t, "", "", nil)
	all := append(slices.Clone(gz), sh...)
	first := testfleet.SimCredentials()
	for _, c := range []struct{ region, id string }{{"ap-guangzhou", first.SecretID}, {"ap-shanghai", second.SecretID}} {
		if got := st.MaxPerSecond("ResetInstance", c.region, c.id); got == 0 || got > rate {
			t.Errorf("%s under %s: %d resets in one second, want 1..%d", c.region, c.id, got, rate)
		}
		if got := st.MaxPerSecond("DescribeInstances", c.region, c.id); got == 0 || got > 20 {
			t.Errorf("%s under %s: %d describes in one second, want 1..20", c.region, c.id, got)
		}
	}
	// No call crossed locations: nothing went to a region under the other
	// account, nor under the worker's default key.
	for k := range st.CallsBy {
		switch {
		case strings.Contains(k, "ap-guangzhou "+second.SecretID), strings.Contains(k, "ap-shanghai "+first.SecretID):
			t.Errorf("a call crossed locations: %s", k)
		case strings.HasSuffix(k, " AKIDnobody"):
			t.Errorf("a call used the default credentials: %s", k)
		}
	}
	if n := st.Errors["InvalidInstanceId.NotFound"]; n > 0 {
		t.Errorf("%d calls named an instance of another region", n)
	}

	span := func(ids []string) (first, last time.Time) {
		var ts []time.Time
		for _, id := range ids {
			ts = append(ts, st.ResetTimes[id]...)
		}
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		return ts[0], ts[len(ts)-1]
	}
	gf, gl := span(gz)
	sf, sl := span(sh)
	af, al := span(all)
	gzSpan, shSpan, total := gl.Sub(gf), sl.Sub(sf), al.Sub(af)
	t.Logf("reset calls: guangzhou %s, shanghai %s, whole rollout %s", gzSpan, shSpan, total)
	// At 4/s, 16 resets take ~3.75 s per location: one after the other
	// would take ~7.5 s, in parallel ~3.75 s.
	// Alone, a location takes (perRegion-1)/rate; sharing one budget or
	// running one after the other, the rollout would take twice that.
	alone := time.Duration(perRegion-1) * time.Second / rate
	if total > alone*3/2 {
		t.Errorf("the rollout's resets spanned %s; one location alone takes %s: the locations did not each have their own budget", total, alone)
	}
	if total > (gzSpan+shSpan)*3/4 {
		t.Errorf("the rollout's resets spanned %s, not well under the sum of the locations' %s + %s: locations did not run in parallel", total, gzSpan, shSpan)
	}
}

// Sizes of runTwoLocations' fleet and its per-location reset rate.
const (
	perRegion = 16
	rate      = 4
)

// second is the second account's key, a temporary one.
var second = cvm.Credentials{SecretID: "AKIDsecondaccount", SecretKey: "second-key", Token: "second-token"}

// runTwoLocations runs a plan of perRegion instances in ap-guangzhou under
// account first (the simulator's default key) and perRegion in
// ap-shanghai under account second, with extra top-level YAML, on two
// workers whose own default key is no account of the plan's. Unless the
// workers lack the source env names (missing), it requires the rollout to
// succeed with every instance reset once. It returns the simulator's
// record, the instances of each region and the rollout as it ended.
// fail(gz, sh) names instances whose reinstall fails (nil: none).
func runTwoLocations(t *testing.T, extra, missing string, fail func(gz, sh []string) []string) (st cvmsim.Stats, gz, sh []string, r *ledger.Rollout) {
	t.Helper()
	all := testfleet.IDs(2 * perRegion)
	gz, sh = all[:perRegion], all[perRegion:]
	faults := cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}
	if fail != nil {
		faults.FailIDs = fail(gz, sh)
	}
	sim := cvmsim.New(cvmsim.Config{Regions: []string{"ap-shanghai"}, ResetDuration: 500 * time.Millisecond, Faults: faults})
	sim.AcceptCredentials(second.SecretID, string(second.SecretKey), string(second.Token), time.Now().Add(time.Hour))
	url := testfleet.Serve(t, sim)

	sim.AddInstances(testfleet.Fleet{Image: oldImage, Zones: []string{"ap-guangzhou-3"}}.Instances(gz)...)
	shIns := testfleet.Fleet{Image: oldImage, Zones: []string{"ap-shanghai-2"}}.Instances(sh)
	for i := range shIns {
		shIns[i].Region = "ap-shanghai"
	}
	sim.AddInstances(shIns...)

	var y strings.Builder
	fmt.Fprintf(&y, `version: 1
name: two-locations
region: ap-guangzhou
endpoint: %s
image: {type: 1, id: %s}
keepImageLogin: true
rateLimit: {reset: %d, describe: 20}
verify: {interval: 200ms, timeout: 1m}
waves: [{size: 100%%}]
%s
accounts:
  first: {env: FIRST}
  second: {env: SECOND}
account: first
groups:
  - name: gz
    instances: [%s]
  - name: sh
    region: ap-shanghai
    account: second
    instances: [%s]
`, url, targetImage, rate, extra, strings.Join(gz, ", "), strings.Join(sh, ", "))
	plan, err := planner.Parse("two.yaml", []byte(y.String()), planner.Options{})
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, y.String())
	}

	s := testfleet.NewStack(t, redistest.New(t))
	s.Apply(t, plan)
	first := testfleet.SimCredentials()
	accounts := func(_ context.Context, src rollout.AccountSource) (cvm.CredentialProvider, error) {
		switch src.Env {
		case missing:
			return nil, fmt.Errorf("%w: %s_SECRET_ID is not set", cvm.ErrNoCredentials, src.Env)
		case "FIRST":
			return cvm.StaticProvider(first), nil
		case "SECOND":
			return cvm.StaticProvider(second), nil
		}
		return nil, fmt.Errorf("unknown source %+v", src)
	}
	var ws []testfleet.Runner
	for range 2 {
		w, err := worker.New(worker.Config{Redis: s.Redis.ConnOpt(), Engine: s.Engine, Limiter: s.Limiter(),
			// The default credentials are no account of the plan's: every
			// call must use the location's.
			Credentials:     &cvm.Credentials{SecretID: "AKIDnobody", SecretKey: "nobody"},
			AccountProvider: accounts, Concurrency: 10, ReconcileGrace: time.Second,
			RetryBase: 100 * time.Millisecond, RetryCap: time.Second, ShutdownTimeout: 5 * time.Second, Logger: s.Log})
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	testfleet.RunWorkers(t, ws...)
	r = s.Await(t, plan.Spec.ID, time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted)
	st = sim.Stats()
	if missing == "" && fail == nil {
		testfleet.RequireSucceeded(t, r)
		testfleet.RequireExactlyOnce(t, st, all)
	}
	return st, gz, sh, r
}

// TestRegionOrderPhases: with regionOrder, ap-shanghai's phase ends before
// ap-guangzhou's starts: no two regions are ever reset at once.
func TestRegionOrderPhases(t *testing.T) {
	t.Parallel()
	st, gz, sh, _ := runTwoLocations(t, "regionOrder: [ap-shanghai, ap-guangzhou]", "", nil)
	var lastSh, firstGz time.Time
	for _, id := range sh {
		for _, at := range st.ResetTimes[id] {
			if at.After(lastSh) {
				lastSh = at
			}
		}
	}
	for _, id := range gz {
		for _, at := range st.ResetTimes[id] {
			if firstGz.IsZero() || at.Before(firstGz) {
				firstGz = at
			}
		}
	}
	if !firstGz.After(lastSh) {
		t.Errorf("the first ap-guangzhou reset (%s) came before the last ap-shanghai one (%s)", firstGz, lastSh)
	}
}

// TestMissingAccountPauses: a worker without an account's credential
// source pauses the rollout, naming the account, and calls nothing in that
// location.
func TestMissingAccountPauses(t *testing.T) {
	t.Parallel()
	st, _, sh, r := runTwoLocations(t, "", "SECOND", nil)
	if r.State != ledger.Paused || !strings.Contains(r.Reason, "account second") || !strings.Contains(r.Reason, "SECOND_SECRET_ID") {
		t.Fatalf("rollout %s: %q; want paused naming account second and its variable", r.State, r.Reason)
	}
	for _, id := range sh {
		if n := st.AcceptedResets[id]; n != 0 {
			t.Errorf("%s in ap-shanghai reset %d times without its account", id, n)
		}
	}
}

// TestRegionFailureBudget: two ap-shanghai instances fail while the
// rollout as a whole is within its failureBudget (max 10). With
// regionFailureBudget max 1 the second failure pauses the rollout, naming
// the region; without it the same run completes.
func TestRegionFailureBudget(t *testing.T) {
	t.Parallel()
	failTwo := func(_, sh []string) []string { return sh[:2] }
	const budgets = "failureBudget: {max: 10}\n"
	st, _, sh, r := runTwoLocations(t, budgets+"regionFailureBudget: {max: 1}", "", failTwo)
	if r.State != ledger.Paused || !strings.Contains(r.Reason, "region ap-shanghai failure budget exceeded: 2 failed") {
		t.Fatalf("rollout %s: %q; want paused by ap-shanghai's budget", r.State, r.Reason)
	}
	if strings.Contains(r.Reason, "rollout failure budget") {
		t.Errorf("reason %q: the rollout's own budget was not exceeded", r.Reason)
	}
	for _, rs := range r.Regions {
		if rs.Region == "ap-shanghai" && rs.Counters.Failed != 2 {
			t.Errorf("ap-shanghai counters %+v; want 2 failed", rs.Counters)
		}
		if rs.Region == "ap-guangzhou" && rs.Counters.Failures() != 0 {
			t.Errorf("ap-guangzhou counters %+v; want no failure", rs.Counters)
		}
	}
	for _, id := range sh {
		if n := st.AcceptedResets[id]; n > 1 {
			t.Errorf("%s reset %d times", id, n)
		}
	}

	_, _, _, r = runTwoLocations(t, budgets, "", failTwo)
	if r.State != ledger.Completed || r.Counters.Failed != 2 {
		t.Errorf("without a region budget: rollout %s (%q), %+v; want completed with 2 failed", r.State, r.Reason, r.Counters)
	}
}
