package planner

import "testing"

func TestCheckCron(t *testing.T) {
	good := []string{
		"0 2 * * 6", "*/15 * * * *", "0 2 * * sat", "0 2 1,15 * mon-fri", "5/10 0-6/2 * jan-mar *",
		"@daily", "@weekly", "CRON_TZ=Asia/Shanghai 0 2 * * 6", "CRON_TZ=UTC @hourly", "0 0 31 dec sun",
	}
	for _, expr := range good {
		if err := checkCron(expr); err != nil {
			t.Errorf("checkCron(%q) = %v; want nil", expr, err)
		}
	}
	bad := []string{
		"", "0 2 * *", "0 2 * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *", "* * * 13 *",
		"* * * * 7", "*/0 * * * *", "5-1 * * * *", "a * * * *", "* * * foo *", "-1 * * * *", "1- * * * *",
		"@every 5m", "CRON_TZ=Nowhere/City 0 2 * * 6", "CRON_TZ= 0 2 * * 6", "CRON_TZ=Local 0 2 * * 6",
		"1,,2 * * * *", "*/x * * * *", "+1 * * * *",
	}
	for _, expr := range bad {
		if err := checkCron(expr); err == nil {
			t.Errorf("checkCron(%q) = nil; want an error", expr)
		}
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
