package rollout

import (
	"testing"
	"time"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestWindowContains(t *testing.T) {
	sh := mustLoad(t, "Asia/Shanghai")
	at := func(s string) time.Time {
		t.Helper()
		tm, err := time.ParseInLocation("2006-01-02 15:04:05", s, sh)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	night := &Window{Start: 60, End: 300, Location: "Asia/Shanghai"}                      // 01:00-05:00 daily
	wrap := &Window{Start: 22 * 60, End: 120, Location: "Asia/Shanghai", Days: []int{6}}  // Sat 22:00-02:00
	weekend := &Window{Start: 60, End: 300, Location: "Asia/Shanghai", Days: []int{0, 6}} // Sat+Sun 01:00-05:00
	toMidnight := &Window{Start: 23 * 60, End: MinutesPerDay, Location: "Asia/Shanghai"}  // 23:00-24:00
	tests := []struct {
		name string
		w    *Window
		t    time.Time
		want bool
	}{
		{name: "before", w: night, t: at("2026-12-02 00:59:59"), want: false},
		{name: "start-inclusive", w: night, t: at("2026-12-02 01:00:00"), want: true},
		{name: "inside", w: night, t: at("2026-12-02 03:00:00"), want: true},
		{name: "last-second", w: night, t: at("2026-12-02 04:59:59"), want: true},
		{name: "end-exclusive", w: night, t: at("2026-12-02 05:00:00"), want: false},
		{name: "other-zone", w: night, t: at("2026-12-02 02:00:00").UTC(), want: true}, // read on Shanghai's clock
		// 2026-12-05 is a Saturday.
		{name: "wrap-evening", w: wrap, t: at("2026-12-05 23:00:00"), want: true},
		{name: "wrap-after-midnight", w: wrap, t: at("2026-12-06 01:00:00"), want: true}, // Sunday, opened Saturday
		{name: "wrap-end", w: wrap, t: at("2026-12-06 02:00:00"), want: false},
		{name: "wrap-saturday-morning", w: wrap, t: at("2026-12-05 01:00:00"), want: false}, // Friday's window
		{name: "wrap-sunday-evening", w: wrap, t: at("2026-12-06 23:00:00"), want: false},
		{name: "weekday-filtered", w: weekend, t: at("2026-12-04 02:00:00"), want: false}, // Friday
		{name: "weekday-sunday", w: weekend, t: at("2026-12-06 02:00:00"), want: true},
		{name: "to-midnight", w: toMidnight, t: at("2026-12-02 23:59:59"), want: true},
		{name: "to-midnight-after", w: toMidnight, t: at("2026-12-03 00:00:00"), want: false},
		{name: "nil-always-open", w: nil, t: at("2026-12-02 12:00:00"), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.w.Contains(tt.t)
			if err != nil || got != tt.want {
				t.Errorf("Contains(%v) = %v, %v; want %v, nil", tt.t, got, err, tt.want)
			}
		})
	}
}

func TestWindowNext(t *testing.T) {
	sh := mustLoad(t, "Asia/Shanghai")
	at := func(s string) time.Time {
		t.Helper()
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, sh)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	night := &Window{Start: 60, End: 300, Location: "Asia/Shanghai"}
	wrap := &Window{Start: 22 * 60, End: 120, Location: "Asia/Shanghai", Days: []int{6}}
	tests := []struct {
		name string
		w    *Window
		t    time.Time
		want time.Time
	}{
		{name: "open-now", w: night, t: at("2026-12-02 02:00"), want: at("2026-12-02 02:00")},
		{name: "later-today", w: night, t: at("2026-12-02 00:30"), want: at("2026-12-02 01:00")},
		{name: "at-start", w: night, t: at("2026-12-02 01:00"), want: at("2026-12-02 01:00")},
		{name: "tomorrow", w: night, t: at("2026-12-02 05:00"), want: at("2026-12-03 01:00")},
		{name: "next-saturday", w: wrap, t: at("2026-12-06 02:00"), want: at("2026-12-12 22:00")},
		{name: "this-saturday", w: wrap, t: at("2026-12-05 01:00"), want: at("2026-12-05 22:00")},
		{name: "wrap-open", w: wrap, t: at("2026-12-06 01:30"), want: at("2026-12-06 01:30")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.w.Next(tt.t)
			if err != nil || !got.Equal(tt.want) {
				t.Errorf("Next(%v) = %v, %v; want %v", tt.t, got, err, tt.want)
			}
		})
	}
}

func TestWindowNextDST(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	// 2026-03-08: clocks jump 02:00 -> 03:00; a 02:30 opening moves to the jump.
	w := &Window{Start: 150, End: 240, Location: "America/New_York"}
	from := time.Date(2026, 3, 8, 0, 0, 0, 0, ny)
	got, err := w.Next(from)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 8, 3, 0, 0, 0, ny); !got.Equal(want) {
		t.Errorf("Next(%v) = %v; want %v", from, got, want)
	}
}

func TestWindowInvalid(t *testing.T) {
	for name, w := range map[string]*Window{
		"start-range":  {Start: -1, End: 10},
		"start-1440":   {Start: MinutesPerDay, End: 10},
		"end-range":    {Start: 0, End: MinutesPerDay + 1},
		"empty":        {Start: 60, End: 60},
		"bad-day":      {Start: 0, End: 60, Days: []int{7}},
		"repeated-day": {Start: 0, End: 60, Days: []int{1, 1}},
		"bad-zone":     {Start: 0, End: 60, Location: "Mars/Olympus"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := w.Contains(time.Unix(0, 0)); err == nil {
				t.Errorf("Contains on %+v: want error", w)
			}
			if _, err := w.Next(time.Unix(0, 0)); err == nil {
				t.Errorf("Next on %+v: want error", w)
			}
		})
	}
}

func TestWindowNextInsideDSTGap(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	// 02:10-02:50 does not exist on 2026-03-08, so the next opening is a day later.
	w := &Window{Start: 130, End: 170, Location: "America/New_York"}
	from := time.Date(2026, 3, 8, 0, 0, 0, 0, ny)
	got, err := w.Next(from)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 9, 2, 10, 0, 0, ny); !got.Equal(want) {
		t.Errorf("Next(%v) = %v; want %v", from, got, want)
	}
}
