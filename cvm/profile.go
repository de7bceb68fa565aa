package cvm

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
)

// NamedProfileProvider returns a static provider of the key in section
// name of the SDK's profile file (TENCENTCLOUD_CREDENTIALS_FILE or
// ~/.tencentcloud/credentials), read once. The SDK itself reads only the
// default section; "" or "default" is ProfileProvider. Errors name the file
// and section, never a secret.
func NamedProfileProvider(name string) (CredentialProvider, error) {
	if name == "" || name == "default" {
		return ProfileProvider()
	}
	path, ok := os.LookupEnv(common.EnvCredentialFile)
	if !ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("%w: profile %s: no home directory: %v", ErrNoCredentials, name, err)
		}
		path = filepath.Join(home, ".tencentcloud", "credentials")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: profile %s: %v", ErrNoCredentials, name, err)
	}
	kv := profileSection(data, name)
	id, key := kv["secret_id"], kv["secret_key"]
	if id == "" || key == "" {
		return nil, fmt.Errorf("%w: profile file %s: section [%s] lacks secret_id or secret_key", ErrNoCredentials, path, name)
	}
	return StaticProvider(Credentials{SecretID: id, SecretKey: Secret(key), Token: Secret(kv["token"])}), nil
}

// profileSection returns the key = value pairs of one [section] of an INI
// file.
func profileSection(data []byte, name string) map[string]string {
	out := map[string]string{}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && strings.HasSuffix(line, "]"):
			in = strings.TrimSpace(line[1:len(line)-1]) == name
		case in:
			if k, v, ok := strings.Cut(line, "="); ok {
				out[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	return out
}
