package cvm_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/cvm"
)

func TestEnvProviderPrefix(t *testing.T) {
	t.Setenv("ACME_SECRET_ID", "AKIDacme")
	t.Setenv("ACME_SECRET_KEY", "acme-key")
	t.Setenv("ACME_TOKEN", "acme-token")
	p := cvm.EnvProvider{Prefix: "ACME"}
	c, err := p.Credentials(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.SecretID != "AKIDacme" || string(c.SecretKey) != "acme-key" || string(c.Token) != "acme-token" || p.Identity() != "AKIDacme" {
		t.Fatalf("got %q %q, identity %q", c.SecretID, c.Token, p.Identity())
	}
	_, err = cvm.EnvProvider{Prefix: "NONE"}.Credentials(context.Background())
	if !errors.Is(err, cvm.ErrNoCredentials) || !strings.Contains(err.Error(), "NONE_SECRET_ID") {
		t.Fatalf("err = %v, want ErrNoCredentials naming NONE_SECRET_ID", err)
	}
}

func TestNamedProfileProvider(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials")
	ini := "[default]\nsecret_id = AKIDdef\nsecret_key = def\n\n[prod]\nsecret_id = AKIDprod\nsecret_key = prod-key\n"
	if err := os.WriteFile(path, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TENCENTCLOUD_CREDENTIALS_FILE", path)
	p, err := cvm.NamedProfileProvider("prod")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.Credentials(context.Background())
	if c.SecretID != "AKIDprod" || string(c.SecretKey) != "prod-key" {
		t.Fatalf("prod = %q", c.SecretID)
	}
	_, err = cvm.NamedProfileProvider("staging")
	if !errors.Is(err, cvm.ErrNoCredentials) || !strings.Contains(err.Error(), "[staging]") || strings.Contains(err.Error(), "prod-key") {
		t.Fatalf("err = %v", err)
	}
}
