package planner

import (
	"cmp"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/fleetreset/fleetreset/rollout"
)

// Selecting instances by DescribeInstances filters (a group's `select`).
// The planner does no I/O of its own: Parse returns the filters of each
// group as a Selection, the caller lists the instances they match with
// DescribeInstances and parses again with Options.Selected, and the
// matches become targets like listed instances, cut into waves the same way.

// ProtectTagDefault is the tag that removes an instance from every
// selection when the plan does not set protectTag.
const ProtectTagDefault = "fleetreset:protect=true"

// Limits of DescribeInstances filters (cvm-api.md §3.9). The planner
// imports no API client; cvm.MaxFilters and cvm.MaxFilterValues are the
// same numbers.
const (
	// MaxSelectFilters is the most filters one select may have: the API
	// takes at most 10 per request, and filters of one select must all
	// match, so they cannot be split across requests.
	MaxSelectFilters = 10
	// MaxFilterValues is the most values one request takes per filter; a
	// filter with more is split over several requests.
	MaxFilterValues = 5
	// MaxSelectRequests bounds the filter combinations one select may need
	// (the product over its filters of ⌈values/5⌉): each is its own paged
	// listing.
	MaxSelectRequests = 100
)

// Filter is one DescribeInstances filter of a select: instances whose
// attribute Name is one of Values. Values may exceed MaxFilterValues; see
// Selection.Requests.
type Filter struct {
	Name   string
	Values []string
}

// Match is one instance a selection matched, as DescribeInstances reported it.
type Match struct {
	InstanceID string
	Zone       string
	Tags       map[string]string
}

// Selection is one group's `select`: its filters, and once resolved, what
// became of the instances they matched.
type Selection struct {
	// Group indexes Spec.Groups; GroupName is its name.
	Group     int
	GroupName string
	// Filters are the select's filters in plan order, values de-duplicated.
	Filters []Filter
	// Resolved is true when Options.Selected held this group's matches.
	// The counts below are zero until then.
	Resolved bool
	// Matched counts the distinct instances DescribeInstances returned.
	Matched int
	// Protected lists, sorted, the matches carrying the protect tag: never
	// targets.
	Protected []string
	// Excluded counts matches the group's exclude removed.
	Excluded int
	// Repeated counts matches an earlier group already named; they stay
	// with that group.
	Repeated int
	// Zones counts the targets the selection added, per zone.
	Zones map[string]int
}

// Selected is the number of targets the selection added.
func (s Selection) Selected() int {
	n := 0
	for _, c := range s.Zones {
		n += c
	}
	return n
}

// Requests splits the filters into the filter sets of single
// DescribeInstances requests, each filter with at most MaxFilterValues
// values: the cartesian product of each filter's chunks of values. The
// union of what the requests match is what the select matches.
func (s Selection) Requests() [][]Filter {
	out := [][]Filter{nil}
	for _, f := range s.Filters {
		var next [][]Filter
		for chunk := range slices.Chunk(f.Values, MaxFilterValues) {
			for _, req := range out {
				next = append(next, append(slices.Clone(req), Filter{Name: f.Name, Values: chunk}))
			}
		}
		out = next
	}
	return out
}

// Unresolved reports whether some selection of the plan was not resolved:
// its targets are then only the listed instances, and it must not be applied.
func (p *Plan) Unresolved() bool {
	for _, s := range p.Selections {
		if !s.Resolved {
			return true
		}
	}
	return false
}

// SelectionLines describe the plan's selections for `fleetreset plan`,
// one block per group; nil for a plan without select.
func (p *Plan) SelectionLines() []string {
	var out []string
	for _, s := range p.Selections {
		var fs []string
		for _, f := range s.Filters {
			fs = append(fs, f.Name+"="+strings.Join(f.Values, ","))
		}
		out = append(out, fmt.Sprintf("group %s: select %s", s.GroupName, strings.Join(fs, " ")))
		if !s.Resolved {
			out = append(out, "  not resolved (no DescribeInstances call was made)")
			continue
		}
		out = append(out, fmt.Sprintf("  %d matched, %d selected, %d protected (%s), %d excluded, %d already in an earlier group",
			s.Matched, s.Selected(), len(s.Protected), p.ProtectTag, s.Excluded, s.Repeated))
		for _, z := range slices.Sorted(maps.Keys(s.Zones)) {
			out = append(out, fmt.Sprintf("  %-20s %d", z, s.Zones[z]))
		}
		for i, id := range s.Protected {
			if i == 20 {
				out = append(out, fmt.Sprintf("  ... and %d more protected", len(s.Protected)-20))
				break
			}
			out = append(out, "  protected "+id)
		}
	}
	return out
}

