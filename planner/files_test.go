package planner

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInstancesFileNeverEchoed: an instances file that is not one (the
// password file by mistake, /etc/shadow on purpose) is reported by line,
// never by content, and a flood of bad lines is capped (issue 15).
func TestInstancesFileNeverEchoed(t *testing.T) {
	dir := t.TempDir()
	const secret = "Sim-Passw0rd-ok"
	var shadow strings.Builder
	for i := range 120 {
		fmt.Fprintf(&shadow, "user%d:$6$salt$%sHASH%03d:19000:0:99999:7:::\n", i, secret, i)
	}
	for name, content := range map[string]string{"pw.txt": secret + "\n", "shadow": shadow.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		plan := fmt.Sprintf("version: 1\nname: echo\nregion: ap-guangzhou\nimage: {id: img-new00001}\nos: linux\nkeepImageLogin: true\ngroups:\n  - name: g\n    instancesFile: %s\nwaves: [100%%]\n", name)
		path := filepath.Join(dir, "plan-"+name+".yaml")
		if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path, Options{})
		if err == nil {
			t.Fatalf("%s: Load accepted a file of no instance ids", name)
		}
		msg := err.Error()
		if strings.Contains(msg, "Passw0rd") || strings.Contains(msg, "$6$") || strings.Contains(msg, "user1") {
			t.Errorf("%s: the error shows the file's content:\n%s", name, msg)
		}
		if !strings.Contains(msg, name+":1: groups[0].instancesFile:") {
			t.Errorf("%s: the error does not name the file and line:\n%s", name, msg)
		}
		if lines := strings.Count(msg, "\n") + 1; lines > MaxShownErrors+1 {
			t.Errorf("%s: %d error lines; want at most %d and a count of the rest", name, lines, MaxShownErrors+1)
		}
		if name == "shadow" && !strings.Contains(msg, "... and 70 more") {
			t.Errorf("shadow: no count of the errors left out:\n%s", msg[len(msg)-200:])
		}
	}
}

// TestSpecialFilesRefused: a plan naming a FIFO or /dev/zero as its
// instances file or password file fails at once with a clear error,
// instead of hanging or reading without end (issue 15).
func TestSpecialFilesRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ids.txt"), []byte("ins-aaaaaaa1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, group, password string }{
		{"instances-fifo", "instancesFile: " + fifo, ""},
		{"instances-zero", "instancesFile: /dev/zero", ""},
		{"password-fifo", "instancesFile: ids.txt", "password: {file: " + fifo + "}\n"},
		{"password-zero", "instancesFile: ids.txt", "password: {file: /dev/zero}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			login := "keepImageLogin: true\n"
			if tc.password != "" {
				login = tc.password
			}
			plan := fmt.Sprintf("version: 1\nname: special\nregion: ap-guangzhou\nimage: {id: img-new00001}\nos: linux\n%sgroups:\n  - name: g\n    %s\nwaves: [100%%]\n", login, tc.group)
			path := filepath.Join(dir, tc.name+".yaml")
			if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { _, err := Load(path, Options{ResolveSecrets: true}); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
					t.Errorf("Load = %v; want a refusal of the special file", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Load still reading after 10 s")
			}
		})
	}
}
