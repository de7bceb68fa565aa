package planner

import (
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/fleetreset/fleetreset/rollout"
)

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
				p.at(st.node, st.field, "is not supported by api v2 (ResetInstances takes a password only)%s", p.apiHint("; use api: v3"))
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
		p.at(en.val, join(en.field, "type"), "is required with image.id for api v2: 1 (private), 2 (public), 3 (marketplace) or 4 (shared)%s", p.apiHint(""))
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
		p.groupLocation(f, g)
		g.settings = p.settings(f)
		g.serving = p.serving(f, true)
		p.groupSelect(f, g)
		p.groupUserData(f, g)
		p.groupTargets(f, i, g)
		p.zoneRegion = setting[string]{}
	}
}
