package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A command is declared once, as data: its entry in commands() (name,
// summary, the paragraph of its -h, its positional arguments) and the
// flags() method of its options type (every flag's name, type, default,
// help and environment variable). Main builds the flag set from them,
// prints -h from it, checks the arguments against it (so does
// ValidateArgs, which the tests run on docker-compose.yml, the README and
// the operations guide) and hands the command its options struct, parsed.
// Nothing reads -h output back.
//
// To add a command: an options type embedding common, whose flags()
// appends its own flagDefs to common.flags(); a function
// func(ctx context.Context, env *Env, o *thatType) error, which finds its
// positional arguments in o.args (already counted); and an entry in
// commands() with bind(thatFunction).

// flagDef declares one flag.
type flagDef struct {
	name, help string
	// value is the flag's type and the options field it sets, already
	// holding the default.
	value flag.Value
	// env names the environment variable that supplies the value when the
	// flag is not given; "" for none.
	env string
}

// declared builds a flagDef from the standard flag package's own typed
// registration, so that parsing, defaults and -h are exactly the flag
// package's.
func declared(name string, register func(fs *flag.FlagSet)) flagDef {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	register(fs)
	f := fs.Lookup(name)
	return flagDef{name: f.Name, help: f.Usage, value: f.Value}
}

func stringFlag(p *string, name, def, help string) flagDef {
	return declared(name, func(fs *flag.FlagSet) { fs.StringVar(p, name, def, help) })
}

func boolFlag(p *bool, name string, def bool, help string) flagDef {
	return declared(name, func(fs *flag.FlagSet) { fs.BoolVar(p, name, def, help) })
}

func intFlag(p *int, name string, def int, help string) flagDef {
	return declared(name, func(fs *flag.FlagSet) { fs.IntVar(p, name, def, help) })
}

func durationFlag(p *time.Duration, name string, def time.Duration, help string) flagDef {
	return declared(name, func(fs *flag.FlagSet) { fs.DurationVar(p, name, def, help) })
}

// atLeastFlag is an int flag that refuses values below least: a usage
// error at parse time, as for a malformed number.
func atLeastFlag(p *int, name string, def, least int, help string) flagDef {
	*p = def
	return flagDef{name: name, help: help, value: &atLeastValue{p: p, least: least}}
}

type atLeastValue struct {
	p     *int
	least int
}

func (v *atLeastValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return strconv.Itoa(*v.p)
}

func (v *atLeastValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("must be a whole number")
	}
	if n < v.least {
		return fmt.Errorf("must be %d or more", v.least)
	}
	*v.p = n
	return nil
}

// enumFlag is a string flag that takes only one of allowed; a value
// outside them is a usage error at parse time.
func enumFlag(p *string, name, def string, allowed []string, help string) flagDef {
	*p = def
	return flagDef{name: name, help: help, value: &enumValue{p: p, allowed: allowed}}
}

type enumValue struct {
	p       *string
	allowed []string
}

func (v *enumValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return *v.p
}

func (v *enumValue) Set(s string) error {
	if !slices.Contains(v.allowed, s) {
		return fmt.Errorf("must be %s", orList(v.allowed))
	}
	*v.p = s
	return nil
}

// orList writes ["", "v2", "v3"] as "v2 or v3" (the empty choice is the
// flag left out).
func orList(xs []string) string {
	var named []string
	for _, x := range xs {
		if x != "" {
			named = append(named, x)
		}
	}
	if len(named) < 2 {
		return strings.Join(named, "")
	}
	return strings.Join(named[:len(named)-1], ", ") + " or " + named[len(named)-1]
}

// fromEnv makes the environment variable env supply the flag's value when
// it is not given.
func (d flagDef) fromEnv(env string) flagDef {
	d.env = env
	return d
}

// importFlags declares the flags another package registers on a flag set
// (cvmsim.RegisterFlags), each name prefixed, with that package's types,
// defaults and help.
func importFlags(prefix string, register func(fs *flag.FlagSet)) []flagDef {
	fs := flag.NewFlagSet(prefix, flag.ContinueOnError)
	register(fs)
	var ds []flagDef
	fs.VisitAll(func(f *flag.Flag) {
		ds = append(ds, flagDef{name: prefix + f.Name, help: f.Usage, value: f.Value})
	})
	return ds
}

// usage is the flag's help as -h prints it: with its environment variable.
func (d flagDef) usage() string {
	switch {
	case d.env == "":
		return d.help
	case d.value.String() == "":
		return fmt.Sprintf("%s (default $%s)", d.help, d.env)
	}
	return fmt.Sprintf("%s ($%s overrides the default)", d.help, d.env)
}

// argDef declares a positional argument.
type argDef struct {
	name string
	// optional arguments may be left out; variadic ones repeat (one or
	// more, or any number when optional too).
	optional, variadic bool
}

// synopsis renders a command's arguments: "[flags] PLAN", "[flags]
// [ROLLOUT]", "[flags] PLAN...".
func synopsis(args []argDef) string {
	words := []string{"[flags]"}
	for _, a := range args {
		w := a.name
		if a.variadic {
			w += "..."
		}
		if a.optional {
			w = "[" + w + "]"
		}
		words = append(words, w)
	}
	return strings.Join(words, " ")
}

// options is what every command's options struct is: its flags, declared
// once, over the common ones it embeds.
type options interface {
	flags() []flagDef
	base() *common
}

// bindFunc makes a fresh options value and the run function that takes it.
type bindFunc func() (options, func(ctx context.Context, env *Env) error)

// bind adapts a command function that takes its own options type.
func bind[T any, P interface {
	*T
	options
}](run func(ctx context.Context, env *Env, o P) error) bindFunc {
	return func() (options, func(context.Context, *Env) error) {
		o := P(new(T))
		return o, func(ctx context.Context, env *Env) error { return run(ctx, env, o) }
	}
}
