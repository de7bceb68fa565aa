package planner

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fleetreset/fleetreset/rollout"
)

// Formats of names and cloud IDs. Instance, image and key IDs are a prefix
// and 8 lower-case letters or digits (cvm-api.md §2.4, §3.5); v2 also takes
// the legacy qcvm + 32 hex instance ID.
var (
	nameRE           = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	regionRE         = regexp.MustCompile(`^[a-z]{2,}-[a-z]+(-[a-z]+)?$`)
	zoneSuffixRE     = regexp.MustCompile(`^-[0-9]{1,3}$`)
	instanceRE       = regexp.MustCompile(`^ins-[a-z0-9]{8}$`)
	legacyInstanceRE = regexp.MustCompile(`^qcvm[0-9a-f]{32}$`)
	imageRE          = regexp.MustCompile(`^img-[a-z0-9]{8}$`)
	keyRE            = regexp.MustCompile(`^skey-[a-z0-9]{8}$`)
	envNameRE        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Keys of the plan format, by mapping.
var (
	settingKeys = []string{"image", "os", "password", "keyIds", "keepImageLogin",
		"securityAgent", "monitorAgent", "rootSize", "hostName"}
	topKeys = slices.Concat([]string{"version", "name", "region", "api", "endpoint", "groups",
		"rateLimit", "verify", "retry", "waves", "failureBudget", "onBreach", "startAt",
		"schedule", "window", "webhook", "zoneOrder", "skipMatching", "stopWhen", "maxUnavailable", "protectTag", "accounts", "account", "regionOrder", "regionFailureBudget"}, settingKeys, servingKeys)
	groupKeys = slices.Concat([]string{"name", "region", "account", "instances", "instancesFile", "select", "exclude", "userData", "automationAgent"}, settingKeys, servingKeys)
)

// setting is one field as read from the plan.
type setting[T any] struct {
	v       T
	present bool // the key is in the plan, even if its value is bad
	ok      bool // v holds a valid value
	node    *yaml.Node
	field   string
}

// set returns a valid setting read from en.
func set[T any](en entry, v T) setting[T] {
	return setting[T]{v: v, present: true, ok: true, node: en.val, field: en.field}
}

// bad returns a present setting whose value was rejected.
func bad[T any](en entry) setting[T] {
	return setting[T]{present: true, node: en.val, field: en.field}
}

// or returns s.v when valid, else def.
func (s setting[T]) or(def T) T {
	if s.ok {
		return s.v
	}
	return def
}

// ptr returns a copy of s.v when valid, else nil: for optional blocks.
func (s setting[T]) ptr() *T {
	if !s.ok {
		return nil
	}
	v := s.v
	return &v
}

// imageRef is a plan's `image: {type, id}`.
type imageRef struct {
	typ   setting[int]
	id    setting[string]
	valid bool
}

// settings are the image and login fields a plan sets at the top level and
// a group may override.
type settings struct {
	image    setting[imageRef]
	os       setting[string]
	password setting[rollout.SecretRef]
	keyIDs   setting[[]string]
	keep     setting[bool]
	security setting[bool]
	monitor  setting[bool]
	rootSize setting[int]
	hostName setting[string]
	// passwordShown is the password file path as written, joined to the
	// plan's directory: what messages show and what ResolveSecrets reads.
	passwordShown string
}

// hasLogin reports whether any login field is present; login settings are
// inherited as a unit, so a group that sets one replaces all three.
func (s *settings) hasLogin() bool {
	return s.password.present || s.keyIDs.present || s.keep.present
}

// group is one entry of `groups`.
type group struct {
	node     *yaml.Node
	path     string
	name     setting[string]
	settings settings
	serving  serving
	targets  []target
	// sel is the group's select (parse_select.go); nil without one.
	sel             *selector
	userData        *rollout.UserData
	automationAgent bool
	// region and account are the group's own (parse_locations.go).
	region  setting[string]
	account setting[string]
}

// target is one instance as written, with where it was written.
type target struct {
	id, zone string
	group    int
	file     string // the file it is in (the plan or an instances file)
	line     int
	col      int
	field    string
	selected bool // a select matched it (field is the select)
}

// where formats a target's location for messages about another one.
func (t target) where() string { return fmt.Sprintf("%s:%d", t.file, t.line) }

// wave is one entry of `waves`.
type wave struct {
	node     *yaml.Node
	path     string
	size     setting[rollout.Size]
	soak     time.Duration
	approval bool
	budget   setting[rollout.Budget]
}

// raw is a plan as read, before cross-field checks.
type raw struct {
	root         *yaml.Node
	name         setting[string]
	region       setting[string]
	api          string
	endpoint     string
	defaults     settings
	serving      serving
	groups       []*group
	groupsNode   *yaml.Node
	resetRate    setting[float64]
	describeRate setting[float64]
	unsafeRate   bool
	verifyEvery  setting[time.Duration]
	verifyFor    setting[time.Duration]
	retryTimes   setting[int]
	retryFor     setting[time.Duration]
	waves        []*wave
	wavesNode    *yaml.Node
	budget       setting[rollout.Budget]
	onBreach     string
	stopWhen     *rollout.StopWhen
	startAt      time.Time
	schedule     string
	window       *rollout.Window
	webhook      string
	zoneOrder    setting[[]string]
	// zoneItems are zoneOrder's well-formed zones with where they are,
	// even when another item is bad: their regions are checked once the
	// groups are read (checkZoneOrder).
	zoneItems []zoneItem
	// maxUnavailable is nil when the plan leaves it out.
	maxUnavailable *unavailable
	// resetMatching is skipMatching: false.
	resetMatching bool
	// protectTag is "KEY=VALUE" (parse_select.go).
	protectTag string
	// accounts and account (the groups' default) are read by
	// parse_locations.go.
	accounts map[string]rollout.AccountSource
	account  setting[string]
	// regionOrder makes each region a phase (parse_locations.go).
	regionOrder setting[[]string]
	// regionBudget is regionFailureBudget: not ok when the plan leaves it
	// out (no budget per region).
	regionBudget setting[rollout.Budget]
}

// parser holds the state of one Parse.
type parser struct {
	errs
	opts Options
	dir  string // the plan's directory, for relative paths
	api  string // the effective API generation, once read: the plan's or Options.API
	// apiFrom names the override that set api when it differs from the
	// plan's; "" when the plan's api holds.
	apiFrom string
	// overrides is Plan.Overrides.
	overrides map[string]string
	raw       raw
	// selections are Plan.Selections; unresolved is set when one of them
	// had no matches in Options.Selected.
	selections []Selection
	unresolved bool
	// files holds the instances files read, by the path read, for
	// Plan.Source.
	files map[string][]byte
	// zoneRegion is the region of the group being read, when it has one.
	zoneRegion setting[string]
}

func newParser(filename string, opts Options) *parser {
	return &parser{errs: errs{file: filename}, opts: opts, dir: filepath.Dir(filename), api: APIDefault}
}

// yamlLineRE picks the line out of yaml.v3 syntax errors.
var yamlLineRE = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)

