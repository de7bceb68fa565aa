package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// A command's flags are declared once, in its flag.FlagSet, and its
// arguments once, in its synopsis ("[flags] PLAN", "PLAN...", "[flags]
// [ROLLOUT]"). Main, ValidateArgs and help read both from there as data:
// the flag set's own flag.Flag values (names, and which are boolean), not
// the text of -h.
//
// The flag set is built inside each command's run function (run, plan,
// apply, worker, sim and validate live in files this one must leave
// alone), so declare obtains it by running the command with -h under an
// Env that captures it from newFlags: every command parses its flags
// before it does anything else, so that run only builds the flag set and
// returns flag.ErrHelp (TestEveryCommandDeclaresItsFlags holds every
// command to that). Splitting each command into a flag declaration and a
// run function would make this capture unnecessary.

// declaration is what a command accepts: its flag set and its synopsis.
type declaration struct {
	name     string
	fs       *flag.FlagSet
	synopsis string
}

// declare builds c's flag set without running c.
func declare(c command) (*declaration, error) {
	d := &declaration{name: c.name}
	env := &Env{Stdout: io.Discard, Stderr: io.Discard, Stdin: strings.NewReader(""),
		Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false }, declaring: d}
	// A cancelled context, so that a command that did wait for something
	// before parsing would return at once rather than hang.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.run(ctx, env, []string{"-h"}); d.fs == nil || !errors.Is(err, flag.ErrHelp) {
		return nil, fmt.Errorf("%s does not declare its flags before it runs (it returned %v)", c.name, err)
	}
	d.fs.SetOutput(io.Discard)
	return d, nil
}

// help prints the command's usage and flags to w.
func (d *declaration) help(w io.Writer) {
	d.fs.SetOutput(w)
	d.fs.Usage()
	d.fs.SetOutput(io.Discard)
}

// arrange checks args (without the command name) against the declaration
// and returns them with every flag, and its value, before the positional
// arguments, separated by "--": the standard flag package stops at the
// first positional argument, and people write `report ROLLOUT --format
// csv`. A flag takes the next argument as its value unless it is boolean
// or written -name=value, exactly as the flag package reads it; after
// "--" everything is positional. The error is flag.ErrHelp for -h/--help,
// else a usage error naming the command.
func (d *declaration) arrange(args []string) ([]string, error) {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' { // "-" alone is an argument (stdin, by convention)
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name, _, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
		// An unknown flag is left for Parse to report.
		if f := d.fs.Lookup(name); f != nil && !hasValue && !isBoolFlag(f) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	argv := flags
	if len(positional) > 0 {
		argv = append(append(argv, "--"), positional...)
	}
	if err := d.fs.Parse(argv); err != nil {
		return nil, fmt.Errorf("%s: %w", d.name, err)
	}
	if err := d.checkArgs(d.fs.Args()); err != nil {
		return nil, err
	}
	return argv, nil
}

// checkArgs checks the number of positional arguments against the
// synopsis: NAME is required, [NAME] optional, NAME... one or more and
// [NAME...] any number.
func (d *declaration) checkArgs(args []string) error {
	var required []string
	optional, variadic := 0, false
	for _, w := range strings.Fields(d.synopsis) {
		switch {
		case w == "[flags]":
		case strings.HasPrefix(w, "[") && strings.HasSuffix(w, "...]"):
			variadic = true
		case strings.HasPrefix(w, "["):
			optional++
		case strings.HasSuffix(w, "..."):
			required = append(required, strings.TrimSuffix(w, "..."))
			variadic = true
		default:
			required = append(required, w)
		}
	}
	if len(args) < len(required) {
		return fmt.Errorf("%s: missing %s", d.name, strings.Join(required[len(args):], " "))
	}
	if most := len(required) + optional; !variadic && len(args) > most {
		return fmt.Errorf("%s: unexpected argument %q (it takes %s)", d.name, args[most], takes(required, optional))
	}
	return nil
}

func takes(required []string, optional int) string {
	switch {
	case len(required) == 0 && optional == 0:
		return "no arguments"
	case optional == 0:
		return strings.Join(required, " ")
	}
	return fmt.Sprintf("at most %d", len(required)+optional)
}

// ValidateArgs checks that args (without the program name) name a real
// command and that its flags, their values and the number of arguments
// are valid, exactly as Main checks them before it runs a command, without
// running anything. Deployment files (docker-compose.yml) are tested with
// it. Flag values are checked by each flag's own parser (numbers,
// durations, the simulator's image list), not by a command's validation
// after parsing.
func ValidateArgs(args []string) error {
	if len(args) == 0 {
		return errors.New("no command")
	}
	c, ok := lookupCommand(args[0])
	if !ok {
		return fmt.Errorf("%q is not a fleetreset command", args[0])
	}
	d, err := declare(c)
	if err != nil {
		return err
	}
	_, err = d.arrange(args[1:])
	return err
}