// selector is a group's select and exclude as parsed.
type selector struct {
	node    *yaml.Node
	field   string
	filters []Filter
	// exclude
	exIDs  map[string]bool
	exTags map[string][]string
}

// selectKeys are the filter names a select takes besides tag:KEY.
var selectKeys = []string{"tag-key", "zone", "instance-name", "vpc-id", "subnet-id", "image-id", "instance-charge-type", "project-id"}

// chargeTypes are the documented InstanceChargeType values.
var chargeTypes = []string{"PREPAID", "POSTPAID_BY_HOUR", "SPOTPAID", "CDHPAID"}

var (
	vpcRE    = regexp.MustCompile(`^vpc-[a-z0-9]{8}$`)
	subnetRE = regexp.MustCompile(`^subnet-[a-z0-9]{8}$`)
)

// groupSelect reads a group's `select` and `exclude` into g.sel.
func (p *parser) groupSelect(f fields, g *group) {
	en, ok := f.get("select")
	if !ok {
		if ex, ok := f.get("exclude"); ok {
			p.at(ex.key, ex.field, "needs select: exclude removes instances from what select matches")
		}
		return
	}
	if p.api != "v3" {
		p.at(en.key, en.field, "needs api v3: the v2 API cannot filter instances by tags%s", p.apiHint(""))
		return
	}
	if !p.usable(en.val, en.field) {
		return
	}
	if en.val.Kind != yaml.MappingNode {
		p.at(en.val, en.field, "must be a mapping of filters, like {tag:role: [web], zone: [%s-3]}", p.raw.region.or("ap-guangzhou"))
		return
	}
	sel := &selector{node: en.val, field: en.field}
	good := true
	seen := map[string]int{}
	for i := 0; i+1 < len(en.val.Content); i += 2 {
		k, v := en.val.Content[i], en.val.Content[i+1]
		field := join(en.field, k.Value)
		if k.Kind != yaml.ScalarNode {
			p.at(k, en.field, "keys must be filter names")
			good = false
			continue
		}
		name := k.Value
		if line, dup := seen[name]; dup {
			p.at(k, field, "duplicate filter (first at line %d)", line)
			good = false
			continue
		}
		seen[name] = k.Line
		if !strings.HasPrefix(name, "tag:") && !slices.Contains(selectKeys, name) {
			msg := "unknown filter"
			if s := suggest(name, selectKeys); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += fmt.Sprintf(" (known: tag:KEY, %s)", strings.Join(selectKeys, ", "))
			}
			p.at(k, field, "%s", msg)
			good = false
			continue
		}
		if name == "tag:" {
			p.at(k, field, "names no tag key: write tag:KEY, like tag:role")
			good = false
			continue
		}
		vals, ok := p.filterValues(v, field, name)
		if !ok {
			good = false
			continue
		}
		sel.filters = append(sel.filters, Filter{Name: name, Values: vals})
	}
	switch {
	case !good:
		return
	case len(sel.filters) == 0:
		p.at(en.val, en.field, "is empty: it would select every instance of the region; give at least one filter")
		return
	case len(sel.filters) > MaxSelectFilters:
		p.at(en.val, en.field, "has %d filters; DescribeInstances takes at most %d, and all must match", len(sel.filters), MaxSelectFilters)
		return
	}
	if n := len((Selection{Filters: sel.filters}).Requests()); n > MaxSelectRequests {
		p.at(en.val, en.field, "needs %d DescribeInstances listings (at most %d values per filter per request, combined across filters); at most %d: use fewer values", n, MaxFilterValues, MaxSelectRequests)
		return
	}
	if ex, ok := f.get("exclude"); ok && !p.exclude(ex, sel) {
		return
	}
	g.sel = sel
}

