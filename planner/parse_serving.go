package planner

import (
	"encoding/base64"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fleetreset/fleetreset/rollout"
)

// This file reads what makes an instance "serving again" (issue 11):
// health checks, hooks and load-balancer drain. Each may be set at the top
// level, for every group, and in a group, which replaces the top level's
// value of that key as a whole (a group's health is never merged with the
// top level's). A group writes `none` to drop an inherited one.

// Formats of CLB IDs: a prefix and 8 lower-case letters or digits.
var (
	loadBalancerRE = regexp.MustCompile(`^lb-[a-z0-9]{8}$`)
	listenerRE     = regexp.MustCompile(`^lbl-[a-z0-9]{8}$`)
	locationRE     = regexp.MustCompile(`^loc-[a-z0-9]{8}$`)
	// headerNameRE is an HTTP field name (RFC 9110 token).
	headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// servingKeys may be set at the top level and in a group.
var servingKeys = []string{"health", "hooks", "loadBalancer"}

// noneValue in a group drops an inherited health, hooks or loadBalancer.
const noneValue = "none"

// serving holds a mapping's health, hooks and loadBalancer as read. A
// present setting that is ok with a nil or empty value is an explicit
// `none`.
type serving struct {
	health setting[*rollout.Health]
	hooks  setting[rollout.Hooks]
	lb     setting[*rollout.LoadBalancer]
	// commands are the command hooks of hooks, with where their type was
	// written, for the checks that need the group's OS.
	commands []commandAt
}

// commandAt is a command hook as written.
type commandAt struct {
	name string
	// typ is the type the plan gave (SHELL or POWERSHELL), "" for the
	// OS's default.
	typ  string
	node *yaml.Node
	// field is the path of the type key, or of the hook when it has none.
	field string
}

// serving reads health, hooks and loadBalancer from a mapping. group says
// whether f is a group (which may write `none`).
func (p *parser) serving(f fields, group bool) serving {
	var s serving
	if en, ok := f.get("health"); ok {
		if p.isNone(en, group) {
			s.health = set[*rollout.Health](en, nil)
		} else {
			s.health = p.health(en)
		}
	}
	if en, ok := f.get("hooks"); ok {
		if p.isNone(en, group) {
			s.hooks = set(en, rollout.Hooks{})
		} else {
			s.hooks, s.commands = p.hooks(en)
		}
	}
	if en, ok := f.get("loadBalancer"); ok {
		if p.isNone(en, group) {
			s.lb = set[*rollout.LoadBalancer](en, nil)
		} else {
			s.lb = p.loadBalancer(en)
		}
	}
	return s
}

// isNone reports whether en is `none`, which only a group may write.
func (p *parser) isNone(en entry, group bool) bool {
	n := en.val
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" || n.Value != noneValue {
		return false
	}
	if !group {
		p.at(n, en.field, "none is for a group that must not inherit the top level's %s; at the top level, leave %s out", en.key.Value, en.key.Value)
	}
	return true
}

// v2Refused records that what needs service, which only API 3.0 has.
func (p *parser) v2Refused(n *yaml.Node, field, what, service string) {
	p.at(n, field, "%s needs %s, an API 3.0 service, and this plan uses api v2%s", what, service, p.apiHint("; use api: v3"))
}

