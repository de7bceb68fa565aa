package planner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"regexp"
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
	topKeys = append([]string{"version", "name", "region", "api", "endpoint", "groups",
		"rateLimit", "verify", "retry", "waves", "failureBudget", "onBreach", "startAt",
		"schedule", "window", "webhook", "zoneOrder"}, settingKeys...)
	groupKeys = append([]string{"name", "instances", "instancesFile"}, settingKeys...)
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
	targets  []target
}

// target is one instance as written, with where it was written.
type target struct {
	id, zone string
	group    int
	file     string // the file it is in (the plan or an instances file)
	line     int
	col      int
	field    string
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
	startAt      time.Time
	schedule     string
	window       *rollout.Window
	webhook      string
	zoneOrder    setting[[]string]
}

// parser holds the state of one Parse.
type parser struct {
	errs
	opts Options
	dir  string // the plan's directory, for relative paths
	api  string // the plan's API generation, once read
	raw  raw
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
			p.syntax(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		p.at(&extra, "", "a plan is one YAML document; remove the `---` and what follows")
		return nil
	case !errors.Is(err, io.EOF):
		p.syntax(err)
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		p.at(&doc, "", "empty plan: start with `version: 1`")
		return nil
	}
	return doc.Content[0]
}

// syntax records a yaml.v3 syntax error at its line.
func (p *parser) syntax(err error) {
	msg := err.Error()
	fe := &FieldError{File: p.file}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		fe.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	fe.Msg = "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")
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
	if len(p.list) > 0 {
		return nil
	}
	if p.opts.ResolveSecrets {
		p.secrets()
		if len(p.list) > 0 {
			return nil
		}
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
	r.api = p.api
	r.region = p.region(f)
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
	if en, ok := f.get("webhook"); ok {
		r.webhook = p.url(en, "webhook", false)
	}
	r.defaults = p.settings(f)
	r.zoneOrder = p.zoneOrder(f)
	if en, ok := f.get("groups"); !ok {
		p.at(root, "groups", "is required: list the target groups, each with instances or instancesFile")
	} else {
		r.groupsNode = en.val
		p.groups(en)
	}
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
	r.onBreach = OnBreachDefault
	if en, ok := f.get("onBreach"); ok {
		if s, ok := p.str(en.val, en.field, "pause or abort"); ok {
			if s == "pause" || s == "abort" {
				r.onBreach = s
			} else {
				p.at(en.val, en.field, "%q: want pause (the default: stop starting instances, wait for a human) or abort", s)
			}
		}
	}
	p.timing(f)
	return true
}

