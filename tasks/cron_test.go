package tasks

import (
	"testing"
	"time"
)

// TestScheduleIsUTCWithoutZone: the runtime reads a schedule without
// CRON_TZ in UTC whatever the zone of the time it is asked from (it used
// the zone of that time, the machine's for time.Now).
func TestScheduleIsUTCWithoutZone(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 3, 1, 12, 0, 0, 0, shanghai) // 04:00 UTC
	tests := []struct {
		schedule string
		want     time.Time
	}{
		{"0 2 * * *", time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)},
		{"@daily", time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)},
		{"CRON_TZ=Asia/Shanghai 0 2 * * *", time.Date(2026, 3, 2, 2, 0, 0, 0, shanghai)},
	}
	for _, tt := range tests {
		got, err := NextOccurrence(tt.schedule, from)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("NextOccurrence(%q, %v) = %v, %v; want %v", tt.schedule, from, got, err, tt.want)
		}
	}
}

// TestNextOccurrenceRefusesWhatNeverFires: a schedule with no such date
// is an error, not the zero time (which enqueued the occurrence at once,
// and again after each one completed).
func TestNextOccurrenceRefusesWhatNeverFires(t *testing.T) {
	for _, s := range []string{"0 0 30 2 *", "0 0 31 4 *", "CRON_TZ=Asia/Shanghai"} {
		if next, err := NextOccurrence(s, time.Now()); err == nil {
			t.Errorf("NextOccurrence(%q) = %v, nil; want an error", s, next)
		}
	}
}
