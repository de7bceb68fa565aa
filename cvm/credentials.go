package cvm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
)

// Environment variables read by CredentialsFromEnv; the same names the
// Tencent Cloud SDKs and tccli use.
const (
	EnvSecretID     = "TENCENTCLOUD_SECRET_ID"
	EnvSecretKey    = "TENCENTCLOUD_SECRET_KEY"
	EnvSessionToken = "TENCENTCLOUD_SESSION_TOKEN"
)

// ErrNoCredentials is returned when no source yields credentials.
var ErrNoCredentials = errors.New("cvm: no credentials")

// CredentialProvider supplies the credentials each request is signed with.
// A client asks it before every request, so credentials that rotate (a CVM
// role, STS) are picked up without building a new client. Implementations
// are safe for concurrent use; their errors never contain a secret.
type CredentialProvider interface {
	// Credentials returns the credentials to sign a request with now.
	Credentials(ctx context.Context) (Credentials, error)
	// Identity names the account key in a way that does not change when
	// the credentials rotate: the SecretID of a static key, "role:<name>"
	// for a CVM role. Rate-limit budgets are keyed by it. It is not a
	// secret, but callers hash it before storing it.
	Identity() string
}

// Refresher is implemented by providers whose credentials rotate. A client
// calls Refresh after the cloud refused credentials for a reason rotation
// explains (token expired, key unknown), passing the credentials it signed
// with: Refresh returns newer ones, fetching them if the provider has none
// newer than stale. It returns stale itself when the source has nothing
// newer either, and the client then gives up.
type Refresher interface {
	Refresh(ctx context.Context, stale Credentials) (Credentials, error)
}

// StaticProvider returns a provider of fixed credentials; its Identity is
// c.SecretID.
func StaticProvider(c Credentials) CredentialProvider { return staticProvider{c} }

type staticProvider struct{ c Credentials }

func (p staticProvider) Credentials(context.Context) (Credentials, error) { return p.c, nil }
func (p staticProvider) Identity() string                                 { return p.c.SecretID }

// EnvProvider reads TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY and
// TENCENTCLOUD_SESSION_TOKEN on every call (see CredentialsFromEnv). With
// a Prefix it reads PREFIX_SECRET_ID, PREFIX_SECRET_KEY and PREFIX_TOKEN
// instead: one process can hold the keys of several accounts. Its Identity
// is the SecretID in the environment.
type EnvProvider struct {
	// Prefix names the variables; "" is the SDK's TENCENTCLOUD_ names.
	Prefix string
}

// names returns the ID, key and token variables.
func (p EnvProvider) names() (id, key, token string) {
	if p.Prefix == "" {
		return EnvSecretID, EnvSecretKey, EnvSessionToken
	}
	return p.Prefix + "_SECRET_ID", p.Prefix + "_SECRET_KEY", p.Prefix + "_TOKEN"
}

// Credentials returns the credentials in the environment.
func (p EnvProvider) Credentials(context.Context) (Credentials, error) {
	return credentialsFromEnv(p.names())
}

// Identity returns the SecretID in the environment.
func (p EnvProvider) Identity() string {
	id, _, _ := p.names()
	return os.Getenv(id)
}

// CredentialsFromEnv reads TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY
// and, optionally, TENCENTCLOUD_SESSION_TOKEN. It fails, wrapping
// ErrNoCredentials, when the ID or key is unset or empty; the error names
// the variable, never its value.
func CredentialsFromEnv() (Credentials, error) {
	return credentialsFromEnv(EnvSecretID, EnvSecretKey, EnvSessionToken)
}

func credentialsFromEnv(idVar, keyVar, tokenVar string) (Credentials, error) {
	id, key := os.Getenv(idVar), os.Getenv(keyVar)
	switch {
	case id == "":
		return Credentials{}, fmt.Errorf("%w: %s is not set", ErrNoCredentials, idVar)
	case key == "":
		return Credentials{}, fmt.Errorf("%w: %s is not set", ErrNoCredentials, keyVar)
	}
	return Credentials{SecretID: id, SecretKey: Secret(key), Token: Secret(os.Getenv(tokenVar))}, nil
}

// ProfileProvider reads the SDK's profile file once
// (TENCENTCLOUD_CREDENTIALS_FILE or ~/.tencentcloud/credentials, section
// default) and returns a static provider of its key.
func ProfileProvider() (CredentialProvider, error) {
	cred, err := common.DefaultProfileProvider().GetCredential()
	if err != nil {
		// SDK profile errors name the file, not the secret.
		return nil, fmt.Errorf("%w: profile file: %v", ErrNoCredentials, err)
	}
	id, key, token := cred.GetCredential()
	if id == "" || key == "" {
		return nil, fmt.Errorf("%w: profile file has an empty key", ErrNoCredentials)
	}
	return StaticProvider(Credentials{SecretID: id, SecretKey: Secret(key), Token: Secret(token)}), nil
}

// DefaultProvider returns the first source that yields credentials: the
// environment (EnvProvider, when TENCENTCLOUD_SECRET_ID and _KEY are set),
// the SDK's profile file, then the CVM instance role from the metadata
// service (a RoleProvider with default settings, which refreshes the
// role's temporary credentials before they expire). The error names every
// source tried, never a secret.
func DefaultProvider(ctx context.Context) (CredentialProvider, error) {
	envErr := error(nil)
	if _, envErr = CredentialsFromEnv(); envErr == nil {
		return EnvProvider{}, nil
	}
	p, profErr := ProfileProvider()
	if profErr == nil {
		return p, nil
	}
	r, roleErr := NewRoleProvider(ctx, RoleConfig{})
	if roleErr == nil {
		return r, nil
	}
	return nil, fmt.Errorf("%w: environment: %s; %s; CVM role: %s", ErrNoCredentials,
		strings.TrimPrefix(envErr.Error(), ErrNoCredentials.Error()+": "),
		strings.TrimPrefix(profErr.Error(), ErrNoCredentials.Error()+": "),
		strings.TrimPrefix(roleErr.Error(), ErrNoCredentials.Error()+": "))
}

// NoCredentials is the provider of a process that has no default
// credentials (DefaultProvider failed with Err), for plans whose every group
// names an account: any use fails with Err, and its Identity is empty.
type NoCredentials struct{ Err error }

// Credentials returns the error DefaultProvider gave.
func (n NoCredentials) Credentials(context.Context) (Credentials, error) {
	if n.Err == nil {
		return Credentials{}, ErrNoCredentials
	}
	return Credentials{}, n.Err
}

// Identity is empty: there is no key.
func (NoCredentials) Identity() string { return "" }

// DefaultOrNone is DefaultProvider, or NoCredentials carrying its error when
// the process has none.
func DefaultOrNone(ctx context.Context) CredentialProvider {
	p, err := DefaultProvider(ctx)
	if err != nil {
		return NoCredentials{Err: err}
	}
	return p
}

// DefaultCredentials returns one snapshot of DefaultProvider's credentials.
// Role credentials are temporary: a process running longer than their
// lifetime (hours) must use DefaultProvider instead.
func DefaultCredentials() (Credentials, error) {
	p, err := DefaultProvider(context.Background())
	if err != nil {
		return Credentials{}, err
	}
	return p.Credentials(context.Background())
}