// region reads the required region.
func (p *parser) region(f fields) setting[string] {
	en, ok := f.get("region")
	if !ok {
		p.at(f.node, "region", "is required, like ap-guangzhou")
		return setting[string]{}
	}
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

// zoneOK checks a zone name against the plan's region.
func (p *parser) zoneOK(zone string) string {
	region := p.raw.region
	if !region.ok {
		return "" // the region's own error says enough
	}
	i := strings.LastIndexByte(zone, '-')
	if i <= 0 || !zoneSuffixRE.MatchString(zone[i:]) || !regionRE.MatchString(zone[:i]) {
		return fmt.Sprintf("%q is not an availability zone: want a name like %s-3", zone, region.v)
	}
	if zone[:i] != region.v {
		return fmt.Sprintf("zone %q is not in region %s", zone, region.v)
	}
	return ""
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
		if msg := p.zoneOK(z); msg != "" {
			p.at(it, field, "%s", msg)
			good = false
			continue
		}
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
	u, err := parseURL(s)
	switch {
	case err != nil:
		p.at(en.val, en.field, "%v", err)
		return ""
	case u.User != nil:
		p.at(en.val, en.field, "must not contain credentials (user:password@)")
		return ""
	case apiEndpoint && (u.RawQuery != "" || u.Fragment != ""):
		p.at(en.val, en.field, "must not have a query or fragment: give the base URL, like https://cvm.tencentcloudapi.com")
		return ""
	}
	return s
}

// settings reads the image and login fields of a mapping (the top level or
// a group).
func (p *parser) settings(f fields) settings {
	var s settings
	if en, ok := f.get("image"); ok {
		s.image = p.image(en)
	}
	if en, ok := f.get("os"); ok {
		if v, ok := p.str(en.val, en.field, "linux or windows"); ok {
			if v == "linux" || v == "windows" {
				s.os = set(en, v)
			} else {
				p.at(en.val, en.field, "%q: want linux or windows", v)
				s.os = bad[string](en)
			}
		} else {
			s.os = bad[string](en)
		}
	}
	if en, ok := f.get("password"); ok {
		s.password, s.passwordShown = p.password(en)
	}
	if en, ok := f.get("keyIds"); ok {
		s.keyIDs = p.keyIDs(en)
	}
	if en, ok := f.get("keepImageLogin"); ok {
		if v, ok := p.boolean(en.val, en.field); ok {
			s.keep = set(en, v)
		} else {
			s.keep = bad[bool](en)
		}
	}
	for key, dst := range map[string]*setting[bool]{"securityAgent": &s.security, "monitorAgent": &s.monitor} {
		if en, ok := f.get(key); ok {
			if v, ok := p.boolean(en.val, en.field); ok {
				*dst = set(en, v)
			} else {
				*dst = bad[bool](en)
			}
		}
	}
	if en, ok := f.get("rootSize"); ok {
		if v, ok := p.integer(en.val, en.field); ok && v > 0 {
			s.rootSize = set(en, v)
		} else {
			if ok {
				p.at(en.val, en.field, "must be a positive size in GB (leave it out to keep the current size)")
			}
			s.rootSize = bad[int](en)
		}
	}
	if en, ok := f.get("hostName"); ok {
		if v, ok := p.str(en.val, en.field, "a host name"); ok {
			s.hostName = set(en, v)
		} else {
			s.hostName = bad[string](en)
		}
	}
	// Fields API v2 ResetInstances does not have: it takes only a password.
	if p.api == "v2" {
		for _, st := range []struct {
			present bool
			node    *yaml.Node
			field   string
		}{
			{s.keyIDs.present, s.keyIDs.node, s.keyIDs.field},
			{s.keep.present, s.keep.node, s.keep.field},
			{s.hostName.present, s.hostName.node, s.hostName.field},
		} {
			if st.present {
				p.at(st.node, st.field, "is not supported by api v2 (ResetInstances takes a password only); use api: v3")
			}
		}
	}
	return s
}

// image reads `image: {type, id}`.
func (p *parser) image(en entry) setting[imageRef] {
	f, ok := p.mapping(en.val, en.field, "like {type: 2, id: img-xxxxxxxx}", "type", "id")
	if !ok {
		return bad[imageRef](en)
	}
	var img imageRef
	good := true
	if t, ok := f.get("type"); ok {
		if v, ok := p.integer(t.val, t.field); !ok {
			good = false
		} else if v < 1 || v > 4 {
			p.at(t.val, t.field, "image type %d: want 1 (private), 2 (public), 3 (marketplace) or 4 (shared)", v)
			good = false
		} else {
			img.typ = set(t, v)
		}
	}
	if i, ok := f.get("id"); ok {
		if v, ok := p.str(i.val, i.field, "an image id"); !ok {
			good = false
		} else if !imageRE.MatchString(v) {
			p.at(i.val, i.field, "%q is not an image id: want img- and 8 lower-case letters or digits", v)
			good = false
		} else {
			img.id = set(i, v)
		}
	}
	switch {
	case !f.has("id") && !f.has("type"):
		p.at(en.val, en.field, "is empty: give id (and type for api v2), or leave image out to reinstall each instance's current image")
		good = false
	case !f.has("id"):
		p.at(en.val, join(en.field, "id"), "is required with image.type")
		good = false
	case !f.has("type") && p.api == "v2":
		// v2 spec: imageType "should be specified with imageId".
		p.at(en.val, join(en.field, "type"), "is required with image.id for api v2: 1 (private), 2 (public), 3 (marketplace) or 4 (shared)")
		good = false
	}
	img.valid = good
	if !good {
		return bad[imageRef](en)
	}
	return set(en, img)
}

// password reads a password reference. An inline password is refused: the
// plan is a file people commit, paste and share.
func (p *parser) password(en entry) (setting[rollout.SecretRef], string) {
	if !p.usable(en.val, en.field) {
		return bad[rollout.SecretRef](en), ""
	}
	if en.val.Kind == yaml.ScalarNode && !isNull(en.val) {
		// Never echo the value: it is probably a real password.
		p.at(en.val, en.field, "must not be written in the plan: use {env: VARIABLE} or {file: path} (the value was not stored)")
		return bad[rollout.SecretRef](en), ""
	}
	f, ok := p.mapping(en.val, en.field, "{env: VARIABLE} or {file: path}", "env", "file")
	if !ok {
		return bad[rollout.SecretRef](en), ""
	}
	env, hasEnv := f.get("env")
	file, hasFile := f.get("file")
	switch {
	case hasEnv && hasFile:
		p.at(en.val, en.field, "give env or file, not both")
		return bad[rollout.SecretRef](en), ""
	case hasEnv:
		v, ok := p.str(env.val, env.field, "an environment variable name")
		if !ok {
			return bad[rollout.SecretRef](en), ""
		}
		if !envNameRE.MatchString(v) {
			p.at(env.val, env.field, "%q is not an environment variable name: use letters, digits and _", v)
			return bad[rollout.SecretRef](en), ""
		}
		return set(en, rollout.SecretRef{Env: v}), ""
	case hasFile:
		v, ok := p.str(file.val, file.field, "a file path")
		if !ok {
			return bad[rollout.SecretRef](en), ""
		}
		if strings.ContainsRune(v, 0) {
			p.at(file.val, file.field, "is not a usable path")
			return bad[rollout.SecretRef](en), ""
		}
		shown := p.rel(v)
		abs, err := filepath.Abs(shown)
		if err != nil {
			p.at(file.val, file.field, "cannot make %s absolute: %v", shown, err)
			return bad[rollout.SecretRef](en), ""
		}
		// Workers may run elsewhere in the file system: store the absolute path.
		return set(en, rollout.SecretRef{File: abs}), shown
	}
	p.at(en.val, en.field, "give {env: VARIABLE} or {file: path}")
	return bad[rollout.SecretRef](en), ""
}

// rel resolves a path written in the plan against the plan's directory.
func (p *parser) rel(path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(p.dir, path)
}

// keyIDs reads `keyIds: [skey-...]`.
func (p *parser) keyIDs(en entry) setting[[]string] {
	items, ok := p.seq(en.val, en.field, "of key ids like skey-xxxxxxxx")
	if !ok {
		return bad[[]string](en)
	}
	if len(items) == 0 {
		p.at(en.val, en.field, "is empty: list at least one key id, or leave keyIds out")
		return bad[[]string](en)
	}
	var ids []string
	seen := map[string]int{}
	good := true
	for i, it := range items {
		field := index(en.field, i)
		v, ok := p.str(it, field, "a key id")
		switch {
		case !ok:
			good = false
		case !keyRE.MatchString(v):
			p.at(it, field, "%q is not a key id: want skey- and 8 lower-case letters or digits", v)
			good = false
		case seen[v] > 0:
			p.at(it, field, "key %s is listed twice (first at line %d)", v, seen[v])
			good = false
		default:
			seen[v] = it.Line
			ids = append(ids, v)
		}
	}
	if !good {
		return bad[[]string](en)
	}
	return set(en, ids)
}

// groups reads the `groups` list.
func (p *parser) groups(en entry) {
	items, ok := p.seq(en.val, en.field, "of target groups")
	if !ok {
		return
	}
	if len(items) == 0 {
		p.at(en.val, en.field, "is empty: a plan needs at least one group of instances")
		return
	}
	names := map[string]int{}
	for i, it := range items {
		path := index(en.field, i)
		g := &group{node: it, path: path}
		p.raw.groups = append(p.raw.groups, g)
		f, ok := p.mapping(it, path, "a group: name, instances or instancesFile, and optional overrides", groupKeys...)
		if !ok {
			continue
		}
		if n, ok := f.get("name"); !ok {
			p.at(it, join(path, "name"), "is required")
		} else if s, ok := p.str(n.val, n.field, "a group name"); ok {
			switch {
			case !nameRE.MatchString(s):
				p.at(n.val, n.field, "%q is not a valid group name: use 1-63 lower-case letters, digits and '-'", s)
			case names[s] > 0:
				p.at(n.val, n.field, "group %q is defined twice (first at line %d)", s, names[s])
			default:
				names[s] = n.val.Line
				g.name = set(n, s)
			}
		}
		g.settings = p.settings(f)
		p.groupTargets(f, i, g)
	}
}

// waves reads the `waves` list. An entry is a size ("5", "20%") or a
// mapping {size, soak, approval, failureBudget}.
func (p *parser) waves(en entry) {
	items, ok := p.seq(en.val, en.field, "of waves like {size: 1, soak: 10m}")
	if !ok {
		return
	}
	if len(items) == 0 {
		p.at(en.val, en.field, "is empty: list at least one wave, e.g. [{size: 1, soak: 10m}, {size: 100%%}]")
		return
	}
	for i, it := range items {
		path := index(en.field, i)
		w := &wave{node: it, path: path, budget: setting[rollout.Budget]{v: rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit}, ok: true}}
		p.raw.waves = append(p.raw.waves, w)
		if it.Kind == yaml.ScalarNode && !isNull(it) {
			w.size = p.size(entry{val: it, field: path})
			continue
		}
		f, ok := p.mapping(it, path, "a wave: {size, soak, approval, failureBudget} or just a size", "size", "soak", "approval", "failureBudget")
		if !ok {
			continue
		}
		if s, ok := f.get("size"); !ok {
			p.at(it, join(path, "size"), "is required: a count like 5 or a percentage of the plan like 20%%")
		} else {
			w.size = p.size(s)
		}
		if s, ok := f.get("soak"); ok {
			w.soak, _ = p.duration(s.val, s.field, true)
		}
		if a, ok := f.get("approval"); ok {
			if v, ok := p.str(a.val, a.field, "manual or auto"); ok {
				switch v {
				case "manual":
					w.approval = true
				case "auto":
				default:
					p.at(a.val, a.field, "%q: want manual (hold the next wave until `fleetreset approve`) or auto", v)
				}
			}
		}
		if b, ok := f.get("failureBudget"); ok {
			w.budget = p.budget(b)
		}
	}
}

