package planner

import (
	"strconv"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/tasks/schedule"
)

// timing reads startAt, schedule and window.
func (p *parser) timing(f fields) {
	r := &p.raw
	if en, ok := f.get("startAt"); ok {
		if s, ok := p.str(en.val, en.field, "a time like 2026-12-01T02:00:00+08:00"); ok {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				p.at(en.val, en.field, "%s is not an RFC 3339 time with a UTC offset, like 2026-12-01T02:00:00+08:00", quote(s))
			} else {
				r.startAt = t
			}
		}
	}
	if en, ok := f.get("schedule"); ok {
		if s, ok := p.str(en.val, en.field, `a cron expression like "0 2 * * 6"`); ok {
			// The runtime's own parser: a plan validates exactly when
			// its occurrences can be computed.
			if _, err := schedule.Parse(s); err != nil {
				p.at(en.val, en.field, "%v", err)
			} else {
				r.schedule = s
			}
		}
	}
	if en, ok := f.get("window"); ok {
		r.window = p.window(en)
	}
}

// window reads `window: {start, end, timezone, days}`.
func (p *parser) window(en entry) *rollout.Window {
	f, ok := p.mapping(en.val, en.field, `like {start: "01:00", end: "05:00", timezone: Asia/Shanghai}`, "start", "end", "timezone", "days")
	if !ok {
		return nil
	}
	w := &rollout.Window{}
	good := true
	for _, x := range []struct {
		key   string
		dst   *int
		isEnd bool
	}{{"start", &w.Start, false}, {"end", &w.End, true}} {
		k, ok := f.get(x.key)
		if !ok {
			p.at(en.val, join(en.field, x.key), `is required, like "01:00"`)
			good = false
			continue
		}
		s, ok := p.str(k.val, k.field, "a time of day like 01:00")
		if !ok {
			good = false
			continue
		}
		m, ok := clockMinutes(s, x.isEnd)
		if !ok {
			p.at(k.val, k.field, "%s is not a time of day: want HH:MM from 00:00 to 23:59 (24:00 allowed as end)", quote(s))
			good = false
			continue
		}
		*x.dst = m
	}
	if good && w.Start == w.End {
		k, _ := f.get("end")
		p.at(k.val, k.field, "equals start, so the window would never open (leave window out to allow any time)")
		good = false
	}
	if k, ok := f.get("timezone"); !ok {
		p.at(en.val, join(en.field, "timezone"), "is required, like Asia/Shanghai or UTC: a window without a zone means different hours on different machines")
		good = false
	} else if s, ok := p.str(k.val, k.field, "an IANA time zone like Asia/Shanghai"); !ok {
		good = false
	} else if s == "" || s == "Local" {
		p.at(k.val, k.field, "name a zone, like Asia/Shanghai or UTC (%q depends on the machine)", s)
		good = false
	} else if _, err := time.LoadLocation(s); err != nil {
		p.at(k.val, k.field, "unknown time zone %s: want an IANA name like Asia/Shanghai or UTC", quote(s))
		good = false
	} else {
		w.Location = s
	}
	if k, ok := f.get("days"); ok {
		items, ok := p.seq(k.val, k.field, "of weekdays like [sat, sun]")
		switch {
		case !ok:
			good = false
		case len(items) == 0:
			p.at(k.val, k.field, "is empty: list weekdays, or leave days out for every day")
			good = false
		}
		seen := map[int]int{}
		for i, it := range items {
			field := index(k.field, i)
			s, ok := p.str(it, field, "a weekday like mon")
			if !ok {
				good = false
				continue
			}
			d, ok := weekday(s)
			switch {
			case !ok:
				p.at(it, field, "%s is not a weekday: want sun, mon, tue, wed, thu, fri or sat", quote(s))
				good = false
			case seen[d] > 0:
				p.at(it, field, "%s is listed twice (first at line %d)", s, seen[d])
				good = false
			default:
				seen[d] = it.Line
				w.Days = append(w.Days, d)
			}
		}
	}
	if !good {
		return nil
	}
	return w
}

// clockMinutes parses "HH:MM" into minutes after midnight; "24:00" only
// when allow24.
func clockMinutes(s string, allow24 bool) (int, bool) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) < 1 || len(hh) > 2 || len(mm) != 2 || !digits(hh) || !digits(mm) {
		return 0, false
	}
	h, _ := strconv.Atoi(hh)
	m, _ := strconv.Atoi(mm)
	switch {
	case allow24 && h == 24 && m == 0:
		return rollout.MinutesPerDay, true
	case h > 23 || m > 59:
		return 0, false
	}
	return h*60 + m, true
}

// weekdays maps day names to time.Weekday numbers (0 = Sunday).
var weekdays = map[string]int{
	"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
	"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6,
}

// weekday parses a day name, in any case.
func weekday(s string) (int, bool) {
	d, ok := weekdays[strings.ToLower(s)]
	return d, ok
}
