package health

import (
	"errors"
	"fmt"
	"strings"
)

// Facts are what a check's template may refer to about one instance.
type Facts struct {
	InstanceID string `json:"instance_id"`
	PrivateIP  string `json:"private_ip,omitempty"`
	PublicIP   string `json:"public_ip,omitempty"`
	Zone       string `json:"zone,omitempty"`
	Name       string `json:"name,omitempty"`
}

// Template errors, matched with errors.Is.
var (
	// ErrUnknownPlaceholder: the template names a placeholder that does
	// not exist (a typo such as {privateIP}).
	ErrUnknownPlaceholder = errors.New("unknown placeholder")
	// ErrEmptyFact: the placeholder exists but the instance has no such
	// fact (no public IP, say).
	ErrEmptyFact = errors.New("instance has no value for it")
	// ErrUnclosed: a '{' without its '}'.
	ErrUnclosed = errors.New("unclosed placeholder")
)

// placeholders lists the names a template may use, in the order the docs
// give them.
var placeholders = []struct {
	name string
	fact func(Facts) string
}{
	{"instanceId", func(f Facts) string { return f.InstanceID }},
	{"privateIp", func(f Facts) string { return f.PrivateIP }},
	{"publicIp", func(f Facts) string { return f.PublicIP }},
	{"zone", func(f Facts) string { return f.Zone }},
	{"name", func(f Facts) string { return f.Name }},
}

// Expand replaces each {placeholder} in template with the instance's fact:
// {instanceId}, {privateIp}, {publicIp}, {zone}, {name}. Values are inserted
// as they are, without escaping. An unknown placeholder, an empty fact or an
// unclosed '{' is an error naming the placeholder; the error never quotes
// the template, which may hold credentials.
func Expand(template string, f Facts) (string, error) {
	return expand(template, &f)
}

// ValidateTemplate checks template's placeholders without an instance: the
// planner calls it so that a typo fails at plan time, not at the first
// probe. It reports the same errors as Expand except ErrEmptyFact.
func ValidateTemplate(template string) error {
	_, err := expand(template, nil)
	return err
}

// expand is Expand, or ValidateTemplate when f is nil.
func expand(template string, f *Facts) (string, error) {
	var b strings.Builder
	rest := template
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:open])
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return "", fmt.Errorf("health: template: %w at offset %d", ErrUnclosed, len(template)-len(rest)+open)
		}
		name := rest[open+1 : open+end]
		rest = rest[open+end+1:]
		value, err := lookup(name, f)
		if err != nil {
			return "", err
		}
		b.WriteString(value)
	}
}

// lookup returns the fact a placeholder stands for; with f nil it only
// checks the name.
func lookup(name string, f *Facts) (string, error) {
	for _, p := range placeholders {
		if p.name != name {
			continue
		}
		if f == nil {
			return "", nil
		}
		if v := p.fact(*f); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("health: template placeholder {%s}: %w", name, ErrEmptyFact)
	}
	return "", fmt.Errorf("health: template placeholder {%s}: %w (want one of {instanceId} {privateIp} {publicIp} {zone} {name})", name, ErrUnknownPlaceholder)
}
