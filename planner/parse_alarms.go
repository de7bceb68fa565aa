package planner

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/rollout"
)

var (
	// policyRE is a Cloud Monitor alarm policy ID, like policy-4x8mrbzm.
	policyRE = regexp.MustCompile(`^policy-[a-z0-9]{1,32}$`)
	// alarmNameRE is a Prometheus alarm's name, as alert names are written.
	alarmNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
)

// stopWhen reads `stopWhen: {prometheus: [...], monitorPolicies: [...],
// interval: 30s, onError: pause}`.
func (p *parser) stopWhen(en entry) (*rollout.StopWhen, bool) {
	f, ok := p.mapping(en.val, en.field, "like {prometheus: [{name: HighErrorRate, url: http://prometheus:9090, query: '...'}], monitorPolicies: [policy-xxxxxxxx]}",
		"prometheus", "monitorPolicies", "interval", "onError")
	if !ok {
		return nil, false
	}
	sw := &rollout.StopWhen{Interval: AlarmIntervalDefault, OnError: rollout.AlarmErrorPause}
	good := true
	if k, ok := f.get("prometheus"); ok {
		if items, ok := p.seq(k.val, k.field, "of Prometheus queries like {name: HighErrorRate, url: http://prometheus:9090, query: '...'}"); !ok {
			good = false
		} else if len(items) == 0 {
			p.at(k.val, k.field, "is empty: list queries, or leave prometheus out")
			good = false
		} else {
			names := map[string]int{}
			for i, it := range items {
				a, ok := p.promAlarm(entry{val: it, field: index(k.field, i)}, names)
				good = good && ok
				sw.Prometheus = append(sw.Prometheus, a)
			}
		}
	}
	if k, ok := f.get("monitorPolicies"); ok {
		if items, ok := p.seq(k.val, k.field, "of Cloud Monitor alarm policy ids like policy-xxxxxxxx"); !ok {
			good = false
		} else if len(items) == 0 {
			p.at(k.val, k.field, "is empty: list policy ids, or leave monitorPolicies out")
			good = false
		} else {
			seen := map[string]int{}
			for i, it := range items {
				field := index(k.field, i)
				v, ok := p.str(it, field, "an alarm policy id")
				switch {
				case !ok:
					good = false
				case !policyRE.MatchString(v):
					p.at(it, field, "%s is not an alarm policy id: want policy- and lower-case letters or digits, like policy-4x8mrbzm", quote(v))
					good = false
				case seen[v] > 0:
					p.at(it, field, "policy %s is listed twice (first at line %d)", v, seen[v])
					good = false
				default:
					seen[v] = it.Line
					sw.MonitorPolicies = append(sw.MonitorPolicies, v)
				}
			}
		}
	}
	if !f.has("prometheus") && !f.has("monitorPolicies") {
		p.at(en.val, en.field, "is empty: give prometheus, monitorPolicies or both (leave stopWhen out for no alarms)")
		good = false
	}
	if k, ok := f.get("interval"); ok {
		if d, ok := p.duration(k.val, k.field, false); !ok {
			good = false
		} else if d < time.Second {
			p.at(k.val, k.field, "%v is less than 1s: alarms are read from APIs limited to 20 calls/s", d)
			good = false
		} else {
			sw.Interval = d
		}
	}
	if k, ok := f.get("onError"); ok {
		if v, ok := p.str(k.val, k.field, "pause or ignore"); !ok {
			good = false
		} else if v != rollout.AlarmErrorPause && v != rollout.AlarmErrorIgnore {
			p.at(k.val, k.field, "%s: want pause (the default: an alarm that cannot be read stops the rollout like one that fires) or ignore", quote(v))
			good = false
		} else {
			sw.OnError = v
		}
	}
	return sw, good
}

// promAlarm reads {name, url, query}. names maps the names seen so far to
// their lines.
func (p *parser) promAlarm(en entry, names map[string]int) (rollout.PromAlarm, bool) {
	var a rollout.PromAlarm
	f, ok := p.mapping(en.val, en.field, "a query: {name, url, query}", "name", "url", "query")
	if !ok {
		return a, false
	}
	good := true
	for _, key := range []string{"name", "url", "query"} {
		if !f.has(key) {
			p.at(en.val, join(en.field, key), "is required")
			good = false
		}
	}
	if k, ok := f.get("name"); ok {
		v, ok := p.str(k.val, k.field, "an alarm name")
		switch {
		case !ok:
			good = false
		case !alarmNameRE.MatchString(v):
			p.at(k.val, k.field, "%s is not an alarm name: 1-63 letters, digits, '_', '.' and '-'", quote(v))
			good = false
		case names[v] > 0:
			p.at(k.val, k.field, "alarm %s is defined twice (first at line %d)", v, names[v])
			good = false
		default:
			names[v] = k.val.Line
			a.Name = v
		}
	}
	if k, ok := f.get("url"); ok {
		if v, ok := p.str(k.val, k.field, "the Prometheus base URL"); !ok {
			good = false
		} else if msg := promURLProblem(v); msg != "" {
			p.at(k.val, k.field, "%s", msg)
			good = false
		} else {
			a.URL = strings.TrimSuffix(v, "/")
		}
	}
	if k, ok := f.get("query"); ok {
		if v, ok := p.str(k.val, k.field, "a PromQL expression"); !ok {
			good = false
		} else if strings.TrimSpace(v) == "" {
			p.at(k.val, k.field, "is empty: give a PromQL expression whose result is empty while all is well")
			good = false
		} else {
			a.Query = v
		}
	}
	return a, good
}

// promURLProblem checks a Prometheus base URL, or returns "". The query
// goes to URL/api/v1/query, so the URL must not already carry a query.
func promURLProblem(s string) string {
	u, err := parseURL(s)
	switch {
	case err != nil:
		return err.Error()
	case u.User != nil:
		return "must not contain credentials (user:password@): the plan is stored with the rollout"
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Sprintf("must not have a query or fragment: give the base URL, like http://prometheus:9090 (the query goes to %s/api/v1/query)", strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"))
	case strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v1/query"):
		return "give the base URL, without /api/v1/query (it is added)"
	}
	return ""
}
