package planner

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/rollout"
)

const selectHead = `version: 1
name: sel
region: ap-guangzhou
image: {type: 1, id: img-new00001}
keepImageLogin: true
waves: [1, 100%]
`

// selectOptions reads files from a map and resolves with matches.
func selectOptions(files map[string]string, matches map[int][]Match) Options {
	return Options{
		ReadFileFunc: func(p string) ([]byte, error) {
			if s, ok := files[p]; ok {
				return []byte(s), nil
			}
			return nil, fs.ErrNotExist
		},
		Selected: matches,
	}
}

// TestSelectParseErrors: bad selects, excludes, protect tags and user
// data are reported at their line and field.
func TestSelectParseErrors(t *testing.T) {
	tests := []struct {
		name, plan string
		want       string // in the errors
	}{
		{"empty_select", "groups:\n  - name: g\n    select: {}\n", "p.yaml:9: groups[0].select: is empty: it would select every instance"},
		{"unknown_filter", "groups:\n  - name: g\n    select: {zones: [ap-guangzhou-3]}\n", `groups[0].select.zones: unknown filter (did you mean "zone"?)`},
		{"bare_tag", "groups:\n  - name: g\n    select: {\"tag:\": x}\n", "names no tag key"},
		{"zone_of_other_region", "groups:\n  - name: g\n    select: {zone: [ap-shanghai-2]}\n", "groups[0].select.zone[0]: zone \"ap-shanghai-2\" is not in region ap-guangzhou"},
		{"bad_image", "groups:\n  - name: g\n    select: {image-id: img-1}\n", "is not an image id"},
		{"bad_vpc", "groups:\n  - name: g\n    select: {vpc-id: vpc1}\n", "is not a VPC id"},
		{"bad_subnet", "groups:\n  - name: g\n    select: {subnet-id: [subnet-x]}\n", "is not a subnet id"},
		{"bad_charge", "groups:\n  - name: g\n    select: {instance-charge-type: MONTHLY}\n", "is not a charge type"},
		{"bad_project", "groups:\n  - name: g\n    select: {project-id: -3}\n", "is not a project id"},
		{"empty_values", "groups:\n  - name: g\n    select: {tag:role: []}\n", "groups[0].select.tag:role: is empty"},
		{"list_value", "groups:\n  - name: g\n    select: {tag:role: [[web]]}\n", "must be a value or a list of values"},
		{"eleven_filters", "groups:\n  - name: g\n    select: {tag:a: x, tag:b: x, tag:c: x, tag:d: x, tag:e: x, tag:f: x, tag:g: x, tag:h: x, tag:i: x, tag:j: x, tag:k: x}\n", "has 11 filters; DescribeInstances takes at most 10"},
		{"too_many_requests", "groups:\n  - name: g\n    select:\n      tag:a: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26]\n      tag:b: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26]\n      tag:c: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26]\n", "needs 216 DescribeInstances listings"},
		{"select_v2", "api: v2\ngroups:\n  - name: g\n    select: {tag:role: web}\n", "groups[0].select: needs api v3"},
		{"exclude_without_select", "groups:\n  - name: g\n    instances: [ins-aaaaaaa1]\n    exclude: {instances: [ins-aaaaaaa2]}\n", "groups[0].exclude: needs select"},
		{"exclude_bad_id", "groups:\n  - name: g\n    select: {tag:role: web}\n    exclude: {instances: [i-1]}\n", "groups[0].exclude.instances[0]: \"i-1\" is not an instance id"},
		{"exclude_empty", "groups:\n  - name: g\n    select: {tag:role: web}\n    exclude: {}\n", "groups[0].exclude: is empty"},
		{"protect_tag", "protectTag: keep\ngroups:\n  - name: g\n    select: {tag:role: web}\n", "protectTag: \"keep\" is not KEY=VALUE"},
		{"no_instances", "groups:\n  - name: g\n    name2: x\n", "has no instances: give instances, instancesFile, select, or a mix"},
		{"userdata_inline", "groups:\n  - name: g\n    instances: [ins-aaaaaaa1]\n    userData: \"#!/bin/sh\"\n", "groups[0].userData: must be {file: path}"},
		{"userdata_missing", "groups:\n  - name: g\n    instances: [ins-aaaaaaa1]\n    userData: {file: gone.yaml}\n", "groups[0].userData.file: cannot read user data file"},
		{"userdata_too_big", "groups:\n  - name: g\n    instances: [ins-aaaaaaa1]\n    userData: {file: big.yaml}\n", "16388 base64-encoded: ResetInstance takes at most 16384"},
		{"userdata_v2", "api: v2\ngroups:\n  - name: g\n    instances: [ins-aaaaaaa1]\n    password: {env: PW}\n    userData: {file: ci.yaml}\n", "groups[0].userData: needs api v3"},
		{"automation_v2", "api: v2\ngroups:\n  - name: g\n    instances: [ins-aaaaaaa1]\n    password: {env: PW}\n    automationAgent: true\n", "groups[0].automationAgent: needs api v3"},
	}
	files := map[string]string{"ci.yaml": "#cloud-config\n", "big.yaml": strings.Repeat("x", 12<<10+1)}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(selectHead+tt.plan), selectOptions(files, map[int][]Match{0: nil}))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want %q", err, tt.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Line == 0 {
				t.Errorf("no located FieldError in %v", err)
			}
			if strings.Contains(err.Error(), "#!/bin/sh") {
				t.Errorf("error echoes the inline user data: %v", err)
			}
		})
	}
}