// filterValues reads a filter's value or list of values, checked by name.
func (p *parser) filterValues(n *yaml.Node, field, name string) ([]string, bool) {
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
		if len(items) == 0 {
			p.at(n, field, "is empty: give at least one value")
			return nil, false
		}
	}
	var out []string
	good := true
	for i, it := range items {
		f := field
		if n.Kind == yaml.SequenceNode {
			f = index(field, i)
		}
		s, ok := p.str(it, f, "a value or a list of values")
		if !ok {
			good = false
			continue
		}
		if msg := p.filterValueProblem(name, s, it); msg != "" {
			p.at(it, f, "%s", msg)
			good = false
			continue
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, good
}

// filterValueProblem says what is wrong with one value of filter name, or "".
func (p *parser) filterValueProblem(name, v string, n *yaml.Node) string {
	if v == "" {
		return "is empty"
	}
	switch name {
	case "zone":
		return p.zoneOK(v)
	case "image-id":
		if !imageRE.MatchString(v) {
			return fmt.Sprintf("%s is not an image id like img-xxxxxxxx", quote(v))
		}
	case "vpc-id":
		if !vpcRE.MatchString(v) {
			return fmt.Sprintf("%s is not a VPC id like vpc-xxxxxxxx", quote(v))
		}
	case "subnet-id":
		if !subnetRE.MatchString(v) {
			return fmt.Sprintf("%s is not a subnet id like subnet-xxxxxxxx", quote(v))
		}
	case "instance-charge-type":
		if !slices.Contains(chargeTypes, v) {
			return fmt.Sprintf("%s is not a charge type: want one of %s", quote(v), strings.Join(chargeTypes, ", "))
		}
	case "project-id":
		if id, err := strconv.Atoi(v); err != nil || id < 0 || n.Tag != "!!int" && n.Tag != "!!str" {
			return fmt.Sprintf("%s is not a project id (a whole number, 0 for the default project)", quote(v))
		}
	}
	return ""
}

// exclude reads `exclude: {instances: [...], tags: {KEY: value or [values]}}`.
func (p *parser) exclude(en entry, sel *selector) bool {
	f, ok := p.mapping(en.val, en.field, "{instances: [ins-...], tags: {KEY: [values]}}", "instances", "tags")
	if !ok {
		return false
	}
	good := true
	if ins, ok := f.get("instances"); ok {
		items, ok := p.seq(ins.val, ins.field, "of instance ids")
		good = good && ok
		sel.exIDs = map[string]bool{}
		for i, it := range items {
			id, ok := p.str(it, index(ins.field, i), "an instance id")
			if !ok {
				good = false
				continue
			}
			if msg := p.instanceIDProblem(id); msg != "" {
				p.at(it, index(ins.field, i), "%s", msg)
				good = false
				continue
			}
			sel.exIDs[id] = true
		}
	}
	if tags, ok := f.get("tags"); ok {
		if !p.usable(tags.val, tags.field) || tags.val.Kind != yaml.MappingNode {
			p.at(tags.val, tags.field, "must be a mapping of tag keys to values, like {role: [db]}")
			return false
		}
		sel.exTags = map[string][]string{}
		for i := 0; i+1 < len(tags.val.Content); i += 2 {
			k, v := tags.val.Content[i], tags.val.Content[i+1]
			vals, ok := p.filterValues(v, join(tags.field, k.Value), "tag")
			if !ok || k.Value == "" {
				good = false
				continue
			}
			sel.exTags[k.Value] = vals
		}
	}
	if !f.has("instances") && !f.has("tags") {
		p.at(en.val, en.field, "is empty: give instances, tags or both")
		return false
	}
	return good
}

// excludes reports whether the exclude removes m.
func (s *selector) excludes(m Match) bool {
	if s.exIDs[m.InstanceID] {
		return true
	}
	for k, vals := range s.exTags {
		if v, ok := m.Tags[k]; ok && slices.Contains(vals, v) {
			return true
		}
	}
	return false
}

// protectTag reads the top-level protectTag, "KEY=VALUE".
func (p *parser) protectTag(f fields) {
	p.raw.protectTag = ProtectTagDefault
	en, ok := f.get("protectTag")
	if !ok {
		return
	}
	s, ok := p.str(en.val, en.field, "a tag like fleetreset:protect=true")
	if !ok {
		return
	}
	k, v, found := strings.Cut(s, "=")
	if !found || k == "" || v == "" {
		p.at(en.val, en.field, "%s is not KEY=VALUE, like %s", quote(s), ProtectTagDefault)
		return
	}
	p.raw.protectTag = s
}

// resolveSelections turns each resolved group's matches into targets and
// records the Selections; groups without matches in Options.Selected stay
// unresolved.
func (p *parser) resolveSelections() {
	key, val, _ := strings.Cut(p.raw.protectTag, "=")
	for gi, g := range p.raw.groups {
		if g.sel == nil {
			continue
		}
		s := Selection{Group: gi, GroupName: g.name.v, Filters: g.sel.filters, Zones: map[string]int{}}
		matches, ok := p.opts.Selected[gi]
		if !ok {
			p.unresolved = true
			p.selections = append(p.selections, s)
			continue
		}
		s.Resolved = true
		// Sorted by ID, so that two listings of the same fleet give the
		// same targets (and plan hash) whatever order the API paged in.
		byID := map[string]Match{}
		for _, m := range matches {
			byID[m.InstanceID] = m
		}
		for _, id := range slices.Sorted(maps.Keys(byID)) {
			m := byID[id]
			s.Matched++
			switch {
			case m.Tags[key] == val && val != "":
				s.Protected = append(s.Protected, id)
			case g.sel.excludes(m):
				s.Excluded++
			case !instanceRE.MatchString(id):
				p.at(g.sel.node, g.sel.field, "DescribeInstances returned %s, which is not an instance id", quote(id))
			default:
				g.targets = append(g.targets, target{id: id, zone: m.Zone, group: gi, file: p.file,
					line: g.sel.node.Line, col: g.sel.node.Column, field: g.sel.field, selected: true})
			}
		}
		p.selections = append(p.selections, s)
	}
	p.dedupeSelected()
}

// dedupeSelected drops from later groups the instances an earlier group
// (or earlier in the same group) already named, when a select named either
// one: a selection overlapping another group is expected, not a mistake.
// Instances listed twice stay for checkTargets to report, as before.
func (p *parser) dedupeSelected() {
	first := map[string]target{}
	repeated := map[int]int{}
	for _, g := range p.raw.groups {
		kept := g.targets[:0]
		for _, t := range g.targets {
			prev, dup := first[t.id]
			if dup && (t.selected || prev.selected) {
				if t.selected {
					repeated[t.group]++
				} else {
					p.warn(nil, t.field, "%s is listed at %s:%d but %s's select already has it; it stays there", t.id, t.file, t.line, p.raw.groups[prev.group].label())
				}
				continue
			}
			if !dup {
				first[t.id] = t
			}
			kept = append(kept, t)
		}
		g.targets = kept
	}
	for i := range p.selections {
		s := &p.selections[i]
		s.Repeated = repeated[s.Group]
		if !s.Resolved {
			continue
		}
		g := p.raw.groups[s.Group]
		for _, t := range g.targets {
			if t.selected {
				s.Zones[cmp.Or(t.zone, "(unknown)")]++
			}
		}
		if s.Repeated > 0 {
			p.warn(g.sel.node, g.sel.field, "%d of the instances it matched are already in an earlier group; they stay there", s.Repeated)
		}
		if s.Selected() == 0 {
			p.warn(g.sel.node, g.sel.field, "selects no instance: %d matched, %d protected, %d excluded, %d already in an earlier group", s.Matched, len(s.Protected), s.Excluded, s.Repeated)
		}
	}
}

// groupUserData reads a group's `userData: {file: path}` and
// `automationAgent`.
func (p *parser) groupUserData(f fields, g *group) {
	if en, ok := f.get("automationAgent"); ok {
		if v, ok := p.boolean(en.val, en.field); ok {
			if v && p.api != "v3" {
				p.at(en.val, en.field, "needs api v3: v2 ResetInstances cannot install the TAT agent%s", p.apiHint(""))
			}
			g.automationAgent = v
		}
	}
	en, ok := f.get("userData")
	if !ok {
		return
	}
	if p.api != "v3" {
		p.at(en.key, en.field, "needs api v3: v2 ResetInstances has no UserData%s", p.apiHint(""))
		return
	}
	if en.val.Kind == yaml.ScalarNode && !isNull(en.val) {
		// Never echo it: user data may hold secrets.
		p.at(en.val, en.field, "must be {file: path}: user data may hold secrets, so the plan names a file (the value was not stored)")
		return
	}
	m, ok := p.mapping(en.val, en.field, "{file: cloud-init.yaml}", "file")
	if !ok {
		return
	}
	fe, ok := m.get("file")
	if !ok {
		p.at(en.val, en.field, "give {file: path}")
		return
	}
	name, ok := p.str(fe.val, fe.field, "a file path")
	if !ok {
		return
	}
	if name == "" || strings.ContainsRune(name, 0) {
		p.at(fe.val, fe.field, "is not a usable path")
		return
	}
	shown := p.rel(name)
	data, err := p.opts.readFile()(shown)
	if err != nil {
		p.at(fe.val, fe.field, "cannot read user data file: %v", err)
		return
	}
	if msg := rollout.UserDataProblem(data); msg != "" {
		p.at(fe.val, fe.field, "%s %s", shown, msg)
		return
	}
	abs, err := filepath.Abs(shown)
	if err != nil {
		p.at(fe.val, fe.field, "cannot make %s absolute: %v", shown, err)
		return
	}
	// Workers may run elsewhere in the file system: the absolute path, and
	// the content's hash so that an edited file is refused at call time.
	g.userData = &rollout.UserData{File: abs, SHA256: rollout.UserDataHash(data)}
}