// health reads `health: {checks, initialDelay, interval, timeout,
// healthyThreshold, deadline}`.
func (p *parser) health(en entry) setting[*rollout.Health] {
	f, ok := p.mapping(en.val, en.field, "like {checks: [{http: \"http://{privateIp}:8080/healthz\"}], interval: 5s}",
		"checks", "initialDelay", "interval", "timeout", "healthyThreshold", "deadline")
	if !ok {
		return bad[*rollout.Health](en)
	}
	h := &rollout.Health{
		Interval:         HealthIntervalDefault,
		Timeout:          HealthTimeoutDefault,
		HealthyThreshold: HealthyThresholdDefault,
		Deadline:         HealthDeadlineDefault,
	}
	good := true
	if c, ok := f.get("checks"); !ok {
		p.at(en.val, join(en.field, "checks"), "is required: list at least one check, like {http: \"http://{privateIp}:8080/healthz\"}")
		good = false
	} else if items, ok := p.seq(c.val, c.field, "of checks: {http: URL}, {tcp: HOST:PORT}, {clb: {...}} or {tat: online}"); !ok {
		good = false
	} else if len(items) == 0 {
		p.at(c.val, c.field, "is empty: list at least one check, or leave health out")
		good = false
	} else {
		for i, it := range items {
			chk, ok := p.healthCheck(it, index(c.field, i))
			good = good && ok
			h.Checks = append(h.Checks, chk)
		}
	}
	// Durations, remembering which were written: a cross-field error
	// points at a value the plan gave, not at a default.
	nodes := map[string]entry{}
	// badKey: a value the plan gave and that was refused; the cross-field
	// checks that do not read it still run, so every mistake shows at once.
	badKey := map[string]bool{}
	for _, d := range []struct {
		key       string
		dst       *time.Duration
		allowZero bool
	}{
		{"initialDelay", &h.InitialDelay, true},
		{"interval", &h.Interval, false},
		{"timeout", &h.Timeout, false},
		{"deadline", &h.Deadline, false},
	} {
		if k, ok := f.get(d.key); ok {
			if v, ok := p.duration(k.val, k.field, d.allowZero); ok {
				*d.dst = v
				nodes[d.key] = k
			} else {
				good, badKey[d.key] = false, true
			}
		}
	}
	if k, ok := f.get("healthyThreshold"); ok {
		if v, ok := p.integer(k.val, k.field); !ok {
			good, badKey["healthyThreshold"] = false, true
		} else if v < 1 {
			p.at(k.val, k.field, "must be at least 1: the passing probes in a row that make an instance healthy")
			good, badKey["healthyThreshold"] = false, true
		} else {
			h.HealthyThreshold = v
			nodes["healthyThreshold"] = k
		}
	}
	valid := func(keys ...string) bool {
		for _, k := range keys {
			if badKey[k] {
				return false
			}
		}
		return true
	}
	// pick returns the first written of keys, else the health mapping.
	pick := func(keys ...string) (*yaml.Node, string) {
		for _, k := range keys {
			if e, ok := nodes[k]; ok {
				return e.val, e.field
			}
		}
		return en.val, join(en.field, keys[0])
	}
	if valid("timeout", "interval") && h.Timeout >= h.Interval {
		n, field := pick("timeout", "interval")
		p.at(n, field, "health timeout %v must be less than its interval %v: a probe must end before the next starts", h.Timeout, h.Interval)
		good = false
	}
	need := h.InitialDelay + time.Duration(h.HealthyThreshold-1)*h.Interval
	switch {
	case !valid("deadline", "initialDelay"):
	case h.Deadline <= h.InitialDelay:
		n, field := pick("deadline", "initialDelay")
		p.at(n, field, "health deadline %v must be more than initialDelay %v: no probe could run before it", h.Deadline, h.InitialDelay)
		good = false
	case valid("healthyThreshold", "interval") && h.Deadline <= need:
		n, field := pick("deadline", "healthyThreshold", "interval")
		p.at(n, field, "health deadline %v is too short: %d passing probes %v apart after initialDelay %v take %v", h.Deadline, h.HealthyThreshold, h.Interval, h.InitialDelay, need)
		good = false
	}
	if !good {
		return bad[*rollout.Health](en)
	}
	return set(en, h)
}

// checkKinds are the keys that name a check's kind, in message order.
var checkKinds = []string{rollout.CheckHTTP, rollout.CheckTCP, rollout.CheckCLB, rollout.CheckAgent}