// size reads a wave size.
func (p *parser) size(en entry) setting[rollout.Size] {
	s, ok := p.str(en.val, en.field, "a count like 5 or a percentage like 20%")
	if !ok {
		return bad[rollout.Size](en)
	}
	sz, err := rollout.ParseSize(s)
	if err != nil {
		p.at(en.val, en.field, "%v", err)
		return bad[rollout.Size](en)
	}
	return set(en, sz)
}

// budget reads `failureBudget: {max, percent, minSample}`. A limit left out
// is off (NoLimit); at least one must be given.
func (p *parser) budget(en entry) setting[rollout.Budget] {
	f, ok := p.mapping(en.val, en.field, "like {max: 2, percent: 10%, minSample: 10}", "max", "percent", "minSample")
	if !ok {
		return bad[rollout.Budget](en)
	}
	b := rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit}
	good := true
	if m, ok := f.get("max"); ok {
		if v, ok := p.integer(m.val, m.field); !ok {
			good = false
		} else if v < 0 {
			p.at(m.val, m.field, "must be 0 or more (0: the first failure breaches); leave max out for no count limit")
			good = false
		} else {
			b.Max = v
		}
	}
	if pc, ok := f.get("percent"); ok {
		if v, ok := p.percent(pc); ok {
			b.Percent = v
		} else {
			good = false
		}
	}
	if ms, ok := f.get("minSample"); ok {
		if v, ok := p.integer(ms.val, ms.field); !ok {
			good = false
		} else if v < 0 {
			p.at(ms.val, ms.field, "must be 0 or more")
			good = false
		} else if !f.has("percent") {
			p.at(ms.val, ms.field, "applies to percent only, and percent is not set (max is judged from the first failure)")
			good = false
		} else {
			b.MinSample = v
		}
	}
	if !f.has("max") && !f.has("percent") {
		p.at(en.val, en.field, "is empty: give max, percent or both (leave failureBudget out for the default)")
		good = false
	}
	if !good {
		return bad[rollout.Budget](en)
	}
	return set(en, b)
}

