package tasks

import (
	"errors"
	"fmt"
	"time"

	"github.com/fleetreset/fleetreset/tasks/schedule"
)

// errNoOccurrence is returned for a schedule with no occurrence ahead.
var errNoOccurrence = errors.New("no occurrence within five years")

// NextOccurrence is when a schedule (see schedule.Parse) fires after t.
func NextOccurrence(spec string, t time.Time) (time.Time, error) {
	s, err := schedule.Parse(spec)
	if err != nil {
		return time.Time{}, fmt.Errorf("tasks: schedule %w", err)
	}
	next := s.Next(t)
	if next.IsZero() {
		return time.Time{}, fmt.Errorf("tasks: schedule %q: %w after %s", spec, errNoOccurrence, t.UTC().Format(time.RFC3339))
	}
	return next, nil
}
