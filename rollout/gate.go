package rollout

import (
	"fmt"
	"strings"
	"time"
)

// Counts are the outcomes a failure budget judges: failures (failed and
// ambiguous) among the instances judged so far.
type Counts struct {
	Failed, Judged int
}

// BreachReason says why the outcomes breach the failure budgets of their
// wave (its own, when the wave exists in spec), of their region (when spec
// has a RegionBudget) and of the whole rollout, or "" when none is
// breached. The reason names the counts it judged and every
// limit they exceed, e.g. "wave 2 failure budget exceeded: 3 failed of 10
// finished (max 2)", so an operator knows which number to look at.
func BreachReason(spec Spec, o Outcomes) string {
	var whys []string
	if o.Wave >= 0 && o.Wave < len(spec.Waves) {
		whys = appendBreach(whys, fmt.Sprintf("wave %d", o.Wave+1), spec.Waves[o.Wave].Budget, o.InWave)
	}
	if spec.RegionBudget != nil && o.Region != "" {
		whys = appendBreach(whys, "region "+o.Region, *spec.RegionBudget, o.InRegion)
	}
	whys = appendBreach(whys, "rollout", spec.Budget, o.Overall)
	return strings.Join(whys, "; ")
}

// Outcomes are the counts the failure budgets judge after an instance
// finished: those of its wave, of its region and of the whole rollout.
type Outcomes struct {
	Wave            int
	InWave, Overall Counts
	// Region is the finished instance's region, "" when the rollout does
	// not count outcomes per region (Spec.CountedRegions).
	Region   string
	InRegion Counts
}

func appendBreach(whys []string, scope string, b Budget, c Counts) []string {
	if !b.Breached(c.Failed, c.Judged) {
		return whys
	}
	var limits []string
	if b.Max >= 0 && c.Failed > b.Max {
		limits = append(limits, fmt.Sprintf("max %d", b.Max))
	}
	// The percentage alone, with the count switched off, tells whether it
	// is the percentage that breached.
	if pct := (Budget{Max: NoLimit, Percent: b.Percent, MinSample: b.MinSample}); b.Percent >= 0 && pct.Breached(c.Failed, c.Judged) {
		l := fmt.Sprintf("max %g%%", b.Percent)
		if b.MinSample > 0 {
			l += fmt.Sprintf(" once %d finished", b.MinSample)
		}
		limits = append(limits, l)
	}
	return append(whys, fmt.Sprintf("%s failure budget exceeded: %d failed of %d finished (%s)", scope, c.Failed, c.Judged, strings.Join(limits, ", ")))
}

// Gate is what the gate after a complete wave must consider: the facts
// the ledger's advance acts on, decided from the spec and the time alone.
type Gate struct {
	// Last is true after the last wave: the rollout completes.
	Last bool
	// Approval is true when the next wave waits for `fleetreset approve`.
	Approval bool
	// WindowOpen is false when the maintenance window is closed now; the
	// next wave then starts at Opens.
	WindowOpen bool
	Opens      time.Time
}

// GateAfter decides the gate after wave k at now. The last wave needs no
// approval and no window: completing starts nothing.
func GateAfter(spec Spec, k int, now time.Time) (Gate, error) {
	g := Gate{Last: k >= len(spec.Waves)-1, WindowOpen: true}
	if g.Last {
		return g, nil
	}
	g.Approval = spec.Waves[k].Approval
	if spec.Window != nil {
		open, err := spec.Window.Contains(now)
		if err != nil {
			return g, err
		}
		if !open {
			g.WindowOpen = false
			if g.Opens, err = spec.Window.Next(now); err != nil {
				return g, err
			}
		}
	}
	return g, nil
}

// StartWait says how long the start of a rollout must wait at now for its
// maintenance window (0: start now). Later waves wait at their gate.
func StartWait(spec Spec, now time.Time) (time.Duration, error) {
	if spec.Window == nil {
		return 0, nil
	}
	open, err := spec.Window.Contains(now)
	if err != nil || open {
		return 0, err
	}
	next, err := spec.Window.Next(now)
	if err != nil {
		return 0, err
	}
	return next.Sub(now), nil
}

// SoakLeft is how long the gate after a complete wave still waits at now:
// the wave's soak from when it completed (soakUntil, zero when not yet
// recorded: the full soak).
func SoakLeft(spec Spec, k int, soakUntil, now time.Time) time.Duration {
	if !soakUntil.IsZero() {
		return max(0, soakUntil.Sub(now))
	}
	if k < len(spec.Waves) {
		return spec.Waves[k].Soak
	}
	return 0
}
