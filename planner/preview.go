package planner

import (
	"cmp"
	"time"

	"github.com/fleetreset/fleetreset/rollout"
)

// Preview is what `fleetreset plan` prints: the waves, what pre-flight
// found, the API calls the rollout will make and its minimum wall time.
type Preview struct {
	Rollout string
	Waves   []PreviewWave
	// ZoneCounts counts targets per zone ("" when unknown).
	ZoneCounts map[string]int
	Preflight  *rollout.PreflightReport
	// ResetCalls and DescribeCalls are the API calls of a clean run:
	// one reset per instance to reset, and one describe per 100 instances
	// for the pre-flight of each wave plus one per 100 per verify poll.
	ResetCalls    int
	DescribeCalls int
	// MinWallTime is the sum over waves of the time the reset budget needs
	// for the wave, plus the soaks. The reinstall itself (minutes on the
	// real cloud) and verification add to it per wave.
	MinWallTime time.Duration
}

// PreviewWave is one wave of a preview.
type PreviewWave struct {
	Index    int
	Size     int
	ToReset  int
	Soak     time.Duration
	Approval bool
	Budget   rollout.Budget
}

// MakePreview computes a preview; pf may be nil when no pre-flight ran.
func MakePreview(plan *Plan, pf *rollout.PreflightReport) Preview {
	p := Preview{Rollout: plan.Spec.ID, ZoneCounts: map[string]int{}, Preflight: pf}
	for _, t := range plan.Targets {
		zone := t.Zone
		if pf != nil && zone == "" {
			zone = pf.Zones[t.InstanceID]
		}
		p.ZoneCounts[zone]++
	}
	rate := cmp.Or(plan.Spec.ResetRate, 10)
	for k, w := range plan.Spec.Waves {
		pw := PreviewWave{Index: k, Size: w.Size, Soak: w.Soak, Approval: w.Approval, Budget: w.Budget}
		for _, t := range plan.WaveTargets(k) {
			if pf == nil || (pf.Skipped[t.InstanceID] == "" && pf.Refused[t.InstanceID] == "") {
				pw.ToReset++
			}
		}
		p.ResetCalls += pw.ToReset
		p.DescribeCalls += 2 * ((w.Size + 99) / 100)
		p.MinWallTime += time.Duration(float64(pw.ToReset) / rate * float64(time.Second))
		if k < len(plan.Spec.Waves)-1 {
			p.MinWallTime += w.Soak
		}
		p.Waves = append(p.Waves, pw)
	}
	return p
}
