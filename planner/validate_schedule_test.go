package planner

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/tasks"
)

// TestScheduleValidationMatchesRuntime: a plan's schedule validates
// exactly when the runtime can compute its occurrences
// (tasks.NextOccurrence), and a rejected one is reported at the plan's
// file, line and field. The rows marked "disagreed" were judged
// differently by the planner's former hand-written validator.
func TestScheduleValidationMatchesRuntime(t *testing.T) {
	tests := []struct {
		schedule string
		valid    bool
	}{
		{"0 2 * * 6", true},
		{"*/15 * * * *", true},
		{"0 2 * * sat", true},
		{"0 2 * * SAT", true},
		{"0 2 1,15 * mon-fri", true},
		{"5/10 0-6/2 * jan-mar *", true},
		{"0 0 31 dec sun", true},
		{"@daily", true},
		{"@weekly", true},
		{"CRON_TZ=Asia/Shanghai 0 2 * * 6", true},
		{"CRON_TZ=UTC @hourly", true},
		{"@every 6h", true},                  // disagreed: a descriptor the runtime reads
		{"CRON_TZ=UTC @every 1h30m", true},   // disagreed
		{"0 2 ? * 6", true},                  // disagreed: ? is * to the runtime
		{"+5 2 * * *", true},                 // disagreed: the runtime reads +5 as 5
		{"TZ=Asia/Shanghai 0 2 * * 6", true}, // disagreed: TZ= is CRON_TZ= to the runtime
		{"CRON_TZ= 0 2 * * 6", true},         // disagreed: an empty zone is UTC to the runtime
		{"0 0 29 2 *", true},                 // leap days fire
		{"", false},
		{"0 2 * *", false},
		{"0 2 * * * *", false}, // 6 fields: seconds are not part of the dialect
		{"0 0 2 * * 6", false},
		{"60 * * * *", false},
		{"* 24 * * *", false},
		{"* * 0 * *", false},
		{"* * 32 * *", false},
		{"* * * 13 *", false},
		{"* * * * 7", false},
		{"*/0 * * * *", false},
		{"5-1 * * * *", false},
		{"a * * * *", false},
		{"* * * foo *", false},
		{"-1 * * * *", false},
		{"1- * * * *", false},
		{"1,,2 * * * *", true}, // disagreed: the runtime skips empty list items
		{"*/x * * * *", false},
		{"1-5-7 * * * *", false},
		{"1/2/3 * * * *", false},
		{"0 2 * * monday", false},
		{"@reboot", false},
		{"@every soon", false},
		{"@DAILY", false},
		{"CRON_TZ=Nowhere/City 0 2 * * 6", false},
		{"CRON_TZ=Local 0 2 * * 6", false}, // a machine's zone: both refuse it now
		{"CRON_TZ=Asia/Shanghai", false},   // disagreed: the runtime parser panicked
		{"0 0 30 2 *", false},              // disagreed: never fires; it used to start at once
		{"0 0 31 4,6,9,11 *", false},       // disagreed: never fires
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.schedule, func(t *testing.T) {
			_, runErr := tasks.NextOccurrence(tt.schedule, now)
			plan, err := Parse("plans/test.yaml", []byte(minimal+"schedule: "+strconv.Quote(tt.schedule)+"\n"), Options{})
			if (runErr == nil) != tt.valid {
				t.Errorf("NextOccurrence(%q) = %v; want valid %v", tt.schedule, runErr, tt.valid)
			}
			if (err == nil) != (runErr == nil) {
				t.Errorf("validation of %q = %v; runtime %v", tt.schedule, err, runErr)
			}
			if err == nil {
				if plan.Spec.Schedule != tt.schedule {
					t.Errorf("Spec.Schedule = %q; want %q", plan.Spec.Schedule, tt.schedule)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.File != "plans/test.yaml" || fe.Line != 10 || fe.Field != "schedule" {
				t.Errorf("validation error %v (%+v); want plans/test.yaml line 10, field schedule", err, fe)
			}
		})
	}
}

func TestClockMinutes(t *testing.T) {
	tests := []struct {
		in    string
		end   bool
		want  int
		valid bool
	}{
		{"00:00", false, 0, true},
		{"01:30", false, 90, true},
		{"1:30", false, 90, true},
		{"23:59", false, 1439, true},
		{"24:00", true, 1440, true},
		{"24:00", false, 0, false}, // only an end may be 24:00
		{"24:01", true, 0, false},
		{"12:60", false, 0, false},
		{"1:5", false, 0, false},
		{"0130", false, 0, false},
		{"-1:00", false, 0, false},
		{"", false, 0, false},
	}
	for _, tt := range tests {
		got, ok := clockMinutes(tt.in, tt.end)
		if ok != tt.valid || got != tt.want {
			t.Errorf("clockMinutes(%q, %v) = %d, %v; want %d, %v", tt.in, tt.end, got, ok, tt.want, tt.valid)
		}
	}
}
