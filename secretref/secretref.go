package secretref

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/fleetreset/fleetreset/rollout"
)

var (
	// ErrUnset means the referenced environment variable is not set.
	ErrUnset = errors.New("is not set")
	// ErrEmpty means the referenced secret is the empty string.
	ErrEmpty = errors.New("is empty")
	// ErrBadRef means the reference names neither or both of env and file.
	ErrBadRef = errors.New("bad secret reference")
	// ErrBadPassword means a password breaks the rules of its API
	// generation and OS (CheckPassword).
	ErrBadPassword = errors.New("password breaks the CVM rules")
)

// Resolve returns the secret ref names. lookupEnv and readFile default to
// os.LookupEnv and ReadFile when nil. A file holds the secret on one
// line; one trailing "\n" or "\r\n" is removed, and a second line is an
// error (it is almost always a mistake, and no CVM password contains a line
// break). Errors name the reference, never the value.
func Resolve(ref rollout.SecretRef, lookupEnv func(string) (string, bool), readFile func(string) ([]byte, error)) (string, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if readFile == nil {
		readFile = ReadFile
	}
	switch {
	case (ref.Env == "") == (ref.File == ""):
		return "", fmt.Errorf("secretref: %w: set exactly one of env and file", ErrBadRef)
	case ref.Env != "":
		v, ok := lookupEnv(ref.Env)
		if !ok {
			return "", fmt.Errorf("secretref: env %s %w", ref.Env, ErrUnset)
		}
		if v == "" {
			return "", fmt.Errorf("secretref: env %s %w", ref.Env, ErrEmpty)
		}
		return v, nil
	}
	data, err := readFile(ref.File)
	if err != nil {
		// os errors carry the path and the cause, never file content.
		return "", fmt.Errorf("secretref: %w", err)
	}
	s := string(data)
	s = strings.TrimSuffix(s, "\n")
	s = strings.TrimSuffix(s, "\r")
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("secretref: file %s has more than one line", ref.File)
	}
	if s == "" {
		return "", fmt.Errorf("secretref: file %s %w", ref.File, ErrEmpty)
	}
	return s, nil
}
