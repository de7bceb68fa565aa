package health

import (
	"cmp"
	"fmt"
	"time"

	"github.com/fleetreset/fleetreset/rollout"
)

// Tracker defaults, used when a field is zero.
const (
	// IntervalDefault is the time between two probes of one instance.
	IntervalDefault = 10 * time.Second
	// DeadlineDefault is how long after its image is verified an instance
	// has to become healthy.
	DeadlineDefault = 10 * time.Minute
	// HealthyThresholdDefault is the passes in a row that make an instance
	// healthy.
	HealthyThresholdDefault = 1
)

// Outcome is where one instance's health stands after a probe.
type Outcome string

// Outcomes of Tracker.Next.
const (
	// Wait: not decided yet; probe again at the returned time.
	Wait Outcome = "wait"
	// Healthy: HealthyThreshold passes in a row. The instance serves.
	Healthy Outcome = "healthy"
	// Unhealthy: the deadline passed and the instance is not healthy; the
	// State's Reason says why. It fails.
	Unhealthy Outcome = "unhealthy"
	// Undecided: the deadline passed and the last probe was Inconclusive,
	// so nothing proves the instance at fault. The rollout should pause
	// with the State's Reason rather than fail the instance.
	Undecided Outcome = "undecided"
)

// Tracker decides one instance's health from its probes. It is pure: the
// caller persists the State and passes the time, so a worker that crashes
// between probes resumes where it was. The zero value uses the defaults.
type Tracker struct {
	// HealthyThreshold is the passes in a row needed. An Inconclusive
	// probe neither counts nor breaks the row; a Fail resets it. Defaults
	// to HealthyThresholdDefault.
	HealthyThreshold int
	// InitialDelay is the wait after verification before the first probe.
	InitialDelay time.Duration
	// Interval is the wait between probes. Defaults to IntervalDefault.
	Interval time.Duration
	// Deadline, counted from verification, is when an instance that is not
	// healthy stops being probed. Defaults to DeadlineDefault.
	Deadline time.Duration
}

// TrackerFor returns the Tracker for a group's health settings.
func TrackerFor(h rollout.Health) Tracker {
	return Tracker{HealthyThreshold: h.HealthyThreshold, InitialDelay: h.InitialDelay, Interval: h.Interval, Deadline: h.Deadline}
}

// State is one instance's health progress, small enough to keep in the
// ledger. Its zero value is an instance not yet probed.
type State struct {
	// Passes is the current run of passing probes.
	Passes int `json:"passes"`
	// Probes counts every probe judged.
	Probes int `json:"probes"`
	// LastAt is the time of the latest probe, Last its verdict.
	LastAt time.Time `json:"last_at,omitzero"`
	Last   Verdict   `json:"last,omitempty"`
	// Check and Detail are from the latest probe that did not pass (or
	// say why the deadline passed without one).
	Check  string `json:"check,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Grace, when set, is the deadline of an instance whose probes came
	// late (see Next).
	Grace time.Time `json:"grace,omitzero"`
}

// Reason is s's Check and Detail as one line, "" when nothing failed.
func (s State) Reason() string {
	if s.Detail == "" {
		return ""
	}
	return s.Check + ": " + s.Detail
}

// First returns when the first probe is due: InitialDelay after the image
// was verified.
func (t Tracker) First(verifiedAt time.Time) time.Time {
	return verifiedAt.Add(t.InitialDelay)
}

// Next folds result r of the probe made at now into s. It returns the new
// state, the outcome, and when the next probe is due (zero unless the
// outcome is Wait). The probe is counted before the deadline is judged, so
// a pass at the deadline that reaches the threshold is Healthy. The next
// probe is never scheduled past the deadline, so the last one lands on it.
//
// A probe more than an interval past the deadline came late: the probes
// did not run on schedule (the last one lands on the deadline), because no
// worker ran them (all down, a stalled queue). An instance whose late probe
// passes is not failed for probes nobody made: it gets healthyThreshold
// more intervals from that probe (State.Grace) to finish its run.
func (t Tracker) Next(s State, r Result, now, verifiedAt time.Time) (State, Outcome, time.Time) {
	threshold := max(t.HealthyThreshold, HealthyThresholdDefault)
	interval := cmp.Or(t.Interval, IntervalDefault)
	deadline := verifiedAt.Add(cmp.Or(t.Deadline, DeadlineDefault))
	if s.Grace.IsZero() && r.Verdict == Pass && now.After(deadline.Add(interval)) {
		s.Grace = now.Add(time.Duration(threshold) * interval)
	}
	if s.Grace.After(deadline) {
		deadline = s.Grace
	}

	s.Probes++
	s.LastAt = now
	s.Last = r.Verdict
	switch r.Verdict {
	case Pass:
		s.Passes++
	case Fail:
		s.Passes = 0
		s.Check, s.Detail = r.Check, r.Detail
	default:
		// Inconclusive (or no verdict at all): keep the run as it is.
		s.Last = Inconclusive
		s.Check, s.Detail = r.Check, cmp.Or(r.Detail, "no verdict")
	}

	switch {
	case s.Passes >= threshold:
		return s, Healthy, time.Time{}
	case now.Before(deadline):
		next := now.Add(interval)
		if next.After(deadline) {
			next = deadline
		}
		return s, Wait, next
	case s.Last == Inconclusive:
		return s, Undecided, time.Time{}
	}
	// The deadline passed on a pass run too short, or on a failure.
	if s.Last == Pass {
		short := fmt.Sprintf("%d of %d passes in a row by the deadline", s.Passes, threshold)
		if s.Detail == "" {
			s.Check, s.Detail = "health", short
		} else {
			s.Detail = short + "; before: " + s.Detail
		}
	}
	return s, Unhealthy, time.Time{}
}
