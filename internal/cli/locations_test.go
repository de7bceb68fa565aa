package cli

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/internal/testfleet"
	"github.com/fleetreset/fleetreset/ledger"
)

// TestPlanApplyWorkTwoLocations runs plan, apply (with its pre-flight) and
// a worker on a plan whose groups are in two regions under two accounts:
// the default credentials in ap-guangzhou, and account second, read from
// SECOND_SECRET_ID, _SECRET_KEY and _TOKEN, in ap-shanghai, selected by
// tag. Every call goes to its group's region with its account's key, and
// each instance is reset once.
func TestPlanApplyWorkTwoLocations(t *testing.T) {
	r := redistest.New(t)
	sim := cvmsim.New(cvmsim.Config{Regions: []string{"ap-shanghai"}, ResetDuration: 200 * time.Millisecond})
	sim.AcceptCredentials("AKIDsecond", "second-key", "second-token", time.Now().Add(time.Hour))
	all := testfleet.IDs(12)
	gz, sh := all[:6], all[6:]
	sim.AddInstances(testfleet.Fleet{Image: "img-old00001", Zones: []string{"ap-guangzhou-3"}}.Instances(gz)...)
	shIns := testfleet.Fleet{Image: "img-old00001", Zones: []string{"ap-shanghai-2", "ap-shanghai-4"}}.Instances(sh)
	for i := range shIns {
		shIns[i].Region, shIns[i].Tags = "ap-shanghai", map[string]string{"role": "web"}
	}
	sim.AddInstances(shIns...)
	hs := httptest.NewServer(sim)
	defer hs.Close()
	t.Setenv("TENCENTCLOUD_SECRET_ID", cvmsim.SecretIDDefault)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", cvmsim.SecretKeyDefault)
	t.Setenv("SECOND_SECRET_ID", "AKIDsecond")
	t.Setenv("SECOND_SECRET_KEY", "second-key")
	t.Setenv("SECOND_TOKEN", "second-token")
	plan := `version: 1
name: two-locations
region: ap-guangzhou
image: {type: 1, id: img-new00001}
keepImageLogin: true
rateLimit: {reset: 5, describe: 20}
verify: {interval: 200ms, timeout: 1m}
waves: [100%]
regionFailureBudget: {max: 1}
accounts:
  second: {env: SECOND}
groups:
  - name: gz
    instances: [` + strings.Join(gz, ", ") + `]
  - name: sh
    region: ap-shanghai
    account: second
    select: {tag:role: web}
`
	path := filepath.Join(t.TempDir(), "two.yaml")
	if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	ns := strings.TrimSuffix(r.Prefix, ":")
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr}
	common := []string{"--namespace", ns, "--endpoint", hs.URL}

	env, out, errb := testEnv(vars)
	if code := Main(t.Context(), env, append(append([]string{"plan"}, common...), path)); code != 0 {
		t.Fatalf("plan exited %d\n%s\n%s", code, out, errb)
	}
	for _, s := range []string{"Locations (in parallel", "ap-guangzhou     default credentials", "ap-shanghai      account second", "6 instances, 6 to reset", "Minimum wall time: 1s", "failure budget of each region: stop at more than 1 failed"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("plan output lacks %q:\n%s", s, out)
		}
	}
	env, out, errb = testEnv(vars)
	if code := Main(t.Context(), env, append(append([]string{"apply"}, common...), path)); code != 0 {
		t.Fatalf("apply exited %d\n%s\n%s", code, out, errb)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		env, out, errb := testEnv(vars)
		if code := Main(ctx, env, append([]string{"worker", "--reconcile-grace", "5s"}, common...)); code != 0 {
			t.Errorf("worker exited %d\n%s\n%s", code, out, errb)
		}
	}()
	l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
	rr := awaitState(t, l, "two-locations", time.Minute, ledger.Completed)
	cancel()
	wg.Wait()
	if rr.Counters.Succeeded != 12 {
		t.Errorf("succeeded %d; want 12: %+v", rr.Counters.Succeeded, rr.Counters)
	}
	st := sim.Stats()
	testfleet.RequireExactlyOnce(t, st, all)
	for k, perSec := range st.CallsBy {
		region, id := strings.Fields(k)[1], strings.Fields(k)[2]
		if want := map[string]string{"ap-guangzhou": cvmsim.SecretIDDefault, "ap-shanghai": "AKIDsecond"}[region]; id != want {
			t.Errorf("%d calls %s: want region %s under %s only", sumCalls(perSec), k, region, want)
		}
	}
	for _, region := range []string{"ap-guangzhou", "ap-shanghai"} {
		id := map[string]string{"ap-guangzhou": cvmsim.SecretIDDefault, "ap-shanghai": "AKIDsecond"}[region]
		if n := st.MaxPerSecond("ResetInstance", region, id); n == 0 || n > 5 {
			t.Errorf("%s: %d resets in one second, want 1..5", region, n)
		}
	}
	if n := st.Errors["InvalidInstanceId.NotFound"]; n > 0 {
		t.Errorf("%d calls named an instance of another region", n)
	}

	// status shows each region's progress, in text and JSON.
	env, out, errb = testEnv(vars)
	if code := Main(t.Context(), env, []string{"status", "--namespace", ns, "two-locations"}); code != 0 {
		t.Fatalf("status exited %d\n%s\n%s", code, out, errb)
	}
	for _, re := range []string{`by region \(failure budget: stop at more than 1 failed each\)`, `ap-guangzhou\s+6\s+6\s+0\s+0`, `ap-shanghai\s+6\s+6\s+0\s+0`} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("status lacks %s:\n%s", re, out)
		}
	}
	env, out, errb = testEnv(vars)
	if code := Main(t.Context(), env, []string{"status", "--json", "--namespace", ns, "two-locations"}); code != 0 {
		t.Fatalf("status --json exited %d\n%s\n%s", code, out, errb)
	}
	var js struct {
		Rollout struct {
			Regions []struct {
				Region string
				Counts struct{ Total, Succeeded int }
			}
		}
	}
	if err := json.Unmarshal([]byte(out.String()), &js); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if rs := js.Rollout.Regions; len(rs) != 2 || rs[1].Region != "ap-shanghai" || rs[1].Counts.Total != 6 || rs[1].Counts.Succeeded != 6 {
		t.Errorf("status --json regions = %+v; want ap-guangzhou and ap-shanghai, 6 of 6 each", rs)
	}
}

