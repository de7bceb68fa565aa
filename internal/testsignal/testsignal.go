// Package testsignal lets tests await events inside production code
// instead of polling for their effects, the way River's testsignal does.
// A Signal is inert (one nil check) until a test calls Init; production
// code calls Signal at the moment the event happens.
package testsignal

import "time"

// Timeout bounds WaitOrTimeout.
const Timeout = 2 * time.Minute

// TB is the part of testing.TB a signal uses; production code does not
// import package testing.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Signal carries values of one kind of event to a test. The zero value is
// inert.
type Signal[T any] struct {
	tb TB
	ch chan T
}

// Init arms the signal for tb, buffering up to n events; an event beyond
// the buffer fails the test rather than blocking production code.
func (s *Signal[T]) Init(tb TB, n int) {
	s.tb = tb
	s.ch = make(chan T, n)
}

// Signal sends v when armed.
func (s *Signal[T]) Signal(v T) {
	if s == nil || s.ch == nil {
		return
	}
	select {
	case s.ch <- v:
	default:
		s.tb.Errorf("testsignal: buffer of %d full; the test does not drain this signal", cap(s.ch))
	}
}

// C returns the channel of events, for a select.
func (s *Signal[T]) C() <-chan T { return s.ch }

// WaitOrTimeout returns the next event, failing the test after Timeout.
func (s *Signal[T]) WaitOrTimeout() T {
	s.tb.Helper()
	select {
	case v := <-s.ch:
		return v
	case <-time.After(Timeout):
		s.tb.Fatalf("testsignal: no event within %s", Timeout)
	}
	var zero T
	return zero
}

// WaitFor returns the first event for which match holds, failing the test
// after within (Timeout when zero); events before it are dropped.
func (s *Signal[T]) WaitFor(within time.Duration, match func(T) bool) T {
	s.tb.Helper()
	if within <= 0 {
		within = Timeout
	}
	deadline := time.After(within)
	for {
		select {
		case v := <-s.ch:
			if match(v) {
				return v
			}
		case <-deadline:
			s.tb.Fatalf("testsignal: no matching event within %s", within)
			var zero T
			return zero
		}
	}
}