// healthCheck reads one check: {http: URL, status, body, headers},
// {tcp: HOST:PORT}, {clb: {loadBalancer, listener, location, port}} or
// {tat: online}.
func (p *parser) healthCheck(n *yaml.Node, field string) (rollout.Check, bool) {
	f, ok := p.mapping(n, field, "a check: {http: URL}, {tcp: HOST:PORT}, {clb: {...}} or {tat: online}",
		append(slices.Clone(checkKinds), "status", "body", "headers")...)
	if !ok {
		return rollout.Check{}, false
	}
	var kinds []string
	for _, k := range checkKinds {
		if f.has(k) {
			kinds = append(kinds, k)
		}
	}
	switch len(kinds) {
	case 0:
		p.at(n, field, "give the check's kind: http, tcp, clb or tat")
		return rollout.Check{}, false
	case 1:
	default:
		p.at(n, field, "give one kind per check, not %s: list them as separate checks", strings.Join(kinds, " and "))
		return rollout.Check{}, false
	}
	c := rollout.Check{Kind: kinds[0]}
	good := true
	for _, k := range []string{"status", "body", "headers"} {
		if en, ok := f.get(k); ok && c.Kind != rollout.CheckHTTP {
			p.at(en.key, en.field, "applies to http checks only, and this is a %s check", c.Kind)
			good = false
		}
	}
	en, _ := f.get(c.Kind)
	switch c.Kind {
	case rollout.CheckHTTP:
		c.URL, ok = p.templateURL(en)
		good = good && ok
		if s, ok := f.get("status"); ok {
			c.Status, ok = p.statusCodes(s)
			good = good && ok
		}
		if b, ok := f.get("body"); ok {
			if v, ok := p.str(b.val, b.field, "text the response body must contain"); !ok {
				good = false
			} else if v == "" {
				p.at(b.val, b.field, "is empty: give the text the body must contain, or leave body out")
				good = false
			} else {
				c.Body = v
			}
		}
		if h, ok := f.get("headers"); ok {
			c.Headers, ok = p.headers(h)
			good = good && ok
		}
	case rollout.CheckTCP:
		c.Address, ok = p.tcpAddress(en)
		good = good && ok
	case rollout.CheckCLB:
		if p.api == "v2" {
			p.v2Refused(en.key, en.field, "a clb check", "CLB")
			good = false
		}
		l, ok := p.listener(en)
		good = good && ok
		c.Listener = &l
	case rollout.CheckAgent:
		if v, ok := p.str(en.val, en.field, "online"); !ok {
			good = false
		} else if v != "online" {
			p.at(en.val, en.field, "%s: want online (the TAT agent reports Online)", quote(v))
			good = false
		}
		if p.api == "v2" {
			p.v2Refused(en.key, en.field, "a tat check", "TAT (the automation agent)")
			good = false
		}
	}
	return c, good
}

// templateURL reads an http check's URL template: http or https, with a
// host, no credentials, and only known placeholders.
func (p *parser) templateURL(en entry) (string, bool) {
	s, ok := p.str(en.val, en.field, "an http:// or https:// URL")
	if !ok {
		return "", false
	}
	sample, msg := expandSample(s)
	if msg == "" {
		if u, err := parseURL(sample); err != nil {
			msg = fmt.Sprintf("%s is not an http:// or https:// URL with a host", quote(s))
		} else if u.User != nil {
			msg = "must not contain credentials (user:password@): the plan is stored with the rollout"
		} else if k := secretQueryKey(u.Query()); k != "" {
			msg = fmt.Sprintf("query parameter %q looks like a secret, and the plan is stored with the rollout in Redis", k)
		}
	}
	if msg != "" {
		p.at(en.val, en.field, "%s", msg)
		return "", false
	}
	return s, true
}

