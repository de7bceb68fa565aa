package planner

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// FieldError is one mistake in a plan, located in the file that holds it
// (the plan or an instances file it names). Match it with errors.As.
type FieldError struct {
	// File is the path the mistake is in, as given to Parse or Load, or
	// joined to the plan's directory for files the plan names.
	File string
	// Line and Column are 1-based; zero when unknown (e.g. the file is empty).
	Line, Column int
	// Field is the path of the field, like "groups[1].image.id" or
	// "waves[2].size"; empty for errors about the file as a whole.
	Field string
	// Msg says what is wrong. It never contains a secret.
	Msg string
}

// Error formats e as "file:line: field: msg", leaving out the parts that
// are unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every mistake found in a plan, sorted by file (the plan first)
// and line. Parse and Load return it as their error when a plan is bad;
// errors.As finds the first *FieldError in it.
type Errors []*FieldError

// MaxShownErrors is how many mistakes Errors.Error lists before it says
// how many more there are: a plan naming the wrong file must not flood a
// terminal with thousands of lines.
const MaxShownErrors = 50

// Error returns one error per line, the first MaxShownErrors of them.
func (es Errors) Error() string {
	lines := make([]string, 0, min(len(es), MaxShownErrors+1))
	for i, e := range es {
		if i == MaxShownErrors {
			lines = append(lines, fmt.Sprintf("... and %d more", len(es)-MaxShownErrors))
			break
		}
		lines = append(lines, e.Error())
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As and errors.Is look at each FieldError.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sortErrors orders es with the plan file's errors first, then other files
// by name, each by line and column, and drops exact duplicates (a
// top-level setting that is wrong for two groups is reported once per
// message, not once per group).
func sortErrors(es Errors, planFile string) Errors {
	slices.SortStableFunc(es, func(a, b *FieldError) int {
		if c := cmpBool(a.File != planFile, b.File != planFile); c != 0 {
			return c
		}
		return cmp.Or(
			strings.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
			strings.Compare(a.Field, b.Field),
			strings.Compare(a.Msg, b.Msg),
		)
	})
	return slices.CompactFunc(es, func(a, b *FieldError) bool { return *a == *b })
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
