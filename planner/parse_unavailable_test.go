package planner

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetreset/fleetreset/rollout"
)

const unavailableFile = "testdata/unavailable/plan.yaml"

// unavailablePlan is a plan with three instances in three zones plus those
// of an instances file in testdata/unavailable (ten.txt: ten instances,
// 4, 4 and 2 per zone), whose maxUnavailable is at line 13.
func unavailablePlan(file, maxUnavailable string) string {
	return `version: 1
name: capped
region: ap-guangzhou
password: {env: PW}
waves: [1, 100%]
groups:
  - name: web
    instances:
      - {id: ins-aaaa0001, zone: ap-guangzhou-3}
      - {id: ins-aaaa0002, zone: ap-guangzhou-4}
      - {id: ins-aaaa0003, zone: ap-guangzhou-6}
    instancesFile: ` + file + `
maxUnavailable: ` + maxUnavailable + "\n"
}

func parseUnavailable(file, value string) (*Plan, error) {
	return Parse(unavailableFile, []byte(unavailablePlan(file, value)), Options{})
}

func TestParseMaxUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        *rollout.MaxUnavailable
	}{
		{"count", "3", &rollout.MaxUnavailable{Total: 3}},
		{"percent of the plan, rounded down", "25%", &rollout.MaxUnavailable{Total: 2}},
		{"never below 1", "1%", &rollout.MaxUnavailable{Total: 1}},
		{"total and perZone counts", "{total: 50%, perZone: 2}", &rollout.MaxUnavailable{Total: 5, PerZone: 2}},
		{"perZone only", "{perZone: 1}", &rollout.MaxUnavailable{PerZone: 1}},
		{"perZone percent of each zone", "{perZone: 50%}", &rollout.MaxUnavailable{PerZone: 1,
			Zones: map[string]int{"ap-guangzhou-3": 2, "ap-guangzhou-4": 2, "ap-guangzhou-6": 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := parseUnavailable("ten.txt", tc.value)
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, plan)
			if diff := cmp.Diff(tc.want, plan.Spec.MaxUnavailable); diff != "" {
				t.Errorf("MaxUnavailable (-want +got):\n%s", diff)
			}
		})
	}
	if plan := mustParse(t, minimal, Options{}); plan.Spec.MaxUnavailable != nil {
		t.Errorf("MaxUnavailable of a plan without it = %+v; want nil", plan.Spec.MaxUnavailable)
	}
}

func TestMaxUnavailableChangesThePlanHash(t *testing.T) {
	a, err := parseUnavailable("ten.txt", "3")
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseUnavailable("ten.txt", "4")
	if err != nil {
		t.Fatal(err)
	}
	if a.Spec.PlanHash == b.Spec.PlanHash {
		t.Error("plans with different maxUnavailable have the same hash: re-applying a changed cap would go unnoticed")
	}
}

func TestMaxUnavailableErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, value string
		want              string // the whole error line
	}{
		{"zero", "ten.txt", "0",
			`testdata/unavailable/plan.yaml:13: maxUnavailable: "0": want a count of at least 1 like 5, or a percentage more than 0% and at most 100% like 10%`},
		{"bad percent", "ten.txt", "{total: 0%}",
			`testdata/unavailable/plan.yaml:13: maxUnavailable.total: "0%": want a count of at least 1 like 5, or a percentage more than 0% and at most 100% like 10%`},
		{"over 100%", "ten.txt", "{perZone: 150%}",
			`testdata/unavailable/plan.yaml:13: maxUnavailable.perZone: "150%": want a count of at least 1 like 5, or a percentage more than 0% and at most 100% like 10%`},
		{"negative", "ten.txt", "{perZone: -1}",
			`testdata/unavailable/plan.yaml:13: maxUnavailable.perZone: "-1": want a count`},
		{"unknown key", "ten.txt", "{perzone: 5}",
			`testdata/unavailable/plan.yaml:13: maxUnavailable.perzone: unknown field (did you mean "perZone"?)`},
		{"empty", "ten.txt", "{}",
			`testdata/unavailable/plan.yaml:13: maxUnavailable: is empty: give total, perZone or both (leave maxUnavailable out for no cap)`},
		{"list", "ten.txt", "[5]",
			`testdata/unavailable/plan.yaml:13: maxUnavailable: must be a mapping`},
		{"percent per zone without zones", "some-zoneless.txt", "{perZone: 10%}",
			`testdata/unavailable/plan.yaml:13: maxUnavailable.perZone: 10% is a share of each zone, so every instance needs a zone in the plan; 2 have none, the first being ins-aaaa0005 (testdata/unavailable/some-zoneless.txt:2): give zones ({id: ins-aaaa0005, zone: ...}) or a count`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseUnavailable(tc.file, tc.value)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse = %v; want a FieldError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("errors:\n%v\nwant a line containing:\n%s", err, tc.want)
			}
		})
	}
	// A count per zone needs no zones: the workers use what the cloud says.
	if _, err := parseUnavailable("some-zoneless.txt", "{perZone: 5}"); err != nil {
		t.Errorf("perZone count without zones: %v", err)
	}
}