// tcpAddress reads a tcp check's HOST:PORT template.
func (p *parser) tcpAddress(en entry) (string, bool) {
	s, ok := p.str(en.val, en.field, "HOST:PORT, like {privateIp}:22")
	if !ok {
		return "", false
	}
	sample, msg := expandSample(s)
	if msg == "" {
		host, port, err := net.SplitHostPort(sample)
		switch {
		case err != nil || host == "":
			msg = fmt.Sprintf("%s is not HOST:PORT, like {privateIp}:22", quote(s))
		case portProblem(port) != "":
			msg = fmt.Sprintf("%s: %s", quote(s), portProblem(port))
		}
	}
	if msg != "" {
		p.at(en.val, en.field, "%s", msg)
		return "", false
	}
	return s, true
}

// portProblem checks a port written as text, or returns "".
func portProblem(s string) string {
	v, err := strconv.Atoi(s)
	if err != nil || !digits(s) || v < 1 || v > 65535 {
		return fmt.Sprintf("port %s is not 1-65535", quote(s))
	}
	return ""
}

// Placeholders a check address may use, each with a sample value that
// stands in for it when the address is checked.
var placeholders = map[string]string{
	"instanceId": "ins-00000000",
	"privateIp":  "10.0.0.1",
	"publicIp":   "203.0.113.1",
	"zone":       "ap-guangzhou-3",
	"name":       "web-1",
}

// expandSample replaces each {placeholder} of a template with its sample
// value, or says what is wrong with the template.
func expandSample(s string) (string, string) {
	var b strings.Builder
	for {
		open := strings.IndexByte(s, '{')
		if cl := strings.IndexByte(s, '}'); cl >= 0 && (open < 0 || cl < open) {
			return "", "has a } without a {"
		}
		if open < 0 {
			b.WriteString(s)
			return b.String(), ""
		}
		end := strings.IndexByte(s[open:], '}')
		if end < 0 {
			return "", "has a { without a }"
		}
		name := s[open+1 : open+end]
		v, ok := placeholders[name]
		if !ok {
			known := slices.Sorted(func(yield func(string) bool) {
				for k := range placeholders {
					if !yield(k) {
						return
					}
				}
			})
			msg := fmt.Sprintf("unknown placeholder {%s}", name)
			if sg := suggest(name, known); sg != "" {
				return "", fmt.Sprintf("%s (did you mean {%s}?)", msg, sg)
			}
			return "", fmt.Sprintf("%s: known are {%s}", msg, strings.Join(known, "}, {"))
		}
		b.WriteString(s[:open])
		b.WriteString(v)
		s = s[open+end+1:]
	}
}

// statusCodes reads `status: [200, 204]`.
func (p *parser) statusCodes(en entry) ([]int, bool) {
	items, ok := p.seq(en.val, en.field, "of HTTP status codes like [200, 204]")
	if !ok {
		return nil, false
	}
	if len(items) == 0 {
		p.at(en.val, en.field, "is empty: list the accepted codes, or leave status out to accept 200-399")
		return nil, false
	}
	var codes []int
	good := true
	for i, it := range items {
		field := index(en.field, i)
		v, ok := p.integer(it, field)
		switch {
		case !ok:
			good = false
		case v < 100 || v > 599:
			p.at(it, field, "%d is not an HTTP status code (100-599)", v)
			good = false
		case slices.Contains(codes, v):
			p.at(it, field, "%d is listed twice", v)
			good = false
		default:
			codes = append(codes, v)
		}
	}
	return codes, good
}

// secretHeaders and secretWords make a header name look like it carries a
// secret. Plans are stored with the rollout in Redis, in plain JSON, and
// shown by status; a health endpoint that needs a secret should accept
// the checker by its address instead.
var (
	secretHeaders = []string{"authorization", "proxy-authorization", "cookie", "set-cookie"}
	secretWords   = []string{"token", "secret", "password", "passwd", "api-key", "apikey", "api_key"}
)