// document decodes data into a YAML node tree and returns its root, or nil
// after recording why it cannot.
func (p *parser) document(data []byte) (root *yaml.Node) {
	defer func() {
		// yaml.v3 has panicked on hostile input in past versions; a plan
		// parser must answer with an error, not crash the CLI.
		if r := recover(); r != nil {
			root = nil
			p.at(nil, "", "cannot parse YAML: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.at(nil, "", "empty plan: start with `version: 1`")
		} else {
			p.syntax(err, data)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		p.at(&extra, "", "a plan is one YAML document; remove the `---` and what follows")
		return nil
	case !errors.Is(err, io.EOF):
		p.syntax(err, data)
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		p.at(&doc, "", "empty plan: start with `version: 1`")
		return nil
	}
	return doc.Content[0]
}

// syntax records a yaml.v3 syntax error at its line. A tab on that line
// is named: YAML's message about it ("found character that cannot start
// any token") does not say so.
func (p *parser) syntax(err error, data []byte) {
	msg := err.Error()
	fe := &FieldError{File: p.file}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		fe.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	fe.Msg = "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")
	if lines := bytes.Split(data, []byte("\n")); fe.Line > 0 && fe.Line <= len(lines) && bytes.ContainsRune(lines[fe.Line-1], '\t') {
		fe.Msg += " (this line holds a tab: YAML indents with spaces only)"
	}
	p.list = append(p.list, fe)
}

// run parses, checks and expands a plan. It returns nil when errors were
// recorded.
func (p *parser) run(data []byte) *Plan {
	root := p.document(data)
	if root == nil {
		return nil
	}
	if !p.top(root) {
		return nil
	}
	p.check()
	if p.opts.ResolveSecrets {
		// Even when the plan has other mistakes: one run should show
		// them all, including an unset variable.
		p.secrets()
	}
	if len(p.list) > 0 {
		return nil
	}
	return p.build()
}

// top reads the top-level mapping into p.raw. It returns false when the
// plan cannot be read further (not a mapping, or another version).
func (p *parser) top(root *yaml.Node) bool {
	r := &p.raw
	r.root = root
	f, ok := p.mapping(root, "", "a plan: version, name, region, groups, waves, ...", topKeys...)
	if !ok {
		return false
	}
	// version, api and region first: the rest is read in their light.
	if en, ok := f.get("version"); !ok {
		p.at(root, "version", "is required: start the plan with `version: %d`", Version)
	} else if v, ok := p.integer(en.val, en.field); ok && v != Version {
		p.at(en.val, en.field, "unsupported plan version %d (this fleetreset reads version %d)", v, Version)
		return false
	}
	if en, ok := f.get("api"); ok {
		if s, ok := p.str(en.val, en.field, "v2 or v3"); ok {
			switch s {
			case "v2", "v3":
				p.api = s
			default:
				p.at(en.val, en.field, "unknown API %q: want v3 (API 3.0, the default) or v2 (legacy cvm.api.qcloud.com)", s)
			}
		}
	}
	if o := p.opts.API; o.Value != "" && o.Value != p.api {
		// The rest of the plan is read under the API it will run with.
		p.api, p.apiFrom = o.Value, o.from()
		p.override("api", o)
	}
	r.api = p.api
	r.region = p.region(f)
	p.accounts(f)
	if en, ok := f.get("name"); !ok {
		p.at(root, "name", "is required: the rollout's name, like web-fleet-ubuntu22")
	} else if s, ok := p.str(en.val, en.field, "a name"); ok {
		if nameRE.MatchString(s) {
			r.name = set(en, s)
		} else {
			p.at(en.val, en.field, "%q is not a valid name: use 1-63 lower-case letters, digits and '-', starting with a letter or digit", s)
		}
	}
	if en, ok := f.get("endpoint"); ok {
		r.endpoint = p.url(en, "endpoint", true)
	}
	if o := p.opts.Endpoint; o.Value != "" && o.Value != r.endpoint {
		r.endpoint = o.Value
		p.override("endpoint", o)
	}
	if en, ok := f.get("webhook"); ok {
		r.webhook = p.url(en, "webhook", false)
	}
	if en, ok := f.get("skipMatching"); ok {
		if v, ok := p.boolean(en.val, en.field); ok {
			r.resetMatching = !v
		}
	}
	r.defaults = p.settings(f)
	r.serving = p.serving(f, false)
	if en, ok := f.get("stopWhen"); ok {
		r.stopWhen, _ = p.stopWhen(en)
	}
	r.zoneOrder = p.zoneOrder(f)
	if en, ok := f.get("maxUnavailable"); ok {
		r.maxUnavailable = p.maxUnavailable(en)
	}
	p.protectTag(f)
	if en, ok := f.get("groups"); !ok {
		p.at(root, "groups", "is required: list the target groups, each with instances or instancesFile")
	} else {
		r.groupsNode = en.val
		p.groups(en)
	}
	r.regionOrder = p.regionOrder(f)
	p.rateLimit(f)
	p.verifyAndRetry(f)
	if en, ok := f.get("waves"); !ok {
		p.at(root, "waves", "is required: say how the fleet is staged, e.g. [{size: 1, soak: 10m}, {size: 100%%}]")
	} else {
		r.wavesNode = en.val
		p.waves(en)
	}
	// Without a failureBudget the rollout tolerates no failure: the first
	// one pauses it (or aborts, per onBreach).
	r.budget = setting[rollout.Budget]{v: rollout.Budget{Max: 0, Percent: rollout.NoLimit}, ok: true}
	if en, ok := f.get("failureBudget"); ok {
		r.budget = p.budget(en)
	}
	if en, ok := f.get("regionFailureBudget"); ok {
		r.regionBudget = p.budget(en)
	}
	r.onBreach = OnBreachDefault
	if en, ok := f.get("onBreach"); ok {
		if s, ok := p.str(en.val, en.field, "pause, abort or rollback"); ok {
			if s == "pause" || s == "abort" || s == "rollback" {
				r.onBreach = s
			} else {
				p.at(en.val, en.field, "%q: want pause (the default: stop starting instances, wait for a human), abort, or rollback (abort, then reinstall what was reset with its previous image)", s)
			}
		}
	}
	p.timing(f)
	return true
}

// override records that o replaced the plan's key.
func (p *parser) override(key string, o Override) {
	if p.overrides == nil {
		p.overrides = map[string]string{}
	}
	p.overrides[key] = o.from()
}

// apiHint ends a message about a rule of the effective API. When the plan
// chose the API it returns hint, advice on the plan's api key (with its own
// leading punctuation, or ""); when an override did, advice on the plan
// would not help, so it names the override instead: " (api v2 from --api)".
func (p *parser) apiHint(hint string) string {
	if p.apiFrom == "" {
		return hint
	}
	return fmt.Sprintf(" (api %s from %s)", p.api, p.apiFrom)
}

// region reads the required region.
func (p *parser) region(f fields) setting[string] {
	en, ok := f.get("region")
	if !ok {
		p.at(f.node, "region", "is required, like ap-guangzhou")
		return setting[string]{}
	}
	return p.regionAt(en)
}

// regionAt reads a region name.
func (p *parser) regionAt(en entry) setting[string] {
	s, ok := p.str(en.val, en.field, "a region like ap-guangzhou")
	if !ok {
		return bad[string](en)
	}
	if i := strings.LastIndexByte(s, '-'); i > 0 && zoneSuffixRE.MatchString(s[i:]) && regionRE.MatchString(s[:i]) {
		p.at(en.val, en.field, "%q is an availability zone; the region is %q", s, s[:i])
		return bad[string](en)
	}
	if !regionRE.MatchString(s) {
		p.at(en.val, en.field, "%q is not a region: want a name like ap-guangzhou or na-siliconvalley", s)
		return bad[string](en)
	}
	return set(en, s)
}

// zoneOK checks a zone name against the plan's region, or the region of
// the group being read (p.zoneRegion).
func (p *parser) zoneOK(zone string) string {
	region := p.raw.region
	if p.zoneRegion.present {
		region = p.zoneRegion
	}
	if !region.ok {
		return "" // the region's own error says enough
	}
	in, msg := zoneSyntax(zone, region.v)
	if msg == "" && in != region.v {
		msg = fmt.Sprintf("zone %q is not in region %s", zone, region.v)
	}
	return msg
}

// zoneSyntax checks that zone is a well-formed availability zone name and
// returns its region; example is a region for the message.
func zoneSyntax(zone, example string) (region, msg string) {
	i := strings.LastIndexByte(zone, '-')
	if i <= 0 || !zoneSuffixRE.MatchString(zone[i:]) || !regionRE.MatchString(zone[:i]) {
		return "", fmt.Sprintf("%q is not an availability zone: want a name like %s-3", zone, cmp.Or(example, "ap-guangzhou"))
	}
	return zone[:i], ""
}

// zoneItem is one zone of zoneOrder as written.
type zoneItem struct {
	zone, field string
	node        *yaml.Node
}

// zoneOrder reads the optional zoneOrder list.
func (p *parser) zoneOrder(f fields) setting[[]string] {
	en, ok := f.get("zoneOrder")
	if !ok {
		return setting[[]string]{}
	}
	items, ok := p.seq(en.val, en.field, "of availability zones")
	if !ok {
		return bad[[]string](en)
	}
	if len(items) == 0 {
		p.at(en.val, en.field, "is empty: list zones, or leave zoneOrder out")
		return bad[[]string](en)
	}
	var zones []string
	seen := map[string]int{}
	good := true
	for i, it := range items {
		field := index(en.field, i)
		z, ok := p.str(it, field, "a zone")
		if !ok {
			good = false
			continue
		}
		// Zones of any region of the plan's groups (checked once the
		// groups are read: checkZoneOrder).
		if _, msg := zoneSyntax(z, p.raw.region.v); msg != "" {
			p.at(it, field, "%s", msg)
			good = false
			continue
		}
		p.raw.zoneItems = append(p.raw.zoneItems, zoneItem{zone: z, field: field, node: it})
		if line, dup := seen[z]; dup {
			p.at(it, field, "zone %s is listed twice (first at line %d)", z, line)
			good = false
			continue
		}
		seen[z] = it.Line
		zones = append(zones, z)
	}
	if !good {
		return bad[[]string](en)
	}
	return set(en, zones)
}

// url reads an http(s) URL. Credentials in it are refused: the URL is
// stored with the rollout and shown in messages.
func (p *parser) url(en entry, what string, apiEndpoint bool) string {
	s, ok := p.str(en.val, en.field, "a URL")
	if !ok {
		return ""
	}
	msg := ""
	if apiEndpoint {
		msg = endpointProblem(s)
	} else if u, err := parseURL(s); err != nil {
		msg = err.Error()
	} else if u.User != nil {
		msg = "must not contain credentials (user:password@)"
	}
	if msg != "" {
		p.at(en.val, en.field, "%s", msg)
		return ""
	}
	return s
}

// endpointProblem says what is wrong with an API endpoint, or "".
func endpointProblem(s string) string {
	u, err := parseURL(s)
	switch {
	case err != nil:
		return err.Error()
	case u.User != nil:
		return "must not contain credentials (user:password@)"
	case u.RawQuery != "" || u.Fragment != "":
		return "must not have a query or fragment: give the base URL, like https://cvm.tencentcloudapi.com"
	}
	return ""
}

// parseURL parses an absolute http or https URL with a host.
func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%s is not an http:// or https:// URL with a host", quote(s))
	}
	return u, nil
}
