package planner

import (
	"testing"
)

// checkInvariants checks what every accepted plan must satisfy: every
// target in exactly one wave, waves non-empty and in order, group indexes
// in range, no instance twice, and a hash.
func checkInvariants(t testing.TB, plan *Plan) {
	t.Helper()
	spec := plan.Spec
	if spec.ID == "" || spec.Region == "" || spec.PlanHash == "" {
		t.Fatalf("plan lacks id, region or hash: %+v", spec)
	}
	if len(plan.Targets) == 0 || len(spec.Waves) == 0 {
		t.Fatalf("plan has %d targets and %d waves", len(plan.Targets), len(spec.Waves))
	}
	sum := 0
	for i, w := range spec.Waves {
		if w.Size < 1 {
			t.Fatalf("wave %d is empty", i)
		}
		for _, tg := range plan.WaveTargets(i) {
			if tg.Wave != i {
				t.Fatalf("target %s in wave %d's slice says wave %d", tg.InstanceID, i, tg.Wave)
			}
		}
		sum += w.Size
	}
	if sum != len(plan.Targets) {
		t.Fatalf("waves hold %d instances; plan has %d targets", sum, len(plan.Targets))
	}
	seen := map[string]bool{}
	prevWave := 0
	for _, tg := range plan.Targets {
		if seen[tg.InstanceID] {
			t.Fatalf("instance %s is targeted twice", tg.InstanceID)
		}
		seen[tg.InstanceID] = true
		if tg.Wave < prevWave || tg.Wave >= len(spec.Waves) {
			t.Fatalf("target %s has wave %d after wave %d (of %d)", tg.InstanceID, tg.Wave, prevWave, len(spec.Waves))
		}
		prevWave = tg.Wave
		if tg.Group < 0 || tg.Group >= len(spec.Groups) {
			t.Fatalf("target %s has group %d of %d", tg.InstanceID, tg.Group, len(spec.Groups))
		}
	}
	for i, g := range spec.Groups {
		if g.OS != "linux" && g.OS != "windows" {
			t.Fatalf("group %d has OS %q", i, g.OS)
		}
		if g.Password == nil && len(g.KeyIDs) == 0 && !g.KeepImageLogin {
			t.Fatalf("group %d has no login setting", i)
		}
	}
}