// looksSecret reports whether a header or parameter name suggests a secret.
func looksSecret(name string) bool {
	l := strings.ToLower(name)
	if slices.Contains(secretHeaders, l) {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

// secretQueryKey returns a query parameter name that looks secret, or "".
func secretQueryKey(q map[string][]string) string {
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range q {
			if !yield(k) {
				return
			}
		}
	}) {
		if looksSecret(k) {
			return k
		}
	}
	return ""
}

// headers reads `headers: {Name: value}`. Values are never echoed.
func (p *parser) headers(en entry) (map[string]string, bool) {
	n := en.val
	if !p.usable(n, en.field) {
		return nil, false
	}
	if n.Kind != yaml.MappingNode {
		p.at(n, en.field, "must be a mapping of header names to values, like {Host: web.example.com}")
		return nil, false
	}
	out := map[string]string{}
	lines := map[string]int{}
	good := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" || k.Tag == "!!null" {
			p.at(k, en.field, "keys must be plain header names")
			good = false
			continue
		}
		field := join(en.field, k.Value)
		canon := strings.ToLower(k.Value)
		switch {
		case !headerNameRE.MatchString(k.Value):
			p.at(k, field, "%s is not an HTTP header name", quote(k.Value))
			good = false
			continue
		case lines[canon] > 0:
			p.at(k, field, "header %s is given twice (first at line %d; names ignore case)", k.Value, lines[canon])
			good = false
			continue
		case looksSecret(k.Value):
			p.at(k, field, "header %s looks like it carries a secret, and the plan is stored with the rollout in Redis and shown by status (the value was not stored): let the health endpoint admit the checker without one", k.Value)
			good = false
			continue
		}
		lines[canon] = k.Line
		s, ok := p.str(v, field, "a header value")
		if !ok {
			good = false
			continue
		}
		if strings.ContainsAny(s, "\r\n\x00") {
			p.at(v, field, "must be one line")
			good = false
			continue
		}
		out[k.Value] = s
	}
	return out, good
}

// listener reads {loadBalancer: lb-..., listener: lbl-..., location:
// loc-..., port: 80}.
func (p *parser) listener(en entry) (rollout.Listener, bool) {
	var l rollout.Listener
	f, ok := p.mapping(en.val, en.field, "like {loadBalancer: lb-xxxxxxxx, listener: lbl-xxxxxxxx, port: 80}",
		"loadBalancer", "listener", "location", "port")
	if !ok {
		return l, false
	}
	good := true
	for _, id := range []struct {
		key, what, prefix string
		re                *regexp.Regexp
		dst               *string
		required          bool
	}{
		{"loadBalancer", "a load balancer id", "lb-", loadBalancerRE, &l.LoadBalancerID, true},
		{"listener", "a listener id", "lbl-", listenerRE, &l.ListenerID, true},
		{"location", "a forwarding rule id", "loc-", locationRE, &l.LocationID, false},
	} {
		k, ok := f.get(id.key)
		if !ok {
			if id.required {
				p.at(en.val, join(en.field, id.key), "is required: %s like %sxxxxxxxx", id.what, id.prefix)
				good = false
			}
			continue
		}
		v, ok := p.str(k.val, k.field, id.what)
		switch {
		case !ok:
			good = false
		case !id.re.MatchString(v):
			p.at(k.val, k.field, "%s is not %s: want %s and 8 lower-case letters or digits", quote(v), id.what, id.prefix)
			good = false
		default:
			*id.dst = v
		}
	}
	if k, ok := f.get("port"); !ok {
		p.at(en.val, join(en.field, "port"), "is required: the instance's backend port on the listener")
		good = false
	} else if v, ok := p.integer(k.val, k.field); !ok {
		good = false
	} else if v < 1 || v > 65535 {
		p.at(k.val, k.field, "port %d is not 1-65535", v)
		good = false
	} else {
		l.Port = v
	}
	return l, good
}

