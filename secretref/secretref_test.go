package secretref

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/rollout"
)

func TestResolve(t *testing.T) {
	env := map[string]string{"PW": "s3cret-Pass", "EMPTY": ""}
	files := map[string]string{
		"/pw":      "s3cret-Pass\n",
		"/pw-crlf": "s3cret-Pass\r\n",
		"/bare":    "s3cret-Pass",
		"/two":     "s3cret-Pass\nsecond\n",
		"/empty":   "\n",
	}
	lookupEnv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	readFile := func(p string) ([]byte, error) {
		v, ok := files[p]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		return []byte(v), nil
	}
	tests := []struct {
		name    string
		ref     rollout.SecretRef
		want    string
		wantErr error  // matched with errors.Is when set
		errText string // substring of the error when set
	}{
		{name: "env", ref: rollout.SecretRef{Env: "PW"}, want: "s3cret-Pass"},
		{name: "env-unset", ref: rollout.SecretRef{Env: "NOPE"}, wantErr: ErrUnset, errText: "env NOPE is not set"},
		{name: "env-empty", ref: rollout.SecretRef{Env: "EMPTY"}, wantErr: ErrEmpty},
		{name: "file", ref: rollout.SecretRef{File: "/pw"}, want: "s3cret-Pass"},
		{name: "file-crlf", ref: rollout.SecretRef{File: "/pw-crlf"}, want: "s3cret-Pass"},
		{name: "file-no-newline", ref: rollout.SecretRef{File: "/bare"}, want: "s3cret-Pass"},
		{name: "file-two-lines", ref: rollout.SecretRef{File: "/two"}, errText: "more than one line"},
		{name: "file-empty", ref: rollout.SecretRef{File: "/empty"}, wantErr: ErrEmpty},
		{name: "file-missing", ref: rollout.SecretRef{File: "/missing"}, wantErr: fs.ErrNotExist},
		{name: "neither", ref: rollout.SecretRef{}, wantErr: ErrBadRef},
		{name: "both", ref: rollout.SecretRef{Env: "PW", File: "/pw"}, wantErr: ErrBadRef},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.ref, lookupEnv, readFile)
			if tt.wantErr == nil && tt.errText == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Resolve(%v) = %q, %v; want %q, nil", tt.ref, got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Resolve(%v) = %q, nil; want error", tt.ref, got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Resolve(%v) error = %v; want %v", tt.ref, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("Resolve(%v) error = %q; want it to contain %q", tt.ref, err, tt.errText)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Resolve(%v) error %q leaks the secret", tt.ref, err)
			}
		})
	}
}

func TestResolveDefaultsToOS(t *testing.T) {
	t.Setenv("FLEETRESET_SECRETREF_TEST", "from-env")
	got, err := Resolve(rollout.SecretRef{Env: "FLEETRESET_SECRETREF_TEST"}, nil, nil)
	if err != nil || got != "from-env" {
		t.Errorf("Resolve with nil funcs = %q, %v; want from-env", got, err)
	}
}

func TestCheckPassword(t *testing.T) {
	tests := []struct {
		name, api, os, pw string
		ok                bool
	}{
		// v2 Linux: 8-16, 2 of {letters, digits, specials}; case does not count twice.
		{name: "v2-linux-ok", api: "v2", os: "linux", pw: "abcdef12", ok: true},
		{name: "v2-linux-7", api: "v2", os: "linux", pw: "abcde12", ok: false},
		{name: "v2-linux-16", api: "v2", os: "linux", pw: "abcdefgh12345678", ok: true},
		{name: "v2-linux-17", api: "v2", os: "linux", pw: "abcdefgh123456789", ok: false},
		{name: "v2-linux-cases-one-class", api: "v2", os: "linux", pw: "abcdEFGH", ok: false},
		{name: "v2-linux-pipe", api: "v2", os: "linux", pw: "abcdefg|", ok: true},
		{name: "v2-linux-underscore", api: "v2", os: "linux", pw: "abcdef_1", ok: false},
		// v2 Windows: 12-16, 3 of 4 classes, no pipe.
		{name: "v2-win-ok", api: "v2", os: "windows", pw: "Abcdefghij12", ok: true},
		{name: "v2-win-11", api: "v2", os: "windows", pw: "Abcdefghi12", ok: false},
		{name: "v2-win-17", api: "v2", os: "windows", pw: "Abcdefghij1234567", ok: false},
		{name: "v2-win-two-classes", api: "v2", os: "windows", pw: "abcdefghij12", ok: false},
		{name: "v2-win-pipe", api: "v2", os: "windows", pw: "Abcdefghij1|", ok: false},
		// v3 Linux: 8-30, 2 of 4 classes (upper and lower are two classes).
		{name: "v3-linux-cases", api: "v3", os: "linux", pw: "abcdEFGH", ok: true},
		{name: "v3-linux-one-class", api: "v3", os: "linux", pw: "abcdefgh", ok: false},
		{name: "v3-linux-30", api: "v3", os: "linux", pw: strings.Repeat("a1", 15), ok: true},
		{name: "v3-linux-31", api: "v3", os: "linux", pw: strings.Repeat("a1", 15) + "a", ok: false},
		{name: "v3-linux-space", api: "v3", os: "linux", pw: "abcd 1234", ok: false},
		{name: "v3-linux-nonascii", api: "v3", os: "linux", pw: "abcd1234é", ok: false},
		// v3 Windows: 12-30, 3 of 4, pipe allowed.
		{name: "v3-win-ok", api: "v3", os: "windows", pw: "Abcdefghij1|", ok: true},
		{name: "v3-win-17", api: "v3", os: "windows", pw: "Abcdefghij1234567", ok: true},
		{name: "v3-win-two-classes", api: "v3", os: "windows", pw: "ABCDEFGHIJ12", ok: false},
		{name: "unknown-api", api: "v1", os: "linux", pw: "abcdef12", ok: false},
		{name: "unknown-os", api: "v3", os: "bsd", pw: "abcdef12", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPassword(tt.api, tt.os, tt.pw)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckPassword(%s, %s, %q) = %v; want ok=%v", tt.api, tt.os, tt.pw, err, tt.ok)
			}
			if err != nil && strings.Contains(err.Error(), tt.pw) {
				t.Errorf("CheckPassword error %q leaks the password", err)
			}
		})
	}
}

func TestCheckPasswordMessage(t *testing.T) {
	err := CheckPassword("v2", "windows", "abcdefghij12")
	if !errors.Is(err, ErrBadPassword) {
		t.Fatalf("CheckPassword = %v; want ErrBadPassword", err)
	}
	want := "password breaks the CVM rules (api v2, windows): must mix at least 3 of: lower-case letters, upper-case letters, digits, special characters ()`~!@#$%^&*-+={}[]:;',.?/"
	if err.Error() != want {
		t.Errorf("CheckPassword error =\n%s\nwant\n%s", err, want)
	}
}
