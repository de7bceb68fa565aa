package secretref

import (
	"fmt"
	"strings"
)

// specials is the special-character set of the CVM password rules (the
// docs list it the same way for both generations; space is not in it).
const specials = "()`~!@#$%^&*-+=|{}[]:;',.?/"

// rule is one password rule of an API generation and OS.
type rule struct {
	min, max int
	// classes is how many character classes the password must mix.
	classes int
	// lettersOneClass makes upper and lower case count as one class ("letters"),
	// as the v2 Linux rule says.
	lettersOneClass bool
	// specials is the allowed special-character set.
	specials string
}

// rules are the ResetInstance(s) password rules, keyed by API generation and
// OS (cvm-api.md §5; seeds/ResetInstances.md for v2, SDK LoginSettings for v3).
var rules = map[[2]string]rule{
	// v2 Linux: 8-16, two of letters (either case, ONE class), digits, specials.
	{"v2", "linux"}: {min: 8, max: 16, classes: 2, lettersOneClass: true, specials: specials},
	// v2 Windows: 12-16, three of lower, upper, digits, specials; the v2 doc
	// leaves the pipe out of the Windows set.
	{"v2", "windows"}: {min: 12, max: 16, classes: 3, specials: strings.ReplaceAll(specials, "|", "")},
	// v3 Linux: 8-30, two of lower, upper, digits, specials.
	{"v3", "linux"}: {min: 8, max: 30, classes: 2, specials: specials},
	// v3 Windows: 12-30, three of lower, upper, digits, specials (pipe allowed).
	{"v3", "windows"}: {min: 12, max: 30, classes: 3, specials: specials},
}

// CheckPassword reports whether pw satisfies the password rules of API
// generation api ("v2" or "v3") for an instance running osFamily ("linux"
// or "windows"). The error wraps ErrBadPassword and says which rule is
// broken; it never contains the password, its length or its characters.
func CheckPassword(api, osFamily, pw string) error {
	r, ok := rules[[2]string{api, osFamily}]
	if !ok {
		return fmt.Errorf("secretref: no password rules for api %q and os %q", api, osFamily)
	}
	classNames := "lower-case letters, upper-case letters, digits, special characters " + r.specials
	if r.lettersOneClass {
		classNames = "letters, digits, special characters " + r.specials
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w (api %s, %s): %s", ErrBadPassword, api, osFamily, fmt.Sprintf(format, args...))
	}
	// Count bytes: only ASCII is allowed, and a non-ASCII password fails
	// the character check below whatever its length.
	if n := len(pw); n < r.min || n > r.max {
		return fail("must be %d-%d characters long", r.min, r.max)
	}
	var lower, upper, digit, special bool
	for i := 0; i < len(pw); i++ {
		c := pw[i]
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= '0' && c <= '9':
			digit = true
		case strings.IndexByte(r.specials, c) >= 0:
			special = true
		default:
			return fail("may contain only %s", strings.Replace(classNames, "special characters", "the special characters", 1))
		}
	}
	n := count(digit, special)
	if r.lettersOneClass {
		n += count(lower || upper)
	} else {
		n += count(lower, upper)
	}
	if n < r.classes {
		return fail("must mix at least %d of: %s", r.classes, classNames)
	}
	return nil
}

// count returns how many of bs are true.
func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
