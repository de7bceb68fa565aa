package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/ratelimit"
)

// selectFleet returns 5,000 simulated instances over three zones of which
// exactly 1,234 carry role=web and env=prod without the protect tag; 16
// more carry both tags and the protect tag, and the rest carry one of the
// two tags at most.
func selectFleet() (fleet []cvmsim.Instance, want, protected map[string]bool) {
	fleet = cvmsim.Generate(5000)
	want, protected = map[string]bool{}, map[string]bool{}
	for i := range fleet {
		in := &fleet[i]
		switch {
		case i < 1250 && i%80 == 0:
			in.Tags = map[string]string{"role": "web", "env": "prod", "fleetreset:protect": "true"}
			protected[in.ID] = true
		case i < 1250:
			in.Tags = map[string]string{"role": "web", "env": "prod"}
			want[in.ID] = true
		case i%2 == 0:
			in.Tags = map[string]string{"role": "web", "env": "staging"}
		default:
			in.Tags = map[string]string{"role": "db", "env": "prod"}
		}
	}
	return fleet, want, protected
}

// TestSelectByTagsResetsExactlyTheMatches: a plan selecting by two tags
// resets exactly the 1,234 matching instances of 5,000, once each, and
// never a protected one; plan previews the same selection and enqueues
// nothing; the workers send the group's user data and ask for the TAT agent.
func TestSelectByTagsResetsExactlyTheMatches(t *testing.T) {
	r := redistest.New(t)
	fleet, want, protected := selectFleet()
	sim := cvmsim.New(cvmsim.Config{ResetDuration: 100 * time.Millisecond,
		Faults: cvmsim.Faults{ResetRateLimit: -1}})
	sim.AddInstances(fleet...)
	zones := map[string]bool{}
	for _, in := range fleet {
		if want[in.ID] {
			zones[in.Zone] = true
		}
	}
	if len(want) != 1234 || len(protected) != 16 || len(zones) != 3 {
		t.Fatalf("fleet: %d wanted in %d zones, %d protected", len(want), len(zones), len(protected))
	}
	hs := httptest.NewServer(sim)
	defer hs.Close()
	srv := hs.URL
	t.Setenv("TENCENTCLOUD_SECRET_ID", cvmsim.SecretIDDefault)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", cvmsim.SecretKeyDefault)
	dir := t.TempDir()
	plan := `version: 1
name: web-prod
region: ap-guangzhou
image: {type: 1, id: img-new00001}
keepImageLogin: true
rateLimit: {reset: 300, describe: 40, unsafeAboveApiLimit: true}
verify: {interval: 500ms, timeout: 1m}
waves: [10%, 100%]
groups:
  - name: web
    userData: {file: cloud-init.yaml}
    automationAgent: true
    select:
      tag:role: web
      tag:env: [prod]
`
	userData := "#cloud-config\nruncmd: [touch /tmp/fleetreset]\n"
	if err := os.WriteFile(filepath.Join(dir, "cloud-init.yaml"), []byte(userData), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	ns := strings.TrimSuffix(r.Prefix, ":")
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr}
	common := []string{"--namespace", ns, "--endpoint", srv}

	env, out, errb := testEnv(vars)
	if code := Main(t.Context(), env, append(append([]string{"plan"}, common...), path)); code != 0 {
		t.Fatalf("plan exited %d\n%s\n%s", code, out, errb)
	}
	for _, s := range []string{"1250 matched, 1234 selected, 16 protected (fleetreset:protect=true)", "ap-guangzhou-3", "ap-guangzhou-6", "protected " + fleet[0].ID, "Nothing was enqueued"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("plan output lacks %q:\n%s", s, out)
		}
	}
	if n := sumCalls(sim.Stats().Calls["ResetInstance"]); n != 0 {
		t.Fatalf("plan made %d reset calls", n)
	}

	env, out, errb = testEnv(vars)
	if code := Main(t.Context(), env, append(append([]string{"apply", "--no-preflight"}, common...), path)); code != 0 {
		t.Fatalf("apply exited %d\n%s\n%s", code, out, errb)
	}
	if !strings.Contains(out.String(), "1234 instances in 2 waves") {
		t.Errorf("apply output: %s", out)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env, out, errb := testEnv(vars)
			if code := Main(ctx, env, append([]string{"worker", "--concurrency", "40", "--reconcile-grace", "5s"}, common...)); code != 0 {
				t.Errorf("worker %d exited %d\n%s\n%s", i, code, out, errb)
			}
		}()
	}
	l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
	rr := awaitState(t, l, "web-prod", 60*time.Second, ledger.Completed)
	cancel()
	wg.Wait()
	if rr.Counters.Succeeded != 1234 {
		t.Errorf("succeeded %d; want 1234: %+v", rr.Counters.Succeeded, rr.Counters)
	}
	st := sim.Stats()
	for _, in := range fleet {
		n := st.AcceptedResets[in.ID]
		switch {
		case want[in.ID] && n != 1:
			t.Errorf("%s (selected) reset %d times; want 1", in.ID, n)
		case !want[in.ID] && n != 0:
			t.Errorf("%s (protected %v) reset %d times; want 0", in.ID, protected[in.ID], n)
		}
	}
	// The workers read the user data file and sent it with the TAT agent.
	for _, in := range fleet[1:3] {
		got, _ := sim.LastReset(in.ID)
		if string(got.UserData) != userData || got.AutomationService == nil || !*got.AutomationService {
			t.Errorf("%s was reset with UserData %q, AutomationService %v", in.ID, got.UserData, got.AutomationService)
		}
	}
	// Every filtered listing stayed within the API's limits: the simulator
	// answers an error for more, and none was answered.
	for code, n := range st.Errors {
		if strings.Contains(code, "Filter") || strings.Contains(code, "Coexist") || code == "InvalidParameterValue.LimitExceeded" {
			t.Errorf("%d %s answers", n, code)
		}
	}
}

