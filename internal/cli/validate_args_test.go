package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestValidateArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for valid
	}{
		{"worker", []string{"worker", "--endpoint", "http://sim:8080", "--concurrency", "10", "--metrics-addr", "0.0.0.0:9464"}, ""},
		{"workerEqualsForm", []string{"worker", "-concurrency=10", "-v"}, ""},
		{"ui", []string{"ui", "--listen", "0.0.0.0:8090", "--allow-actions", "--basic-auth-env", "UI_AUTH"}, ""},
		{"sim", []string{"sim", "--listen", "0.0.0.0:8080", "--plan", "plans/demo.yaml", "--reset-duration", "5s"}, ""},
		{"apply", []string{"apply", "--endpoint", "http://sim:8080", "plans/demo.yaml"}, ""},
		{"applyFlagAfter", []string{"apply", "plans/demo.yaml", "--endpoint", "http://sim:8080"}, ""},
		{"reportFlagAfter", []string{"report", "web", "--format", "csv"}, ""},
		{"boolFlagBeforeArgument", []string{"status", "--watch", "demo"}, ""}, // --watch takes no value: demo is the argument
		{"doubleDash", []string{"status", "--", "-odd-name"}, ""},
		{"validateMany", []string{"validate", "a.yaml", "--secrets=false", "b.yaml"}, ""},
		{"statusOptional", []string{"status"}, ""},
		{"unknownCommand", []string{"serve"}, "not a fleetreset command"},
		{"unknownFlag", []string{"worker", "--metrics", ":9464"}, "flag provided but not defined: -metrics"},
		{"unknownFlagAfter", []string{"status", "demo", "--bogus"}, "flag provided but not defined: -bogus"},
		{"badDuration", []string{"worker", "--reconcile-grace", "soon"}, "invalid value"},
		{"badInt", []string{"worker", "--concurrency", "ten"}, "invalid value"},
		{"badImages", []string{"sim", "--images", "nope"}, "invalid value"}, // the flag's own parser
		{"missingPlan", []string{"apply", "--endpoint", "http://sim:8080"}, "apply: missing PLAN"},
		{"extraArg", []string{"worker", "extra"}, `worker: unexpected argument "extra" (it takes no arguments)`},
		{"validateNone", []string{"validate"}, "validate: missing PLAN"},
		{"statusTwo", []string{"status", "a", "b"}, `status: unexpected argument "b" (it takes at most 1)`},
		{"missingValue", []string{"ui", "--listen"}, "flag needs an argument"},
		{"help", []string{"report", "--help"}, flag.ErrHelp.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateArgs(tt.args)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("ValidateArgs(%q) = %v; want nil", tt.args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("ValidateArgs(%q) = %v; want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

// TestEveryCommandDeclaresItsFlags: every command builds its flag set
// before it does anything else, so running it with -h only declares (and
// writes nothing but to its flag set's output), and its synopsis is the
// one in the command table.
func TestEveryCommandDeclaresItsFlags(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			d, err := declare(c)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			d.fs.VisitAll(func(*flag.Flag) { n++ })
			if n == 0 {
				t.Errorf("no flags declared")
			}
			if d.synopsis != c.args {
				t.Errorf("synopsis %q in newFlags, %q in the command table", d.synopsis, c.args)
			}
			var out, errb bytes.Buffer
			var got declaration
			env := &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }, declaring: &got}
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if err := c.run(ctx, env, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
				t.Errorf("%s -h returned %v; want flag.ErrHelp", c.name, err)
			}
			if out.Len() != 0 {
				t.Errorf("%s -h wrote to stdout before parsing: %q", c.name, out.String())
			}
			if !strings.HasPrefix(errb.String(), "Usage: fleetreset "+c.name+" ") {
				t.Errorf("%s -h printed %q; want only its usage", c.name, errb.String())
			}
		})
	}
}
