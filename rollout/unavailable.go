package rollout

// MaxUnavailable caps how many instances of a rollout may be unavailable
// at once: from the moment a worker commits to take an instance down (its
// drain when its group has a load balancer, else the reset call) until
// its terminal outcome (verified and, with health checks, healthy). Waves
// still gate as without it; the cap only limits how many instances of
// the running wave are down together. The planner resolves percentages
// into counts (ResolveUnavailable); a zero count means no cap.
type MaxUnavailable struct {
	// Total caps the rollout as a whole; 0 for no overall cap.
	Total int `json:"total,omitempty"`
	// PerZone caps each availability zone Zones does not list; 0 for no
	// per-zone cap.
	PerZone int `json:"per_zone,omitempty"`
	// Zones holds per-zone caps by zone, resolved from a percentage
	// against each zone's share of the plan; nil for a count.
	Zones map[string]int `json:"zones,omitempty"`
}

// Limits returns the caps that apply to an instance in zone: the overall
// cap and the zone's, each 0 when there is none. A nil m caps nothing.
func (m *MaxUnavailable) Limits(zone string) (total, perZone int) {
	if m == nil {
		return 0, 0
	}
	if n, ok := m.Zones[zone]; ok {
		return m.Total, n
	}
	return m.Total, m.PerZone
}

// Capped reports whether m limits anything.
func (m *MaxUnavailable) Capped() bool {
	return m != nil && (m.Total > 0 || m.PerZone > 0 || len(m.Zones) > 0)
}

// ResolveUnavailable turns a configured cap into a count for a scope of n
// instances: Count, or Percent of n rounded down (as Kubernetes rounds
// maxUnavailable), but never below 1, or nothing could ever be reset.
func ResolveUnavailable(s Size, n int) int {
	c := s.Count
	if s.Percent > 0 {
		c = floorPercent(n, hundredths(s.Percent))
	}
	return max(c, 1)
}

// floorPercent returns floor(total * h / 10000) without overflow (see
// ceilPercent).
func floorPercent(total, h int) int {
	if total <= 0 || h <= 0 {
		return 0
	}
	q, r := total/10000, total%10000
	return q*h + r*h/10000
}

// Rounds is how many times, at the least, the cap must turn over for a
// wave whose instances to reset count zones[z] per zone: the most, over
// the overall cap and every zone's cap, of ceil(instances / cap). It is 1
// without a cap (the whole wave is down together) and 0 for an empty
// wave. Instances of an unknown zone ("") count toward the overall cap
// only, so that Rounds stays a lower bound. Each round is at least one
// reinstall and its serving time.
func (m *MaxUnavailable) Rounds(zones map[string]int) int {
	n := 0
	for _, c := range zones {
		n += c
	}
	if n == 0 {
		return 0
	}
	rounds := 1
	ceil := func(a, b int) int { return (a + b - 1) / b }
	if !m.Capped() {
		return rounds
	}
	if m.Total > 0 {
		rounds = max(rounds, ceil(n, m.Total))
	}
	for z, c := range zones {
		if _, per := m.Limits(z); z != "" && per > 0 && c > 0 {
			rounds = max(rounds, ceil(c, per))
		}
	}
	return rounds
}