func sumCalls(perSecond map[int64]int) int {
	n := 0
	for _, c := range perSecond {
		n += c
	}
	return n
}

// fakeLister answers filtered describes from a fixed fleet, recording each call.
type fakeLister struct {
	fleet []cvmsim.Instance
	calls [][]cvm.Filter
}

func (f *fakeLister) DescribeInstancesFiltered(_ context.Context, fs []cvm.Filter, offset, limit int) ([]cvm.Instance, int, error) {
	f.calls = append(f.calls, fs)
	if len(fs) > cvm.MaxFilters || limit > cvm.MaxLimit {
		return nil, 0, errors.New("over the limits")
	}
	var all []cvm.Instance
	for _, in := range f.fleet {
		ok := true
		for _, flt := range fs {
			if len(flt.Values) > cvm.MaxFilterValues {
				return nil, 0, errors.New("too many values")
			}
			ok = ok && slices.Contains(flt.Values, in.Zone)
		}
		if ok {
			all = append(all, cvm.Instance{InstanceID: in.ID, Zone: in.Zone})
		}
	}
	end := min(len(all), offset+limit)
	if offset >= len(all) {
		return nil, len(all), nil
	}
	return all[offset:end], len(all), nil
}

// TestListSelections: a filter of 7 values is asked in two requests of at
// most 5, each paged by 100 until TotalCount.
func TestListSelections(t *testing.T) {
	var fleet []cvmsim.Instance
	for i, in := range cvmsim.Generate(450) {
		in.Zone = fmt.Sprintf("ap-guangzhou-%d", i%7+1)
		fleet = append(fleet, in)
	}
	l := &fakeLister{fleet: fleet}
	zones := []string{"ap-guangzhou-1", "ap-guangzhou-2", "ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-5", "ap-guangzhou-6", "ap-guangzhou-7"}
	sel := planner.Selection{Group: 2, GroupName: "g", Filters: []planner.Filter{{Name: "zone", Values: zones}}}
	cfg := describeConfig{lim: ratelimit.NewLocal(ratelimit.Config{}), key: "k", rate: 1000}
	got, calls, err := listSelections(t.Context(), cfg, l, []planner.Selection{sel})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, m := range got[2] {
		ids[m.InstanceID] = true
	}
	// 5 zones hold 322 instances (4 pages), 2 zones 128 (2 pages).
	if len(ids) != 450 || calls != 6 || len(l.calls) != 6 {
		t.Errorf("%d instances in %d calls (%d seen); want 450 in 6", len(ids), calls, len(l.calls))
	}
}
