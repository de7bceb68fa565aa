package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds cmd/fleetreset once per test binary.
func binary(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "fleetreset-bench-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "fleetreset")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/fleetreset").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		tb.Fatal(binErr)
	}
	return binPath
}

// runRSS runs the binary to completion and returns its peak RSS in MiB:
// the last VmHWM read from /proc/PID/status, polled every 2 ms while it
// runs. (getrusage's ru_maxrss is no use here: a child started by os/exec
// inherits the high-water mark of this test process's memory at exec.)
func runRSS(tb testing.TB, env []string, args ...string) float64 {
	tb.Helper()
	cmd := exec.Command(binary(tb), args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	must(tb, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	path := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	peak := 0.0
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if hwm, ok := readStatusMiB(path, "VmHWM"); ok {
			peak = max(peak, hwm)
		}
		select {
		case err := <-done:
			if err != nil {
				tb.Fatalf("fleetreset %s: %v\n%s", strings.Join(args, " "), err, out.String())
			}
			if peak == 0 {
				tb.Fatalf("fleetreset %s ended before its VmHWM could be read", strings.Join(args, " "))
			}
			return peak
		case <-tick.C:
		}
	}
}

// BenchmarkApplyRSS measures the peak RSS of the real `fleetreset apply`
// process applying a 100,000-instance plan to Redis (--no-preflight: no
// API), against `fleetreset validate` of the same plan in the same run,
// which only parses and checks it. Metrics, medians over iterations:
//
//	apply-MiB      peak RSS of apply
//	validate-MiB   peak RSS of validate (the baseline)
//	ratio          apply-MiB / validate-MiB
//	KiB/inst       apply's peak RSS per instance
func BenchmarkApplyRSS(b *testing.B) {
	r := benchRedis(b)
	binary(b)
	f := writePlan(b, b.TempDir(), applyN, 29, planOpts{name: "bench-rss", waves: "[1, 100, 10%, 100%]", reset: 10, describe: 40})
	var apply, validate []float64
	for b.Loop() {
		ns := namespace(r, "rss")
		apply = append(apply, runRSS(b, nil, "apply", "--no-preflight", "--redis", "redis://"+r.Addr, "--namespace", ns, f.path))
		validate = append(validate, runRSS(b, nil, "validate", f.path))
		b.StopTimer()
		wipe(b, r.Client, ns)
		b.StartTimer()
	}
	a, v := median(apply), median(validate)
	b.ReportMetric(a, "apply-MiB")
	b.ReportMetric(v, "validate-MiB")
	b.ReportMetric(a/v, "ratio")
	b.ReportMetric(a*1024/applyN, "KiB/inst")
}

// BenchmarkParse times planner.Load of a 100,000-instance plan (YAML,
// instances file, every rule, the password file) against a bare scan of
// the same instances file in the same iteration: read it, split lines,
// match each ID with a regexp and check it is new. Metrics, medians:
//
//	parse-ms   planner.Load
//	bare-ms    the bare scan
//	ratio      parse-ms / bare-ms
func BenchmarkParse(b *testing.B) {
	f := writePlan(b, b.TempDir(), applyN, 31, planOpts{name: "bench-parse", waves: "[1, 100, 10%, 100%]", reset: 10, describe: 40})
	idRe := regexp.MustCompile(`^ins-[0-9a-z]{8}$`)
	var parse, bare []float64
	for b.Loop() {
		t0 := time.Now()
		plan, err := planner.Load(f.path, planner.Options{ResolveSecrets: true})
		must(b, err)
		parse = append(parse, float64(time.Since(t0).Microseconds())/1000)
		if len(plan.Targets) != applyN {
			b.Fatalf("parsed %d targets; want %d", len(plan.Targets), applyN)
		}

		t0 = time.Now()
		data, err := os.ReadFile(filepath.Join(f.dir, "instances.txt"))
		must(b, err)
		seen := make(map[string]struct{})
		for line := range bytes.Lines(data) {
			id := string(bytes.TrimSpace(line))
			if !idRe.MatchString(id) {
				b.Fatalf("bad id %q", id)
			}
			if _, dup := seen[id]; dup {
				b.Fatalf("duplicate %s", id)
			}
			seen[id] = struct{}{}
		}
		bare = append(bare, float64(time.Since(t0).Microseconds())/1000)
	}
	p, s := median(parse), median(bare)
	b.ReportMetric(p, "parse-ms")
	b.ReportMetric(s, "bare-ms")
	b.ReportMetric(p/s, "ratio")
}

// workerRSSN is the rollout a worker's steady-state RSS is measured on:
// about 20 s at a raised 40/s reset quota.
const workerRSSN = 800

// BenchmarkWorkerRSS runs one real `fleetreset worker` process and samples
// its RSS (/proc/PID/status VmRSS every 100 ms): first idle for 3 s (the
// baseline), then while it serves an 800-instance rollout at 40/s.
// Metrics, medians over iterations:
//
//	idle-MiB   median RSS while idle
//	busy-MiB   median RSS while the rollout runs (steady state)
//	peak-MiB   VmHWM at the end
//	ratio      busy-MiB / idle-MiB
func BenchmarkWorkerRSS(b *testing.B) {
	r := benchRedis(b)
	bin := binary(b)
	ctx := context.Background()
	f := writePlan(b, b.TempDir(), workerRSSN, 37, planOpts{name: "bench-worker-rss", waves: "[100%]", reset: 40, describe: 40})
	plan, err := planner.Load(f.path, planner.Options{ResolveSecrets: true})
	must(b, err)
	var idle, busy, peak []float64
	for b.Loop() {
		b.StopTimer()
		ns := namespace(r, "wrss")
		sim, url := startSim(b, cvmsim.Config{ResetDuration: 500 * time.Millisecond,
			Faults: cvmsim.Faults{ResetRateLimit: 40}}, f.ids)
		cmd := exec.Command(bin, "worker", "--redis", "redis://"+r.Addr, "--namespace", ns, "--endpoint", url)
		cmd.Env = append(os.Environ(), "TENCENTCLOUD_SECRET_ID="+cvmsim.SecretIDDefault, "TENCENTCLOUD_SECRET_KEY="+cvmsim.SecretKeyDefault)
		var logs bytes.Buffer
		cmd.Stderr = &logs
		must(b, cmd.Start())
		b.StartTimer()

		idle = append(idle, median(sampleRSS(b, cmd.Process.Pid, 3*time.Second, nil)))
		b.StopTimer()
		l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
		cn := newProc(b, r.Addr, ns, url, 1, nil)
		plan.Spec.Endpoint = url // the rollout keeps the endpoint its workers serve
		_, err := engine.New(engine.Config{Ledger: l, Client: cn.client, Namespace: ns}).Apply(ctx, engine.ApplyRequest{Spec: plan.Spec, Targets: plan.Targets})
		cn.close()
		must(b, err)
		b.StartTimer()
		done := make(chan struct{})
		var res *ledger.Rollout
		var perr error
		go func() {
			defer close(done)
			res, perr = pollRollout(l, plan.Spec.ID, 5*time.Minute)
		}()
		busy = append(busy, median(sampleRSS(b, cmd.Process.Pid, 0, done)))
		peak = append(peak, statusMiB(b, cmd.Process.Pid, "VmHWM"))

		b.StopTimer()
		must(b, cmd.Process.Signal(syscall.SIGTERM))
		if err := cmd.Wait(); err != nil {
			b.Errorf("worker: %v\n%s", err, logs.String())
		}
		must(b, perr)
		requireCompleted(b, res)
		requireExactlyOnce(b, sim.Stats(), f.ids)
		wipe(b, r.Client, ns)
		b.StartTimer()
	}
	i, bu := median(idle), median(busy)
	b.ReportMetric(i, "idle-MiB")
	b.ReportMetric(bu, "busy-MiB")
	b.ReportMetric(median(peak), "peak-MiB")
	b.ReportMetric(bu/i, "ratio")
}

// sampleRSS samples VmRSS of pid every 100 ms for d, or until done closes.
func sampleRSS(b *testing.B, pid int, d time.Duration, done <-chan struct{}) []float64 {
	b.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var timeout <-chan time.Time
	if d > 0 {
		timeout = time.After(d)
	}
	var out []float64
	for {
		select {
		case <-timeout:
			return out
		case <-done:
			return out
		case <-tick.C:
			out = append(out, statusMiB(b, pid, "VmRSS"))
		}
	}
}

// statusMiB reads one "kB" field of /proc/PID/status in MiB.
func statusMiB(b *testing.B, pid int, field string) float64 {
	b.Helper()
	v, ok := readStatusMiB(fmt.Sprintf("/proc/%d/status", pid), field)
	if !ok {
		b.Fatalf("/proc/%d/status: no %s", pid, field)
	}
	return v
}

// readStatusMiB reads one "kB" field of a /proc status file in MiB; ok is
// false when the file or the field is missing (the process is gone or a
// zombie).
func readStatusMiB(path, field string) (float64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(data)) {
		name, val, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 64)
		if err != nil {
			return 0, false
		}
		return kb / 1024, true
	}
	return 0, false
}
