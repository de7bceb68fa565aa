package chaos

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/testfleet"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/redis/go-redis/v9"
)

// targetImage is what every chaos plan reinstalls; simulated instances
// start on cvmsim.ImageLinuxOld.
const targetImage = cvmsim.ImageLinuxNew

// planOpts shapes a generated plan.
type planOpts struct {
	name  string
	n     int
	seed  int64
	waves string
	// reset is the reset rate (default 10); above 10 sets unsafeAboveApiLimit.
	reset float64
	// verify is the plan's verify block (default {interval: 1s, timeout: 30m}).
	verify string
	// budget is the plan's failureBudget (default {max: 0}).
	budget string
	// extra is appended to the plan verbatim.
	extra string
}

// fleet is a generated plan on disk.
type fleet struct {
	path string
	ids  []string
	plan *planner.Plan
}

// writePlan writes a plan of o.n generated instances into a new temporary
// directory: IDs in an instancesFile, the password in a file.
func writePlan(t *testing.T, o planOpts) fleet {
	t.Helper()
	ids := testfleet.SeededIDs(o.n, o.seed)
	rate := o.reset
	if rate == 0 {
		rate = 10
	}
	path := testfleet.WritePlan(t, t.TempDir(), testfleet.Plan{Name: o.name, Image: "{id: " + targetImage + "}",
		RateLimit: fmt.Sprintf("{reset: %g, describe: 40, unsafeAboveApiLimit: %t}", rate, rate > 10),
		Verify:    cmp.Or(o.verify, "{interval: 1s, timeout: 30m}"), Retry: "{attempts: 50, deadline: 1h}",
		Waves: o.waves, FailureBudget: cmp.Or(o.budget, "{max: 0}"), Extra: o.extra}, ids, "Chaos-Passw0rd")
	p, err := planner.Load(path, planner.Options{ResolveSecrets: true})
	must(t, err)
	return fleet{path: path, ids: ids, plan: p}
}

// chaosReplay is the simulators' replay window in these tests, and what
// the workers are told (--api-replay-window): after a call that left no
// trace, a worker calls again only once the first request can no longer
// land, which with the real API's 5 minutes would outlast the tests.
const chaosReplay = 20 * time.Second

// newSim returns a simulator holding the fleet's instances on the old image.
func newSim(cfg cvmsim.Config, ids []string) *cvmsim.Server {
	if cfg.ReplayWindow == 0 {
		cfg.ReplayWindow = chaosReplay
	}
	sim := cvmsim.New(cfg)
	sim.AddInstances(testfleet.SimFleet(ids)...)
	return sim
}

// call is one API request seen by a tap.
type call struct {
	action   string
	instance string // InstanceId of a reset call
	port     int    // the client's source port, to find the process that sent it
	start    time.Time
	// applied is when the simulator processed the request (zero before).
	applied time.Time
	end     time.Time
	code    string // error code answered; "" for success
}

// tap sits in front of the simulator: it records every request and can
// stretch reset calls around the moment they take effect, so that a test
// can kill the caller while its call is in flight.
type tap struct {
	sim http.Handler
	// before delays reset calls before the simulator sees them, and after
	// holds their answer once they took effect.
	before, after time.Duration
	// land makes a reset call take effect even when its caller is gone,
	// as on the real cloud: the request arrived, so it runs. Otherwise the
	// request context reaches the simulator, which drops abandoned calls
	// during its Latency.
	land bool
	// hold, when set, is called for every reset call after before and
	// before the simulator sees it; it may block to keep one request in
	// transit (see TestDoubleResetLateLanding).
	hold func(*call)

	mu       sync.Mutex
	calls    []*call
	inflight map[*call]bool
	changed  chan struct{}
}

func newTap(sim http.Handler, before, after time.Duration, land bool) *tap {
	return &tap{sim: sim, before: before, after: after, land: land, inflight: map[*call]bool{}, changed: make(chan struct{})}
}

// serve starts an httptest server in front of the tap.
func (tp *tap) serve(t *testing.T) string {
	return testfleet.Serve(t, tp)
}

func (tp *tap) notifyLocked() {
	close(tp.changed)
	tp.changed = make(chan struct{})
}

