package planner

import (
	"cmp"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/rollout"
)

// Preview is what `fleetreset plan` prints: the waves, what pre-flight
// found, the API calls the rollout will make and its minimum wall time.
type Preview struct {
	Rollout string
	Waves   []PreviewWave
	// ZoneCounts counts targets per zone ("" when unknown).
	ZoneCounts map[string]int
	Preflight  *rollout.PreflightReport
	// ResetCalls and DescribeCalls are the API calls of a clean run:
	// one reset per instance to reset, and one describe per 100 instances
	// for the pre-flight of each wave plus one per 100 per verify poll.
	ResetCalls    int
	DescribeCalls int
	// MinWallTime is the sum over waves of the time the reset budget needs
	// for the wave, plus the soaks, plus the least time the wave's drain
	// and health checks take (PreviewWave.Serving, once per
	// PreviewWave.Rounds). The reinstall itself (minutes on the real
	// cloud), verification and hooks add to it per wave, or per round
	// under maxUnavailable (Reinstalls).
	MinWallTime time.Duration
	// HooksUpTo bounds what hooks may add to MinWallTime: the sum over
	// waves of PreviewWave.HooksUpTo. How long hooks really take is
	// unknown; their timeouts bound it.
	HooksUpTo time.Duration
	// Groups say, per group, what surrounds each reset: drain, hooks and
	// health checks. Nil when no group has any.
	Groups []PreviewGroup
	// Alarms describe the plan's stopWhen, one line each, after a line
	// saying when they are read; nil without stopWhen.
	Alarms []string
	// MaxUnavailable describes the plan's maxUnavailable as resolved
	// ("at most 5 instances unavailable at once per zone"); "" without.
	MaxUnavailable string
	// Locations count the targets per region and account, in group
	// order; nil for a plan in one location. Each location has its own
	// reset budget, so MinWallTime counts per wave the slowest location's
	// resets, not their sum.
	Locations []PreviewLocation
	// Reinstalls is, with maxUnavailable, the sum over waves of
	// PreviewWave.Rounds: how many reinstall times in a row the rollout
	// takes at the least, on top of MinWallTime. 0 without a cap.
	Reinstalls int
}

// PreviewLocation is one location's share of the plan.
type PreviewLocation struct {
	rollout.Location
	// Targets counts its instances; ToReset those not skipped or refused
	// by the pre-flight.
	Targets, ToReset int
	// ResetTime is the least time its reset budget needs for ToReset.
	ResetTime time.Duration
}

// LocationLines formats Locations for `fleetreset plan`; nil for a plan
// in one location.
func (p Preview) LocationLines() []string {
	var out []string
	for _, l := range p.Locations {
		acct := "default credentials"
		if l.Account != "" {
			acct = "account " + l.Account
		}
		noun := "instances"
		if l.Targets == 1 {
			noun = "instance"
		}
		out = append(out, fmt.Sprintf("%-16s %-28s %d %s, %d to reset, resets take at least %s",
			l.Region, acct, l.Targets, noun, l.ToReset, l.ResetTime.Round(time.Second)))
	}
	return out
}

// PreviewGroup is what surrounds each reset of one group's instances.
type PreviewGroup struct {
	Name string
	// Lines describe the drain, the before and after hooks and the health
	// checks, in the order they run; one line saying there are none when
	// the group has none.
	Lines []string
	// Serving is the least time a drain and health checks add to each
	// reset: drainTime + initialDelay + healthyThreshold × interval.
	Serving time.Duration
	// HooksUpTo is the sum of the group's hook timeouts.
	HooksUpTo time.Duration
}

// PreviewWave is one wave of a preview.
type PreviewWave struct {
	Index    int
	Size     int
	ToReset  int
	Soak     time.Duration
	Approval bool
	Budget   rollout.Budget
	// Serving is the most PreviewGroup.Serving of the groups with
	// instances to reset in the wave: they drain and probe in parallel.
	Serving time.Duration
	// HooksUpTo is likewise the most PreviewGroup.HooksUpTo.
	HooksUpTo time.Duration
	// Rounds is how many times the plan's maxUnavailable must turn over
	// for the wave (rollout.MaxUnavailable.Rounds): each round is at least
	// one reinstall, its serving time and its hooks. 1 without a cap.
	Rounds int
}

