package rollout

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Size is the configured size of a wave: a count of instances, or a
// percentage of the whole plan. A valid Size has exactly one of Count and
// Percent positive; ParseSize only returns valid Sizes.
type Size struct {
	// Count is a number of instances; used when Percent is zero.
	Count int
	// Percent is a share of the plan's total, more than 0 and at most 100,
	// with at most two decimal places (finer precision is rounded away).
	Percent float64
}

// ErrBadSize is wrapped by every error ParseSize returns.
var ErrBadSize = errors.New("bad wave size")

// ParseSize parses a wave size: a positive count ("5") or a percentage of
// the plan's total ("20%", "12.5%", "100%") with at most two decimals.
func ParseSize(s string) (Size, error) {
	if num, ok := strings.CutSuffix(s, "%"); ok {
		if !isDecimal(num) {
			return Size{}, fmt.Errorf("%w %q: want a percentage like 20%% or 12.5%% (at most two decimals)", ErrBadSize, s)
		}
		p, err := strconv.ParseFloat(num, 64)
		if err != nil || p <= 0 || p > 100 {
			return Size{}, fmt.Errorf("%w %q: a percentage must be more than 0%% and at most 100%%", ErrBadSize, s)
		}
		return Size{Percent: p}, nil
	}
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return Size{}, fmt.Errorf("%w %q: want a count like 5 or a percentage like 20%%", ErrBadSize, s)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return Size{}, fmt.Errorf("%w %q: count is too large", ErrBadSize, s)
	}
	if n <= 0 {
		return Size{}, fmt.Errorf("%w %q: a count must be at least 1", ErrBadSize, s)
	}
	return Size{Count: n}, nil
}

// isDecimal reports whether s is digits with an optional point and one or
// two more digits: the only percentage spellings accepted, so that "1e2%",
// "+5%" and "0x10%" are refused rather than read in a surprising way.
func isDecimal(s string) bool {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || strings.Trim(whole, "0123456789") != "" {
		return false
	}
	if !dot {
		return true
	}
	return len(frac) >= 1 && len(frac) <= 2 && strings.Trim(frac, "0123456789") == ""
}

// String formats s the way ParseSize reads it.
func (s Size) String() string {
	if s.Percent > 0 {
		return strconv.FormatFloat(s.Percent, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(s.Count)
}

// hundredths returns Percent in hundredths of a percent, so that percentage
// arithmetic is exact integer arithmetic (7% of 100 is 7, not the 8 that
// ceil(100*0.07) gives in floating point). It clamps to 0..10000 so that
// out-of-range values from hand-written JSON cannot overflow.
func hundredths(percent float64) int {
	switch {
	case !(percent > 0): // also NaN
		return 0
	case percent >= 100:
		return 10000
	}
	return int(percent*100 + 0.5)
}

// Resolve returns how many instances s asks for in a plan of total
// instances, before capping at what remains: Count, or Percent of total
// rounded up. The result is at least 1, so no wave is ever empty, even for
// a zero Size.
func (s Size) Resolve(total int) int {
	n := s.Count
	if s.Percent > 0 {
		n = ceilPercent(total, hundredths(s.Percent))
	}
	return max(n, 1)
}

// ceilPercent returns ceil(total * h / 10000) without overflowing for any
// total: h is at most 10000, so splitting total keeps every product small.
func ceilPercent(total, h int) int {
	if total <= 0 || h <= 0 {
		return 0
	}
	q, r := total/10000, total%10000
	return q*h + (r*h+9999)/10000
}
