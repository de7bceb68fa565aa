package cli

import (
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
)

// TestOverrideContradictsStoredRollout (issue 14.3): a rollout keeps the API
// and endpoint it was applied with; applying the same plan with an override
// that says otherwise is refused, naming the field, while repeating the
// same effective settings is the usual no-op.
func TestOverrideContradictsStoredRollout(t *testing.T) {
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr}
	path := overridePlan(t, "keeps-api")
	apply := func(flags ...string) (int, string, string) {
		t.Helper()
		env, out, errb := overrideEnv(vars, bothAPIs)
		args := append(append([]string{"apply", "--namespace", ns, "--no-preflight"}, flags...), path)
		code := Main(t.Context(), env, args)
		return code, out.String(), errb.String()
	}
	if code, out, errb := apply(); code != 0 {
		t.Fatalf("first apply exited %d\n%s\n%s", code, out, errb)
	}
	tests := []struct {
		name     string
		flags    []string
		wantCode int
		want     []string // in stdout for code 0, else in stderr
	}{
		{"same", nil, 0, []string{"already applied"}},
		{"sameAPIOverride", []string{"--api", "v3"}, 0, []string{"already applied"}}, // the plan's own API: no contradiction
		{"otherAPI", []string{"--api", "v2"}, exitFailed, []string{`rollout "keeps-api" was applied with api v3`, "api v2 (from --api)"}},
		{"otherEndpoint", []string{"--endpoint", "http://127.0.0.1:1"}, exitFailed, []string{"the default endpoint", "endpoint http://127.0.0.1:1 (from --endpoint)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errb := apply(tt.flags...)
			if code != tt.wantCode {
				t.Fatalf("apply %v exited %d; want %d\nstdout:\n%s\nstderr:\n%s", tt.flags, code, tt.wantCode, out, errb)
			}
			got := out
			if code != 0 {
				got = errb
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("apply %v said\n%s\nwant it to contain %q", tt.flags, got, w)
				}
			}
		})
	}
	l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
	spec, _, err := l.Spec(t.Context(), "keeps-api")
	if err != nil {
		t.Fatal(err)
	}
	if spec.API != "v3" || spec.Endpoint != "" {
		t.Errorf("stored rollout has api %q, endpoint %q; want the first apply's v3 and default", spec.API, spec.Endpoint)
	}
}

// TestOverrideIsStored: the effective API and endpoint are what the ledger
// records, so workers without flags and a later apply see them.
func TestOverrideIsStored(t *testing.T) {
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr}
	path := overridePlan(t, "stored-override")
	env, out, errb := overrideEnv(vars, bothAPIs)
	if code := Main(t.Context(), env, []string{"apply", "--namespace", ns, "--no-preflight", "--api", "v2", "--endpoint", "http://127.0.0.1:1", path}); code != 0 {
		t.Fatalf("apply exited %d\n%s\n%s", code, out, errb)
	}
	l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
	spec, _, err := l.Spec(t.Context(), "stored-override")
	if err != nil {
		t.Fatal(err)
	}
	if spec.API != "v2" || spec.Endpoint != "http://127.0.0.1:1" {
		t.Errorf("stored rollout has api %q, endpoint %q; want the overrides v2 and http://127.0.0.1:1", spec.API, spec.Endpoint)
	}
	// Without the overrides the same plan now contradicts the rollout.
	env, out, errb = overrideEnv(vars, bothAPIs)
	if code := Main(t.Context(), env, []string{"apply", "--namespace", ns, "--no-preflight", path}); code != exitFailed {
		t.Fatalf("apply without the overrides exited %d; want %d\n%s\n%s", code, exitFailed, out, errb)
	}
	for _, want := range []string{"was applied with api v2", "api v3 (the plan's)", "endpoint http://127.0.0.1:1", "the default endpoint (the plan's)"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("refusal lacks %q:\n%s", want, errb)
		}
	}
}
