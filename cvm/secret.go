package cvm

import "log/slog"

// Secret is a string that never prints: String, GoString, LogValue,
// MarshalJSON and MarshalText all redact it. Read it with Reveal.
type Secret string

const redacted = "[REDACTED]"

// Reveal returns the secret itself. Call it only where the value goes on the wire.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string { return s.mask() }

// GoString keeps %#v from printing the secret.
func (s Secret) GoString() string { return s.mask() }

// LogValue keeps slog from printing the secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.mask()) }

// MarshalJSON keeps encoding/json from writing the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.mask() + `"`), nil }

// MarshalText keeps text encoders from writing the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.mask()), nil }

func (s Secret) mask() string {
	if s == "" {
		return ""
	}
	return redacted
}
