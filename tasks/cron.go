package tasks

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// NextOccurrence is when a cron schedule fires after t. The dialect is
// robfig/cron's standard one, which asynq's scheduler uses: five fields,
// optionally prefixed by CRON_TZ=Zone (UTC otherwise).
func NextOccurrence(schedule string, t time.Time) (time.Time, error) {
	s, err := cron.ParseStandard(schedule)
	if err != nil {
		return time.Time{}, fmt.Errorf("tasks: schedule %q: %w", schedule, err)
	}
	return s.Next(t), nil
}
