package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// declaration is what a command accepts, built from its entry in
// commands() and its options type (see flags.go): the flag set, bound to
// a fresh options value, and the positional arguments.
type declaration struct {
	cmd  command
	fs   *flag.FlagSet
	defs []flagDef
	opts options
	run  func(ctx context.Context, env *Env) error
}

// declare builds c's flag set over a fresh options value, without running
// anything. The flag set writes nowhere: Main prints help and errors.
func declare(c command) (*declaration, error) {
	opts, run := c.bind()
	d := &declaration{cmd: c, fs: flag.NewFlagSet(c.name, flag.ContinueOnError), defs: opts.flags(), opts: opts, run: run}
	d.fs.SetOutput(io.Discard)
	for _, f := range d.defs {
		if d.fs.Lookup(f.name) != nil {
			return nil, fmt.Errorf("%s: flag -%s declared twice", c.name, f.name)
		}
		d.fs.Var(f.value, f.name, f.usage())
	}
	d.fs.Usage = func() { d.help(d.fs.Output()) }
	return d, nil
}

// synopsis is the command's arguments as usage shows them.
func (d *declaration) synopsis() string { return synopsis(d.cmd.args) }

// help prints the command's usage and flags to w.
func (d *declaration) help(w io.Writer) {
	fmt.Fprintf(w, "Usage: fleetreset %s %s\n\n%s.\n\nFlags (before or after the arguments):\n", d.cmd.name, d.synopsis(), d.cmd.usage)
	out := d.fs.Output()
	d.fs.SetOutput(w)
	d.fs.PrintDefaults()
	d.fs.SetOutput(out)
}

// parse checks args (without the command name) as arrange does, then
// fills the options: a flag not given takes its environment variable when
// that is set, and the common part learns the command, its flag set and
// its positional arguments.
func (d *declaration) parse(env *Env, args []string) error {
	if err := d.arrange(args); err != nil {
		return err
	}
	given := map[string]bool{}
	d.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, f := range d.defs {
		if f.env == "" || given[f.name] {
			continue
		}
		if v := env.getenv(f.env); v != "" {
			// Value.Set, not fs.Set: a value from the environment is not
			// one given on the command line (continueCommand repeats only
			// those, and never the environment's REDIS_URL password).
			if err := f.value.Set(v); err != nil {
				return fmt.Errorf("%s: $%s: %w", d.cmd.name, f.env, err)
			}
		}
	}
	c := d.opts.base()
	c.env, c.name, c.fs, c.args = env, d.cmd.name, d.fs, d.fs.Args()
	return nil
}

// arrange parses args (without the command name) into the declaration's
// flag set, with every flag, and its value, moved before the positional
// arguments, separated by "--" (the standard flag package stops at the
// first positional argument, and people write `report ROLLOUT --format
// csv`), and checks the number of arguments. A flag takes the next argument as its value unless it is boolean
// or written -name=value, exactly as the flag package reads it; after
// "--" everything is positional. The error is flag.ErrHelp for -h/--help,
// else a usage error naming the command.
func (d *declaration) arrange(args []string) error {
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
		return fmt.Errorf("%s: %w", d.cmd.name, err)
	}
	return d.checkArgs(d.fs.Args())
}

// checkArgs checks the number of positional arguments against the
// command's declared ones.
func (d *declaration) checkArgs(args []string) error {
	var required []string
	optional, variadic := 0, false
	for _, a := range d.cmd.args {
		if a.optional {
			optional++
		} else {
			required = append(required, a.name)
		}
		variadic = variadic || a.variadic
	}
	if len(args) < len(required) {
		return fmt.Errorf("%s: missing %s", d.cmd.name, strings.Join(required[len(args):], " "))
	}
	if most := len(required) + optional; !variadic && len(args) > most {
		return fmt.Errorf("%s: unexpected argument %q (it takes %s)", d.cmd.name, args[most], takes(required, optional))
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
// durations, the choices of --api and --format, the simulator's image
// list), not by a command's validation after parsing.
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
	return d.arrange(args[1:])
}
