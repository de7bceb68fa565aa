package planner

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/fleetreset/fleetreset/rollout"
)

// unavailable is a plan's maxUnavailable as read.
type unavailable struct {
	node    *yaml.Node
	field   string
	total   setting[rollout.Size]
	perZone setting[rollout.Size]
}

// maxUnavailable reads `maxUnavailable: 10%` (a cap on the whole rollout)
// or `maxUnavailable: {total: 10%, perZone: 5}`.
func (p *parser) maxUnavailable(en entry) *unavailable {
	u := &unavailable{node: en.val, field: en.field}
	if en.val.Kind == yaml.ScalarNode && !isNull(en.val) {
		u.total = p.unavailableSize(en)
		return u
	}
	f, ok := p.mapping(en.val, en.field, "like {total: 10%, perZone: 5}, or just a count or percentage for the whole rollout", "total", "perZone")
	if !ok {
		return nil
	}
	if t, ok := f.get("total"); ok {
		u.total = p.unavailableSize(t)
	}
	if z, ok := f.get("perZone"); ok {
		u.perZone = p.unavailableSize(z)
	}
	if !f.has("total") && !f.has("perZone") {
		p.at(en.val, en.field, "is empty: give total, perZone or both (leave maxUnavailable out for no cap)")
	}
	return u
}

// unavailableSize reads a cap: a count or a percentage.
func (p *parser) unavailableSize(en entry) setting[rollout.Size] {
	s, ok := p.str(en.val, en.field, "a count like 5 or a percentage like 10%")
	if !ok {
		return bad[rollout.Size](en)
	}
	sz, err := rollout.ParseSize(s)
	if err != nil {
		p.at(en.val, en.field, "%s: want a count of at least 1 like 5, or a percentage more than 0%% and at most 100%% like 10%%", quote(s))
		return bad[rollout.Size](en)
	}
	return set(en, sz)
}

// checkUnavailable checks maxUnavailable against the instances: a
// percentage per zone needs every instance's zone, and a cap no smaller
// than the plan holds nothing back.
func (p *parser) checkUnavailable() {
	u := p.raw.maxUnavailable
	if u == nil {
		return
	}
	if z := u.perZone; z.ok && z.v.Percent > 0 {
		missing, first := 0, target{}
		for _, g := range p.raw.groups {
			for _, t := range g.targets {
				if t.zone == "" {
					if missing == 0 {
						first = t
					}
					missing++
				}
			}
		}
		if missing > 0 {
			p.at(z.node, z.field, "%s is a share of each zone, so every instance needs a zone in the plan; %d have none, the first being %s (%s): give zones ({id: %s, zone: ...}) or a count",
				z.v, missing, first.id, first.where(), first.id)
		}
	}
	if t := u.total; t.ok && len(p.list) == 0 {
		if n := p.targetCount(); rollout.ResolveUnavailable(t.v, n) >= n {
			p.warn(t.node, t.field, "%s allows all %d instances of the plan to be unavailable at once: it holds nothing back", t.v, n)
		}
	}
}

// buildUnavailable resolves maxUnavailable against the targets: total
// against the plan, a perZone percentage against each zone. It returns
// nil without maxUnavailable.
func (p *parser) buildUnavailable(targets []rollout.Target) *rollout.MaxUnavailable {
	u := p.raw.maxUnavailable
	if u == nil {
		return nil
	}
	m := &rollout.MaxUnavailable{}
	if u.total.ok {
		m.Total = rollout.ResolveUnavailable(u.total.v, len(targets))
	}
	if z := u.perZone; z.ok {
		if z.v.Percent == 0 {
			m.PerZone = z.v.Count
		} else {
			zones := map[string]int{}
			for _, t := range targets {
				zones[t.Zone]++
			}
			m.Zones = map[string]int{}
			for zone, n := range zones {
				c := rollout.ResolveUnavailable(z.v, n)
				m.Zones[zone] = c
				// A zone the cloud reports that the plan did not name
				// gets the smallest of the plan's zones' caps.
				if m.PerZone == 0 || c < m.PerZone {
					m.PerZone = c
				}
			}
		}
	}
	return m
}

// unavailableLine describes the caps for a preview, or "" without any.
func unavailableLine(m *rollout.MaxUnavailable) string {
	switch {
	case !m.Capped():
		return ""
	case m.Total > 0 && m.PerZone > 0 && len(m.Zones) == 0:
		return fmt.Sprintf("at most %d instances unavailable at once, %d per zone", m.Total, m.PerZone)
	case m.Total > 0 && len(m.Zones) == 0:
		return fmt.Sprintf("at most %d instances unavailable at once", m.Total)
	case len(m.Zones) == 0:
		return fmt.Sprintf("at most %d instances unavailable at once per zone", m.PerZone)
	}
	s := "at most "
	if m.Total > 0 {
		s += fmt.Sprintf("%d instances unavailable at once, and ", m.Total)
	}
	var per []string
	for _, z := range slices.Sorted(maps.Keys(m.Zones)) {
		per = append(per, fmt.Sprintf("%d in %s", m.Zones[z], z))
	}
	return s + strings.Join(per, ", ")
}