// MakePreview computes a preview; pf may be nil when no pre-flight ran.
func MakePreview(plan *Plan, pf *rollout.PreflightReport) Preview {
	p := Preview{Rollout: plan.Spec.ID, ZoneCounts: map[string]int{}, Preflight: pf,
		MaxUnavailable: unavailableLine(plan.Spec.MaxUnavailable)}
	zoneOf := func(t rollout.Target) string {
		if pf != nil && t.Zone == "" {
			return pf.Zones[t.InstanceID]
		}
		return t.Zone
	}
	for _, t := range plan.Targets {
		p.ZoneCounts[zoneOf(t)]++
	}
	groups := make([]PreviewGroup, len(plan.Spec.Groups))
	serving := false
	for i, g := range plan.Spec.Groups {
		groups[i] = previewGroup(g)
		serving = serving || g.Serving()
	}
	if serving {
		p.Groups = groups
	}
	p.Alarms = previewAlarms(plan.Spec)
	rate := cmp.Or(plan.Spec.ResetRate, 10)
	locs := plan.Spec.Locations()
	locIndex := map[rollout.Location]int{}
	for i, l := range locs {
		locIndex[l] = i
		p.Locations = append(p.Locations, PreviewLocation{Location: l})
	}
	for _, t := range plan.Targets {
		p.Locations[locIndex[plan.Spec.LocationOf(t.Group)]].Targets++
	}
	for k, w := range plan.Spec.Waves {
		pw := PreviewWave{Index: k, Size: w.Size, Soak: w.Soak, Approval: w.Approval, Budget: w.Budget}
		zones := map[string]int{}
		perLoc := make([]int, len(locs))
		for _, t := range plan.WaveTargets(k) {
			if pf == nil || (pf.Skipped[t.InstanceID] == "" && pf.Refused[t.InstanceID] == "") {
				perLoc[locIndex[plan.Spec.LocationOf(t.Group)]]++
				pw.ToReset++
				zones[zoneOf(t)]++
				pw.Serving = max(pw.Serving, groups[t.Group].Serving)
				pw.HooksUpTo = max(pw.HooksUpTo, groups[t.Group].HooksUpTo)
			}
		}
		// Without a cap the wave is down together: one round.
		pw.Rounds = max(plan.Spec.MaxUnavailable.Rounds(zones), 1)
		if plan.Spec.MaxUnavailable.Capped() {
			p.Reinstalls += pw.Rounds
		}
		p.ResetCalls += pw.ToReset
		p.DescribeCalls += 2 * ((w.Size + 99) / 100)
		// Locations reset in parallel, each on its own budget.
		slowest := 0
		for i, n := range perLoc {
			slowest = max(slowest, n)
			p.Locations[i].ToReset += n
		}
		p.MinWallTime += time.Duration(float64(slowest) / rate * float64(time.Second))
		p.MinWallTime += time.Duration(pw.Rounds) * pw.Serving
		p.HooksUpTo += time.Duration(pw.Rounds) * pw.HooksUpTo
		if k < len(plan.Spec.Waves)-1 {
			p.MinWallTime += w.Soak
		}
		p.Waves = append(p.Waves, pw)
	}
	for i := range p.Locations {
		p.Locations[i].ResetTime = time.Duration(float64(p.Locations[i].ToReset) / rate * float64(time.Second))
	}
	if len(p.Locations) < 2 {
		p.Locations = nil
	}
	return p
}

// ETA formats the least wall time: MinWallTime, the reinstalls in a row
// a maxUnavailable cap forces, and what hooks may add, like
// "4m10s + 14 × the reinstall time (maxUnavailable) + hooks up to 21m".
func (p Preview) ETA() string {
	s := p.MinWallTime.Round(time.Second).String()
	if p.Reinstalls > 0 {
		s += fmt.Sprintf(" + %d × the reinstall time (maxUnavailable)", p.Reinstalls)
	}
	if p.HooksUpTo > 0 {
		s += " + hooks up to " + short(p.HooksUpTo)
	}
	return s
}

// ServingLines formats Groups and Alarms for `fleetreset plan`, indented
// under a heading each; nil for a plan with neither, whose preview must
// read as it did before issue 11.
func (p Preview) ServingLines() []string {
	var out []string
	if len(p.Groups) > 0 {
		out = append(out, "Serving again (around each reset, in this order):")
		for _, g := range p.Groups {
			out = append(out, "  group "+g.Name+":")
			for _, l := range g.Lines {
				out = append(out, "    "+l)
			}
		}
	}
	if len(p.Alarms) > 0 {
		out = append(out, "Stop when "+p.Alarms[0])
		for _, l := range p.Alarms[1:] {
			out = append(out, "  "+l)
		}
	}
	return out
}

