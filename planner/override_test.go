package planner

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestOverrideGolden parses each testdata/override/NAME.yaml with the
// overrides of its table row and compares the errors with NAME.golden
// (issue 14.3: a plan is validated under the API it will run with). Run
// with -update to rewrite the golden files.
func TestOverrideGolden(t *testing.T) {
	tests := []struct {
		name string
		api  string
	}{
		{"password-v2", "v2"},     // v3 passwords too long for v2 Linux, a pipe v2 Windows refuses; image.type missing
		{"login-fields-v2", "v2"}, // keyIds, hostName and keepImageLogin, which v2 lacks
		{"legacy-ids-v3", "v3"},   // qcvm ids inline and in an instances file
		{"bad-id-v2", "v2"},       // a malformed id: the v2 message names the legacy form too
		{"same-api", "v2"},        // the plan's own api: its mistakes read as without the override
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join("testdata", "override", tt.name+".yaml")
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			opts := testOptions()
			opts.API = Override{Value: tt.api, From: "--api"}
			plan, err := Parse(file, data, opts)
			if err == nil {
				t.Fatalf("Parse(%s, --api %s) = %+v, nil; want errors", file, tt.api, plan.Spec)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("errors.As(%T, *FieldError) = false", err)
			}
			got := err.Error() + "\n"
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
				t.Fatalf("%v (run go test -run TestOverrideGolden -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("Parse(%s, --api %s) errors mismatch (-want +got):\n%s", file, tt.api, diff)
			}
		})
	}
}

// TestOverrideSpec: the effective API and endpoint are what the Spec and
// its hash record, so an override is part of the plan's identity, and an
// override equal to the plan's value changes nothing.
func TestOverrideSpec(t *testing.T) {
	const endpoint = "http://127.0.0.1:8080"
	pw := func(string) (string, bool) { return "Good-Passw0rd", true }
	plain := mustParse(t, minimal, Options{ResolveSecrets: true, LookupEnvFunc: pw})
	written := mustParse(t, strings.Replace(minimal, "region:", "api: v2\nendpoint: "+endpoint+"\nregion:", 1), Options{})
	tests := []struct {
		name          string
		text          string
		opts          Options
		wantAPI       string
		wantEndpoint  string
		wantOverrides map[string]string
		wantHash      string
	}{
		{"none", minimal, Options{}, "v3", "", nil, plain.Spec.PlanHash},
		{"sameAsPlan", minimal, Options{API: Override{Value: "v3", From: "--api"}}, "v3", "", nil, plain.Spec.PlanHash},
		{"both", minimal, Options{API: Override{Value: "v2", From: "--api"}, Endpoint: Override{Value: endpoint, From: "--endpoint"}},
			"v2", endpoint, map[string]string{"api": "--api", "endpoint": "--endpoint"}, written.Spec.PlanHash}, // the same as a plan that says so
		{"defaultFrom", minimal, Options{API: Override{Value: "v2"}}, "v2", "", map[string]string{"api": "the override"}, ""},
		{"v2PlanToV3", strings.Replace(minimal, "region:", "api: v2\nkeyIds: [skey-abcd1234]\nregion:", 1), Options{API: Override{Value: "v3", From: "--api"}},
			"v3", "", map[string]string{"api": "--api"}, ""}, // keyIds are fine under the effective v3
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := mustParse(t, tt.text, tt.opts)
			if plan.Spec.API != tt.wantAPI || plan.Spec.Endpoint != tt.wantEndpoint {
				t.Errorf("Spec.API, Spec.Endpoint = %q, %q; want %q, %q", plan.Spec.API, plan.Spec.Endpoint, tt.wantAPI, tt.wantEndpoint)
			}
			if diff := cmp.Diff(tt.wantOverrides, plan.Overrides); diff != "" {
				t.Errorf("Overrides mismatch (-want +got):\n%s", diff)
			}
			switch {
			case tt.wantHash != "" && plan.Spec.PlanHash != tt.wantHash:
				t.Errorf("PlanHash = %s; want %s", plan.Spec.PlanHash, tt.wantHash)
			case tt.wantHash == "" && plan.Spec.PlanHash == plain.Spec.PlanHash:
				t.Errorf("PlanHash = %s, the same as without the override", plan.Spec.PlanHash)
			}
		})
	}
}

// TestBadOverride: overrides are not in the plan, so their mistakes are
// plain errors naming the override, not FieldErrors.
func TestBadOverride(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"unknownAPI", Options{API: Override{Value: "v4", From: "--api"}}, `--api: unknown API "v4": want v3 (API 3.0) or v2 (legacy cvm.api.qcloud.com)`},
		{"notURL", Options{Endpoint: Override{Value: "ftp://x", From: "--endpoint"}}, `--endpoint: "ftp://x" is not an http:// or https:// URL with a host`},
		{"credentials", Options{Endpoint: Override{Value: "http://u:p@sim:8080"}}, `the override: must not contain credentials (user:password@)`},
		{"query", Options{Endpoint: Override{Value: "http://sim:8080/?x=1", From: "--endpoint"}}, `--endpoint: must not have a query or fragment: give the base URL, like https://cvm.tencentcloudapi.com`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := Parse("p.yaml", []byte(minimal), tt.opts)
			if err == nil {
				t.Fatalf("Parse = %+v, nil; want %q", plan.Spec, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("Parse error = %q; want %q", err, tt.want)
			}
			var fe *FieldError
			if errors.As(err, &fe) {
				t.Errorf("Parse error is a FieldError %v; want an OverrideError", fe)
			}
			var oe *OverrideError
			if !errors.As(err, &oe) {
				t.Errorf("Parse error %T is not an OverrideError", err)
			}
		})
	}
}
