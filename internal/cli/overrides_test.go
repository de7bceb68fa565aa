package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/hibiken/asynq"
)

// Passwords for override tests: v3LinuxOnly passes the v3 Linux rules (8-30)
// and breaks v2's (8-16); bothAPIs passes both.
const (
	v3LinuxOnly = "Passw0rd-17chars!"
	bothAPIs    = "Good-Passw0rd"
)

// overridePlan writes a v3 plan (no api key: the default) whose password is
// the environment variable PLAN_PW, and returns its path. The password
// reference is on line 5.
func overridePlan(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".yaml")
	plan := fmt.Sprintf("version: 1\nname: %s\nregion: ap-guangzhou\nimage: {type: 1, id: img-new00001}\npassword: {env: PLAN_PW}\nwaves: [1, 100%%]\ngroups:\n  - name: web\n    instances: [ins-aaaaaaa1, ins-aaaaaaa2]\n", name)
	if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// overrideEnv is testEnv with PLAN_PW set to pw for password references.
func overrideEnv(vars map[string]string, pw string) (*Env, *syncBuffer, *syncBuffer) {
	env, out, errb := testEnv(vars)
	env.LookupEnv = func(k string) (string, bool) {
		if k == "PLAN_PW" {
			return pw, true
		}
		return "", false
	}
	return env, out, errb
}

// TestOverrideAPIValidatesPlan (issue 14.3): every command that reads a plan
// validates it under the API that --api makes effective, so a password that
// suits the plan's v3 but not v2 stops `--api v2` before anything starts,
// with the plan file, line and field and the override named.
func TestOverrideAPIValidatesPlan(t *testing.T) {
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr}
	path := overridePlan(t, "override-v2")
	// Without the override the plan is good.
	env, out, errb := overrideEnv(vars, v3LinuxOnly)
	if code := Main(t.Context(), env, []string{"validate", path}); code != 0 {
		t.Fatalf("validate without --api exited %d\n%s\n%s", code, out, errb)
	}
	wantMsg := path + ":5: password: env PLAN_PW: password breaks the CVM rules (api v2, linux): must be 8-16 characters long (group web runs linux) (api v2 from --api)"
	tests := []struct {
		name string
		args []string
	}{
		{"validate", []string{"validate", "--api", "v2", path}},
		{"plan", []string{"plan", "--offline", "--api", "v2", path}},
		{"apply", []string{"apply", "--namespace", ns, "--no-preflight", "--api", "v2", path}},
		{"run", []string{"run", "--simulate", "--namespace", ns, "--state-dir", t.TempDir(), "--api", "v2", path}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, out, errb := overrideEnv(vars, v3LinuxOnly)
			started := false
			env.Hooks = &Hooks{Simulator: func(*cvmsim.Server, string) { started = true }}
			code := Main(t.Context(), env, tt.args)
			if code != exitFailed {
				t.Errorf("%s exited %d; want %d\nstdout:\n%s\nstderr:\n%s", tt.name, code, exitFailed, out, errb)
			}
			if !strings.Contains(errb.String(), wantMsg) {
				t.Errorf("%s stderr lacks\n  %s\ngot:\n%s", tt.name, wantMsg, errb)
			}
			if strings.Contains(errb.String()+out.String(), v3LinuxOnly) {
				t.Errorf("%s printed the password", tt.name)
			}
			if started {
				t.Errorf("%s started a simulator for a plan that is bad under --api v2", tt.name)
			}
		})
	}
	insp := asynq.NewInspector(r.ConnOpt())
	defer insp.Close()
	if n := queueTotal(t, insp, ns); n != 0 {
		t.Errorf("a plan bad under its override enqueued %d tasks", n)
	}
	if keys, _ := r.Client.Keys(t.Context(), ns+":*").Result(); len(keys) != 0 {
		t.Errorf("a plan bad under its override wrote keys: %v", keys)
	}
}
