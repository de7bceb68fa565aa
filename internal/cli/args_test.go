package cli

import (
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/internal/redistest"
)

// TestArgumentConventions: flags go anywhere, extra and missing arguments
// and unknown flags are usage errors (2) with a reason, and -h prints to
// stdout with status 0.
func TestArgumentConventions(t *testing.T) {
	r := redistest.New(t)
	vars, ns := ctlEnv(r)
	buildFixture(t, r, ns, completedWithFailures)
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string // a substring of stdout
		stderr     string // a substring of stderr
		quietError bool   // nothing on stderr
	}{
		{"flagAfterArgument", []string{"report", "demo2", "--format", "csv", "--namespace", ns}, 0, "rollout,instance_id", "", true},
		{"flagBetween", []string{"status", "--namespace", ns, "demo2", "--instances"}, 0, "Rollout demo2", "", true},
		{"extraArgument", []string{"status", "--namespace", ns, "demo2", "extra"}, 2, "", `unexpected argument "extra"`, false},
		{"missingArgument", []string{"report", "--namespace", ns}, 2, "", "missing ROLLOUT", false},
		{"unknownFlag", []string{"status", "--bogus", "demo2"}, 2, "", "flag provided but not defined: -bogus", false},
		{"badValue", []string{"worker", "--concurrency", "ten"}, 2, "", "invalid value", false},
		{"help", []string{"status", "-h"}, 0, "Usage: fleetreset status [flags] [ROLLOUT]", "", true},
		{"helpAfterArgument", []string{"report", "demo2", "--help"}, 0, "-format", "", true},
		{"topHelp", []string{"-h"}, 0, "Commands:", "", true},
		{"helpCommand", []string{"help", "report"}, 0, "Usage: fleetreset report", "", true},
		{"doubleDash", []string{"status", "--namespace", ns, "--", "demo2"}, 0, "Rollout demo2", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, out, errb := testEnv(vars)
			code := Main(t.Context(), env, tt.args)
			if code != tt.code {
				t.Errorf("Main(%q) = %d; want %d\nstdout: %s\nstderr: %s", tt.args, code, tt.code, out, errb)
			}
			if !strings.Contains(out.String(), tt.stdout) {
				t.Errorf("Main(%q) stdout lacks %q:\n%s", tt.args, tt.stdout, out)
			}
			if !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("Main(%q) stderr lacks %q:\n%s", tt.args, tt.stderr, errb)
			}
			if tt.quietError && errb.String() != "" {
				t.Errorf("Main(%q) wrote to stderr:\n%s", tt.args, errb)
			}
		})
	}
}
