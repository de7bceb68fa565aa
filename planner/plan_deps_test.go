package planner

import (
	goparser "go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/ratelimit"
)

const module = "github.com/fleetreset/fleetreset/"

// TestDeps enforces the dependency arrows (house style: layout and
// dependency direction): planner never reaches worker, cvm or cvmsim;
// rollout is stdlib only; secretref is stdlib and rollout only.
func TestDeps(t *testing.T) {
	tests := []struct {
		pkg    string
		banned func(dep string) bool
		why    string
	}{
		{
			pkg: module + "planner",
			banned: func(dep string) bool {
				return dep == module+"worker" || dep == module+"cvm" || dep == module+"cvmsim"
			},
			why: "the planner must not depend on the workers or an API client",
		},
		{
			pkg:    module + "rollout",
			banned: func(string) bool { return true }, // go list printed it, so it is not stdlib
			why:    "rollout is pure wave math: stdlib only",
		},
		{
			pkg:    module + "secretref",
			banned: func(dep string) bool { return dep != module+"rollout" },
			why:    "workers import secretref: stdlib and rollout only",
		},
	}
	for _, tt := range tests {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", tt.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", tt.pkg, err, out)
		}
		for dep := range strings.FieldsSeq(string(out)) {
			if dep != tt.pkg && tt.banned(dep) {
				t.Errorf("%s depends on %s: %s", tt.pkg, dep, tt.why)
			}
		}
	}
}

// TestParseImports keeps plan parsing free of the queue: the files that
// read plans import only the standard library, rollout, secretref and
// yaml.v3, so that a plan can be validated without Redis or asynq (apply.go,
// which enqueues, is the only planner file allowed more).
func TestParseImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{module + "rollout": true, module + "secretref": true, "gopkg.in/yaml.v3": true,
		module + "tasks/schedule": true} // the runtime's schedule parser, no queue
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasPrefix(file, "apply") || strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := goparser.ParseFile(fset, file, nil, goparser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains(path, ".") && !allowed[path] {
				t.Errorf("%s imports %s; plan parsing may use only the stdlib, rollout, secretref and yaml.v3", file, path)
			}
		}
	}
}

// TestMaxRateIsTheLimiters: a plan may ask for exactly what the workers'
// limiter supports.
func TestMaxRateIsTheLimiters(t *testing.T) {
	if MaxRate != ratelimit.MaxRate {
		t.Errorf("planner.MaxRate %v, ratelimit.MaxRate %v; they must agree", MaxRate, ratelimit.MaxRate)
	}
}
