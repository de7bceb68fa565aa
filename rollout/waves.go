package rollout

// Step is one wave cut by Expand.
type Step struct {
	// Entry indexes the sizes Expand was given: the plan entry whose options
	// (soak, approval, budget) the wave carries. Waves cut after the list
	// ran out repeat the last entry. It is -1 when the list was empty.
	Entry int
	// Size is the number of instances in the wave, at least 1.
	Size int
}

// Expand cuts total instances into waves with Ansible `serial` semantics:
//
//   - wave i has sizes[i] instances; once the list runs out, the last size
//     repeats until every instance is placed;
//   - a percentage is of the whole plan's total (not of what remains) and
//     rounds up, so 10% of 15 is 2;
//   - a wave is never empty (at least 1) and never larger than what remains,
//     so the last wave may be smaller than configured;
//   - entries that are not needed because earlier waves placed everything
//     produce no wave.
//
// An empty sizes list places everything in one wave (Entry -1). Expand
// returns nil when total is zero or negative.
func Expand(total int, sizes []Size) []Step {
	if total <= 0 {
		return nil
	}
	if len(sizes) == 0 {
		return []Step{{Entry: -1, Size: total}}
	}
	var steps []Step
	for remaining, i := total, 0; remaining > 0; i++ {
		entry := min(i, len(sizes)-1)
		n := min(sizes[entry].Resolve(total), remaining)
		steps = append(steps, Step{Entry: entry, Size: n})
		remaining -= n
	}
	return steps
}

// SplitWaves returns the wave sizes Expand cuts: they sum to total, each is
// at least 1 and none exceeds its configured size.
func SplitWaves(total int, sizes []Size) []int {
	steps := Expand(total, sizes)
	out := make([]int, len(steps))
	for i, s := range steps {
		out[i] = s.Size
	}
	return out
}
