package planner

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// groupTargets reads a group's `instances` and `instancesFile` into g.
func (p *parser) groupTargets(f fields, gi int, g *group) {
	inline, hasInline := f.get("instances")
	file, hasFile := f.get("instancesFile")
	if !hasInline && !hasFile && !f.has("select") {
		p.at(g.node, g.path, "has no instances: give instances, instancesFile, select, or a mix")
		return
	}
	readable := true
	if hasInline {
		p.inlineTargets(inline, gi, g)
	}
	if hasFile {
		readable = p.fileTargets(file, gi, g)
	}
	if len(g.targets) == 0 && readable && !f.has("select") {
		// Reported only when nothing else explains it (a bad entry, an
		// unreadable file).
		clean := true
		for _, e := range p.list {
			if strings.HasPrefix(e.Field, g.path+".") {
				clean = false
				break
			}
		}
		if clean {
			p.at(g.node, g.path, "has no instances: its instances list and instancesFile are empty")
		}
	}
}

// inlineTargets reads `instances: [ins-..., {id: ins-..., zone: ...}]`.
func (p *parser) inlineTargets(en entry, gi int, g *group) {
	items, ok := p.seq(en.val, en.field, "of instance ids, or of {id, zone}")
	if !ok {
		return
	}
	for i, it := range items {
		field := index(en.field, i)
		t := target{group: gi, file: p.file, line: it.Line, col: it.Column, field: field}
		if it.Kind == yaml.MappingNode {
			m, ok := p.mapping(it, field, "{id: ins-xxxxxxxx, zone: ap-guangzhou-3}", "id", "zone")
			if !ok {
				continue
			}
			idEn, ok := m.get("id")
			if !ok {
				p.at(it, join(field, "id"), "is required")
				continue
			}
			id, ok := p.str(idEn.val, idEn.field, "an instance id")
			if !ok {
				continue
			}
			if msg := p.instanceIDProblem(id); msg != "" {
				p.at(idEn.val, idEn.field, "%s", msg)
				continue
			}
			t.id = id
			if z, ok := m.get("zone"); ok {
				zone, ok := p.str(z.val, z.field, "an availability zone")
				if !ok {
					continue
				}
				if msg := p.zoneOK(zone); msg != "" {
					p.at(z.val, z.field, "%s", msg)
					continue
				}
				t.zone = zone
			}
			g.targets = append(g.targets, t)
			continue
		}
		id, ok := p.str(it, field, "an instance id like ins-xxxxxxxx")
		if !ok {
			continue
		}
		if msg := p.instanceIDProblem(id); msg != "" {
			p.at(it, field, "%s", msg)
			continue
		}
		t.id = id
		g.targets = append(g.targets, t)
	}
}

// instanceIDProblem says what is wrong with an instance ID, or "".
func (p *parser) instanceIDProblem(id string) string {
	return p.idProblem(id, quote(id))
}

// fileIDProblem is instanceIDProblem for a word of an instances file,
// which never echoes it: a plan may name any file (a password file by
// mistake, /etc/shadow on purpose), and errors reach terminals and logs.
func (p *parser) fileIDProblem(id string) string {
	return p.idProblem(id, fmt.Sprintf("the first word (%d characters, not shown)", len(id)))
}

func (p *parser) idProblem(id, shown string) string {
	switch {
	case instanceRE.MatchString(id):
		return ""
	case legacyInstanceRE.MatchString(id):
		if p.api == "v2" {
			return ""
		}
		return shown + " is a legacy v2 instance id: api v3 needs the ins- id (unInstanceId)" + p.apiHint(", or set api: v2")
	case p.api == "v2":
		return shown + " is not an instance id: want ins- and 8 lower-case letters or digits (or a legacy qcvm id of 32 hex digits)" + p.apiHint("")
	}
	return shown + " is not an instance id: want ins- and 8 lower-case letters or digits"
}

// quote quotes s for a message, shortening it so one long line in an
// instances file does not flood the output.
func quote(s string) string {
	const max = 48
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

// fileTargets reads an instances file: one instance ID per line, an
// optional zone after whitespace, '#' starting a comment. Errors point at
// the file's own lines. It returns false when the file cannot be read.
func (p *parser) fileTargets(en entry, gi int, g *group) bool {
	name, ok := p.str(en.val, en.field, "a file path")
	if !ok {
		return false
	}
	if name == "" || strings.ContainsRune(name, 0) {
		p.at(en.val, en.field, "is not a usable path")
		return false
	}
	path := p.rel(name)
	data, err := p.opts.readFile()(path)
	if err != nil {
		p.at(en.val, en.field, "cannot read instances file: %v", err)
		return false
	}
	if p.files == nil {
		p.files = map[string][]byte{}
	}
	p.files[path] = data
	if i := bytes.IndexByte(data, 0); i >= 0 {
		p.at(en.val, en.field, "%s is not a text file of instance ids (a NUL byte at offset %d)", path, i)
		return false
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM from Windows editors
	for n, line := range strings.Split(string(data), "\n") {
		lineNo := n + 1
		if i := commentStart(line); i >= 0 {
			line = line[:i]
		}
		words := strings.Fields(line)
		if len(words) == 0 {
			continue
		}
		fail := func(msg string) {
			p.list = append(p.list, &FieldError{File: path, Line: lineNo, Field: en.field, Msg: msg})
		}
		if len(words) > 2 {
			fail("want an instance id and an optional zone, then nothing but a # comment")
			continue
		}
		if msg := p.fileIDProblem(words[0]); msg != "" {
			fail(msg)
			continue
		}
		t := target{id: words[0], group: gi, file: path, line: lineNo, col: 1, field: en.field}
		if len(words) == 2 {
			if msg := p.zoneOK(words[1]); msg != "" {
				fail("the second word is not an availability zone of region " + p.raw.region.v)
				continue
			}
			t.zone = words[1]
		}
		g.targets = append(g.targets, t)
	}
	return true
}

// commentStart returns where a '#' comment starts in line (at the start or
// after whitespace, as in YAML), or -1.
func commentStart(line string) int {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return i
		}
	}
	return -1
}
