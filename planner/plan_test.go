package planner

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fleetreset/fleetreset/rollout"
)

// mustParse parses a plan that must be good.
func mustParse(t *testing.T, text string, opts Options) *Plan {
	t.Helper()
	plan, err := Parse("plans/test.yaml", []byte(text), opts)
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	checkInvariants(t, plan)
	return plan
}

const minimal = `
version: 1
name: minimal
region: ap-guangzhou
password: {env: PW}
groups:
  - name: web
    instances: [ins-aaaa0001, ins-aaaa0002, ins-aaaa0003]
waves: [1, 100%]
`

func TestParseDefaults(t *testing.T) {
	plan := mustParse(t, minimal, Options{})
	want := rollout.Spec{
		ID:       "minimal",
		PlanFile: "plans/test.yaml",
		Region:   "ap-guangzhou",
		API:      "v3",
		Groups: []rollout.Group{
			{Name: "web", OS: "linux", Password: &rollout.SecretRef{Env: "PW"}},
		},
		Waves: []rollout.Wave{
			{Size: 1, Budget: rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit}},
			{Size: 2, Budget: rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit}},
		},
		Budget:         rollout.Budget{Max: 0, Percent: rollout.NoLimit},
		OnBreach:       "pause",
		ResetRate:      10,
		DescribeRate:   40,
		VerifyInterval: 10 * time.Second,
		VerifyTimeout:  20 * time.Minute,
		RetryAttempts:  20,
		RetryDeadline:  30 * time.Minute,
	}
	if diff := cmp.Diff(want, plan.Spec, cmpopts.IgnoreFields(rollout.Spec{}, "PlanHash")); diff != "" {
		t.Errorf("Spec mismatch (-want +got):\n%s", diff)
	}
	wantTargets := []rollout.Target{
		{InstanceID: "ins-aaaa0001", Wave: 0},
		{InstanceID: "ins-aaaa0002", Wave: 1},
		{InstanceID: "ins-aaaa0003", Wave: 1},
	}
	if diff := cmp.Diff(wantTargets, plan.Targets); diff != "" {
		t.Errorf("Targets mismatch (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(plan.Spec.PlanHash, "sha256:") || len(plan.Spec.PlanHash) != 7+64 {
		t.Errorf("PlanHash = %q; want sha256:<64 hex>", plan.Spec.PlanHash)
	}
}

func TestParseFull(t *testing.T) {
	text := `
version: 1
name: full
region: ap-guangzhou
api: v3
endpoint: http://127.0.0.1:8080
image: {type: 1, id: img-abcd1234}
os: linux
keyIds: [skey-abcd1234]
securityAgent: false
monitorAgent: true
rootSize: 60
groups:
  - name: web
    instances:
      - ins-aaaa0001
      - {id: ins-aaaa0002, zone: ap-guangzhou-3}
  - name: win
    os: windows
    image: {id: img-wind0001}
    password: {file: secrets/win.txt}   # replaces keyIds: login is inherited as a unit
    securityAgent: true
    instances: [ins-bbbb0001]
  - name: custom
    keepImageLogin: true
    hostName: web01
    instances: [ins-cccc0001]
rateLimit: {reset: 2.5, describe: 20}
verify: {interval: 5s, timeout: 15m}
retry: {attempts: 3, deadline: 10m}
waves:
  - {size: 1, soak: 5m}
  - {size: 25%, approval: manual, failureBudget: {max: 1, percent: 50%, minSample: 1}}
failureBudget: {percent: 12.5%, minSample: 2}
onBreach: abort
startAt: 2026-12-01T02:00:00+08:00
schedule: "0 2 * * sat"
window: {start: "22:00", end: "04:00", timezone: Asia/Shanghai, days: [Fri, saturday]}
webhook: https://hooks.example.com/x?token=t
`
	plan := mustParse(t, text, Options{})
	abs, err := filepath.Abs("plans/secrets/win.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := rollout.Spec{
		ID:       "full",
		PlanFile: "plans/test.yaml",
		Region:   "ap-guangzhou",
		Endpoint: "http://127.0.0.1:8080",
		API:      "v3",
		Groups: []rollout.Group{
			{Name: "web", OS: "linux", ImageType: 1, ImageID: "img-abcd1234", KeyIDs: []string{"skey-abcd1234"},
				SecurityAgent: new(false), MonitorAgent: new(true), RootSize: 60},
			{Name: "win", OS: "windows", ImageID: "img-wind0001", Password: &rollout.SecretRef{File: abs},
				SecurityAgent: new(true), MonitorAgent: new(true), RootSize: 60},
			{Name: "custom", OS: "linux", ImageType: 1, ImageID: "img-abcd1234", KeepImageLogin: true,
				SecurityAgent: new(false), MonitorAgent: new(true), RootSize: 60, HostName: "web01"},
		},
		Waves: []rollout.Wave{
			{Size: 1, Soak: 5 * time.Minute, Budget: rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit}},
			// 25% of 4 is 1; the entry repeats with its approval and budget.
			{Size: 1, Approval: true, Budget: rollout.Budget{Max: 1, Percent: 50, MinSample: 1}},
			{Size: 1, Approval: true, Budget: rollout.Budget{Max: 1, Percent: 50, MinSample: 1}},
			{Size: 1, Approval: true, Budget: rollout.Budget{Max: 1, Percent: 50, MinSample: 1}},
		},
		Budget:         rollout.Budget{Max: rollout.NoLimit, Percent: 12.5, MinSample: 2},
		OnBreach:       "abort",
		ResetRate:      2.5,
		DescribeRate:   20,
		VerifyInterval: 5 * time.Second,
		VerifyTimeout:  15 * time.Minute,
		RetryAttempts:  3,
		RetryDeadline:  10 * time.Minute,
		StartAt:        time.Date(2026, 12, 1, 2, 0, 0, 0, time.FixedZone("", 8*3600)),
		Schedule:       "0 2 * * sat",
		Window:         &rollout.Window{Start: 22 * 60, End: 4 * 60, Location: "Asia/Shanghai", Days: []int{5, 6}},
		Webhook:        "https://hooks.example.com/x?token=t",
	}
	opts := []cmp.Option{
		cmpopts.IgnoreFields(rollout.Spec{}, "PlanHash"),
		cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
	}
	if diff := cmp.Diff(want, plan.Spec, opts...); diff != "" {
		t.Errorf("Spec mismatch (-want +got):\n%s", diff)
	}
	if got := plan.Targets[1]; got.Zone != "ap-guangzhou-3" {
		t.Errorf("Targets[1].Zone = %q; want ap-guangzhou-3", got.Zone)
	}
	if len(plan.Warnings) != 0 {
		t.Errorf("Warnings = %v; want none", plan.Warnings)
	}
}

