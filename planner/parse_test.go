package planner

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden from the current output")

// testEnv is the environment the corpus plans see.
var testEnv = map[string]string{
	"GOOD_LINUX":        "Good-Passw0rd",
	"GOOD_WIN":          "Good-Windows-Passw0rd",
	"SHORT_PW":          "abc1",
	"EMPTY_PW":          "",
	"WIN_TWO_CLASSES":   "abcdefghij12",
	"V2_LINUX_TOO_LONG": "abcdefgh123456789",
	"WIN_PIPE":          "Good|Windows-1", // v3 Windows allows the pipe, v2 Windows does not
}

// secretValues are the passwords in testEnv and testdata; no error may contain one.
var secretValues = []string{"Good-Passw0rd", "Good-Windows-Passw0rd", "abcdefghij12", "abcdefgh123456789", "Sup3r-Secret-Value", "Good|Windows-1"}

func testOptions() Options {
	return Options{
		ResolveSecrets: true,
		LookupEnvFunc: func(k string) (string, bool) {
			v, ok := testEnv[k]
			return v, ok
		},
	}
}

// lineRE is the shape of every error line: file:line: message.
var lineRE = regexp.MustCompile(`^testdata/bad/[a-z0-9./-]+:[1-9][0-9]*: \S`)

// TestBadPlans parses every testdata/bad/*.yaml and compares the errors
// with the .golden file next to it. Run with -update to rewrite them.
func TestBadPlans(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("only %d bad plans in testdata/bad; the corpus should hold at least 30", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := Parse(file, data, testOptions())
			if err == nil {
				t.Fatalf("Parse(%s) = %+v, nil; want errors", file, plan.Spec)
			}
			if plan != nil {
				t.Errorf("Parse(%s) returned a plan with its errors", file)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("errors.As(%T, *FieldError) = false", err)
			}
			got := err.Error() + "\n"
			for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
				if name != "empty" && !lineRE.MatchString(line) {
					t.Errorf("error line %q is not file:line: message", line)
				}
			}
			for _, secret := range secretValues {
				if strings.Contains(got, secret) {
					t.Errorf("errors leak the secret %q:\n%s", secret, got)
				}
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestBadPlans -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("Parse(%s) errors mismatch (-want +got):\n%s", file, diff)
			}
		})
	}
}

// TestPlansDir loads every example plan in /plans, resolving secrets (the
// env ones from a fake environment, the demo's password file for real).
func TestPlansDir(t *testing.T) {
	files, err := filepath.Glob("../plans/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found %d plans in ../plans; want at least 4", len(files))
	}
	opts := Options{
		ResolveSecrets: true,
		LookupEnvFunc: func(k string) (string, bool) {
			// Strong enough for every API generation and OS.
			return "Plan-Passw0rd-1", true
		},
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			plan, err := Load(file, opts)
			if err != nil {
				t.Fatalf("Load(%s):\n%v", file, err)
			}
			checkInvariants(t, plan)
			for _, w := range plan.Warnings {
				t.Errorf("warning: %v", w)
			}
		})
	}
}

// TestDemoNeedsNoSetup loads the demo plan with an empty environment: it
// must run on a fresh machine.
func TestDemoNeedsNoSetup(t *testing.T) {
	plan, err := Load("../plans/demo.yaml", Options{
		ResolveSecrets: true,
		LookupEnvFunc:  func(string) (string, bool) { return "", false },
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(plan.Targets); got < 30 {
		t.Errorf("demo has %d targets; want about 40", got)
	}
	if got := len(plan.Spec.Waves); got < 3 {
		t.Errorf("demo has %d waves; want at least 3", got)
	}
}
