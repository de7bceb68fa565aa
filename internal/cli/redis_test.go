package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/internal/redisfit"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/metrics"
	"github.com/hibiken/asynq"
)

// helperEnv names the variable that turns the test binary into the
// fleetreset command: its value is the arguments, separated by helperSep.
const (
	helperEnv = "FLEETRESET_CLI_TEST_MAIN"
	helperSep = "\x1f"
)

// TestMain runs Main with the process's real stdout and stderr when the
// test binary is started by runMain, so that a test can see everything the
// process prints, the lines of libraries that write to os.Stderr included.
func TestMain(m *testing.M) {
	if args := os.Getenv(helperEnv); args != "" {
		os.Exit(Main(context.Background(), &Env{Stdout: os.Stdout, Stderr: os.Stderr}, strings.Split(args, helperSep)))
	}
	os.Exit(m.Run())
}

// runMain runs fleetreset args in a child process with the extra
// environment env and returns its exit code, stdout and stderr.
func runMain(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+strings.Join(args, helperSep)), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("run %v: %v", args, err)
	return 0, "", ""
}

// TestRedisDownCleanError: with Redis down, a command prints one clean
// error and nothing before it: no plain-text go-redis pool line, in any
// log format.
func TestRedisDownCleanError(t *testing.T) {
	addr := closedAddr(t)
	plan := writePlan(t, t.TempDir(), "down", []string{"ins-aaaaaaa1"}, "")
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"worker-json", []string{"worker", "--log-format", "json"}},
		{"worker-text", []string{"worker", "--log-format", "text"}},
		{"apply", []string{"apply", "--no-preflight", plan}},
		{"list", []string{"list"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runMain(t, []string{"REDIS_URL=redis://" + addr + "/0"}, tt.args...)
			want := "fleetreset: redis at " + addr + " does not answer: "
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and the one line %q...", code, stderr, want)
			}
		})
	}
}

// TestRedisURLForms: a bare host:port is taken as redis://host:port/0; any
// other malformed REDIS_URL gets a hint at the right form and is never
// quoted (it may hold a password).
func TestRedisURLForms(t *testing.T) {
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	env, out, errb := testEnv(map[string]string{"REDIS_URL": r.Addr})
	if code := Main(t.Context(), env, []string{"list", "--namespace", ns}); code != 0 || !strings.Contains(out.String(), "No rollouts") {
		t.Errorf("REDIS_URL=%s: list exited %d\nstdout: %s\nstderr: %s", r.Addr, code, out, errb)
	}
	const secret = "s3cr3tPw9"
	for _, bad := range []string{
		"127.0.0.1",                                // no port
		"127.0.0.1:http",                           // not a port number
		"redis//127.0.0.1:6379",                    // a typo in the scheme
		"http://127.0.0.1:6379",                    // not Redis
		"redis://:" + secret + "@127.0.0.1:port/0", // bad port, password present
		"redis://:" + secret + "@127.0.0.1:6379/x", // bad db, password present
	} {
		t.Run(strings.NewReplacer("/", "_", ":", "_").Replace(bad), func(t *testing.T) {
			env, _, errb := testEnv(map[string]string{"REDIS_URL": bad})
			code := Main(t.Context(), env, []string{"list"})
			if code != 1 || !strings.Contains(errb.String(), "REDIS_URL must look like redis://host:port/db") {
				t.Errorf("REDIS_URL=%s: exit %d, stderr %q; want exit 1 and the hint", bad, code, errb)
			}
			if strings.Contains(errb.String(), secret) {
				t.Errorf("the password in REDIS_URL was printed: %s", errb)
			}
		})
	}
}