func TestZoneOrder(t *testing.T) {
	text := `
version: 1
name: zones
region: ap-guangzhou
password: {env: PW}
zoneOrder: [ap-guangzhou-4, ap-guangzhou-3]
groups:
  - name: a
    instances:
      - {id: ins-aaaa0001, zone: ap-guangzhou-3}
      - {id: ins-aaaa0002, zone: ap-guangzhou-4}
  - name: b
    instances:
      - {id: ins-bbbb0001, zone: ap-guangzhou-3}
      - {id: ins-bbbb0002, zone: ap-guangzhou-4}
waves: [1, 50%]
`
	plan := mustParse(t, text, Options{})
	want := []rollout.Target{
		{InstanceID: "ins-aaaa0002", Group: 0, Wave: 0, Zone: "ap-guangzhou-4"},
		{InstanceID: "ins-bbbb0002", Group: 1, Wave: 1, Zone: "ap-guangzhou-4"},
		{InstanceID: "ins-aaaa0001", Group: 0, Wave: 1, Zone: "ap-guangzhou-3"},
		{InstanceID: "ins-bbbb0001", Group: 1, Wave: 2, Zone: "ap-guangzhou-3"},
	}
	if diff := cmp.Diff(want, plan.Targets); diff != "" {
		t.Errorf("Targets mismatch (-want +got):\n%s", diff)
	}
	if got := plan.WaveTargets(1); len(got) != 2 || got[0].InstanceID != "ins-bbbb0002" {
		t.Errorf("WaveTargets(1) = %v", got)
	}
	if got := plan.WaveTargets(3); got != nil {
		t.Errorf("WaveTargets(3) = %v; want nil", got)
	}
}

func TestWarnings(t *testing.T) {
	text := `
version: 1
name: warn
region: ap-guangzhou
password: {env: PW}
hostName: shared-name
groups:
  - name: web
    instances: [ins-aaaa0001, ins-aaaa0002, ins-aaaa0003]
waves:
  - 1
  - {size: 5, failureBudget: {percent: 10%, minSample: 10}}
  - 50%
  - 100%
failureBudget: {percent: 5%, minSample: 20}
`
	plan := mustParse(t, text, Options{})
	want := strings.Join([]string{
		`plans/test.yaml:6: hostName: every one of the 3 instances of group web gets the host name "shared-name"`,
		`plans/test.yaml:12: waves[1].failureBudget.minSample: 10 is more than the 2 instances of wave 1, so its percentage is never judged`,
		`plans/test.yaml:13: waves[2]: no wave comes from this entry or the 1 after it: the waves before them already place all 3 instances`,
		`plans/test.yaml:15: failureBudget.minSample: 20 is more than the plan's 3 instances, so the percentage is never judged`,
	}, "\n")
	if diff := cmp.Diff(want, plan.Warnings.Error()); diff != "" {
		t.Errorf("Warnings mismatch (-want +got):\n%s", diff)
	}
}

