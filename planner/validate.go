package planner

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/fleetreset/fleetreset/rollout"
)

// effective returns group g's settings after inheriting the top level's:
// each field the group leaves out comes from the top level, except that
// login fields (password, keyIds, keepImageLogin) are inherited as a unit.
func (p *parser) effective(g *group) settings {
	top, own := p.raw.defaults, g.settings
	e := own
	if !own.image.present {
		e.image = top.image
	}
	if !own.os.present {
		e.os = top.os
	}
	if !own.hasLogin() {
		e.password, e.passwordShown, e.keyIDs, e.keep = top.password, top.passwordShown, top.keyIDs, top.keep
	}
	if !own.security.present {
		e.security = top.security
	}
	if !own.monitor.present {
		e.monitor = top.monitor
	}
	if !own.rootSize.present {
		e.rootSize = top.rootSize
	}
	if !own.hostName.present {
		e.hostName = top.hostName
	}
	return e
}

// label names a group for messages.
func (g *group) label() string {
	if g.name.ok {
		return "group " + g.name.v
	}
	return g.path
}

// check runs the checks that span fields: per-group settings after
// inheritance, duplicate instances, zones, and the wave plan.
func (p *parser) check() {
	for _, g := range p.raw.groups {
		p.checkGroup(g)
	}
	p.resolveSelections()
	p.checkTargets()
	p.checkUnavailable()
	p.checkWaves()
}

// checkGroup checks one group's effective settings.
func (p *parser) checkGroup(g *group) {
	e := p.effective(g)
	osName := e.os.or(OSDefault)
	if e.password.present && e.keep.ok && e.keep.v {
		p.at(e.keep.node, e.keep.field, "cannot be combined with password: the API refuses KeepImageLogin with Password or KeyIds")
	}
	if e.keyIDs.present && e.keep.ok && e.keep.v {
		p.at(e.keep.node, e.keep.field, "cannot be combined with keyIds: the API refuses KeepImageLogin with Password or KeyIds")
	}
	if !e.password.present && !e.keyIDs.present && !(e.keep.present && (!e.keep.ok || e.keep.v)) {
		// Without login settings the cloud mails a new random password
		// for every instance: never what a fleet operator means.
		p.at(g.node, g.path, "%s has no login setting: set password ({env: VAR} or {file: path}), keyIds or keepImageLogin, in the group or at the top level", g.label())
	}
	if osName == "windows" && e.keyIDs.present && p.api == "v3" {
		p.at(e.keyIDs.node, e.keyIDs.field, "%s runs windows, and Windows instances cannot log in with SSH keys: use password", g.label())
	}
	if e.keep.ok && e.keep.v && e.image.ok && e.image.v.typ.ok {
		if t := e.image.v.typ.v; t == 2 || t == 3 {
			p.at(e.keep.node, e.keep.field, "needs a custom (type 1) or shared (type 4) image, and %s uses a %s image (type %d)", g.label(), map[int]string{2: "public", 3: "marketplace"}[t], t)
		}
	}
	p.checkServing(g, osName)
	if e.hostName.ok {
		if msg := hostNameProblem(osName, e.hostName.v); msg != "" {
			p.at(e.hostName.node, e.hostName.field, "%s (%s runs %s)", msg, g.label(), osName)
		} else if len(g.targets) > 1 {
			p.warn(e.hostName.node, e.hostName.field, "every one of the %d instances of %s gets the host name %q", len(g.targets), g.label(), e.hostName.v)
		}
	}
}

// hostNameProblem checks a HostName against the ResetInstance rules
// (cvm-api.md §3.5), or returns "".
func hostNameProblem(osName, h string) string {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "may contain only letters, digits, '-' and '.'"
		}
	}
	if osName == "windows" {
		switch {
		case len(h) < 2 || len(h) > 15:
			return "must be 2-15 characters for Windows"
		case strings.Contains(h, "."):
			return "must not contain '.' for Windows"
		case digits(h):
			return "must not be all digits for Windows"
		}
		return ""
	}
	switch {
	case len(h) < 2 || len(h) > 60:
		return "must be 2-60 characters for Linux"
	case strings.ContainsAny(h[:1], ".-") || strings.ContainsAny(h[len(h)-1:], ".-"):
		return "must not start or end with '.' or '-'"
	case strings.Contains(h, "..") || strings.Contains(h, "--") || strings.Contains(h, ".-") || strings.Contains(h, "-."):
		return "must not have '.' or '-' twice in a row"
	}
	return ""
}

// checkZoneOrder checks that every zone of zoneOrder is in a region of
// the plan's groups.
func (p *parser) checkZoneOrder() {
	var regions []string
	for _, g := range p.raw.groups {
		if rg := cmp.Or(g.region.v, p.raw.region.v); rg != "" && !slices.Contains(regions, rg) {
			regions = append(regions, rg)
		}
	}
	if len(regions) == 0 {
		return // the region's own error says enough
	}
	for _, it := range p.raw.zoneItems {
		rg, _ := zoneSyntax(it.zone, "")
		switch {
		case slices.Contains(regions, rg):
		case len(regions) == 1:
			p.at(it.node, it.field, "zone %q is not in region %s", it.zone, regions[0])
		default:
			p.at(it.node, it.field, "zone %q is in region %s, where no group of the plan is (regions: %s)", it.zone, rg, strings.Join(regions, ", "))
		}
	}
}

