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
