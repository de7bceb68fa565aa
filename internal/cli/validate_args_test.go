package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
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
		{"badAPI", []string{"apply", "--api", "v4", "plans/demo.yaml"}, `invalid value "v4" for flag -api: must be v2 or v3`},
		{"badFormat", []string{"report", "demo", "--format", "xml"}, `invalid value "xml" for flag -format: must be json or csv`},
		{"validateBadAPI", []string{"validate", "--api=v1", "a.yaml"}, "invalid value"},
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

// TestEveryCommandIsDeclared: every command's declaration builds (no flag
// twice), every flag has help, and -h prints the usage with the synopsis
// derived from its arguments and every flag with its environment variable.
func TestEveryCommandIsDeclared(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			d, err := declare(c)
			if err != nil {
				t.Fatal(err)
			}
			if c.summary == "" || c.usage == "" {
				t.Errorf("summary %q, usage %q; want both", c.summary, c.usage)
			}
			var out, errb bytes.Buffer
			env := &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
			if code := Main(t.Context(), env, []string{c.name, "-h"}); code != 0 {
				t.Errorf("%s -h exited %d; stderr %s", c.name, code, errb.String())
			}
			help := out.String()
			if want := "Usage: fleetreset " + c.name + " " + d.synopsis() + "\n"; !strings.HasPrefix(help, want) {
				t.Errorf("%s -h starts %q; want %q", c.name, help[:min(len(help), 80)], want)
			}
			for _, f := range d.defs {
				if f.help == "" {
					t.Errorf("-%s has no help", f.name)
				}
				if !regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(f.name) + `\s`).MatchString(help) {
					t.Errorf("%s -h lacks -%s", c.name, f.name)
				}
				if f.env != "" && !strings.Contains(help, "$"+f.env) {
					t.Errorf("%s -h does not name $%s for -%s", c.name, f.env, f.name)
				}
			}
			if errb.Len() != 0 {
				t.Errorf("%s -h wrote to stderr: %q", c.name, errb.String())
			}
		})
	}
}

// TestFlagsFromEnvironment: a flag with an environment variable takes it
// when not given and the flag wins when given; a value from the
// environment is not one given on the command line, so continueCommand
// never repeats REDIS_URL (it may hold a password).
func TestFlagsFromEnvironment(t *testing.T) {
	vars := map[string]string{"REDIS_URL": "redis://:hunter2@db:6379/0", "FLEETRESET_NAMESPACE": "env-ns"}
	env := &Env{Getenv: func(k string) string { return vars[k] }}
	c, _ := lookupCommand("run")
	for _, tt := range []struct {
		args          []string
		redis, ns     string
		givenRedis    bool
		continueLacks string
	}{
		{[]string{"plan.yaml"}, vars["REDIS_URL"], "env-ns", false, "hunter2"},
		{[]string{"--namespace", "flag-ns", "plan.yaml"}, vars["REDIS_URL"], "flag-ns", false, "hunter2"},
		{[]string{"--redis", "redis://other:6379/0", "plan.yaml", "--namespace="}, "redis://other:6379/0", "", true, "env-ns"},
	} {
		d, err := declare(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.parse(env, tt.args); err != nil {
			t.Fatalf("parse %q: %v", tt.args, err)
		}
		o := d.opts.base()
		if o.redisURL != tt.redis || o.namespace != tt.ns || flagSet(o.fs, "redis") != tt.givenRedis {
			t.Errorf("parse %q: redis %q, namespace %q, --redis given %v; want %q, %q, %v", tt.args, o.redisURL, o.namespace, flagSet(o.fs, "redis"), tt.redis, tt.ns, tt.givenRedis)
		}
		if cmd := continueCommand(o.fs, false, ""); strings.Contains(cmd, tt.continueLacks) {
			t.Errorf("parse %q: continueCommand %q repeats the environment's %q", tt.args, cmd, tt.continueLacks)
		}
	}
}

// TestApplyReadsSecretsFlag: `apply --secrets=false` enqueues a plan whose
// password only the workers' hosts hold, and plain `apply` refuses it. The
// flag used to be read before the command line was parsed, so it was
// always true.
func TestApplyReadsSecretsFlag(t *testing.T) {
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	path := filepath.Join(t.TempDir(), "nosecret.yaml")
	plan := "version: 1\nname: nosecret\nregion: ap-guangzhou\nimage: {type: 1, id: img-new00001}\npassword: {env: FR_WORKERS_ONLY_PW}\nwaves: [100%]\ngroups:\n  - name: g\n    instances: [ins-aaaaaaa1]\n"
	if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		flags []string
		code  int
	}{
		{nil, exitFailed},
		{[]string{"--secrets=false"}, 0},
	} {
		env, out, errb := testEnv(map[string]string{"REDIS_URL": "redis://" + r.Addr})
		env.LookupEnv = func(string) (string, bool) { return "", false }
		args := append(append([]string{"apply", "--namespace", ns, "--no-preflight"}, tt.flags...), path)
		if code := Main(t.Context(), env, args); code != tt.code {
			t.Errorf("%q exited %d; want %d\nstdout: %s\nstderr: %s", args, code, tt.code, out, errb)
		}
		if tt.code != 0 && !strings.Contains(errb.String(), "FR_WORKERS_ONLY_PW") {
			t.Errorf("%q: %q does not name the missing variable", args, errb)
		}
	}
	l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
	if _, err := l.Get(t.Context(), "nosecret"); err != nil {
		t.Errorf("apply --secrets=false recorded no rollout: %v", err)
	}
}

