package chaos

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/redis/go-redis/v9"
)

// redisServer is a redis-server the test owns, with an append-only file,
// so that it can be killed, restarted and frozen.
type redisServer struct {
	t    *testing.T
	port int
	dir  string
	p    *proc
	runs int
	// persist are redis-server's persistence arguments (default: an
	// append-only file and no RDB snapshots).
	persist []string
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	return startRedisWith(t, "--appendonly", "yes", "--save", "")
}

// startRedisWith starts a redis-server with persistence arguments persist
// (e.g. "--appendonly", "no", "--save", "" for none at all).
func startRedisWith(t *testing.T, persist ...string) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not on PATH (apt-get install redis-server): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &redisServer{t: t, port: port, dir: t.TempDir(), persist: persist}
	s.start()
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }
func (s *redisServer) url() string  { return "redis://" + s.addr() }

// start runs redis-server on the same port and directory, replaying the
// append-only file (or loading the RDB file) of an earlier run, and waits
// until it answers.
func (s *redisServer) start() {
	t := s.t
	t.Helper()
	s.runs++
	args := append([]string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir}, s.persist...)
	s.p = startProg(t, s.dir, fmt.Sprintf("redis-%d", s.runs), nil, "redis-server", args...)
	c := redis.NewClient(&redis.Options{Addr: s.addr()})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) || !s.p.running() {
			t.Fatalf("redis-server on %s did not start:\n%s", s.addr(), tail(s.p.log, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedisRestart SIGKILLs the Redis server (appendonly yes, the default
// fsync every second) in the middle of a rollout and restarts it at once
// on the same port and data directory. Workers must reconnect, and the
// ledger replayed from the AOF must keep every instance to one reset.
//
// Short form: 200 instances, one restart. Long form: 1,000, three restarts.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	n, restarts := size(200, 1000), size(1, 3)
	f := writePlan(t, planOpts{name: "chaos-redis-restart", n: n, seed: 53, waves: "[10, 100%]"})
	sim := newSim(cvmsim.Config{ResetDuration: 300 * time.Millisecond, Faults: cvmsim.Faults{SystemBusyRate: 0.1}}, f.ids)
	tp := newTap(sim, 50*time.Millisecond, 100*time.Millisecond, true)
	url := tp.serve(t)
	apply(t, rs.url(), "chaos", url, f.path)
	ws := startWorkers(t, 3, rs.url(), "chaos", url)
	l, _ := newLedger(t, rs.addr(), "chaos")
	for i := range restarts {
		awaitAccepted(t, sim, (i+1)*n/(restarts+1), 5*time.Minute)
		rs.p.signal(t, syscall.SIGKILL)
		rs.start()
		t.Logf("redis-server killed and restarted after %d accepted resets", accepted(sim))
	}
	res := awaitRollout(t, l, f.plan.Spec.ID, size(5*time.Minute, 20*time.Minute), ledger.Completed, ledger.Paused, ledger.Aborted)
	ws.stop()
	checkSucceeded(t, res)
	checkExactlyOnce(t, sim, f.ids)
	checkNoRateLimited(t, sim)
}

// TestRedisUnreachable freezes the Redis server (SIGSTOP: connections hang
// rather than fail, as in a network partition) for 5 s (long form: 30 s,
// longer than asynq's 30 s task lease) in the middle of a rollout, then
// thaws it. Workers must recover without losing or repeating a reset.
func TestRedisUnreachable(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	n, outage := size(200, 1000), size(5*time.Second, 30*time.Second)
	f := writePlan(t, planOpts{name: "chaos-redis-down", n: n, seed: 59, waves: "[10, 100%]"})
	sim := newSim(cvmsim.Config{ResetDuration: 300 * time.Millisecond, Faults: cvmsim.Faults{SystemBusyRate: 0.1}}, f.ids)
	tp := newTap(sim, 50*time.Millisecond, 100*time.Millisecond, true)
	url := tp.serve(t)
	apply(t, rs.url(), "chaos", url, f.path)
	ws := startWorkers(t, 3, rs.url(), "chaos", url)
	l, _ := newLedger(t, rs.addr(), "chaos")
	awaitAccepted(t, sim, n/3, 5*time.Minute)
	rs.p.signal(t, syscall.SIGSTOP)
	before := accepted(sim)
	time.Sleep(outage) // the outage itself, not a wait for an event
	during := accepted(sim) - before
	rs.p.signal(t, syscall.SIGCONT)
	t.Logf("redis-server frozen for %s after %d accepted resets; %d more accepted meanwhile", outage, before, during)
	res := awaitRollout(t, l, f.plan.Spec.ID, size(5*time.Minute, 20*time.Minute), ledger.Completed, ledger.Paused, ledger.Aborted)
	ws.stop()
	checkSucceeded(t, res)
	checkExactlyOnce(t, sim, f.ids)
	// Calls whose limiter slots passed while Redis was frozen must not all
	// go out when it thaws (TestRegressionResetBurstAfterRedisStall).
	checkNoRateLimited(t, sim)
	t.Logf("busiest second: %d reset calls", sim.Stats().MaxCallsPerSecond["ResetInstance"])
}
