package rollout

import (
	"fmt"
	"strings"
)

// NoLimit, as Budget.Max or Budget.Percent, switches that limit off.
const NoLimit = -1

// Breached reports whether failed failures among terminal instances with a
// final outcome (succeeded or failed; pending, running and retrying ones do
// not count) breach the budget. A budget is breached when a limit is
// EXCEEDED, never when it is merely reached:
//
//   - count: breached when failed > Max. Max 2 tolerates 2 failures and
//     trips at the 3rd; Max 0 trips at the first failure.
//   - percent: breached when failed/terminal > Percent/100, i.e.
//     failed*100 > Percent*terminal, judged only once terminal >= MinSample
//     (so one early failure in a 2-instance canary does not read as 50%).
//     Percent 10 with 20 terminal tolerates 2 failures and trips at the 3rd.
//     Percent is exact to a hundredth of a percent.
//
// Either limit breaches on its own. A negative Max or Percent (NoLimit)
// switches that limit off; with both off nothing breaches. The zero Budget
// tolerates nothing: the first failure breaches it.
func (b Budget) Breached(failed, terminal int) bool {
	if b.Max >= 0 && failed > b.Max {
		return true
	}
	if b.Percent >= 0 && terminal >= b.MinSample {
		// Compare in hundredths of a percent as integers: failed*100 >
		// Percent*terminal with float Percent could flip exactly at the
		// boundary ("reached") through rounding.
		if int64(failed)*10000 > int64(hundredths(b.Percent))*int64(terminal) {
			return true
		}
	}
	return false
}

// Allowed returns the most failures the budget tolerates among terminal
// instances with a final outcome: Breached(f, terminal) is false exactly for
// f <= Allowed(terminal). It returns NoLimit when no limit applies (both off,
// or only the percentage is on and terminal < MinSample).
func (b Budget) Allowed(terminal int) int {
	allowed := NoLimit
	if b.Max >= 0 {
		allowed = b.Max
	}
	if b.Percent >= 0 && terminal >= b.MinSample {
		p := int(int64(hundredths(b.Percent)) * int64(max(terminal, 0)) / 10000)
		if allowed == NoLimit || p < allowed {
			allowed = p
		}
	}
	return allowed
}

// Unlimited reports whether the budget has no limit at all.
func (b Budget) Unlimited() bool { return b.Max < 0 && b.Percent < 0 }

// String describes the budget for people, e.g. "stop at more than 2 or
// more than 10% (after 20) failed", or "unlimited".
func (b Budget) String() string {
	var parts []string
	if b.Max >= 0 {
		parts = append(parts, fmt.Sprintf("more than %d", b.Max))
	}
	if b.Percent >= 0 {
		p := fmt.Sprintf("more than %g%%", b.Percent)
		if b.MinSample > 0 {
			p += fmt.Sprintf(" (after %d)", b.MinSample)
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "unlimited"
	}
	return "stop at " + strings.Join(parts, " or ") + " failed"
}