// loadBalancer reads `loadBalancer: {listeners: [...], drainTime: 30s}`.
func (p *parser) loadBalancer(en entry) setting[*rollout.LoadBalancer] {
	f, ok := p.mapping(en.val, en.field, "like {listeners: [{loadBalancer: lb-xxxxxxxx, listener: lbl-xxxxxxxx, port: 80}], drainTime: 30s}",
		"listeners", "drainTime")
	if !ok {
		return bad[*rollout.LoadBalancer](en)
	}
	good := true
	if p.api == "v2" {
		p.v2Refused(en.key, en.field, "draining (loadBalancer)", "CLB")
		good = false
	}
	lb := &rollout.LoadBalancer{DrainTime: DrainTimeDefault}
	if k, ok := f.get("listeners"); !ok {
		p.at(en.val, join(en.field, "listeners"), "is required: the listeners to drain the instance on")
		good = false
	} else if items, ok := p.seq(k.val, k.field, "of listeners like {loadBalancer: lb-xxxxxxxx, listener: lbl-xxxxxxxx, port: 80}"); !ok {
		good = false
	} else if len(items) == 0 {
		p.at(k.val, k.field, "is empty: list at least one listener, or leave loadBalancer out")
		good = false
	} else {
		seen := map[rollout.Listener]int{}
		for i, it := range items {
			field := index(k.field, i)
			l, ok := p.listener(entry{val: it, field: field})
			switch {
			case !ok:
				good = false
			case seen[l] > 0:
				p.at(it, field, "listener %s is listed twice (first at line %d)", listenerName(l), seen[l])
				good = false
			default:
				seen[l] = it.Line
				lb.Listeners = append(lb.Listeners, l)
			}
		}
	}
	if k, ok := f.get("drainTime"); ok {
		if d, ok := p.duration(k.val, k.field, true); ok {
			lb.DrainTime = d
		} else {
			good = false
		}
	}
	if !good {
		return bad[*rollout.LoadBalancer](en)
	}
	return set(en, lb)
}

// listenerName names a listener for messages and previews.
func listenerName(l rollout.Listener) string {
	s := l.LoadBalancerID + "/" + l.ListenerID
	if l.LocationID != "" {
		s += "/" + l.LocationID
	}
	return fmt.Sprintf("%s port %d", s, l.Port)
}

// hooks reads `hooks: {before: [...], after: [...]}`. Hook names are
// unique across both lists, so that a name alone says which step ran.
func (p *parser) hooks(en entry) (setting[rollout.Hooks], []commandAt) {
	f, ok := p.mapping(en.val, en.field, "like {before: [{name: stop-app, command: \"systemctl stop app\"}], after: [...]}", "before", "after")
	if !ok {
		return bad[rollout.Hooks](en), nil
	}
	var hs rollout.Hooks
	var cmds []commandAt
	good := true
	names := map[string]int{}
	for _, phase := range []struct {
		key string
		dst *[]rollout.Hook
	}{{"before", &hs.Before}, {"after", &hs.After}} {
		k, ok := f.get(phase.key)
		if !ok {
			continue
		}
		items, ok := p.seq(k.val, k.field, "of hooks like {name: stop-app, command: \"systemctl stop app\"}")
		if !ok {
			good = false
			continue
		}
		if len(items) == 0 {
			p.at(k.val, k.field, "is empty: list hooks, or leave %s out", phase.key)
			good = false
			continue
		}
		for i, it := range items {
			h, cmd, ok := p.hook(it, index(k.field, i), names)
			good = good && ok
			*phase.dst = append(*phase.dst, h)
			if cmd != nil {
				cmds = append(cmds, *cmd)
			}
		}
	}
	if !good {
		// The commands still go to the OS check: one run shows every mistake.
		return bad[rollout.Hooks](en), cmds
	}
	return set(en, hs), cmds
}

