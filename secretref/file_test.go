package secretref

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadFileOnlyRegular: a plan's files are read only when regular and
// not huge; a FIFO is refused at once instead of blocking, /dev/zero
// instead of growing without end (issue 15).
func TestReadFileOnlyRegular(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "pw.txt")
	if err := os.WriteFile(regular, []byte("Passw0rd-ok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxFileSize + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	link := filepath.Join(dir, "zero-link")
	if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
	}{
		{regular, ""},
		{dir, "is not a regular file (a directory)"},
		{fifo, "is not a regular file (a named pipe)"},
		{"/dev/zero", "is not a regular file (a device)"},
		{link, "is not a regular file (a device)"},
		{huge, "more than the"},
		{filepath.Join(dir, "missing"), "no such file"},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			data, err := ReadFile(tc.path)
			if tc.want == "" {
				if err != nil || string(data) != "Passw0rd-ok\n" {
					t.Fatalf("ReadFile = %q, %v", data, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadFile(%s) = %d bytes, %v; want an error saying %q", tc.path, len(data), err, tc.want)
			}
		})
	}
}
