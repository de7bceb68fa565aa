package planner

import (
	"strings"

	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/secretref"
)

// secrets resolves every password reference a group uses and checks the
// password against the rules of the effective API generation and the group's
// OS. Each reference is read once; each (reference, OS) pair is checked
// once. Messages name the reference and the rule, never the value.
func (p *parser) secrets() {
	type result struct {
		pw  string
		err error
	}
	resolved := map[rollout.SecretRef]result{}
	checked := map[[2]string]bool{}
	for _, g := range p.raw.groups {
		e := p.effective(g)
		if !e.password.ok {
			continue
		}
		ref, shown := e.password.v, e.password.v.String()
		readRef := ref
		if ref.File != "" {
			// Read the path as written (joined to the plan's directory),
			// so messages show it the way the user wrote it.
			readRef.File = e.passwordShown
			shown = "file " + e.passwordShown
		}
		res, ok := resolved[ref]
		if !ok {
			pw, err := secretref.Resolve(readRef, p.opts.lookupEnv(), p.opts.readFile())
			res = result{pw, err}
			resolved[ref] = res
		}
		if res.err != nil {
			p.at(e.password.node, e.password.field, "%s", strings.TrimPrefix(res.err.Error(), "secretref: "))
			continue
		}
		osName := e.os.or(OSDefault)
		if checked[[2]string{shown, osName}] {
			continue
		}
		checked[[2]string{shown, osName}] = true
		if err := secretref.CheckPassword(p.api, osName, res.pw); err != nil {
			p.at(e.password.node, e.password.field, "%s: %v (%s runs %s)%s", shown, err, g.label(), osName, p.apiHint(""))
		}
	}
}
