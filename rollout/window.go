package rollout

import (
	"errors"
	"fmt"
	"time"
)

// MinutesPerDay bounds Window.Start and Window.End; End may equal it
// ("24:00").
const MinutesPerDay = 24 * 60

// Validate reports whether w is usable: Start in [0, 1440), End in
// [0, 1440], Start != End (an empty window would never open), Days in 0-6
// without repeats, and a loadable Location ("" is UTC).
func (w *Window) Validate() error {
	_, err := w.location()
	return err
}

// location validates w and loads its time zone.
func (w *Window) location() (*time.Location, error) {
	switch {
	case w.Start < 0 || w.Start >= MinutesPerDay:
		return nil, fmt.Errorf("window: start %d is not a minute of the day (0-1439)", w.Start)
	case w.End < 0 || w.End > MinutesPerDay:
		return nil, fmt.Errorf("window: end %d is not a minute of the day (0-1440)", w.End)
	case w.Start == w.End:
		return nil, errors.New("window: start equals end, so the window never opens")
	}
	var seen [7]bool
	for _, d := range w.Days {
		if d < 0 || d > 6 {
			return nil, fmt.Errorf("window: day %d is not a weekday (0 = Sunday ... 6 = Saturday)", d)
		}
		if seen[d] {
			return nil, fmt.Errorf("window: day %d is listed twice", d)
		}
		seen[d] = true
	}
	loc, err := time.LoadLocation(w.Location)
	if err != nil {
		return nil, fmt.Errorf("window: %w", err)
	}
	return loc, nil
}

// dayAllowed reports whether a window opening on weekday d counts.
func (w *Window) dayAllowed(d time.Weekday) bool {
	if len(w.Days) == 0 {
		return true
	}
	for _, x := range w.Days {
		if time.Weekday(x) == d {
			return true
		}
	}
	return false
}

// Contains reports whether the window is open at t. Times are read on the
// wall clock of w.Location. The window is half-open: it contains Start and
// excludes End, so 01:00-05:00 contains 04:59:59 but not 05:00.
//
// When End < Start the window wraps past midnight, and Days name the day the
// window OPENS: a Saturday 22:00-02:00 window contains Saturday 23:00 and
// Sunday 01:00, but not Saturday 01:00 (that belongs to Friday's window).
//
// A nil Window is always open. Contains returns an error only when w is
// invalid (see Validate).
func (w *Window) Contains(t time.Time) (bool, error) {
	if w == nil {
		return true, nil
	}
	loc, err := w.location()
	if err != nil {
		return false, err
	}
	return w.contains(t.In(loc)), nil
}

// contains is Contains for a valid w and t already in w's location.
func (w *Window) contains(t time.Time) bool {
	sec := t.Hour()*3600 + t.Minute()*60 + t.Second()
	start, end := w.Start*60, w.End*60
	day := t.Weekday()
	if w.Start < w.End {
		return sec >= start && sec < end && w.dayAllowed(day)
	}
	// Wrapping: the evening part belongs to today's window, the morning
	// part to yesterday's.
	return (sec >= start && w.dayAllowed(day)) ||
		(sec < end && w.dayAllowed((day+6)%7))
}

// Next returns t when the window is open at t, and otherwise the next time
// at or after t at which it opens. An opening that falls in the hour a
// daylight-saving jump skips moves to the jump (02:30 on a 02:00->03:00
// night opens at 03:00). A nil Window returns t. Next returns an error
// only when w is invalid (see Validate).
func (w *Window) Next(t time.Time) (time.Time, error) {
	if w == nil {
		return t, nil
	}
	loc, err := w.location()
	if err != nil {
		return time.Time{}, err
	}
	local := t.In(loc)
	if w.contains(local) {
		return t, nil
	}
	y, m, d := local.Date()
	// A valid window opens at least once a week, so 8 candidate days (today
	// through the same weekday next week) always find it.
	for k := range 8 {
		day := time.Date(y, m, d+k, 0, 0, 0, 0, loc)
		if !w.dayAllowed(day.Weekday()) {
			continue
		}
		open := time.Date(y, m, d+k, w.Start/60, w.Start%60, 0, 0, loc)
		if got := open.Hour()*60 + open.Minute(); got != w.Start {
			// The wall time was skipped by a daylight-saving jump and
			// time.Date normalised it to one side of the jump; the window
			// really opens at the jump itself.
			start, end := open.ZoneBounds()
			if got < w.Start {
				open = end
			} else {
				open = start
			}
		}
		// A window lying wholly inside a skipped hour never opens that day.
		if !open.Before(t) && w.contains(open) {
			return open, nil
		}
	}
	// Unreachable for a validated window; kept so a logic error cannot hang.
	return time.Time{}, errors.New("window: no opening within a week")
}
