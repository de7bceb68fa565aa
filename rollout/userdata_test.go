package rollout

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestUserDataRead(t *testing.T) {
	content := []byte("#cloud-config\n")
	files := map[string][]byte{"/p/ci.yaml": content, "/p/big": make([]byte, 12<<10+1)}
	read := func(p string) ([]byte, error) {
		if b, ok := files[p]; ok {
			return b, nil
		}
		return nil, fs.ErrNotExist
	}
	tests := []struct {
		name string
		u    *UserData
		want string // "" for success
	}{
		{"nil", nil, ""},
		{"ok", &UserData{File: "/p/ci.yaml", SHA256: UserDataHash(content)}, ""},
		{"changed", &UserData{File: "/p/ci.yaml", SHA256: UserDataHash([]byte("old"))}, "changed since the plan was applied"},
		{"missing", &UserData{File: "/p/gone", SHA256: "x"}, "file does not exist"},
		{"too_big", &UserData{File: "/p/big", SHA256: UserDataHash(files["/p/big"])}, "at most 16384"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.u.Read(read)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.want == "" && tt.u != nil && string(got) != string(content):
				t.Errorf("got %q", got)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v; want %q", err, tt.want)
			}
			if tt.name == "missing" && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("err %v does not wrap the read error", err)
			}
		})
	}
}

func TestWantsAutomationAgent(t *testing.T) {
	tests := []struct {
		name string
		g    Group
		want bool
	}{
		{"none", Group{}, false},
		{"said", Group{AutomationAgent: true}, true},
		{"command_hook", Group{Hooks: Hooks{After: []Hook{{Name: "warm", Command: &CommandHook{}}}}}, true},
		{"webhook_only", Group{Hooks: Hooks{Before: []Hook{{Name: "lb", Webhook: &WebhookHook{}}}}}, false},
		{"tat_check", Group{Health: &Health{Checks: []Check{{Kind: CheckHTTP}, {Kind: CheckAgent}}}}, true},
		{"http_check", Group{Health: &Health{Checks: []Check{{Kind: CheckHTTP}}}}, false},
	}
	for _, tt := range tests {
		if got := tt.g.WantsAutomationAgent(); got != tt.want {
			t.Errorf("%s: %v; want %v", tt.name, got, tt.want)
		}
	}
}
