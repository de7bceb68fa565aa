// Package schedule parses the cron schedules of rollout series. It is the
// one parser of schedules: the planner validates plans with it and every
// occurrence is computed from its result, so a plan that validates runs.
// It imports no queue, so plans validate without asynq.
package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a parsed rollout schedule: when each occurrence of a series
// starts. Its zero value never fires.
type Schedule struct {
	s cron.Schedule
}

// cronFieldNames names the five fields of a standard cron expression, for
// errors.
var cronFieldNames = [5]string{"minute", "hour", "day of month", "month", "day of week"}

// scheduleProbe is the time Parse asks for a first occurrence
// from. robfig/cron gives up after five years, so any fixed time finds
// every schedule that fires at all.
var scheduleProbe = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Parse parses a rollout schedule. The dialect is robfig/cron's standard one: five fields (minute hour
// day-of-month month day-of-week, with ranges, steps, lists, "?" and
// month and weekday names) or a descriptor (@yearly, @monthly, @weekly,
// @daily, @hourly, @every DURATION), optionally prefixed by CRON_TZ=Zone
// or TZ=Zone. Without a zone the schedule is in UTC on every machine.
// Beyond the parser's own rules it refuses the zone "Local" (each worker
// would read the schedule in its own machine's zone) and a schedule that
// never fires ("0 0 30 2 *"), which would otherwise start at once.
func Parse(spec string) (Schedule, error) {
	body := spec
	if zone, rest, ok := cutZone(spec); ok {
		if zone == "Local" {
			return Schedule{}, fmt.Errorf("%q: name a zone, like CRON_TZ=Asia/Shanghai or CRON_TZ=UTC (Local depends on the machine)", spec)
		}
		if strings.TrimSpace(rest) == "" {
			// robfig/cron slices to the first blank after the zone
			// and panics when there is none.
			return Schedule{}, fmt.Errorf("%q: a schedule must follow the zone, like \"CRON_TZ=%s 0 2 * * 6\"", spec, zone)
		}
		body = rest
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return Schedule{}, fmt.Errorf("%q: %s", spec, explain(spec, body, err))
	}
	if ss, ok := s.(*cron.SpecSchedule); ok && ss.Location == time.Local {
		// No zone given: robfig/cron would read it in the zone of the
		// time passed to Next, that is, the machine's.
		ss.Location = time.UTC
	}
	sch := Schedule{s}
	if sch.Next(scheduleProbe).IsZero() {
		return Schedule{}, fmt.Errorf("%q never fires (no such date)", spec)
	}
	return sch, nil
}

// cutZone splits a "CRON_TZ=Zone rest" or "TZ=Zone rest" schedule.
func cutZone(spec string) (zone, rest string, ok bool) {
	for _, p := range []string{"CRON_TZ=", "TZ="} {
		if after, found := strings.CutPrefix(spec, p); found {
			zone, rest, _ = strings.Cut(after, " ")
			return zone, rest, true
		}
	}
	return "", "", false
}

// explain adds to a parse error of spec (body without its zone) which
// field it is about, found by the runtime parser itself: each field alone,
// the others "*". Zones and descriptors are explained by the error as it is.
func explain(spec, body string, err error) string {
	if zone, _, ok := cutZone(spec); ok {
		if _, zerr := cron.ParseStandard("CRON_TZ=" + zone + " * * * * *"); zerr != nil {
			return err.Error()
		}
	}
	fields := strings.Fields(body)
	switch {
	case strings.HasPrefix(body, "@"):
		return err.Error()
	case len(fields) != len(cronFieldNames):
		return fmt.Sprintf("%v (want minute hour day-of-month month day-of-week, like \"CRON_TZ=Asia/Shanghai 0 2 * * 6\", or a descriptor like @daily)", err)
	}
	for i, f := range fields {
		probe := []string{"*", "*", "*", "*", "*"}
		probe[i] = f
		if _, ferr := cron.ParseStandard("CRON_TZ=UTC " + strings.Join(probe, " ")); ferr != nil {
			return fmt.Sprintf("%s field %q: %v", cronFieldNames[i], f, ferr)
		}
	}
	return err.Error()
}

// Next is the first occurrence after t, or the zero time if there is none
// within five years.
func (s Schedule) Next(t time.Time) time.Time {
	if s.s == nil {
		return time.Time{}
	}
	return s.s.Next(t)
}