func m(id, zone string, tags ...string) Match {
	t := map[string]string{}
	for i := 0; i+1 < len(tags); i += 2 {
		t[tags[i]] = tags[i+1]
	}
	return Match{InstanceID: id, Zone: zone, Tags: t}
}

// TestSelectResolve: matches become targets in ID order after protected,
// excluded and already-named instances are removed, and waves are cut over
// the union.
func TestSelectResolve(t *testing.T) {
	plan := selectHead + `protectTag: hold=yes
zoneOrder: [ap-guangzhou-4, ap-guangzhou-3]
groups:
  - name: canary
    instances: [{id: ins-aaaaaaa5, zone: ap-guangzhou-3}]
  - name: web
    instances: [{id: ins-aaaaaaa9, zone: ap-guangzhou-4}]
    select: {tag:role: web, zone: [ap-guangzhou-3, ap-guangzhou-4]}
    exclude: {instances: [ins-aaaaaaa2], tags: {tier: [gold]}}
  - name: rest
    select: {tag-key: role}
`
	matches := map[int][]Match{
		1: {
			m("ins-aaaaaaa3", "ap-guangzhou-3", "role", "web"),
			m("ins-aaaaaaa1", "ap-guangzhou-4", "role", "web"),
			m("ins-aaaaaaa2", "ap-guangzhou-3", "role", "web"),                 // excluded by ID
			m("ins-aaaaaaa4", "ap-guangzhou-3", "role", "web", "tier", "gold"), // excluded by tag
			m("ins-aaaaaaa5", "ap-guangzhou-3", "role", "web"),                 // listed by canary
			m("ins-aaaaaaa6", "ap-guangzhou-4", "role", "web", "hold", "yes"),  // protected
			m("ins-aaaaaaa1", "ap-guangzhou-4", "role", "web"),                 // a page repeated
		},
		2: {
			m("ins-aaaaaaa1", "ap-guangzhou-4", "role", "web"), // web has it
			m("ins-aaaaaaa7", "ap-guangzhou-4", "role", "db"),
		},
	}
	p, err := Parse("p.yaml", []byte(plan), selectOptions(nil, matches))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range p.Targets {
		got = append(got, tg.InstanceID+"/"+p.Spec.Groups[tg.Group].Name)
	}
	// zoneOrder puts ap-guangzhou-4 first, stable within a zone.
	want := []string{"ins-aaaaaaa9/web", "ins-aaaaaaa1/web", "ins-aaaaaaa7/rest", "ins-aaaaaaa5/canary", "ins-aaaaaaa3/web"}
	if !slices.Equal(got, want) {
		t.Errorf("targets %v; want %v", got, want)
	}
	if p.Unresolved() || len(p.Selections) != 2 {
		t.Fatalf("selections %+v", p.Selections)
	}
	web := p.Selections[0]
	if web.Matched != 6 || web.Excluded != 2 || web.Repeated != 1 || !slices.Equal(web.Protected, []string{"ins-aaaaaaa6"}) ||
		web.Zones["ap-guangzhou-3"] != 1 || web.Zones["ap-guangzhou-4"] != 1 || web.Selected() != 2 {
		t.Errorf("web selection %+v", web)
	}
	if rest := p.Selections[1]; rest.Repeated != 1 || rest.Selected() != 1 {
		t.Errorf("rest selection %+v", rest)
	}
	if len(p.Spec.Waves) != 2 || p.Spec.Waves[0].Size != 1 || p.Spec.Waves[1].Size != 4 {
		t.Errorf("waves %+v", p.Spec.Waves)
	}
	lines := strings.Join(p.SelectionLines(), "\n")
	for _, s := range []string{"group web: select tag:role=web zone=ap-guangzhou-3,ap-guangzhou-4", "6 matched, 2 selected, 1 protected (hold=yes), 2 excluded, 1 already in an earlier group", "protected ins-aaaaaaa6"} {
		if !strings.Contains(lines, s) {
			t.Errorf("selection lines lack %q:\n%s", s, lines)
		}
	}
	if !strings.Contains(p.Warnings.Error(), "already in an earlier group") {
		t.Errorf("warnings %v", p.Warnings)
	}

	// The same matches in another order give the same plan.
	for k := range matches {
		slices.Reverse(matches[k])
	}
	p2, err := Parse("p.yaml", []byte(plan), selectOptions(nil, matches))
	if err != nil || p2.Spec.PlanHash != p.Spec.PlanHash {
		t.Errorf("reordered matches: hash %s vs %s, %v", p2.Spec.PlanHash, p.Spec.PlanHash, err)
	}
}

