//go:build linux

package health_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/fleetreset/fleetreset/health"
	"github.com/fleetreset/fleetreset/rollout"
)

// blackholeAddr returns a loopback address whose connects hang: a socket
// listening with a backlog of 0 whose one queue slot is taken and never
// accepted, so the kernel drops further SYNs like a firewall would.
func blackholeAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	filler, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	return addr
}

func TestProbeConnectTimeout(t *testing.T) {
	t.Parallel()
	addr := blackholeAddr(t)
	for _, c := range []rollout.Check{
		{Kind: "tcp", Address: addr},
		{Kind: "http", URL: "http://" + addr + "/healthz"},
	} {
		got := probe(t, &health.Prober{}, c, facts)
		if got.Verdict != health.Fail || got.Detail != "timeout after 300ms" {
			t.Errorf("probe(%s) = %v; want fail: timeout after 300ms", c.Kind, got)
		}
	}
}

// TestProbeOutOfDescriptors runs itself in a child process whose file
// descriptor limit is used up, so that the probe's socket() fails with
// EMFILE: the prober's trouble, not the instance's.
func TestProbeOutOfDescriptors(t *testing.T) {
	if os.Getenv("HEALTH_TEST_EMFILE") == "1" {
		emfileChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestProbeOutOfDescriptors$", "-test.v")
	cmd.Env = append(os.Environ(), "HEALTH_TEST_EMFILE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "probed out of descriptors") {
		t.Fatalf("child did not probe:\n%s", out)
	}
}

func emfileChild(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // also starts the poller, which needs an fd
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	maxFD := 0
	for _, e := range entries {
		var fd int
		fmt.Sscan(e.Name(), &fd)
		maxFD = max(maxFD, fd)
	}
	low := orig
	low.Cur = uint64(maxFD + 1)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	// Fill the gaps below the limit, so that no descriptor is left.
	var filler []*os.File
	for {
		f, err := os.Open("/dev/null")
		if err != nil {
			break
		}
		filler = append(filler, f)
	}
	h := rollout.Health{Checks: []rollout.Check{{Kind: "tcp", Address: ln.Addr().String()}}, Timeout: probeTimeout}
	got := (&health.Prober{}).ProbeAll(t.Context(), h, []health.Facts{facts})[0]
	for _, f := range filler {
		f.Close()
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	if got.Verdict != health.Inconclusive || got.Detail != "prober out of file descriptors" {
		t.Fatalf("probe = %v; want inconclusive: prober out of file descriptors", got)
	}
	t.Log("probed out of descriptors")
}