// TestEvictingRedisRefused: every command that writes refuses a Redis with
// an evicting maxmemory-policy, naming the policy and the fix, and writes
// nothing; read-only commands warn and work.
func TestEvictingRedisRefused(t *testing.T) {
	r := redistest.Server(t, "--maxmemory-policy", "allkeys-lru")
	dir := t.TempDir()
	plan := writePlan(t, dir, "evict", []string{"ins-aaaaaaa1", "ins-aaaaaaa2"}, "")
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr + "/0"}
	for _, args := range [][]string{
		{"apply", "--no-preflight", plan},
		{"worker"},
		// run with an external REDIS_URL (run --simulate always uses its own embedded Redis)
		{"run", "--endpoint", "http://127.0.0.1:9", "--state-dir", dir, plan},
		{"ui", "--listen", "127.0.0.1:0"},
		{"pause", "evict"},
		{"retry-failed", "evict"},
	} {
		t.Run(args[0], func(t *testing.T) {
			if args[0] == "run" {
				t.Setenv("TENCENTCLOUD_SECRET_ID", "AKIDtest")
				t.Setenv("TENCENTCLOUD_SECRET_KEY", "test-key")
			}
			// A command that is not refused would run until cancelled.
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			env, out, errb := testEnv(vars)
			code := Main(ctx, env, args)
			if code == 0 {
				t.Fatalf("%s on an allkeys-lru Redis exited 0\nstdout: %s\nstderr: %s", args[0], out, errb)
			}
			for _, want := range []string{"maxmemory-policy allkeys-lru", "CONFIG SET maxmemory-policy noeviction", "redis.conf"} {
				if !strings.Contains(errb.String(), want) {
					t.Errorf("%s: stderr does not say %q:\n%s", args[0], want, errb)
				}
			}
		})
	}
	if n, err := r.Client.DBSize(t.Context()).Result(); err != nil || n != 0 {
		t.Errorf("the refused commands left %d keys (err %v)", n, err)
	}
	env, out, errb := testEnv(vars)
	if code := Main(t.Context(), env, []string{"list"}); code != 0 || !strings.Contains(out.String(), "No rollouts") {
		t.Errorf("list on an evicting Redis exited %d\nstdout: %s\nstderr: %s", code, out, errb)
	}
	if !strings.Contains(errb.String(), "maxmemory-policy allkeys-lru") {
		t.Errorf("list did not warn about the policy:\n%s", errb)
	}
}

// TestOpenCountsRedisErrors: the connection a command opens counts failed
// commands, its own and asynq's, for fleetreset_redis_errors_total; here
// writes refused by a full Redis.
func TestOpenCountsRedisErrors(t *testing.T) {
	r := redistest.Server(t, "--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
	cn, err := openURL(t.Context(), os.Getenv, "redis://"+r.Addr, "oom")
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	oom := func() float64 {
		t.Helper()
		m := metrics.New(metrics.Config{RedisErrors: cn.errs})
		mfs, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "fleetreset_redis_errors_total" {
				continue
			}
			if n := len(mf.GetMetric()); n != len(redisfit.Kinds()) {
				t.Fatalf("fleetreset_redis_errors_total has %d series; want one per kind", n)
			}
			for _, s := range mf.GetMetric() {
				if s.GetLabel()[0].GetValue() == "oom" {
					return s.GetCounter().GetValue()
				}
			}
		}
		t.Fatal("no fleetreset_redis_errors_total{kind=\"oom\"}")
		return 0
	}
	big := strings.Repeat("x", 64<<10)
	for i := 0; ; i++ {
		err := cn.rdb.Set(t.Context(), fmt.Sprintf("oom:fill:%d", i), big, 0).Err()
		if redisfit.IsOOM(err) {
			break
		}
		if err != nil || i == 300 {
			t.Fatalf("filling a 2mb Redis: write %d: %v", i, err)
		}
	}
	if got := oom(); got != 1 {
		t.Fatalf("after a refused SET, oom = %v; want 1", got)
	}
	if _, err := cn.client.EnqueueContext(t.Context(), asynq.NewTask("oom:test", []byte(big)), asynq.Queue("oom")); err == nil {
		t.Fatal("asynq enqueued into a full Redis")
	}
	if got := oom(); got != 2 {
		t.Errorf("after a refused enqueue, oom = %v; want 2 (asynq's clients are hooked too)", got)
	}
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