// percent reads a budget percentage: "10%", "2.5%", or a bare number, from
// 0 to 100 with at most two decimals.
func (p *parser) percent(en entry) (float64, bool) {
	s, ok := p.str(en.val, en.field, "a percentage like 10%")
	if !ok {
		return 0, false
	}
	num := strings.TrimSuffix(s, "%")
	whole, frac, dot := strings.Cut(num, ".")
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || !digits(whole) || (dot && (len(frac) > 2 || !digits(frac))) || v > 100 {
		p.at(en.val, en.field, "%q: want a percentage from 0%% to 100%% with at most two decimals, like 10%% or 2.5%%", s)
		return 0, false
	}
	return v, true
}

// digits reports whether s is one or more ASCII digits.
func digits(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }

// rateLimit reads `rateLimit: {reset, describe, unsafeAboveApiLimit}`.
func (p *parser) rateLimit(f fields) {
	r := &p.raw
	r.resetRate = setting[float64]{v: ResetRateDefault, ok: true}
	r.describeRate = setting[float64]{v: DescribeRateDefault, ok: true}
	en, ok := f.get("rateLimit")
	if !ok {
		return
	}
	m, ok := p.mapping(en.val, en.field, "like {reset: 10, describe: 40}", "reset", "describe", "unsafeAboveApiLimit")
	if !ok {
		return
	}
	if u, ok := m.get("unsafeAboveApiLimit"); ok {
		r.unsafeRate, _ = p.boolean(u.val, u.field)
	}
	for _, x := range []struct {
		key    string
		dst    *setting[float64]
		limit  float64
		action string
	}{
		{"reset", &r.resetRate, ResetRateLimit, "ResetInstance"},
		{"describe", &r.describeRate, DescribeRateLimit, "DescribeInstances"},
	} {
		k, ok := m.get(x.key)
		if !ok {
			continue
		}
		v, ok := p.number(k.val, k.field)
		switch {
		case !ok:
			*x.dst = bad[float64](k)
		case v <= 0:
			p.at(k.val, k.field, "must be more than 0 calls per second")
			*x.dst = bad[float64](k)
		case v > x.limit && !r.unsafeRate:
			p.at(k.val, k.field, "%v calls/s is above the %s API limit of %v/s, so the cloud would throttle the rollout; set rateLimit.unsafeAboveApiLimit: true only if your quota was raised", v, x.action, x.limit)
			*x.dst = bad[float64](k)
		default:
			*x.dst = set(k, v)
		}
	}
}

