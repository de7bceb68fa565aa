// Package textcut shortens text from elsewhere (errors, servers, command
// output) for one-line details in logs, reports and the UI.
package textcut

import (
	"strings"
	"unicode/utf8"
)

// OneLine joins s's words with single spaces and cuts it to at most max
// bytes on a rune boundary, marking a cut with "…".
func OneLine(s string, max int) string {
	return cut(strings.Join(strings.Fields(s), " "), max)
}

// FirstLine returns s's first non-blank line, trimmed and cut like
// OneLine; "" when there is none.
func FirstLine(s string, max int) string {
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			return cut(line, max)
		}
	}
	return ""
}

func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