func (tp *tap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{action: r.Header.Get("X-TC-Action"), start: time.Now()}
	if _, p, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		c.port, _ = strconv.Atoi(p)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	reset := c.action == "ResetInstance"
	if reset {
		var p struct{ InstanceId string }
		json.Unmarshal(body, &p)
		c.instance = p.InstanceId
	}
	tp.mu.Lock()
	tp.calls = append(tp.calls, c)
	tp.inflight[c] = true
	tp.notifyLocked()
	tp.mu.Unlock()
	defer func() {
		tp.mu.Lock()
		c.end = time.Now()
		delete(tp.inflight, c)
		tp.notifyLocked()
		tp.mu.Unlock()
	}()
	if reset && tp.before > 0 {
		time.Sleep(tp.before) // the request is on its way; it lands either way
	}
	if reset && tp.hold != nil {
		tp.hold(c)
	}
	if tp.land {
		r = r.WithContext(context.WithoutCancel(r.Context()))
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	tp.sim.ServeHTTP(rec, r)
	tp.mu.Lock()
	c.applied = time.Now()
	c.code = errorCode(rec.body.Bytes())
	tp.notifyLocked()
	tp.mu.Unlock()
	if reset && tp.after > 0 {
		select {
		case <-time.After(tp.after):
		case <-r.Context().Done():
			return // the caller died while its answer was held
		}
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	w.Write(rec.body.Bytes())
}

// await blocks until a request in flight satisfies ok, and returns it.
func (tp *tap) await(ctx context.Context, ok func(*call) bool) (*call, error) {
	for {
		tp.mu.Lock()
		for c := range tp.inflight {
			if ok(c) {
				cc := *c
				tp.mu.Unlock()
				return &cc, nil
			}
		}
		ch := tp.changed
		tp.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// snapshot returns a copy of every call so far.
func (tp *tap) snapshot() []call {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	out := make([]call, len(tp.calls))
	for i, c := range tp.calls {
		out[i] = *c
	}
	return out
}

// resetInFlight matches a reset call in flight, optionally only once it
// took effect (its answer is being held).
func resetInFlight(applied bool) func(*call) bool {
	return func(c *call) bool {
		return c.action == "ResetInstance" && (!applied || !c.applied.IsZero())
	}
}

// resetStarted matches a reset call that arrived less than d ago.
func resetStarted(d time.Duration) func(*call) bool {
	return func(c *call) bool {
		return c.action == "ResetInstance" && time.Since(c.start) < d
	}
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(s int)           { r.status = s }

// errorCode extracts Response.Error.Code from an API 3.0 answer.
func errorCode(body []byte) string {
	var v struct {
		Response struct {
			Error struct{ Code string }
		}
	}
	if json.Unmarshal(body, &v) != nil {
		return "unparsable"
	}
	return v.Response.Error.Code
}

// pidOfPort finds which of pids owns the TCP socket with local port port,
// through /proc: the socket's inode in /proc/net/tcp{,6}, then the process
// whose fd links to it.
func pidOfPort(port int, pids []int) (int, bool) {
	inodes := map[string]bool{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 {
				continue
			}
			_, hexPort, ok := strings.Cut(fs[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); ok && err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
		f.Close()
	}
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && inodes[l] {
				return pid, true
			}
		}
	}
	return 0, false
}

// proc is one fleetreset process started by a test.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // exit status, after done
}

// start runs the fleetreset binary with args and env, logging to a file
// in dir.
func start(t *testing.T, dir, name string, env []string, args ...string) *proc {
	t.Helper()
	return startProg(t, dir, name, env, bin, args...)
}

// startProg runs prog with args and env (nil: the test's), logging to a
// file in dir; the process is killed when the test ends.
func startProg(t *testing.T, dir, name string, env []string, prog string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	must(t, err)
	cmd := exec.Command(prog, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = lf, lf
	must(t, cmd.Start())
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig and, for SIGKILL, waits for the process to be gone.
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && p.running() {
		t.Fatalf("signal %v to %d: %v", sig, p.pid(), err)
	}
	if sig == syscall.SIGKILL {
		<-p.done
	}
}

// wait waits for the process to exit within d and returns its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("process %d did not exit within %s; log:\n%s", p.pid(), d, tail(p.log, 40))
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("process %d: %v", p.pid(), p.err)
	return -1
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// baseEnv is the environment of every fleetreset process: the test's own
// without Redis or credential settings, plus the simulator's credentials.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "REDIS_URL" || k == "FLEETRESET_NAMESPACE" || strings.HasPrefix(k, "TENCENTCLOUD_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "TENCENTCLOUD_SECRET_ID="+cvmsim.SecretIDDefault, "TENCENTCLOUD_SECRET_KEY="+cvmsim.SecretKeyDefault)
}

// workers is a set of `fleetreset worker` processes in numbered slots.
type workers struct {
	t     *testing.T
	dir   string
	env   []string
	args  []string
	mu    sync.Mutex
	slots []*proc
	gen   int
}

func startWorkers(t *testing.T, n int, redisURL, ns, endpoint string, extra ...string) *workers {
	t.Helper()
	w := &workers{t: t, dir: t.TempDir(), env: baseEnv(),
		args: append([]string{"worker", "--redis", redisURL, "--namespace", ns, "--endpoint", endpoint,
			"--reconcile-grace", "3s", "--call-timeout", "2500ms", "--api-replay-window", chaosReplay.String(), "--log-format", "json"}, extra...)}
	t.Cleanup(func() {
		if t.Failed() {
			w.dumpLogs()
		}
	})
	for range n {
		w.slots = append(w.slots, nil)
		w.restart(len(w.slots) - 1)
	}
	return w
}

// restart starts a new process in slot i.
func (w *workers) restart(i int) {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gen++
	w.slots[i] = start(w.t, w.dir, fmt.Sprintf("worker-%d-%d", i, w.gen), w.env, w.args...)
}

func (w *workers) pids() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int
	for _, p := range w.slots {
		if p.running() {
			out = append(out, p.pid())
		}
	}
	return out
}

// slotOf returns the slot whose process has pid.
func (w *workers) slotOf(pid int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, p := range w.slots {
		if p.pid() == pid {
			return i
		}
	}
	return -1
}

// stop SIGTERMs every worker and waits for them.
func (w *workers) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.slots {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range w.slots {
		<-p.done
	}
}

// logged reports whether any worker logged msg for instance id.
func (w *workers) logged(msg, id string) bool {
	ents, _ := os.ReadDir(w.dir)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(w.dir, e.Name()))
		for line := range strings.Lines(string(b)) {
			if strings.Contains(line, `"msg":"`+msg) && strings.Contains(line, `"instance_id":"`+id+`"`) {
				return true
			}
		}
	}
	return false
}