func TestMaxUnavailableWarnsWhenItHoldsNothingBack(t *testing.T) {
	plan, err := parseUnavailable("ten.txt", "{total: 10}")
	if err != nil {
		t.Fatal(err)
	}
	want := "testdata/unavailable/plan.yaml:13: maxUnavailable.total: 10 allows all 10 instances of the plan to be unavailable at once: it holds nothing back"
	if len(plan.Warnings) != 1 || plan.Warnings[0].Error() != want {
		t.Errorf("Warnings = %v; want %s", plan.Warnings, want)
	}
}

// TestPreviewUnderMaxUnavailable: a cap makes each wave take several
// rounds of reinstalls, and the ETA says so; without one the preview is
// as before.
func TestPreviewUnderMaxUnavailable(t *testing.T) {
	plan, err := parseUnavailable("ten.txt", "{perZone: 1}\nrateLimit: {reset: 10}")
	if err != nil {
		t.Fatal(err)
	}
	p := MakePreview(plan, nil)
	// Wave 1 is one instance; wave 2 has three left in -3 and four in -4.
	var rounds []int
	for _, w := range p.Waves {
		rounds = append(rounds, w.Rounds)
	}
	if !cmp.Equal(rounds, []int{1, 4}) || p.Reinstalls != 5 {
		t.Errorf("rounds per wave %v, reinstalls %d; want [1 4], 5", rounds, p.Reinstalls)
	}
	if want := "1s + 5 × the reinstall time (maxUnavailable)"; p.ETA() != want {
		t.Errorf("ETA = %q; want %q", p.ETA(), want)
	}
	if want := "at most 1 instances unavailable at once per zone"; p.MaxUnavailable != want {
		t.Errorf("MaxUnavailable = %q; want %q", p.MaxUnavailable, want)
	}

	// Serving time counts once per round: the drain and health of each.
	plan, err = parseUnavailable("ten.txt", "{total: 2}\nrateLimit: {reset: 10}\nloadBalancer: {listeners: [{loadBalancer: lb-abcd1234, listener: lbl-abcd1234, port: 80}], drainTime: 10s}")
	if err != nil {
		t.Fatal(err)
	}
	p = MakePreview(plan, nil)
	// 10 resets at 10/s; wave 1: 1 round, wave 2: 9 instances by 2 = 5 rounds, 10s of drain each.
	if want := time.Second + 6*10*time.Second; p.MinWallTime != want || p.Reinstalls != 6 {
		t.Errorf("MinWallTime, Reinstalls = %v, %d; want %v, 6", p.MinWallTime, p.Reinstalls, want)
	}

	if p := MakePreview(mustParse(t, minimal, Options{}), nil); p.Reinstalls != 0 || p.MaxUnavailable != "" || strings.Contains(p.ETA(), "reinstall") {
		t.Errorf("preview without a cap: Reinstalls %d, MaxUnavailable %q, ETA %q", p.Reinstalls, p.MaxUnavailable, p.ETA())
	}
}