// TestEveryCommandIsDocumented: every command in the table is run in a
// shell block of the README or the operations guide (whose commands
// TestDocumentedCommands checks against the same table), so a new command
// cannot ship undocumented.
func TestEveryCommandIsDocumented(t *testing.T) {
	documented := map[string]bool{}
	for _, doc := range []string{"../../README.md", "../../docs/operations.md"} {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		inShell := false
		for line := range strings.SplitSeq(string(data), "\n") {
			if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, "```") {
				inShell = trimmed == "```sh"
				continue
			}
			if cmd, ok := documentedCommand(line); inShell && ok {
				for name := range strings.SplitSeq(cmd[0], "|") {
					documented[name] = true
				}
			}
		}
	}
	for _, c := range commands() {
		if !documented[c.name] {
			t.Errorf("fleetreset %s is run in no shell block of README.md or docs/operations.md", c.name)
		}
	}
}

// TestContinueCommandKeepsListFlags: the command `run` prints to continue
// repeats the simulator's list and repeatable flags with their values
// (flag.Func flags print as empty, which lost --sim-images: the continued
// run had every image exist).
func TestContinueCommandKeepsListFlags(t *testing.T) {
	c, _ := lookupCommand("run")
	d, err := declare(c)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--simulate", "--sim-images", "img-demo0001,img-demo0002",
		"--sim-clb", "lb-aaaaaaaa:lbl-bbbbbbbb:80", "--sim-clb", "lb-cccccccc:lbl-dddddddd:8080",
		"--sim-fail-ids", "ins-aaaa0001", "plan.yaml"}
	if err := d.parse(&Env{Getenv: func(string) string { return "" }}, args); err != nil {
		t.Fatal(err)
	}
	cmd := continueCommand(d.opts.base().fs, false, "")
	for _, want := range []string{"--sim-images=img-demo0001,img-demo0002", "--sim-clb=lb-aaaaaaaa:lbl-bbbbbbbb:80",
		"--sim-clb=lb-cccccccc:lbl-dddddddd:8080", "--sim-fail-ids=ins-aaaa0001", "--simulate"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("continueCommand %q lacks %q", cmd, want)
		}
	}
}

// TestRunSimulateRefusesBadSimulatorValues: an out-of-range --sim-* value
// is a usage error (exit 2) naming the knob, not a panic.
func TestRunSimulateRefusesBadSimulatorValues(t *testing.T) {
	for _, args := range [][]string{{"--sim-fail-rate", "2"}, {"--sim-drop-rate", "-1"}, {"--sim-latency", "-1s"}} {
		env, out, errb := testEnv(nil)
		code := Main(t.Context(), env, append(append([]string{"run", "--simulate"}, args...), "../../plans/demo.yaml"))
		if code != exitUsage || !strings.Contains(errb.String(), "cvmsim:") {
			t.Errorf("run --simulate %v: exit %d\nstdout: %s\nstderr: %s\nwant exit %d naming the knob", args, code, out, errb, exitUsage)
		}
	}
}

// TestBadFlagValuesAreUsageErrors: a bad value of a flag exits 2 (usage),
// as the exit-status table says, naming the flag.
func TestBadFlagValuesAreUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		flag string
		args []string
	}{
		{"endpoint", []string{"validate", "--endpoint", "ftp://x", "../../plans/demo.yaml"}},
		{"endpoint", []string{"plan", "--offline", "--endpoint", "ftp://x", "../../plans/demo.yaml"}},
		{"api", []string{"plan", "--offline", "--api", "v4", "../../plans/demo.yaml"}},
		{"concurrency", []string{"run", "--simulate", "--concurrency", "0", "../../plans/demo.yaml"}},
		{"concurrency", []string{"worker", "--concurrency", "-3"}},
	} {
		args := tt.args
		env, out, errb := testEnv(nil)
		code := Main(t.Context(), env, args)
		if code != exitUsage || !strings.Contains(errb.String(), "-"+tt.flag) || strings.Contains(errb.String(), "planner:") {
			t.Errorf("%v: exit %d\nstdout: %s\nstderr: %s\nwant exit %d naming the flag", args, code, out, errb, exitUsage)
		}
	}
}