// checkTargets finds instances listed twice and checks zones against zoneOrder.
func (p *parser) checkTargets() {
	p.checkZoneOrder()
	first := map[string]target{}
	order := p.raw.zoneOrder
	for _, g := range p.raw.groups {
		missing, firstMissing := 0, target{}
		for _, t := range g.targets {
			if prev, dup := first[t.id]; dup {
				p.list = append(p.list, &FieldError{File: t.file, Line: t.line, Column: t.col, Field: t.field,
					Msg: fmt.Sprintf("duplicate instance %s (first at %s, %s)", t.id, prev.where(), p.raw.groups[prev.group].label())})
				continue
			}
			first[t.id] = t
			if !order.ok {
				continue
			}
			switch {
			case t.zone == "":
				if missing == 0 {
					firstMissing = t
				}
				missing++
			case !slices.Contains(order.v, t.zone):
				p.list = append(p.list, &FieldError{File: t.file, Line: t.line, Column: t.col, Field: t.field,
					Msg: fmt.Sprintf("zone %s of %s is not in zoneOrder (line %d)", t.zone, t.id, order.node.Line)})
			}
		}
		if missing > 0 {
			t := firstMissing
			p.list = append(p.list, &FieldError{File: t.file, Line: t.line, Column: t.col, Field: t.field,
				Msg: fmt.Sprintf("zoneOrder is set, so every instance needs a zone; %d of %s have none, the first being %s", missing, g.label(), t.id)})
		}
	}
}

// targetCount is the number of distinct instances in the plan.
func (p *parser) targetCount() int {
	n := 0
	for _, g := range p.raw.groups {
		n += len(g.targets)
	}
	return n
}

// checkWaves warns about wave entries and budgets that cannot take effect.
func (p *parser) checkWaves() {
	if len(p.list) > 0 || p.unresolved {
		return // counts are unreliable; the errors come first
	}
	total := p.targetCount()
	if total == 0 {
		p.at(p.raw.groupsNode, "groups", "the plan has no instance: its selects matched none that are not protected, excluded or listed elsewhere")
		return
	}
	if p.raw.regionOrder.ok {
		// Waves are cut per region; the entries' reach is judged per
		// region, and a small region may leave entries unused.
		return
	}
	steps := rollout.Expand(total, p.sizes())
	used := 0
	for _, st := range steps {
		used = max(used, st.Entry+1)
	}
	if unused := p.raw.waves[used:]; len(unused) == 1 {
		p.warn(unused[0].node, unused[0].path, "no wave comes from this entry: the waves before it already place all %d instances", total)
	} else if len(unused) > 1 {
		p.warn(unused[0].node, unused[0].path, "no wave comes from this entry or the %d after it: the waves before them already place all %d instances", len(unused)-1, total)
	}
	for i, st := range steps {
		w := p.raw.waves[st.Entry]
		b := w.budget.v
		if b.Percent >= 0 && b.MinSample > st.Size && (i == 0 || steps[i-1].Entry != st.Entry) {
			p.warn(w.budget.node, join(w.budget.field, "minSample"), "%d is more than the %d instances of wave %d, so its percentage is never judged", b.MinSample, st.Size, i)
		}
	}
	if b := p.raw.budget; b.node != nil && b.v.Percent >= 0 && b.v.MinSample > total {
		p.warn(b.node, join(b.field, "minSample"), "%d is more than the plan's %d instances, so the percentage is never judged", b.v.MinSample, total)
	}
	p.checkRegionBudget()
}

// checkRegionBudget warns about a regionFailureBudget that can never act
// apart from failureBudget: one region only, or a minSample no region
// reaches.
func (p *parser) checkRegionBudget() {
	b := p.raw.regionBudget
	if !b.ok || b.node == nil {
		return
	}
	perRegion := map[string]int{}
	var order []string
	for _, g := range p.raw.groups {
		rg := cmp.Or(g.region.v, p.raw.region.v)
		if _, seen := perRegion[rg]; !seen {
			order = append(order, rg)
		}
		perRegion[rg] += len(g.targets)
	}
	if len(order) == 1 {
		p.warn(b.node, b.field, "the plan has one region (%s): failureBudget already judges it", order[0])
		return
	}
	if b.v.Percent < 0 {
		return
	}
	for _, rg := range order {
		if n := perRegion[rg]; n > 0 && b.v.MinSample > n {
			p.warn(b.node, join(b.field, "minSample"), "%d is more than the %d instances of region %s, so its percentage is never judged there", b.v.MinSample, n, rg)
		}
	}
}

