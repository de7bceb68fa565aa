package secretref

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// MaxFileSize is the most ReadFile reads: far above any plan, instances
// file (200,000 instances take about 3 MB) or password file.
const MaxFileSize = 64 << 20

// ReadFile reads a file that a plan names (the plan itself, an instances
// file, a password file). Only a regular file of at most MaxFileSize bytes
// is read: a FIFO would block for ever, /dev/zero would grow without end,
// and a device or directory is never what was meant. The file is opened
// without blocking and checked on the open descriptor, so a file swapped
// after a check cannot slip through. Errors name the path, never content.
func ReadFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, kind(fi.Mode()))
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d a plan's file may have", path, fi.Size(), MaxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s grew past %d bytes while read", path, MaxFileSize)
	}
	return data, nil
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "mode " + m.String()
}