func TestPlanHash(t *testing.T) {
	a := mustParse(t, minimal, Options{})
	b, err := Parse("elsewhere/other-name.yaml", []byte("# a comment changes nothing\n"+minimal), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Spec.PlanHash != b.Spec.PlanHash {
		t.Errorf("same plan under another path hashes %s and %s; want equal", a.Spec.PlanHash, b.Spec.PlanHash)
	}
	c := mustParse(t, strings.Replace(minimal, "[1, 100%]", "[2, 100%]", 1), Options{})
	if a.Spec.PlanHash == c.Spec.PlanHash {
		t.Errorf("different waves hash the same: %s", a.Spec.PlanHash)
	}
}

func TestSecretsOnlyWhenAsked(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	if _, err := Parse("p.yaml", []byte(minimal), Options{LookupEnvFunc: noEnv}); err != nil {
		t.Errorf("Parse without ResolveSecrets read the environment: %v", err)
	}
	_, err := Parse("p.yaml", []byte(minimal), Options{ResolveSecrets: true, LookupEnvFunc: noEnv})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "password" || fe.Line != 5 {
		t.Fatalf("Parse with ResolveSecrets = %v; want a password error at line 5", err)
	}
	if want := "p.yaml:5: password: env PW is not set"; fe.Error() != want {
		t.Errorf("error = %q; want %q", fe.Error(), want)
	}
	// A good password passes; the same password is checked once per OS.
	calls := 0
	env := func(string) (string, bool) { calls++; return "Passw0rd-ok", true }
	if _, err := Parse("p.yaml", []byte(minimal), Options{ResolveSecrets: true, LookupEnvFunc: env}); err != nil {
		t.Errorf("Parse = %v; want ok", err)
	}
	if calls != 1 {
		t.Errorf("the password was read %d times; want once", calls)
	}
}

func TestLoad(t *testing.T) {
	_, err := Load("testdata/no-such-plan.yaml", Options{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v; want fs.ErrNotExist", err)
	}
	files := map[string]string{"dir/plan.yaml": strings.Replace(minimal, "instances: [ins-aaaa0001, ins-aaaa0002, ins-aaaa0003]", "instancesFile: ids.txt", 1),
		"dir/ids.txt": "# ids\nins-aaaa0001 ap-guangzhou-3  # first\n\n  ins-aaaa0002\n"}
	read := func(p string) ([]byte, error) {
		if s, ok := files[filepath.ToSlash(p)]; ok {
			return []byte(s), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	plan, err := Load("dir/plan.yaml", Options{ReadFileFunc: read})
	if err != nil {
		t.Fatal(err)
	}
	want := []rollout.Target{{InstanceID: "ins-aaaa0001", Zone: "ap-guangzhou-3"}, {InstanceID: "ins-aaaa0002", Wave: 1}}
	if diff := cmp.Diff(want, plan.Targets); diff != "" {
		t.Errorf("Targets mismatch (-want +got):\n%s", diff)
	}
}

func TestFieldErrorFormat(t *testing.T) {
	tests := []struct {
		err  FieldError
		want string
	}{
		{FieldError{File: "p.yaml", Line: 3, Field: "waves[0].size", Msg: "bad"}, "p.yaml:3: waves[0].size: bad"},
		{FieldError{File: "p.yaml", Line: 3, Msg: "bad"}, "p.yaml:3: bad"},
		{FieldError{File: "p.yaml", Msg: "empty plan"}, "p.yaml: empty plan"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q; want %q", got, tt.want)
		}
	}
	es := sortErrors(Errors{
		{File: "ids.txt", Line: 1, Msg: "c"},
		{File: "p.yaml", Line: 9, Msg: "b"},
		{File: "p.yaml", Line: 2, Msg: "a"},
		{File: "p.yaml", Line: 9, Msg: "b"}, // duplicate
	}, "p.yaml")
	if got, want := es.Error(), "p.yaml:2: a\np.yaml:9: b\nids.txt:1: c"; got != want {
		t.Errorf("sorted errors =\n%s\nwant\n%s", got, want)
	}
}
