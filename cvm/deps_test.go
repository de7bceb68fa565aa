package cvm

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies enforces the layering of the house style: the client
// must not depend on the simulator (a client bug could then be mirrored
// instead of caught) nor on the queue, worker and limiter layers above it.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	banned := map[string]string{
		"github.com/fleetreset/fleetreset/cvmsim":    "the simulator is test-only; it must not mirror the client",
		"github.com/fleetreset/fleetreset/tasks":     "cvm sits below the task layer",
		"github.com/fleetreset/fleetreset/worker":    "cvm sits below the worker",
		"github.com/fleetreset/fleetreset/ratelimit": "rate limiting is the caller's job",
		"github.com/hibiken/asynq":                   "cvm knows nothing of the queue",
		"github.com/redis/go-redis/v9":               "cvm keeps no state",
	}
	for _, dep := range strings.Fields(string(out)) {
		if why, ok := banned[dep]; ok {
			t.Errorf("cvm depends on %s: %s", dep, why)
		}
	}
}
