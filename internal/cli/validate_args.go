package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ValidateArgs checks that args (without the program name) name a real
// command and that its flags and number of arguments are valid, without
// running anything. Deployment files (docker-compose.yml) are tested with it.
//
// Each command builds its flag set inside its run function, and every one
// of them parses before it does anything else, so `COMMAND -h` is free of
// side effects and prints the command's real flag set: its usage line
// (which gives the arguments) and flag.PrintDefaults (names, and which take
// a value). ValidateArgs rebuilds the flag set from that and parses args
// with it. This keeps the commands untouched; the cost is that flag values
// are checked by kind (bool, int, float, duration) but not by each
// command's own validation after parsing.
func ValidateArgs(args []string) error {
	if len(args) == 0 {
		return errors.New("no command")
	}
	spec, err := commandSpec(args[0])
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, f := range spec.flags {
		switch f.kind {
		case "":
			fs.Bool(f.name, false, "")
		case "int":
			fs.Int(f.name, 0, "")
		case "uint":
			fs.Uint(f.name, 0, "")
		case "float":
			fs.Float64(f.name, 0, "")
		case "duration":
			fs.Duration(f.name, 0, "")
		default: // string, value or a backquoted name: any text
			fs.String(f.name, "", "")
		}
	}
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	if n := fs.NArg(); n < spec.minArgs || (spec.maxArgs >= 0 && n > spec.maxArgs) {
		return fmt.Errorf("%s: %d argument(s) %q; usage: fleetreset %s %s", args[0], n, fs.Args(), args[0], spec.usage)
	}
	return nil
}

type argSpec struct {
	usage            string
	flags            []flagSpec
	minArgs, maxArgs int // maxArgs -1: any number
}

type flagSpec struct{ name, kind string }

// commandSpec reads a command's flags and arguments from its -h output.
func commandSpec(name string) (argSpec, error) {
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		var out bytes.Buffer
		env := &Env{Stdout: io.Discard, Stderr: &out, Getenv: func(string) string { return "" },
			LookupEnv: func(string) (string, bool) { return "", false }}
		if err := c.run(context.Background(), env, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
			return argSpec{}, fmt.Errorf("%s -h did not print help: %v", name, err)
		}
		return parseHelp(name, out.String())
	}
	return argSpec{}, fmt.Errorf("%q is not a fleetreset command", name)
}

// parseHelp reads the output of newFlags' Usage: "Usage: fleetreset NAME
// ARGS" and flag.PrintDefaults' lines "  -name kind".
func parseHelp(name, help string) (argSpec, error) {
	var s argSpec
	sc := bufio.NewScanner(strings.NewReader(help))
	sawUsage := false
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "Usage: fleetreset "+name); ok && !sawUsage {
			sawUsage = true
			s.usage = strings.TrimSpace(rest)
			s.minArgs, s.maxArgs = argCount(s.usage)
			continue
		}
		// PrintDefaults starts each flag with "  -"; its usage text
		// continues on lines that start with four spaces and a tab.
		if rest, ok := strings.CutPrefix(line, "  -"); ok {
			// A one-letter flag without a value ("  -v\tusage") keeps its
			// usage on the same line, after a tab.
			rest, _, _ = strings.Cut(rest, "\t")
			fields := strings.Fields(rest)
			f := flagSpec{name: fields[0]}
			if len(fields) > 1 {
				f.kind = fields[1]
			}
			s.flags = append(s.flags, f)
		}
	}
	if !sawUsage {
		return s, fmt.Errorf("%s -h: no usage line", name)
	}
	return s, nil
}

// argCount reads the positional arguments of a usage synopsis such as
// "[flags] PLAN", "PLAN...", "[flags] [ROLLOUT]".
func argCount(usage string) (lo, hi int) {
	for _, w := range strings.Fields(usage) {
		switch {
		case w == "[flags]":
		case strings.HasPrefix(w, "[") && strings.HasSuffix(w, "...]"):
			hi = -1
		case strings.HasPrefix(w, "["):
			if hi >= 0 {
				hi++
			}
		case strings.HasSuffix(w, "..."):
			lo++
			hi = -1
		default:
			lo++
			if hi >= 0 {
				hi++
			}
		}
	}
	return lo, hi
}
