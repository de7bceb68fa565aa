package planner

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// This file holds the low-level walk over yaml.Node: strict mappings
// (unknown and duplicate keys are errors with their line), typed scalars,
// and error recording. yaml.v3's own decoding into structs is not used
// because it stops at the first error and loses positions after it.

// errs collects FieldErrors for one parse.
type errs struct {
	file  string // the plan file, as named to Parse
	list  Errors
	warns Errors
}

// at records an error at node n of the plan file.
func (e *errs) at(n *yaml.Node, field, format string, args ...any) {
	fe := &FieldError{File: e.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		fe.Line, fe.Column = n.Line, n.Column
	}
	e.list = append(e.list, fe)
}

// warn records a warning at node n of the plan file.
func (e *errs) warn(n *yaml.Node, field, format string, args ...any) {
	fe := &FieldError{File: e.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		fe.Line, fe.Column = n.Line, n.Column
	}
	e.warns = append(e.warns, fe)
}

// join appends a key to a field path.
func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// printableKey is a mapping key as messages show it in a field path: as
// written, or quoted with escapes when it holds anything a terminal would
// not print as text (control characters, escape sequences, bidirectional
// overrides), so that a plan cannot write to the operator's terminal.
func printableKey(k string) string {
	if strings.IndexFunc(k, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return k
	}
	return quote(k)
}

// lastKey returns the last key of a field path: "waves[1].failureBudget"
// gives "failureBudget".
func lastKey(path string) string {
	return path[strings.LastIndexAny(path, ".]")+1:]
}

// index appends a list index to a field path.
func index(prefix string, i int) string { return fmt.Sprintf("%s[%d]", prefix, i) }

// entry is one key of a mapping with its key and value nodes.
type entry struct {
	key, val *yaml.Node
	field    string
}

// fields is a checked mapping: its known keys and the mapping node.
type fields struct {
	node *yaml.Node
	path string
	m    map[string]entry
}

// get returns the entry for key, if present.
func (f fields) get(key string) (entry, bool) {
	en, ok := f.m[key]
	return en, ok
}

// has reports whether key is present.
func (f fields) has(key string) bool { _, ok := f.m[key]; return ok }

// standardTags are the tags yaml.v3 resolves plain YAML to; anything else
// was written by hand ("!env FOO") and is not part of the plan format.
var standardTags = map[string]bool{
	"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!null": true,
	"!!timestamp": true, "!!seq": true, "!!map": true,
}

// usable reports whether n can be read as a value: it is not an alias and
// carries no custom tag. It records an error otherwise.
func (e *errs) usable(n *yaml.Node, field string) bool {
	if n.Kind == yaml.AliasNode {
		e.at(n, field, "aliases (*%s) are not supported in plans; write the value out", n.Value)
		return false
	}
	if n.Tag != "" && !standardTags[n.Tag] {
		e.at(n, field, "YAML tag %s is not supported in plans", n.Tag)
		return false
	}
	return true
}

// isNull reports whether n is an explicit or implied null ("key:" or "key: ~").
func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// mapping checks that n is a mapping whose keys are all in known, with no
// key repeated, and returns its entries. Unknown keys are reported with a
// suggestion when one is close. ok is false when n is not a mapping.
func (e *errs) mapping(n *yaml.Node, path, what string, known ...string) (fields, bool) {
	f := fields{node: n, path: path, m: map[string]entry{}}
	if !e.usable(n, path) {
		return f, false
	}
	if n.Kind != yaml.MappingNode {
		e.at(n, path, "must be a mapping (%s)", what)
		return f, false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || (k.Tag != "!!str" && k.Tag != "!!int" && k.Tag != "!!bool" && k.Tag != "!!float") {
			if k.Tag == "!!merge" {
				e.at(k, path, "merge keys (<<) are not supported in plans; write the fields out")
			} else {
				e.at(k, path, "keys must be plain names")
			}
			continue
		}
		field := join(path, printableKey(k.Value))
		if prev, dup := f.m[k.Value]; dup {
			e.at(k, field, "duplicate key (first at line %d)", prev.key.Line)
			continue
		}
		if !slices.Contains(known, k.Value) {
			msg := "unknown field"
			if s := suggest(k.Value, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += fmt.Sprintf(" (known: %s)", strings.Join(slices.Sorted(slices.Values(known)), ", "))
			}
			e.at(k, field, "%s", msg)
			continue
		}
		f.m[k.Value] = entry{key: k, val: v, field: field}
	}
	return f, true
}