// hook reads one hook. names maps the hook names seen so far to their
// lines.
func (p *parser) hook(n *yaml.Node, field string, names map[string]int) (rollout.Hook, *commandAt, bool) {
	h := rollout.Hook{Timeout: HookTimeoutDefault, OnFailure: rollout.HookAbandon}
	f, ok := p.mapping(n, field, "a hook: {name, command or webhook, timeout, onFailure}",
		"name", "command", "webhook", "type", "workingDirectory", "username", "timeout", "onFailure")
	if !ok {
		return h, nil, false
	}
	good := true
	if k, ok := f.get("name"); !ok {
		p.at(n, join(field, "name"), "is required: a name like stop-app, shown in status and events")
		good = false
	} else if v, ok := p.str(k.val, k.field, "a hook name"); !ok {
		good = false
	} else if !nameRE.MatchString(v) {
		p.at(k.val, k.field, "%s is not a valid hook name: use 1-63 lower-case letters, digits and '-'", quote(v))
		good = false
	} else if line := names[v]; line > 0 {
		p.at(k.val, k.field, "hook %q is defined twice (first at line %d); names are unique across before and after", v, line)
		good = false
	} else {
		names[v] = k.val.Line
		h.Name = v
	}
	cmdEn, isCmd := f.get("command")
	hookEn, isHook := f.get("webhook")
	switch {
	case isCmd && isHook:
		p.at(n, field, "give command or webhook, not both")
		return h, nil, false
	case !isCmd && !isHook:
		p.at(n, field, "give command (run on the instance through TAT) or webhook (POST to a URL)")
		return h, nil, false
	}
	if !isCmd {
		for _, k := range []string{"type", "workingDirectory", "username"} {
			if en, ok := f.get(k); ok {
				p.at(en.key, en.field, "applies to command hooks only")
				good = false
			}
		}
	}
	if k, ok := f.get("timeout"); ok {
		if d, ok := p.duration(k.val, k.field, false); !ok {
			good = false
		} else if d < time.Second || d > 24*time.Hour {
			p.at(k.val, k.field, "%v is not between 1s and 24h", d)
			good = false
		} else if isCmd && d%time.Second != 0 {
			p.at(k.val, k.field, "%v is not whole seconds, which TAT needs", d)
			good = false
		} else {
			h.Timeout = d
		}
	}
	if k, ok := f.get("onFailure"); ok {
		if v, ok := p.str(k.val, k.field, "abandon or continue"); !ok {
			good = false
		} else if v != rollout.HookAbandon && v != rollout.HookContinue {
			p.at(k.val, k.field, "%s: want abandon (the default: fail the instance; before the reset, do not reset it) or continue", quote(v))
			good = false
		} else {
			h.OnFailure = v
		}
	}
	if isHook {
		if u := p.url(hookEn, "webhook", false); u == "" {
			good = false
		} else {
			h.Webhook = &rollout.WebhookHook{URL: u}
		}
		return h, nil, good
	}
	c := &rollout.CommandHook{}
	at := &commandAt{name: h.Name, node: n, field: field}
	if p.api == "v2" {
		p.v2Refused(cmdEn.key, cmdEn.field, "a command hook", "TAT (the automation agent)")
		good = false
	}
	if v, ok := p.str(cmdEn.val, cmdEn.field, "a command"); !ok {
		good = false
	} else if strings.TrimSpace(v) == "" {
		p.at(cmdEn.val, cmdEn.field, "is empty: give the command to run")
		good = false
	} else if size := base64.StdEncoding.EncodedLen(len(v)); size > MaxCommandSize {
		p.at(cmdEn.val, cmdEn.field, "is %d bytes, %d base64-encoded; TAT takes at most %d (64 KiB) encoded: put the script on the image and run it", len(v), size, MaxCommandSize)
		good = false
	} else {
		c.Content = v
	}
	if k, ok := f.get("type"); ok {
		at.node, at.field = k.val, k.field
		if v, ok := p.str(k.val, k.field, "shell or powershell"); !ok {
			good = false
		} else if t := strings.ToUpper(v); v != strings.ToLower(v) || (t != CommandShell && t != CommandPowerShell) {
			p.at(k.val, k.field, "%s: want shell (Linux) or powershell (Windows)", quote(v))
			good = false
		} else {
			c.Type, at.typ = t, t
		}
	}
	for _, x := range []struct {
		key string
		dst *string
	}{{"workingDirectory", &c.WorkingDirectory}, {"username", &c.Username}} {
		if k, ok := f.get(x.key); ok {
			if v, ok := p.str(k.val, k.field, "a "+x.key); !ok {
				good = false
			} else if strings.TrimSpace(v) == "" || strings.ContainsAny(v, "\r\n\x00") {
				p.at(k.val, k.field, "must be one non-empty line (leave it out for TAT's default)")
				good = false
			} else {
				*x.dst = v
			}
		}
	}
	h.Command = c
	return h, at, good
}

