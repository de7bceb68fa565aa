package planner

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse, seeded with the bad-plan corpus
// and the example plans. Parse must never panic; a rejected plan must come
// back as a non-empty Errors and no Plan; an accepted plan must satisfy
// checkInvariants (every target in exactly one non-empty wave, ...). Files
// the plan names read as a small instances list and every environment
// variable holds a valid password, so that fuzzed plans can succeed.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/bad/*.yaml", "../plans/*.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte(minimal))
	const secret = "Fuzz-Passw0rd-1"
	opts := Options{
		ResolveSecrets: true,
		LookupEnvFunc:  func(string) (string, bool) { return secret, true },
		ReadFileFunc: func(string) ([]byte, error) {
			return []byte("ins-fuzz0001 ap-guangzhou-3\n# c\nins-fuzz0002\n"), nil
		},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		plan, err := Parse("fuzz.yaml", data, opts)
		if err == nil {
			if plan == nil {
				t.Fatal("Parse returned neither a plan nor an error")
			}
			checkInvariants(t, plan)
			return
		}
		if plan != nil {
			t.Fatal("Parse returned a plan with its errors")
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("Parse error %T %v is not a non-empty Errors", err, err)
		}
		for _, e := range es {
			if e.File == "" || e.Msg == "" || e.Line < 0 {
				t.Fatalf("malformed FieldError %#v", e)
			}
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("errors leak the password:\n%v", err)
		}
	})
}
