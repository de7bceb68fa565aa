// Package clock is the seam between fleetreset and the wall clock, so that
// components with timers and deadlines can be driven by tests.
package clock

import "time"

// Clock tells the time. Long-lived components take a Clock instead of calling
// time.Now, so tests can move time by hand.
type Clock interface {
	Now() time.Time
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Or returns c, or the wall clock when c is nil.
func Or(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}
