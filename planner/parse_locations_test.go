package planner

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetreset/fleetreset/rollout"
)

// locationsPlan has two accounts and groups in two regions; extra is
// appended to the first group.
func locationsPlan(accounts, extra string) string {
	return `version: 1
name: multi
region: ap-guangzhou
password: {env: PW}
waves: [1, 100%]
accounts:
` + accounts + `
groups:
  - name: gz
    instances:
      - {id: ins-aaaa0001, zone: ap-guangzhou-3}
` + extra + `
  - name: sh
    region: ap-shanghai
    account: second
    instances:
      - {id: ins-bbbb0001, zone: ap-shanghai-2}
`
}

const twoAccounts = "  first: {env: FIRST}\n  second: {role: reset-role}"

func TestParseLocations(t *testing.T) {
	plan, err := Parse("plan.yaml", []byte(locationsPlan(twoAccounts+"\naccount: first", "")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, plan)
	s := plan.Spec
	want := map[string]rollout.AccountSource{"first": {Env: "FIRST"}, "second": {Role: "reset-role"}}
	if diff := cmp.Diff(want, s.Accounts); diff != "" {
		t.Errorf("Accounts (-want +got):\n%s", diff)
	}
	locs := []rollout.Location{{Region: "ap-guangzhou", Account: "first"}, {Region: "ap-shanghai", Account: "second"}}
	if diff := cmp.Diff(locs, s.Locations()); diff != "" {
		t.Errorf("Locations (-want +got):\n%s", diff)
	}
	if got := s.LocationOf(1); got != locs[1] {
		t.Errorf("LocationOf(1) = %v", got)
	}
	// The hash covers the credential sources.
	other, err := Parse("plan.yaml", []byte(locationsPlan("  first: {env: OTHER}\n  second: {role: reset-role}\naccount: first", "")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if other.Spec.PlanHash == s.PlanHash {
		t.Error("changing an account's source kept the plan hash")
	}
}

func TestParseLocationsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, accounts, extra, want string
	}{
		{"unknown account", twoAccounts, "    account: thrid", `plan.yaml:13: groups[0].account: unknown account "thrid": accounts defines first, second`},
		{"a key in the plan", "  first: {secretKey: abc}\n  second: {role: r}", "", `plan.yaml:7: accounts.first.secretKey: a plan names where credentials are, never the credentials`},
		{"two sources", "  first: {env: A, role: r}\n  second: {role: r}", "", `plan.yaml:7: accounts.first: give exactly one credential source`},
		{"bad prefix", "  first: {env: 'A-B'}\n  second: {role: r}", "", `accounts.first.env: "A-B" is not an environment variable prefix`},
		{"group region is a zone", twoAccounts, "    region: ap-beijing-1", `groups[0].region: "ap-beijing-1" is an availability zone`},
		{"zone outside the group's region", twoAccounts, "    region: ap-beijing", `zone "ap-guangzhou-3" is not in region ap-beijing`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("plan.yaml", []byte(locationsPlan(tc.accounts, tc.extra)), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestPreviewLocations: the preview counts targets per location, and the
// reset time of a wave is its slowest location's, not the sum.
func TestPreviewLocations(t *testing.T) {
	plan, err := Parse("plan.yaml", []byte(`version: 1
name: multi
region: ap-guangzhou
password: {env: PW}
rateLimit: {reset: 2}
waves: [100%]
accounts:
  second: {profile: second}
groups:
  - name: gz
    instances: [ins-aaaa0001, ins-aaaa0002, ins-aaaa0003, ins-aaaa0004]
  - name: sh
    region: ap-shanghai
    account: second
    instances: [ins-bbbb0001, ins-bbbb0002]
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := MakePreview(plan, nil)
	want := []PreviewLocation{
		{Location: rollout.Location{Region: "ap-guangzhou"}, Targets: 4, ToReset: 4, ResetTime: 2 * time.Second},
		{Location: rollout.Location{Region: "ap-shanghai", Account: "second"}, Targets: 2, ToReset: 2, ResetTime: time.Second},
	}
	if diff := cmp.Diff(want, p.Locations); diff != "" {
		t.Errorf("Locations (-want +got):\n%s", diff)
	}
	if p.MinWallTime != 2*time.Second {
		t.Errorf("MinWallTime = %s, want 2s (the slower location's, not 3s)", p.MinWallTime)
	}
	lines := p.LocationLines()
	if len(lines) != 2 || !strings.Contains(lines[1], "account second") || !strings.Contains(lines[0], "default credentials") {
		t.Errorf("LocationLines = %q", lines)
	}
	// A plan in one location shows no locations.
	one, err := Parse("plan.yaml", []byte("version: 1\nname: one\nregion: ap-guangzhou\npassword: {env: PW}\nwaves: [100%]\ngroups:\n  - {name: a, instances: [ins-aaaa0001]}\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l := MakePreview(one, nil).Locations; l != nil {
		t.Errorf("one location: Locations = %v", l)
	}
}

// TestRegionOrder: each region is a phase; waves are cut from each
// region's instances in turn and never hold two regions.
// twoRegionsPlan has three instances in ap-guangzhou and two in
// ap-shanghai; tests append top-level keys from line 12.
const twoRegionsPlan = `version: 1
name: phased
region: ap-guangzhou
password: {env: PW}
waves: [1, 100%]
groups:
  - name: gz
    instances: [ins-aaaa0001, ins-aaaa0002, ins-aaaa0003]
  - name: sh
    region: ap-shanghai
    instances: [ins-bbbb0001, ins-bbbb0002]
`

func TestRegionOrder(t *testing.T) {
	const head = twoRegionsPlan
	plan, err := Parse("plan.yaml", []byte(head+"regionOrder: [ap-shanghai, ap-guangzhou]\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, plan)
	var got []string
	for _, tg := range plan.Targets {
		got = append(got, fmt.Sprintf("%d:%s", tg.Wave, plan.Spec.LocationOf(tg.Group).Region))
	}
	want := []string{"0:ap-shanghai", "1:ap-shanghai", "2:ap-guangzhou", "3:ap-guangzhou", "3:ap-guangzhou"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("wave:region of the targets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"ap-shanghai", "ap-guangzhou"}, plan.Spec.RegionOrder); diff != "" {
		t.Errorf("RegionOrder (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ order, want string }{
		{"[ap-shanghai]", "plan.yaml:12: regionOrder: region ap-guangzhou has groups but is not listed"},
		{"[ap-shanghai, ap-guangzhou, ap-beijing]", "plan.yaml:12: regionOrder[2]: no group is in region ap-beijing"},
		{"[ap-shanghai, ap-shanghai, ap-guangzhou]", "regionOrder[1]: region ap-shanghai is listed twice"},
		{"[ap-shanghai-2, ap-guangzhou]", `regionOrder[0]: "ap-shanghai-2" is an availability zone`},
	} {
		_, err := Parse("plan.yaml", []byte(head+"regionOrder: "+tc.order+"\n"), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("regionOrder %s: err = %v, want %q", tc.order, err, tc.want)
		}
	}
}

func TestRegionFailureBudget(t *testing.T) {
	const head = twoRegionsPlan + "failureBudget: {max: 10}\n"
	plan, err := Parse("plan.yaml", []byte(head+"regionFailureBudget: {max: 1, percent: 20%, minSample: 2}\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, plan)
	want := &rollout.Budget{Max: 1, Percent: 20, MinSample: 2}
	if diff := cmp.Diff(want, plan.Spec.RegionBudget); diff != "" {
		t.Errorf("RegionBudget (-want +got):\n%s", diff)
	}
	if len(plan.Warnings) != 0 {
		t.Errorf("warnings: %v", plan.Warnings)
	}
	none, err := Parse("plan.yaml", []byte(head), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if none.Spec.RegionBudget != nil {
		t.Errorf("RegionBudget without regionFailureBudget = %+v, want nil", none.Spec.RegionBudget)
	}
	if none.Spec.PlanHash == plan.Spec.PlanHash {
		t.Error("the plan hash does not cover regionFailureBudget")
	}

	for _, tc := range []struct{ budget, want string }{
		{"{}", "plan.yaml:13: regionFailureBudget: is empty: give max, percent or both"},
		{"{max: -1}", "plan.yaml:13: regionFailureBudget.max: must be 0 or more"},
		{"{percent: 120%}", "plan.yaml:13: regionFailureBudget.percent"},
		{"{max: 1, regions: 2}", "plan.yaml:13: regionFailureBudget.regions"},
		{"3", "plan.yaml:13: regionFailureBudget"},
	} {
		_, err := Parse("plan.yaml", []byte(head+"regionFailureBudget: "+tc.budget+"\n"), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("regionFailureBudget: %s: err = %v, want %q", tc.budget, err, tc.want)
		}
	}

	for _, tc := range []struct{ plan, want string }{
		{strings.Replace(head, "    region: ap-shanghai\n", "", 1) + "regionFailureBudget: {max: 1}\n",
			"plan.yaml:12: regionFailureBudget: the plan has one region (ap-guangzhou): failureBudget already judges it"},
		{head + "regionFailureBudget: {percent: 10%, minSample: 3}\n",
			"plan.yaml:13: regionFailureBudget.minSample: 3 is more than the 2 instances of region ap-shanghai, so its percentage is never judged there"},
	} {
		p, err := Parse("plan.yaml", []byte(tc.plan), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Warnings.Error(); !strings.Contains(got, tc.want) {
			t.Errorf("warnings = %q, want %q", got, tc.want)
		}
	}
}

func TestZoneOrderAcrossRegions(t *testing.T) {
	const head = `version: 1
name: zones
region: ap-guangzhou
password: {env: PW}
waves: [1, 100%]
groups:
  - name: gz
    instances:
      - {id: ins-aaaa0001, zone: ap-guangzhou-3}
      - {id: ins-aaaa0002, zone: ap-guangzhou-4}
  - name: sh
    region: ap-shanghai
    instances:
      - {id: ins-bbbb0001, zone: ap-shanghai-2}
`
	plan, err := Parse("plan.yaml", []byte(head+"zoneOrder: [ap-shanghai-2, ap-guangzhou-4, ap-guangzhou-3]\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, plan)
	var got []string
	for _, tg := range plan.Targets {
		got = append(got, tg.Zone)
	}
	if diff := cmp.Diff([]string{"ap-shanghai-2", "ap-guangzhou-4", "ap-guangzhou-3"}, got); diff != "" {
		t.Errorf("target zones (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ order, want string }{
		{"[ap-shanghai-2, ap-guangzhou-4, ap-guangzhou-3, ap-beijing-1]",
			`plan.yaml:15: zoneOrder[3]: zone "ap-beijing-1" is in region ap-beijing, where no group of the plan is (regions: ap-guangzhou, ap-shanghai)`},
		{"[ap-guangzhou-4, ap-guangzhou-3]", "zone ap-shanghai-2 of ins-bbbb0001 is not in zoneOrder"},
		{"[ap-shanghai-2, ap-guangzhou-4, ap-guangzhou-3, zone-a]", `zoneOrder[3]: "zone-a" is not an availability zone`},
	} {
		_, err := Parse("plan.yaml", []byte(head+"zoneOrder: "+tc.order+"\n"), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("zoneOrder %s: err = %v, want %q", tc.order, err, tc.want)
		}
	}
}
