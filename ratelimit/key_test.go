package ratelimit

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/internal/redistest"
)

func TestKey(t *testing.T) {
	const (
		action = "ResetInstance"
		gz     = "cvm.ap-guangzhou.tencentcloudapi.com"
		cred   = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"
	)
	base := Key(action, gz, cred)
	for _, tc := range []struct {
		name                   string
		action, endpoint, cred string
		same                   bool
	}{
		{name: "deterministic", action: action, endpoint: gz, cred: cred, same: true},
		{name: "endpoint_case_and_space", action: action, endpoint: " CVM.ap-guangzhou.tencentcloudapi.com", cred: cred, same: true},
		{name: "other_action", action: "DescribeInstances", endpoint: gz, cred: cred},
		{name: "other_region", action: action, endpoint: "cvm.ap-shanghai.tencentcloudapi.com", cred: cred},
		{name: "other_credential", action: action, endpoint: gz, cred: cred + "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Key(tc.action, tc.endpoint, tc.cred)
			if (got == base) != tc.same {
				t.Errorf("Key(%q, %q, cred) = %q, Key(%q, %q, cred) = %q; want same = %v",
					tc.action, tc.endpoint, got, action, gz, base, tc.same)
			}
			if strings.Contains(got, tc.cred) {
				t.Errorf("Key(...) = %q contains the credential ID in clear text", got)
			}
		})
	}
}

// TestAccountKey: one key per (action, endpoint, region, identity), the
// same key the worker and CLI built by hand before, and never the identity
// in clear text.
func TestAccountKey(t *testing.T) {
	const (
		action = "ResetInstance"
		ep     = "http://127.0.0.1:8080"
		region = "ap-guangzhou"
		role   = "role:deployer"
	)
	base := AccountKey(action, ep, region, role)
	if want := Key(action, ep+"|"+region, role); base != want {
		t.Errorf("AccountKey = %q; want the hand-built %q (running workers share budgets across an upgrade)", base, want)
	}
	if got, want := AccountKey(action, "", region, role), Key(action, "default|"+region, role); got != want {
		t.Errorf("AccountKey with the default endpoint = %q; want %q", got, want)
	}
	for _, tc := range []struct {
		name                           string
		action, endpoint, region, cred string
		same                           bool
	}{
		{name: "deterministic", action: action, endpoint: ep, region: region, cred: role, same: true},
		{name: "endpoint_case", action: action, endpoint: "HTTP://127.0.0.1:8080", region: region, cred: role, same: true},
		{name: "other_action", action: "DescribeInstances", endpoint: ep, region: region, cred: role},
		{name: "other_endpoint", action: action, endpoint: "http://127.0.0.1:8081", region: region, cred: role},
		{name: "default_endpoint", action: action, endpoint: "", region: region, cred: role},
		{name: "other_region", action: action, endpoint: ep, region: "ap-shanghai", cred: role},
		{name: "other_identity", action: action, endpoint: ep, region: region, cred: "role:other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := AccountKey(tc.action, tc.endpoint, tc.region, tc.cred)
			if (got == base) != tc.same {
				t.Errorf("AccountKey(%q, %q, %q, %q) = %q; base %q; want same = %v", tc.action, tc.endpoint, tc.region, tc.cred, got, base, tc.same)
			}
			if strings.Contains(got, "deployer") {
				t.Errorf("AccountKey = %q holds the identity in clear text", got)
			}
		})
	}
}

// TestCredentialNotInRedis plants a credential ID, uses both methods on its
// key, and greps everything the limiter wrote.
func TestCredentialNotInRedis(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	const cred = "AKIDplantedCredentialID0123456789"
	ctx := context.Background()
	l := NewRedis(r.Client, Config{Prefix: r.Prefix})
	key := Key("ResetInstance", "cvm.ap-guangzhou.tencentcloudapi.com", cred)
	if _, err := l.Wait(ctx, key, 10); err != nil {
		t.Fatal(err)
	}
	if err := l.Throttled(ctx, key); err != nil {
		t.Fatal(err)
	}
	keys, err := r.Client.Keys(ctx, r.Prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		vals, err := r.Client.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		dump := k + " " + strings.Join(mapPairs(vals), " ")
		if strings.Contains(dump, cred) || strings.Contains(dump, "planted") {
			t.Errorf("Redis holds the credential ID: %s", dump)
		}
	}
}

func mapPairs(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k, v)
	}
	return out
}

// TestImports keeps ratelimit a leaf: it imports go-redis, x/time/rate,
// the clock seam and the standard library, and nothing it depends on
// reaches asynq or another fleetreset package.
func TestImports(t *testing.T) {
	goList := func(format string) []string {
		t.Helper()
		out, err := exec.Command("go", "list", "-deps", "-f", format, ".").Output()
		if err != nil {
			t.Fatalf("go list -deps: %v", err)
		}
		return strings.Fields(string(out))
	}
	direct := map[string]bool{
		"github.com/fleetreset/fleetreset/internal/clock": true,
		"github.com/redis/go-redis/v9":                    true,
		"golang.org/x/time/rate":                          true,
	}
	// Direct imports of this package only; standard packages have no dot.
	for _, imp := range goList(`{{if eq .ImportPath "github.com/fleetreset/fleetreset/ratelimit"}}{{join .Imports " "}}{{end}}`) {
		if strings.Contains(strings.Split(imp, "/")[0], ".") && !direct[imp] {
			t.Errorf("ratelimit imports %s; want only go-redis, x/time/rate, internal/clock and the standard library", imp)
		}
	}
	for _, dep := range goList("{{.ImportPath}}") {
		switch {
		case strings.HasPrefix(dep, "github.com/hibiken/"):
			t.Errorf("ratelimit depends on %s; it must not depend on asynq", dep)
		case strings.HasPrefix(dep, "github.com/fleetreset/fleetreset/") &&
			dep != "github.com/fleetreset/fleetreset/ratelimit" &&
			dep != "github.com/fleetreset/fleetreset/internal/clock":
			t.Errorf("ratelimit depends on %s; the only fleetreset package it may use is internal/clock", dep)
		}
	}
}
