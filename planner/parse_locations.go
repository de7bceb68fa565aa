package planner

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/fleetreset/fleetreset/rollout"
	"gopkg.in/yaml.v3"
)

// Formats of credential sources: a CAM role name (1-128 of the characters
// CAM allows) and a profile section name.
var (
	roleNameRE    = regexp.MustCompile(`^[A-Za-z0-9_+=,.@-]{1,128}$`)
	profileNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// accounts reads the optional top-level accounts (name → credential
// source) and account (the groups' default). A source names where a worker
// finds the key, never the key: a key in the plan would be stored in Redis
// with the rollout.
func (p *parser) accounts(f fields) {
	r := &p.raw
	if en, ok := f.get("accounts"); ok && p.usable(en.val, en.field) {
		switch n := en.val; {
		case n.Kind != yaml.MappingNode:
			p.at(n, en.field, "must be a mapping of account names to credential sources, like {prod: {env: PROD}}")
		case len(n.Content) == 0:
			p.at(n, en.field, "is empty: name at least one account, or leave accounts out")
		default:
			r.accounts = map[string]rollout.AccountSource{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				a := entry{key: k, val: v, field: join(en.field, k.Value)}
				if _, dup := r.accounts[k.Value]; dup {
					p.at(k, a.field, "account %q is defined twice", k.Value)
					continue
				}
				if !nameRE.MatchString(k.Value) {
					p.at(k, a.field, "%q is not a valid account name: use 1-63 lower-case letters, digits and '-'", k.Value)
					continue
				}
				if src, ok := p.accountSource(a); ok {
					r.accounts[k.Value] = src
				}
			}
		}
	}
	if en, ok := f.get("account"); ok {
		r.account = p.accountRef(en)
	}
}

// accountSource reads one account's credential source: exactly one of
// env, profile or role.
func (p *parser) accountSource(en entry) (rollout.AccountSource, bool) {
	if n := en.val; n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := strings.ToLower(n.Content[i].Value); strings.Contains(k, "secret") || strings.Contains(k, "key") || strings.Contains(k, "token") {
				p.at(n.Content[i], join(en.field, n.Content[i].Value), "a plan names where credentials are, never the credentials (the plan is stored with the rollout): use {env: PREFIX}, {profile: NAME} or {role: NAME}")
				return rollout.AccountSource{}, false
			}
		}
	}
	f, ok := p.mapping(en.val, en.field, "a credential source: {env: PREFIX}, {profile: NAME} or {role: NAME}", "env", "profile", "role")
	if !ok {
		return rollout.AccountSource{}, false
	}
	var src rollout.AccountSource
	n := 0
	for _, k := range []string{"env", "profile", "role"} {
		e, ok := f.get(k)
		if !ok {
			continue
		}
		n++
		s, ok := p.str(e.val, e.field, "a name")
		if !ok {
			return src, false
		}
		switch k {
		case "env":
			if !envNameRE.MatchString(s) || strings.HasSuffix(s, "_") {
				p.at(e.val, e.field, "%q is not an environment variable prefix: want letters, digits and '_', like PROD (read as PROD_SECRET_ID, PROD_SECRET_KEY, PROD_TOKEN)", s)
				return src, false
			}
			src.Env = s
		case "profile":
			if !profileNameRE.MatchString(s) {
				p.at(e.val, e.field, "%q is not a profile name: want a section name of the credentials file, like prod", s)
				return src, false
			}
			src.Profile = s
		case "role":
			if !roleNameRE.MatchString(s) {
				p.at(e.val, e.field, "%q is not a CAM role name", s)
				return src, false
			}
			src.Role = s
		}
	}
	if n != 1 {
		p.at(en.val, en.field, "give exactly one credential source: env, profile or role (found %d)", n)
		return src, false
	}
	return src, true
}

// accountRef reads an account name, which accounts must define.
func (p *parser) accountRef(en entry) setting[string] {
	s, ok := p.str(en.val, en.field, "an account name from accounts")
	if !ok {
		return bad[string](en)
	}
	if _, ok := p.raw.accounts[s]; !ok {
		if len(p.raw.accounts) == 0 {
			p.at(en.val, en.field, "unknown account %q: define it under the top-level accounts, like accounts: {%s: {env: PREFIX}}", s, s)
		} else {
			names := make([]string, 0, len(p.raw.accounts))
			for k := range p.raw.accounts {
				names = append(names, k)
			}
			slices.Sort(names)
			hint := ""
			if m := suggest(s, names); m != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", m)
			}
			p.at(en.val, en.field, "unknown account %q: accounts defines %s%s", s, strings.Join(names, ", "), hint)
		}
		return bad[string](en)
	}
	return set(en, s)
}

// groupLocation reads a group's optional region and account; zones the
// group names are then checked against its region.
func (p *parser) groupLocation(f fields, g *group) {
	if en, ok := f.get("region"); ok {
		g.region = p.regionAt(en)
		p.zoneRegion = g.region
	}
	if en, ok := f.get("account"); ok {
		g.account = p.accountRef(en)
	}
}

// regionOrder reads the optional regionOrder: the regions of the plan's
// groups, each listed once, in the order their phases run.
func (p *parser) regionOrder(f fields) setting[[]string] {
	en, ok := f.get("regionOrder")
	if !ok {
		return setting[[]string]{}
	}
	items, ok := p.seq(en.val, en.field, "of regions")
	if !ok {
		return bad[[]string](en)
	}
	used := map[string]bool{}
	if p.raw.region.ok {
		for _, g := range p.raw.groups {
			switch {
			case g.region.ok:
				used[g.region.v] = true
			case !g.region.present:
				used[p.raw.region.v] = true
			}
		}
	}
	var regions []string
	seen := map[string]int{}
	good := true
	for i, it := range items {
		r := p.regionAt(entry{val: it, field: index(en.field, i)})
		switch {
		case !r.ok:
			good = false
		case seen[r.v] > 0:
			p.at(it, r.field, "region %s is listed twice (first at line %d)", r.v, seen[r.v])
			good = false
		case !used[r.v]:
			p.at(it, r.field, "no group is in region %s", r.v)
			good = false
		default:
			seen[r.v] = it.Line
			regions = append(regions, r.v)
		}
	}
	for _, r := range slices.Sorted(maps.Keys(used)) {
		if seen[r] == 0 && good {
			p.at(en.val, en.field, "region %s has groups but is not listed: list every region of the plan", r)
			good = false
		}
	}
	if !good {
		return bad[[]string](en)
	}
	return set(en, regions)
}