// verifyAndRetry reads `verify: {interval, timeout}` and `retry: {attempts, deadline}`.
func (p *parser) verifyAndRetry(f fields) {
	r := &p.raw
	r.verifyEvery = setting[time.Duration]{v: VerifyIntervalDefault, ok: true}
	r.verifyFor = setting[time.Duration]{v: VerifyTimeoutDefault, ok: true}
	r.retryTimes = setting[int]{v: RetryAttemptsDefault, ok: true}
	r.retryFor = setting[time.Duration]{v: RetryDeadlineDefault, ok: true}
	if en, ok := f.get("verify"); ok {
		if m, ok := p.mapping(en.val, en.field, "like {interval: 10s, timeout: 20m}", "interval", "timeout"); ok {
			for key, dst := range map[string]*setting[time.Duration]{"interval": &r.verifyEvery, "timeout": &r.verifyFor} {
				if k, ok := m.get(key); ok {
					if d, ok := p.duration(k.val, k.field, false); ok {
						*dst = set(k, d)
					} else {
						*dst = bad[time.Duration](k)
					}
				}
			}
			if r.verifyEvery.ok && r.verifyFor.ok && r.verifyEvery.v > r.verifyFor.v {
				n, field := r.verifyEvery.node, r.verifyEvery.field
				if n == nil {
					n, field = en.val, join(en.field, "interval")
				}
				p.at(n, field, "%v is longer than verify.timeout %v: no instance could be checked before it times out", r.verifyEvery.v, r.verifyFor.v)
			}
		}
	}
	if en, ok := f.get("retry"); ok {
		if m, ok := p.mapping(en.val, en.field, "like {attempts: 20, deadline: 30m}", "attempts", "deadline"); ok {
			if k, ok := m.get("attempts"); ok {
				if v, ok := p.integer(k.val, k.field); ok && v >= 1 {
					r.retryTimes = set(k, v)
				} else if ok {
					p.at(k.val, k.field, "must be at least 1 (1: no retry)")
				}
			}
			if k, ok := m.get("deadline"); ok {
				if d, ok := p.duration(k.val, k.field, false); ok {
					r.retryFor = set(k, d)
				}
			}
		}
	}
}

// parseURL parses an absolute http or https URL with a host.
func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%s is not an http:// or https:// URL with a host", quote(s))
	}
	return u, nil
}
