package fleetreset_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDependencyArrows keeps the package graph pointing one way: each row
// names imports a package must never have, directly or through others.
func TestDependencyArrows(t *testing.T) {
	const mod = "github.com/fleetreset/fleetreset/"
	rules := []struct {
		pkg    string
		banned []string
		why    string
	}{
		{"cvmsim", []string{mod + "cvm", "github.com/tencentcloud/"}, "the simulator must not share code with the client, or a client bug would be mirrored and pass"},
		{"cvm", []string{"github.com/hibiken/asynq", "github.com/redis/go-redis", mod + "tasks", mod + "worker", mod + "ratelimit", mod + "cvmsim", mod + "ledger"}, "the API client knows nothing of queues"},
		{"tasks", []string{mod + "worker", mod + "planner", mod + "cvm", mod + "ledger", mod + "engine"}, "task definitions are shared by planner and worker"},
		{"tasks/schedule", []string{"github.com/hibiken/asynq", "github.com/redis/go-redis"}, "plans validate their schedule without the queue"},
		{"rollout", []string{"github.com/hibiken/asynq", "github.com/redis/go-redis", mod + "cvm", mod + "ledger", "net/http"}, "wave math is pure"},
		{"ledger", []string{"github.com/hibiken/asynq", mod + "worker", mod + "planner", mod + "cvm"}, "the ledger is storage only"},
		{"ratelimit", []string{"github.com/hibiken/asynq", mod + "tasks", mod + "cvm"}, "the limiter knows nothing of tasks"},
		{"planner", []string{mod + "worker", mod + "cvm", mod + "cvmsim", mod + "ledger", mod + "engine", "github.com/hibiken/asynq", "github.com/redis/go-redis"}, "planning is parse and validate: it reads files and writes nothing"},
		{"worker", []string{mod + "planner", mod + "cvmsim", mod + "internal/cli"}, "workers run tasks, not plans"},
		{"engine", []string{mod + "worker", mod + "planner", mod + "cvm"}, "engine commands work without an API client"},
		{"secretref", []string{"github.com/hibiken/asynq", "github.com/redis/go-redis"}, "secrets never go near Redis"},
		{"web", []string{mod + "worker", mod + "planner", mod + "cvm", mod + "cvmsim", mod + "internal/cli"}, "the UI reads the ledger and acts through engine only"},
		{"metrics", []string{mod + "planner", mod + "cvm", mod + "cvmsim", "github.com/hibiken/asynq/x", "github.com/go-redis/redis/v8"}, "metrics read Redis and are told by workers"},
		{"journal", []string{"github.com/hibiken/asynq", mod + "worker", mod + "cvm"}, "the journal is a local file read into ledger seeds"},
		{"health", []string{"github.com/hibiken/asynq", "github.com/redis/go-redis", mod + "ledger", mod + "engine", mod + "worker", mod + "planner", mod + "cvm", mod + "cvmsim", mod + "tasks"}, "probing knows instances by their facts; the worker adapts the cvm client to its readers"},
		{"alarm", []string{"github.com/hibiken/asynq", "github.com/redis/go-redis", mod + "ledger", mod + "engine", mod + "worker", mod + "planner", mod + "cvm", mod + "cvmsim", mod + "tasks"}, "alarms are read through a small interface the worker adapts to the cvm client"},
		{"hook", []string{"github.com/hibiken/asynq", "github.com/redis/go-redis", mod + "ledger", mod + "engine", mod + "worker", mod + "planner", mod + "cvm", mod + "cvmsim", mod + "tasks"}, "hooks run through small interfaces the worker adapts to the cvm client and the ledger"},
		{"internal/redisfit", []string{"github.com/hibiken/asynq", "github.com/prometheus/", mod + "ledger", mod + "metrics", mod + "worker"}, "judging a Redis needs go-redis only; metrics and the CLI plug into it"},
	}
	for _, r := range rules {
		out, err := exec.Command("go", "list", "-deps", "./"+r.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps ./%s: %v\n%s", r.pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range r.banned {
				if dep == b || strings.HasPrefix(dep, strings.TrimSuffix(b, "/")+"/") || (strings.HasSuffix(b, "/") && strings.HasPrefix(dep, b)) {
					t.Errorf("%s depends on %s: %s", r.pkg, dep, r.why)
				}
			}
		}
	}
}

// TestCmdIsThin keeps cmd/fleetreset a thin main over internal/cli.
func TestCmdIsThin(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{join .Imports \" \"}}", "./cmd/fleetreset").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, imp := range strings.Fields(string(out)) {
		if strings.HasPrefix(imp, "github.com/fleetreset/fleetreset/") && imp != "github.com/fleetreset/fleetreset/internal/cli" {
			t.Errorf("cmd/fleetreset imports %s; commands belong in internal/cli", imp)
		}
	}
}

// TestHarnessOnlyInTests keeps internal/testfleet, the shared end-to-end
// test harness, out of every build but tests': no package's own (non-test)
// files depend on it, directly or through others.
func TestHarnessOnlyInTests(t *testing.T) {
	const harness = "github.com/fleetreset/fleetreset/internal/testfleet"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		pkg, deps, _ := strings.Cut(strings.TrimSpace(line), " ")
		if pkg != harness && slices.Contains(strings.Fields(deps), harness) {
			t.Errorf("%s depends on %s outside its tests; the harness is for _test.go files only", pkg, harness)
		}
	}
}