// effectiveServing returns group g's health, hooks and loadBalancer after
// inheriting the top level's: each key the group leaves out comes from the
// top level as a whole.
func (p *parser) effectiveServing(g *group) serving {
	top, own := p.raw.serving, g.serving
	e := own
	if !own.health.present {
		e.health = top.health
	}
	if !own.hooks.present {
		e.hooks, e.commands = top.hooks, top.commands
	}
	if !own.lb.present {
		e.lb = top.lb
	}
	return e
}

// checkServing checks a group's effective hooks against its OS: TAT runs
// SHELL on Linux and POWERSHELL on Windows.
func (p *parser) checkServing(g *group, osName string) {
	e := p.effectiveServing(g)
	for _, c := range e.commands {
		name := "hook " + c.name
		if c.name == "" {
			name = "this hook"
		}
		switch {
		case c.typ == CommandShell && osName == "windows":
			p.at(c.node, c.field, "%s is a shell command, and %s runs windows: use powershell (the default on windows)", name, g.label())
		case c.typ == CommandPowerShell && osName == "linux":
			p.at(c.node, c.field, "%s is a powershell command, and %s runs linux: use shell (the default on linux)", name, g.label())
		}
	}
}

// buildServing fills a group's health, hooks and loadBalancer from its
// effective settings. Each group gets its own copies: groups that inherit
// the same top-level value must not share memory.
func buildServing(rg *rollout.Group, e serving) {
	if e.health.ok && e.health.v != nil {
		h := *e.health.v
		h.Checks = make([]rollout.Check, len(e.health.v.Checks))
		for i, c := range e.health.v.Checks {
			c.Status = slices.Clone(c.Status)
			if c.Headers != nil {
				hs := make(map[string]string, len(c.Headers))
				for k, v := range c.Headers {
					hs[k] = v
				}
				c.Headers = hs
			}
			if c.Listener != nil {
				l := *c.Listener
				c.Listener = &l
			}
			h.Checks[i] = c
		}
		rg.Health = &h
	}
	if e.lb.ok && e.lb.v != nil {
		lb := *e.lb.v
		lb.Listeners = slices.Clone(lb.Listeners)
		rg.LoadBalancer = &lb
	}
	if e.hooks.ok {
		def := CommandShell
		if rg.OS == "windows" {
			def = CommandPowerShell
		}
		hooks := func(in []rollout.Hook) []rollout.Hook {
			var out []rollout.Hook
			for _, h := range in {
				if h.Command != nil {
					c := *h.Command
					if c.Type == "" {
						c.Type = def
					}
					h.Command = &c
				}
				if h.Webhook != nil {
					w := *h.Webhook
					h.Webhook = &w
				}
				out = append(out, h)
			}
			return out
		}
		rg.Hooks = rollout.Hooks{Before: hooks(e.hooks.v.Before), After: hooks(e.hooks.v.After)}
	}
}
