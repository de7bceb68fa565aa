package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/ledger"
)

// humanTime is how times are shown to people: with their UTC offset, since
// a rollout is often read from another zone than the one that ran it.
const humanTime = "2006-01-02 15:04:05 -07:00"

// tally counts the instances of a rollout or of one wave by what became of
// them. The terminal outcomes come from the ledger's counters. The ledger
// keeps no counter of the instances still open, so InFlight and Pending
// are known (Open) only where every instance was read; elsewhere all that
// is known is NotFinished, and that is what is shown rather than a guess.
type tally struct {
	Size int
	ledger.Counters
	// Open says InFlight and Pending were counted from the instances.
	Open bool
	// InFlight counts calling and resetting instances: a call was made or
	// is being made, and the reinstall is not verified yet.
	InFlight int
	// Pending counts pending and held instances: nothing called yet.
	Pending int
}

// NotFinished is how many instances have no outcome yet.
func (t tally) NotFinished() int { return max(0, t.Size-t.Terminal) }

// String is the tally for people, every count named even when zero, e.g.
// "9/12 finished: ok 2, skipped 0, failed 1, ambiguous 1, cancelled 5,
// in flight 2, pending 1"; "not finished 3" replaces the last two when the
// instances were not read.
func (t tally) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d finished: ok %d, skipped %d, failed %d, ambiguous %d, cancelled %d, ",
		t.Terminal, t.Size, t.Succeeded, t.Skipped, t.Failed, t.Ambiguous, t.Cancelled)
	if t.Open {
		fmt.Fprintf(&b, "in flight %d, pending %d", t.InFlight, t.Pending)
	} else {
		fmt.Fprintf(&b, "not finished %d", t.NotFinished())
	}
	return b.String()
}

// rolloutTally is the tally of a rollout from its counters alone.
func rolloutTally(r *ledger.Rollout) tally { return tally{Size: r.Total, Counters: r.Counters} }

// instanceTallies counts a rollout and each of its waves with the open
// instances of is (every instance of r, from the ledger).
func instanceTallies(r *ledger.Rollout, is []*ledger.Instance) (total tally, waves []tally) {
	total = rolloutTally(r)
	total.Open = true
	waves = make([]tally, len(r.Waves))
	for i, w := range r.Waves {
		waves[i] = tally{Size: w.Size, Counters: w.Counters, Open: true}
	}
	for _, in := range is {
		total.countOpen(in.State)
		if in.Wave >= 0 && in.Wave < len(waves) {
			waves[in.Wave].countOpen(in.State)
		}
	}
	return total, waves
}

// countOpen counts an instance in state s when it is open: in flight
// (calling, resetting: a call was made or is being made, not yet
// verified) or pending (pending, held: nothing called yet).
func (t *tally) countOpen(s ledger.InstanceState) {
	switch s {
	case ledger.Calling, ledger.Resetting:
		t.InFlight++
	case ledger.Pending, ledger.Held:
		t.Pending++
	}
}

// regionTally is the tally of one region of a rollout that counts regions.
type regionTally struct {
	Region string
	tally
}

// regionTallies counts each region of r (none unless the rollout counts
// regions: rollout.Spec.CountedRegions) from the ledger's counters, with
// the open instances of is when it is not nil.
func regionTallies(r *ledger.Rollout, is []*ledger.Instance) []regionTally {
	if len(r.Regions) == 0 {
		return nil
	}
	out := make([]regionTally, len(r.Regions))
	at := map[string]int{}
	for i, rs := range r.Regions {
		out[i] = regionTally{Region: rs.Region, tally: tally{Size: rs.Size, Counters: rs.Counters, Open: is != nil}}
		at[rs.Region] = i
	}
	for _, in := range is {
		if i, ok := at[r.Spec.LocationOf(in.Group).Region]; ok {
			out[i].countOpen(in.State)
		}
	}
	return out
}

// progressText is the one-line progress of a rollout from its record
// alone, e.g. "[wave 2/4] ███░░░ 26/40 finished: ok 24, skipped 0, failed
// 2, ambiguous 0, cancelled 0, not finished 14 · running". It reads no
// instance, so it is cheap enough to redraw every second; `run` and
// `status` print it.
func progressText(r *ledger.Rollout) string { return formatProgress(r, rolloutTally(r)) }

// formatProgress is progressText with the tally t, which may count the
// open instances too.
func formatProgress(r *ledger.Rollout, t tally) string {
	const width = 24
	filled := 0
	if t.Size > 0 {
		filled = min(width, t.Terminal*width/t.Size)
	}
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	return fmt.Sprintf("[wave %d/%d] %s %s · %s", min(r.Wave+1, len(r.Waves)), len(r.Waves), bar, t, r.State)
}

// humanTimeOf formats t with humanTime in the local zone, "-" when zero.
func humanTimeOf(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(humanTime)
}