// TestRunSimulateTwoLocations: run --simulate serves every region of the
// plan and signs every account with the simulator's key.
func TestRunSimulateTwoLocations(t *testing.T) {
	dir := t.TempDir()
	plan := `version: 1
name: sim-two
region: ap-guangzhou
image: {type: 1, id: img-new00001}
keepImageLogin: true
verify: {interval: 200ms, timeout: 1m}
waves: [1, 100%]
accounts:
  other: {env: FLEETRESET_TEST_UNSET}
groups:
  - name: gz
    instances: [ins-aaaa0001, ins-aaaa0002]
  - name: sh
    region: ap-shanghai
    account: other
    instances: [ins-bbbb0001, {id: ins-bbbb0002, zone: ap-shanghai-2}]
`
	path := filepath.Join(dir, "sim.yaml")
	if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	var sim *cvmsim.Server
	env, out, errb := testEnv(nil)
	env.Hooks = &Hooks{Simulator: func(s *cvmsim.Server, _ string) { sim = s }}
	if code := Main(t.Context(), env, []string{"run", "--simulate", "--sim-reset-duration", "300ms", "--state-dir", t.TempDir(), path}); code != 0 {
		t.Fatalf("run exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errb)
	}
	st := sim.Stats()
	testfleet.RequireExactlyOnce(t, st, []string{"ins-aaaa0001", "ins-aaaa0002", "ins-bbbb0001", "ins-bbbb0002"})
	if st.MaxPerSecond("ResetInstance", "ap-shanghai", cvmsim.SecretIDDefault) == 0 {
		t.Errorf("no reset in ap-shanghai: %v", st.CallsBy)
	}
	if in, _ := sim.Instance("ins-bbbb0001"); in.Region != "ap-shanghai" || !strings.HasPrefix(in.Zone, "ap-shanghai-") {
		t.Errorf("simulated shanghai instance: %+v", in)
	}
}

// TestNamedAccountsNeedNoDefaultCredentials: when every group names an
// account, plan and apply run without default credentials, and the rollout
// stores the identity each account resolved to (and none for the default).
func TestNamedAccountsNeedNoDefaultCredentials(t *testing.T) {
	r := redistest.New(t)
	sim := cvmsim.New(cvmsim.Config{ResetDuration: 200 * time.Millisecond})
	sim.AcceptCredentials("AKIDsecond", "second-key", "", time.Now().Add(time.Hour))
	all := testfleet.IDs(3)
	sim.AddInstances(testfleet.Fleet{Image: "img-old00001", Zones: []string{"ap-guangzhou-3"}}.Instances(all)...)
	hs := httptest.NewServer(sim)
	defer hs.Close()
	// No default credentials anywhere: environment, profile file, role.
	t.Setenv("TENCENTCLOUD_SECRET_ID", "")
	t.Setenv("TENCENTCLOUD_SECRET_KEY", "")
	t.Setenv("TENCENTCLOUD_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("SECOND_SECRET_ID", "AKIDsecond")
	t.Setenv("SECOND_SECRET_KEY", "second-key")
	plan := `version: 1
name: named-only
region: ap-guangzhou
image: {type: 1, id: img-new00001}
keepImageLogin: true
waves: [100%]
accounts:
  second: {env: SECOND}
account: second
groups:
  - name: all
    instances: [` + strings.Join(all, ", ") + `]
`
	path := filepath.Join(t.TempDir(), "named.yaml")
	if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	ns := strings.TrimSuffix(r.Prefix, ":")
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr}
	common := []string{"--namespace", ns, "--endpoint", hs.URL}
	for _, cmd := range []string{"plan", "apply"} {
		env, out, errb := testEnv(vars)
		if code := Main(t.Context(), env, append(append([]string{cmd}, common...), path)); code != 0 {
			t.Fatalf("%s without default credentials exited %d\n%s\n%s", cmd, code, out, errb)
		}
	}
	l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
	spec, _, err := l.Spec(t.Context(), "named-only")
	if err != nil {
		t.Fatal(err)
	}
	if spec.Identity != "" || spec.AccountIdentities["second"] != "AKIDsecond" {
		t.Errorf("stored identities: default %q, accounts %v; want none and second=AKIDsecond", spec.Identity, spec.AccountIdentities)
	}
	if n := sim.Stats().TotalCalls; n == 0 {
		t.Error("no pre-flight call reached the simulator")
	}
}