// sizes returns the configured wave sizes.
func (p *parser) sizes() []rollout.Size {
	out := make([]rollout.Size, len(p.raw.waves))
	for i, w := range p.raw.waves {
		out[i] = w.size.v
	}
	return out
}

// build turns a checked plan into a Plan. It runs only when no error was
// recorded, so every setting it reads is valid.
func (p *parser) build() *Plan {
	r := &p.raw
	spec := rollout.Spec{
		ID:             r.name.v,
		PlanFile:       p.file,
		Region:         r.region.v,
		AccountName:    r.account.v,
		Accounts:       r.accounts,
		Endpoint:       r.endpoint,
		API:            r.api,
		Budget:         r.budget.v,
		RegionBudget:   r.regionBudget.ptr(),
		OnBreach:       r.onBreach,
		ResetRate:      r.resetRate.v,
		DescribeRate:   r.describeRate.v,
		VerifyInterval: r.verifyEvery.v,
		VerifyTimeout:  r.verifyFor.v,
		RetryAttempts:  r.retryTimes.v,
		RetryDeadline:  r.retryFor.v,
		StartAt:        r.startAt,
		Schedule:       r.schedule,
		Window:         r.window,
		Webhook:        r.webhook,
		ResetMatching:  r.resetMatching,
		StopWhen:       r.stopWhen,
	}
	var targets []rollout.Target
	for gi, g := range r.groups {
		e := p.effective(g)
		rg := rollout.Group{
			Name:            g.name.v,
			Region:          g.region.v,
			Account:         g.account.v,
			OS:              e.os.or(OSDefault),
			KeyIDs:          slices.Clone(e.keyIDs.v),
			KeepImageLogin:  e.keep.v,
			RootSize:        e.rootSize.v,
			HostName:        e.hostName.v,
			UserData:        g.userData,
			AutomationAgent: g.automationAgent,
		}
		if e.image.ok {
			rg.ImageType, rg.ImageID = e.image.v.typ.v, e.image.v.id.v
		}
		if e.password.ok {
			ref := e.password.v
			rg.Password = &ref
		}
		if e.security.ok {
			rg.SecurityAgent = new(e.security.v)
		}
		if e.monitor.ok {
			rg.MonitorAgent = new(e.monitor.v)
		}
		buildServing(&rg, p.effectiveServing(g))
		spec.Groups = append(spec.Groups, rg)
		for _, t := range g.targets {
			targets = append(targets, rollout.Target{InstanceID: t.id, Group: gi, Zone: t.zone})
		}
	}
	if r.zoneOrder.ok {
		rank := map[string]int{}
		for i, z := range r.zoneOrder.v {
			rank[z] = i
		}
		slices.SortStableFunc(targets, func(a, b rollout.Target) int { return cmp.Compare(rank[a.Zone], rank[b.Zone]) })
	}
	// With regionOrder each region is a phase: the waves are cut from
	// each region's instances in turn, so no wave holds two regions.
	phases := []int{len(targets)}
	if r.regionOrder.ok {
		spec.RegionOrder = r.regionOrder.v
		rank := map[string]int{}
		for i, rg := range r.regionOrder.v {
			rank[rg] = i
		}
		regionOf := func(t rollout.Target) int { return rank[spec.LocationOf(t.Group).Region] }
		slices.SortStableFunc(targets, func(a, b rollout.Target) int { return cmp.Compare(regionOf(a), regionOf(b)) })
		phases = make([]int, len(r.regionOrder.v))
		for _, t := range targets {
			phases[regionOf(t)]++
		}
	}
	spec.MaxUnavailable = p.buildUnavailable(targets)
	next := 0
	for _, n := range phases {
		for _, st := range rollout.Expand(n, p.sizes()) {
			w := r.waves[st.Entry]
			spec.Waves = append(spec.Waves, rollout.Wave{Size: st.Size, Soak: w.soak, Approval: w.approval, Budget: w.budget.v})
			for range st.Size {
				targets[next].Wave = len(spec.Waves) - 1
				next++
			}
		}
	}
	spec.PlanHash = planHash(spec, targets)
	return &Plan{Spec: spec, Targets: targets}
}

// planHash returns "sha256:" and the hex SHA-256 of the canonical JSON of
// spec and targets: encoding/json writes struct fields in declaration order
// and map keys (health check headers) sorted, so equal plans hash equally.
// Health, hooks, drain and alarms are in: they change what the rollout does. PlanFile is
// left out so that the same plan read through another path is the same
// plan; a password file's absolute path is in, because it changes what
// the workers read.
func planHash(spec rollout.Spec, targets []rollout.Target) string {
	spec.PlanFile, spec.PlanHash = "", ""
	data, err := json.Marshal(struct {
		Spec    rollout.Spec     `json:"spec"`
		Targets []rollout.Target `json:"targets"`
	}{spec, targets})
	if err != nil {
		panic(fmt.Sprintf("planner: marshal spec: %v", err)) // plain data: cannot fail
	}
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}
