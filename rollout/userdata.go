package rollout

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// MaxUserData is the most a group's UserData may take base64-encoded:
// ResetInstance's UserData limit, 16 KB.
const MaxUserData = 16 << 10

// UserData is a group's ResetInstance UserData by reference: the file the
// worker reads at call time and the SHA-256 of the content the plan was
// checked with. The content may hold secrets, so it is never stored; the
// hash pins it, so a file edited after apply is refused rather than sent.
type UserData struct {
	// File is the absolute path of the file.
	File string `json:"file"`
	// SHA256 is the hex SHA-256 of the file's content at plan time.
	SHA256 string `json:"sha256"`
}

// UserDataHash returns the hex SHA-256 UserData.SHA256 holds for data.
func UserDataHash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// UserDataProblem says what is wrong with data as UserData, or "".
func UserDataProblem(data []byte) string {
	if n := base64.StdEncoding.EncodedLen(len(data)); n > MaxUserData {
		return fmt.Sprintf("is %d bytes, %d base64-encoded: ResetInstance takes at most %d (16 KB) base64-encoded", len(data), n, MaxUserData)
	}
	return ""
}

// Read reads u's file with readFile and checks it against the hash and
// the size limit. A nil u reads nothing. Errors name the file, never the
// content.
func (u *UserData) Read(readFile func(string) ([]byte, error)) ([]byte, error) {
	if u == nil {
		return nil, nil
	}
	data, err := readFile(u.File)
	if err != nil {
		return nil, fmt.Errorf("userData %s: %w", u.File, err)
	}
	if UserDataHash(data) != u.SHA256 {
		return nil, fmt.Errorf("userData %s changed since the plan was applied (sha256 %.12s..., planned %.12s...): restore it, or apply a new plan", u.File, UserDataHash(data), u.SHA256)
	}
	if msg := UserDataProblem(data); msg != "" {
		return nil, fmt.Errorf("userData %s %s", u.File, msg)
	}
	return data, nil
}

// WantsAutomationAgent reports whether resets of g ask for the TAT agent
// (EnhancedService.AutomationService): the plan said automationAgent, or a
// command hook or a tat health check needs the agent after the reinstall.
func (g Group) WantsAutomationAgent() bool {
	if g.AutomationAgent {
		return true
	}
	for _, h := range append(append([]Hook(nil), g.Hooks.Before...), g.Hooks.After...) {
		if h.Command != nil {
			return true
		}
	}
	if g.Health != nil {
		for _, c := range g.Health.Checks {
			if c.Kind == CheckAgent {
				return true
			}
		}
	}
	return false
}