// TestSelectUnresolvedAndEmpty: without matches a select stays unresolved
// (and is no mistake); resolved to nothing at all, the plan is refused.
func TestSelectUnresolvedAndEmpty(t *testing.T) {
	plan := selectHead + "groups:\n  - name: g\n    select: {tag:role: web}\n"
	p, err := Parse("p.yaml", []byte(plan), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Unresolved() || len(p.Targets) != 0 || p.ProtectTag != ProtectTagDefault {
		t.Errorf("unresolved plan: %+v", p)
	}
	if !strings.Contains(strings.Join(p.SelectionLines(), "\n"), "not resolved") {
		t.Errorf("lines %v", p.SelectionLines())
	}
	_, err = Parse("p.yaml", []byte(plan), selectOptions(nil, map[int][]Match{0: {m("ins-aaaaaaa1", "ap-guangzhou-3", "fleetreset:protect", "true")}}))
	if err == nil || !strings.Contains(err.Error(), "the plan has no instance") {
		t.Errorf("all protected: err = %v", err)
	}
}

// TestSelectRequests: filters of more than 5 values are split, combined
// across filters.
func TestSelectRequests(t *testing.T) {
	s := Selection{Filters: []Filter{
		{Name: "zone", Values: []string{"a", "b", "c", "d", "e", "f", "g"}},
		{Name: "tag:role", Values: []string{"web"}},
		{Name: "tag:env", Values: []string{"1", "2", "3", "4", "5", "6"}},
	}}
	reqs := s.Requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests; want 4", len(reqs))
	}
	seen := map[string]bool{}
	for _, r := range reqs {
		if len(r) != 3 {
			t.Errorf("request %v lost a filter", r)
		}
		for _, f := range r {
			if len(f.Values) > MaxFilterValues {
				t.Errorf("%s has %d values", f.Name, len(f.Values))
			}
		}
		seen[strings.Join(r[0].Values, "")+"/"+strings.Join(r[2].Values, "")] = true
	}
	for _, k := range []string{"abcde/12345", "fg/12345", "abcde/6", "fg/6"} {
		if !seen[k] {
			t.Errorf("combination %s missing from %v", k, reqs)
		}
	}
}