func (w *workers) dumpLogs() {
	ents, _ := os.ReadDir(w.dir)
	for _, e := range ents {
		w.t.Logf("--- %s (tail)\n%s", e.Name(), tail(filepath.Join(w.dir, e.Name()), 15))
	}
}

// awaitRollout polls the ledger until the rollout reaches one of want,
// failing after within. Another process's progress can only be polled.
func awaitRollout(t *testing.T, l *ledger.Ledger, id string, within time.Duration, want ...ledger.RolloutState) *ledger.Rollout {
	t.Helper()
	return testfleet.AwaitRollout(t, l, nil, id, within, want...)
}

// awaitAccepted polls the simulator until it accepted at least n resets.
func awaitAccepted(t *testing.T, sim *cvmsim.Server, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if accepted(sim) >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("simulator accepted %d resets within %s; want %d", accepted(sim), within, n)
}

func accepted(sim *cvmsim.Server) int {
	n := 0
	for _, c := range sim.Stats().AcceptedResets {
		n += c
	}
	return n
}

// checkExactlyOnce checks the simulator's counts: every instance of ids
// reset exactly once and now on the target image.
func checkExactlyOnce(t *testing.T, sim *cvmsim.Server, ids []string) {
	t.Helper()
	st := sim.Stats()
	never, twice := testfleet.CheckExactlyOnce(t, st, ids)
	off := 0
	for _, id := range ids {
		if v, ok := sim.Instance(id); !ok || v.ImageID != targetImage {
			off++
		}
	}
	t.Logf("simulator: %d instances, %d reset twice or more, %d never, %d not on the target image; %d API calls, %d rate-limited, errors %v",
		len(ids), twice, never, off, st.TotalCalls, st.RateLimited["ResetInstance"]+st.RateLimited["DescribeInstances"], st.Errors)
	if off > 0 {
		t.Errorf("%d of %d instances not on %s", off, len(ids), targetImage)
	}
}

// checkSucceeded checks the ledger: the rollout completed with every
// instance succeeded.
var checkSucceeded = testfleet.CheckSucceeded

// newLedger returns a ledger on addr for namespace ns, with its own client.
func newLedger(t *testing.T, addr, ns string) (*ledger.Ledger, *redis.Client) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	return ledger.New(rdb, ledger.Config{Prefix: ns + ":"}), rdb
}

// apply runs `fleetreset apply` and fails the test unless it succeeds.
func apply(t *testing.T, redisURL, ns, endpoint, plan string) {
	t.Helper()
	cmd := exec.Command(bin, "apply", "--redis", redisURL, "--namespace", ns, "--endpoint", endpoint, plan)
	cmd.Env = baseEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fleetreset apply: %v\n%s", err, out)
	}
}

// applyAfterAbort applies plan over instances of a rollout just aborted:
// an instance whose reset call was under way at the abort (no answer yet)
// stays the aborted rollout's until answered, and apply says so ("still
// out of service ... apply again once it is back"); it is applied again
// then, as docs/operations.md tells operators. Any other failure fails.
func applyAfterAbort(t *testing.T, redisURL, ns, endpoint, plan string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		cmd := exec.Command(bin, "apply", "--redis", redisURL, "--namespace", ns, "--endpoint", endpoint, plan)
		cmd.Env = baseEnv()
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		if !strings.Contains(string(out), "still out of service in aborted rollout") || time.Now().After(deadline) {
			t.Fatalf("fleetreset apply: %v\n%s", err, out)
		}
		line, _, _ := strings.Cut(string(out), "\n")
		t.Logf("apply refused while the aborted rollout still has instances in hand; again: %.200s", line)
		time.Sleep(500 * time.Millisecond) // an operator's "a moment later"
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
