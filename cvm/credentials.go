package cvm

import (
	"errors"
	"fmt"
	"os"

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

// CredentialsFromEnv reads TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY
// and, optionally, TENCENTCLOUD_SESSION_TOKEN. It fails, wrapping
// ErrNoCredentials, when the ID or key is unset or empty; the error names
// the variable, never its value.
func CredentialsFromEnv() (Credentials, error) {
	id, key := os.Getenv(EnvSecretID), os.Getenv(EnvSecretKey)
	switch {
	case id == "":
		return Credentials{}, fmt.Errorf("%w: %s is not set", ErrNoCredentials, EnvSecretID)
	case key == "":
		return Credentials{}, fmt.Errorf("%w: %s is not set", ErrNoCredentials, EnvSecretKey)
	}
	return Credentials{SecretID: id, SecretKey: Secret(key), Token: Secret(os.Getenv(EnvSessionToken))}, nil
}

// DefaultCredentials tries CredentialsFromEnv, then the SDK's profile file
// (TENCENTCLOUD_CREDENTIALS_FILE or ~/.tencentcloud/credentials, section
// default), then the CVM instance role from the metadata service (only
// reachable on a CVM instance). Role credentials are temporary: the result
// is a snapshot, so a process running longer than their lifetime (hours)
// must fetch again. Errors never contain secret values.
func DefaultCredentials() (Credentials, error) {
	if c, err := CredentialsFromEnv(); err == nil {
		return c, nil
	}
	chain := common.NewProviderChain([]common.Provider{
		common.DefaultProfileProvider(),
		common.DefaultCvmRoleProvider(),
	})
	cred, err := chain.GetCredential()
	if err != nil {
		// SDK credential errors describe the source (file path, metadata
		// failure), not the secret.
		return Credentials{}, fmt.Errorf("%w: environment, profile file and CVM role: %v", ErrNoCredentials, err)
	}
	id, key, token := cred.GetCredential()
	if id == "" || key == "" {
		return Credentials{}, fmt.Errorf("%w: provider returned an empty key", ErrNoCredentials)
	}
	return Credentials{SecretID: id, SecretKey: Secret(key), Token: Secret(token)}, nil
}