// TestUserDataInSpec: the spec keeps the file and its hash, never the
// content, and the hash changes the plan hash.
func TestUserDataInSpec(t *testing.T) {
	plan := selectHead + "groups:\n  - name: g\n    instances: [ins-aaaaaaa1]\n    userData: {file: ci.yaml}\n    automationAgent: true\n"
	read := func(content string) *Plan {
		t.Helper()
		p, err := Parse("/plans/p.yaml", []byte(plan), selectOptions(map[string]string{"/plans/ci.yaml": content}, nil))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := read("#cloud-config\nsecret: s3cr3t\n"), read("#cloud-config\n")
	g := a.Spec.Groups[0]
	if g.UserData == nil || g.UserData.File != "/plans/ci.yaml" || g.UserData.SHA256 != rollout.UserDataHash([]byte("#cloud-config\nsecret: s3cr3t\n")) || !g.AutomationAgent {
		t.Errorf("group %+v", g)
	}
	if a.Spec.PlanHash == b.Spec.PlanHash {
		t.Error("the user data's content does not change the plan hash")
	}
}

// TestScheduledSelectKeepsItsSource: a plan with a schedule and a select
// keeps what it was read from in Plan.Source: the plan and its instances
// file by absolute path, without their comments (one holds an old
// password), never the password or user data file. Read again from there
// on a worker running elsewhere in the file system, it is the same plan:
// same hash, same absolute password and user data paths. Plans without a
// schedule, or without a select, keep nothing.
func TestScheduledSelectKeepsItsSource(t *testing.T) {
	dir := t.TempDir()
	head := strings.Replace(selectHead, "keepImageLogin: true\n", "", 1)
	body := `password: {file: pw.txt}  # was: hunter2
groups:
  # pinned: never hunter2
  - name: pinned
    instancesFile: pinned.txt
  - name: web
    userData: {file: "ci.yaml"}
    select: {tag:role: web}
`
	files := map[string]string{
		"pinned.txt": "ins-aaaaaaa1  # the token is hunter2\n",
		"pw.txt":     "Secret-Passw0rd!",
		"ci.yaml":    "#cloud-config\n",
		"p.yaml":     head + "schedule: \"0 3 * * *\"  # hunter2\n" + body,
		"once.yaml":  head + body,
		"plain.yaml": head + "schedule: \"0 3 * * *\"\n" + strings.Split(body, "  - name: web")[0],
	}
	if err := os.Mkdir(filepath.Join(dir, "plans"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, "plans", name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	matches := map[int][]Match{1: {m("ins-aaaaaaa2", "ap-guangzhou-3", "role", "web")}}
	t.Chdir(dir)
	for _, name := range []string{"once.yaml", "plain.yaml"} {
		p, err := Load("plans/"+name, Options{Selected: matches})
		if err != nil {
			t.Fatal(err)
		}
		if p.Source != nil {
			t.Errorf("%s keeps a source; want none without both a schedule and a select", name)
		}
	}
	p, err := Load("plans/p.yaml", Options{Selected: matches, ResolveSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	src := p.Source
	want := []string{filepath.Join(dir, "plans", "p.yaml"), filepath.Join(dir, "plans", "pinned.txt")}
	if src == nil || src.Path != want[0] || !slices.Equal(slices.Sorted(maps.Keys(src.Files)), want) {
		t.Fatalf("Source = %+v; want the plan and its instances file by absolute path", src)
	}
	for path, data := range src.Files {
		if strings.Contains(string(data), "hunter2") {
			t.Errorf("the source keeps a comment of %s:\n%s", path, data)
		}
	}
	t.Chdir(t.TempDir())
	again, err := Parse(src.Path, src.Files[src.Path], Options{ReadFileFunc: src.ReadFile(nil), Selected: matches, ResolveSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	if again.Spec.PlanHash != p.Spec.PlanHash {
		t.Errorf("the source read again elsewhere hashes %s; the plan %s", again.Spec.PlanHash, p.Spec.PlanHash)
	}
	if pw, ud := again.Spec.Groups[1].Password.File, again.Spec.Groups[1].UserData.File; pw != filepath.Join(dir, "plans", "pw.txt") || ud != filepath.Join(dir, "plans", "ci.yaml") {
		t.Errorf("read again elsewhere: password file %s, user data %s; want the paths apply resolved", pw, ud)
	}
}