// previewGroup describes what surrounds each reset of g.
func previewGroup(g rollout.Group) PreviewGroup {
	pg := PreviewGroup{Name: g.Name}
	if !g.Serving() {
		pg.Lines = []string{"no drain, hooks or health checks: succeeded once the image is verified"}
		return pg
	}
	if lb := g.LoadBalancer; lb != nil {
		var ls []string
		for _, l := range lb.Listeners {
			ls = append(ls, listenerName(l))
		}
		pg.Lines = append(pg.Lines, fmt.Sprintf("drain:  weight 0 on %s, then wait %s", strings.Join(ls, ", "), short(lb.DrainTime)))
		pg.Serving += lb.DrainTime
	}
	for _, phase := range []struct {
		label string
		hooks []rollout.Hook
	}{{"before: ", g.Hooks.Before}, {"after:  ", g.Hooks.After}} {
		if len(phase.hooks) == 0 {
			continue
		}
		var hs []string
		for _, h := range phase.hooks {
			kind := ""
			switch {
			case h.Command != nil:
				kind = strings.ToLower(h.Command.Type) + " command"
			case h.Webhook != nil:
				kind = "webhook " + withoutQuery(h.Webhook.URL)
			}
			hs = append(hs, fmt.Sprintf("%s (%s, up to %s, %s on failure)", h.Name, kind, short(h.Timeout), h.OnFailure))
			pg.HooksUpTo += h.Timeout
		}
		pg.Lines = append(pg.Lines, phase.label+strings.Join(hs, "; "))
	}
	if h := g.Health; h != nil {
		var cs []string
		for _, c := range h.Checks {
			cs = append(cs, checkName(c))
		}
		pg.Lines = append(pg.Lines, "health: "+strings.Join(cs, "; "))
		wait := ""
		if h.InitialDelay > 0 {
			wait = " after " + short(h.InitialDelay)
		}
		pg.Lines = append(pg.Lines, fmt.Sprintf("        %d passing in a row × %s%s (probe timeout %s), deadline %s",
			h.HealthyThreshold, short(h.Interval), wait, short(h.Timeout), short(h.Deadline)))
		pg.Serving += h.InitialDelay + time.Duration(h.HealthyThreshold)*h.Interval
	}
	line := "adds at least " + short(pg.Serving) + " per wave"
	switch {
	case pg.Serving == 0 && pg.HooksUpTo > 0:
		line = "adds hooks up to " + short(pg.HooksUpTo) + " per wave"
	case pg.HooksUpTo > 0:
		line += ", + hooks up to " + short(pg.HooksUpTo)
	}
	pg.Lines = append(pg.Lines, line)
	return pg
}

// checkName describes a health check: its kind and address.
func checkName(c rollout.Check) string {
	switch c.Kind {
	case rollout.CheckHTTP:
		s := "http " + c.URL
		if len(c.Status) > 0 {
			codes := make([]string, len(c.Status))
			for i, v := range c.Status {
				codes[i] = strconv.Itoa(v)
			}
			s += " status " + strings.Join(codes, ",")
		}
		if c.Body != "" {
			s += " body " + quote(c.Body)
		}
		if len(c.Headers) > 0 {
			// Names only: values are not for terminals.
			s += " headers " + strings.Join(slices.Sorted(maps.Keys(c.Headers)), ",")
		}
		return s
	case rollout.CheckTCP:
		return "tcp " + c.Address
	case rollout.CheckCLB:
		if c.Listener != nil {
			return "clb target health on " + listenerName(*c.Listener)
		}
		return "clb"
	case rollout.CheckAgent:
		return "tat agent online"
	}
	return c.Kind
}

// previewAlarms describes spec's stopWhen: a line saying when alarms are
// read and what they do, then one per alarm.
func previewAlarms(spec rollout.Spec) []string {
	sw := spec.StopWhen
	if sw == nil {
		return nil
	}
	out := []string{fmt.Sprintf("(read before each wave and every %s while one soaks; on breach: %s; unreadable: %s):",
		short(sw.Interval), spec.OnBreach, sw.OnError)}
	for _, a := range sw.Prometheus {
		out = append(out, fmt.Sprintf("prometheus %s at %s: %s", a.Name, a.URL, a.Query))
	}
	for _, id := range sw.MonitorPolicies {
		out = append(out, "cloud monitor policy "+id+" in alarm")
	}
	return out
}

// withoutQuery drops a URL's query, which may hold a token, for display.
func withoutQuery(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(a URL)"
	}
	if u.RawQuery != "" {
		u.RawQuery = "..."
	}
	u.Fragment = ""
	return u.String()
}

// short formats d without trailing zero units: 2m rather than 2m0s.
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