// suggest returns the known key closest to an unknown one: the same
// letters in another case, or a few edits away (one edit per three
// letters, at most two, so that "x" suggests nothing rather than "os").
func suggest(key string, known []string) string {
	best, bestDist := "", min(2, len(key)/3)+1
	for _, k := range known {
		if strings.EqualFold(k, key) {
			return k
		}
		if d := editDistance(strings.ToLower(key), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, capped at 10
// to keep pathological inputs cheap.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 10
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// scalar returns the text of a scalar node, recording an error when n is
// null, a list or a mapping.
func (e *errs) scalar(n *yaml.Node, field, what string) (string, bool) {
	if !e.usable(n, field) {
		return "", false
	}
	switch {
	case isNull(n):
		e.at(n, field, "has no value (want %s)", what)
		return "", false
	case n.Kind != yaml.ScalarNode:
		e.at(n, field, "must be %s, not a %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

// str reads a string. Numbers and booleans are read as their text (a
// name may be all digits); the callers check the text's format.
func (e *errs) str(n *yaml.Node, field, what string) (string, bool) {
	return e.scalar(n, field, what)
}

// digitsRE is a decimal whole number, however large (YAML reads one too
// large for an int as a float); durationRE a duration in Go's syntax, so
// that one ParseDuration refuses is too long, not malformed.
var (
	digitsRE   = regexp.MustCompile(`^[-+]?[0-9]+$`)
	durationRE = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$`)
)

// integer reads a whole number written in decimal.
func (e *errs) integer(n *yaml.Node, field string) (int, bool) {
	s, ok := e.scalar(n, field, "a whole number")
	if !ok {
		return 0, false
	}
	if n.Tag != "!!int" && !digitsRE.MatchString(s) {
		e.at(n, field, "must be a whole number, not %q", s)
		return 0, false
	}
	v, err := strconv.Atoi(strings.TrimPrefix(s, "+"))
	switch {
	case errors.Is(err, strconv.ErrRange):
		e.at(n, field, "%s is too large", s)
		return 0, false
	case err != nil:
		e.at(n, field, "must be a whole number in decimal, not %q", s)
		return 0, false
	}
	return v, true
}

// number reads a finite decimal number.
func (e *errs) number(n *yaml.Node, field string) (float64, bool) {
	s, ok := e.scalar(n, field, "a number")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if (n.Tag != "!!int" && n.Tag != "!!float") || err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		e.at(n, field, "must be a number, not %q", s)
		return 0, false
	}
	return v, true
}

// boolean reads true or false.
func (e *errs) boolean(n *yaml.Node, field string) (bool, bool) {
	s, ok := e.scalar(n, field, "true or false")
	if !ok {
		return false, false
	}
	if n.Tag != "!!bool" {
		e.at(n, field, "must be true or false, not %q", s)
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		e.at(n, field, "must be true or false, not %q", s)
		return false, false
	}
	return b, true
}

// duration reads a Go duration with a unit ("90s", "5m", "1h30m"). Zero
// is accepted only when allowZero.
func (e *errs) duration(n *yaml.Node, field string, allowZero bool) (time.Duration, bool) {
	s, ok := e.scalar(n, field, "a duration like 5m")
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil && n.Tag == "!!int":
		e.at(n, field, "%q has no unit: write it like 30s, 5m or 1h", s)
		return 0, false
	case err != nil && durationRE.MatchString(s):
		e.at(n, field, "%s is too long: durations go up to about 290 years", s)
		return 0, false
	case err != nil:
		e.at(n, field, "%q is not a duration: use a number with a unit (ms, s, m, h), like 90s or 1h30m", s)
		return 0, false
	case d < 0:
		e.at(n, field, "must not be negative")
		return 0, false
	case d == 0 && !allowZero:
		e.at(n, field, "must be more than zero")
		return 0, false
	}
	return d, true
}

// seq returns the items of a list.
func (e *errs) seq(n *yaml.Node, field, what string) ([]*yaml.Node, bool) {
	if !e.usable(n, field) {
		return nil, false
	}
	if n.Kind != yaml.SequenceNode {
		e.at(n, field, "must be a list (%s)", what)
		return nil, false
	}
	return n.Content, true
}

// kindName names a node's kind for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	case yaml.AliasNode:
		return "alias"
	}
	return "value"
}
