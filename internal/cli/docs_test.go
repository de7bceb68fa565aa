package cli

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocumentedCommands checks every fleetreset command in the README's
// and the operations guide's shell blocks with ValidateArgs, and that
// every plan they name exists (issue 15: the README named plans/web.yaml,
// and the guide's `report ROLLOUT --format csv` was a usage error).
func TestDocumentedCommands(t *testing.T) {
	planRE := regexp.MustCompile(`plans/[\w.-]+\.yaml`)
	for _, doc := range []string{"../../README.md", "../../docs/operations.md"} {
		f, err := os.Open(doc)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		inShell := false
		for sc, line := bufio.NewScanner(f), 0; sc.Scan(); {
			line++
			text := sc.Text()
			for _, p := range planRE.FindAllString(text, -1) {
				if _, err := os.Stat(filepath.Join("../..", p)); err != nil {
					t.Errorf("%s:%d names %s, which does not exist", doc, line, p)
				}
			}
			switch trimmed := strings.TrimSpace(text); {
			case strings.HasPrefix(trimmed, "```"):
				inShell = trimmed == "```sh"
				continue
			case !inShell:
				continue
			}
			cmd, ok := documentedCommand(text)
			if !ok {
				continue
			}
			// "pause|resume|abort ROLLOUT" documents several commands.
			for _, name := range strings.Split(cmd[0], "|") {
				n++
				args := append([]string{name}, cmd[1:]...)
				if err := ValidateArgs(args); err != nil {
					t.Errorf("%s:%d: %q: %v", doc, line, strings.Join(args, " "), err)
				}
			}
		}
		f.Close()
		if n < 10 {
			t.Errorf("%s: found %d fleetreset commands; the scan is broken", doc, n)
		}
	}
}

// documentedCommand returns the arguments of a shell line that runs
// fleetreset, without the program, a trailing comment or a redirection.
// A synopsis ("ui [--listen ADDR]") is not a command.
func documentedCommand(line string) ([]string, bool) {
	line, _, _ = strings.Cut(line, " #")
	line, _, _ = strings.Cut(line, " > ")
	line, _, _ = strings.Cut(line, " | ")
	if strings.Contains(line, "[") {
		return nil, false
	}
	fields := shellFields(line)
	for i, f := range fields {
		if f == "fleetreset" || f == "./cmd/fleetreset" {
			args := fields[i+1:]
			if len(args) == 0 || strings.HasPrefix(args[0], "-") {
				return nil, false
			}
			return args, true
		}
	}
	return nil, false
}

// shellFields splits a line into words as a shell does for plain words
// and single- or double-quoted ones.
func shellFields(line string) []string {
	var words []string
	var w strings.Builder
	in, quote := false, rune(0)
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}
