package chaos

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var longFlag = flag.Bool("chaos.long", false, "run the long form of the chaos tests (also FLEETRESET_CHAOS_LONG=1)")

// long reports whether the long form runs.
func long() bool { return *longFlag || os.Getenv("FLEETRESET_CHAOS_LONG") == "1" }

// bin is the fleetreset binary built by TestMain.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "fleetreset-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "fleetreset")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/fleetreset").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: go build ../cmd/fleetreset: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// size picks the short or the long form of a parameter.
func size[T any](short, lng T) T {
	if long() {
		return lng
	}
	return short
}
