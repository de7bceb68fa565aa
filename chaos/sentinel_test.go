package chaos

// Sentinel (issue 13): a primary, a replica and three sentinels, real
// processes on loopback ports; `fleetreset apply` and three `fleetreset
// worker` processes reach Redis only through REDIS_URL's Sentinel form.
// The primary fails over in the middle of a rollout (SENTINEL FAILOVER,
// then SIGKILL), and a third test makes the failover lose writes the old
// primary had acknowledged. Every instance must be reset exactly once.
//
// Each test waits for the sentinels (seconds) and, after a SIGKILL, for
// asynq to recover the tasks whose completion the old primary took with
// it (60-120 s). Long form (FLEETRESET_CHAOS_LONG=1): larger fleets and
// several failovers per rollout.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// sentinelMaster is the name the sentinels watch the primary under.
const sentinelMaster = "mymaster"

// sentinelSet is a primary, a replica and three sentinels.
type sentinelSet struct {
	t         *testing.T
	primary   *redisServer
	replica   *redisServer
	sentinels []*proc
	addrs     []string // the sentinels' addresses
}

// freePort returns a loopback port nobody listened on a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startSentinelSet starts the primary (AOF, as in production), a replica
// of it, and three sentinels (quorum 2) that see both and each other.
// Both servers get the extra arguments.
func startSentinelSet(t *testing.T, extra ...string) *sentinelSet {
	t.Helper()
	s := &sentinelSet{t: t}
	s.primary = startRedisWith(t, append([]string{"--appendonly", "yes", "--save", ""}, extra...)...)
	s.replica = startRedisWith(t, append([]string{"--appendonly", "yes", "--save", "", "--replicaof", "127.0.0.1", strconv.Itoa(s.primary.port)}, extra...)...)
	s.awaitLinkUp(s.replica.addr(), 20*time.Second)
	dir := t.TempDir()
	for i := range 3 {
		port := freePort(t)
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", i))
		// Fast detection, and a short failover timeout so that a failover
		// that found no good replica is tried again within seconds.
		must(t, os.WriteFile(conf, []byte(fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\nsentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 4000\nsentinel parallel-syncs %s 1\n",
			port, dir, sentinelMaster, s.primary.port, sentinelMaster, sentinelMaster, sentinelMaster)), 0o600))
		s.sentinels = append(s.sentinels, startProg(t, dir, fmt.Sprintf("sentinel-%d", i), nil, "redis-server", conf, "--sentinel"))
		s.addrs = append(s.addrs, "127.0.0.1:"+strconv.Itoa(port))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range s.sentinels {
				t.Logf("--- %s (tail)\n%s", filepath.Base(p.log), tail(p.log, 15))
			}
		}
	})
	// Ready when every sentinel knows the replica and the two others: a
	// failover needs a replica to promote and a majority to elect a leader.
	deadline := time.Now().Add(30 * time.Second)
	for i, a := range s.addrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
		for {
			m, err := sc.Master(context.Background(), sentinelMaster).Result()
			if err == nil && m["num-slaves"] == "1" && m["num-other-sentinels"] == "2" {
				break
			}
			if time.Now().After(deadline) || !s.sentinels[i].running() {
				sc.Close()
				t.Fatalf("sentinel %s not ready: %v %v\n%s", a, m, err, tail(s.sentinels[i].log, 20))
			}
			time.Sleep(100 * time.Millisecond)
		}
		sc.Close()
	}
	return s
}

// url is the REDIS_URL of the set: the sentinels, never the primary.
func (s *sentinelSet) url() string {
	return "redis+sentinel://" + strings.Join(s.addrs, ",") + "/" + sentinelMaster + "/0"
}

// master returns the master address the first answering sentinel names.
func (s *sentinelSet) master() (string, error) {
	var last error
	for _, a := range s.addrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1})
		hp, err := sc.GetMasterAddrByName(context.Background(), sentinelMaster).Result()
		sc.Close()
		if err == nil {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		last = err
	}
	return "", last
}

// awaitNewMaster waits until the sentinels name a master other than old
// and that server answers as a master; it returns its address.
func (s *sentinelSet) awaitNewMaster(old string, within time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		m, err := s.master()
		if err == nil && m != old {
			c := redis.NewClient(&redis.Options{Addr: m, MaxRetries: -1})
			role, rerr := c.Do(context.Background(), "ROLE").Slice()
			c.Close()
			if rerr == nil && len(role) > 0 && role[0] == "master" {
				return m
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no new master within %s (sentinels name %q, %v)", within, m, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// info returns one field of INFO replication on addr.
func info(addr, field string) string {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	v, err := c.Info(context.Background(), "replication").Result()
	if err != nil {
		return ""
	}
	for line := range strings.Lines(v) {
		if k, val, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == field {
			return val
		}
	}
	return ""
}

// awaitLinkUp waits until the replica at addr is in sync with its master.
func (s *sentinelSet) awaitLinkUp(addr string, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for info(addr, "master_link_status") != "up" {
		if time.Now().After(deadline) {
			s.t.Fatalf("replica %s not in sync within %s", addr, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ledger returns a ledger that follows the master through the sentinels,
// as the workers do.
func (s *sentinelSet) ledger(ns string) *ledger.Ledger {
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: sentinelMaster, SentinelAddrs: s.addrs, MaxRetries: -1})
	s.t.Cleanup(func() { rdb.Close() })
	return ledger.New(rdb, ledger.Config{Prefix: ns + ":"})
}

// awaitSettled waits until the rollout completes, pauses or aborts. When
// it does not within the time, it fails the test listing every instance
// left unfinished with the state of the task that should finish it: an
// instance with no task (none, or one "active" with no worker, asynq#1144)
// is one that no failover (or slot move, on a cluster) may leave behind.
func awaitSettled(t *testing.T, opt asynq.RedisConnOpt, ws *workers, l *ledger.Ledger, ns string, f fleet, within time.Duration) *ledger.Rollout {
	t.Helper()
	id := f.plan.Spec.ID
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if r, err := l.Get(context.Background(), id); err == nil {
			switch r.State {
			case ledger.Completed, ledger.Paused, ledger.Aborted:
				return r
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	r, err := l.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("rollout %s: %v", id, err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	q := tasks.QueuesFor(ns)
	ins, err := l.Instances(context.Background(), id, f.ids)
	must(t, err)
	stuck := 0
	for _, in := range ins {
		if in == nil || in.State.Terminal() {
			continue
		}
		stuck++
		task := "no task"
		if ti, err := insp.GetTaskInfo(q.Reset, tasks.ResetTaskID(id, in.ID, in.Gen)); err == nil {
			task = ti.State.String()
		}
		if stuck <= 20 {
			t.Logf("unfinished: %s %s gen %d, reset task: %s", in.ID, in.State, in.Gen, task)
		}
		if stuck <= 3 {
			t.Logf("what the workers logged about %s:\n%s", in.ID, ws.linesAbout(in.ID))
		}
	}
	t.Fatalf("rollout %s still %s (%s) after %s: %d instances unfinished, counters %+v", id, r.State, r.Reason, within, stuck, r.Counters)
	return nil
}

// connOpt is asynq's connection to the set's master, through the sentinels.
func (s *sentinelSet) connOpt() asynq.RedisConnOpt {
	return asynq.RedisFailoverClientOpt{MasterName: sentinelMaster, SentinelAddrs: s.addrs}
}

// sentinelRollout applies a plan of n instances through the sentinels and
// starts three workers on the same URL.
func sentinelRollout(t *testing.T, s *sentinelSet, name string, n int, seed int64) (fleet, *cvmsim.Server, *workers, *ledger.Ledger) {
	t.Helper()
	f := writePlan(t, planOpts{name: name, n: n, seed: seed, waves: "[10, 100%]"})
	sim := newSim(cvmsim.Config{ResetDuration: 300 * time.Millisecond, Faults: cvmsim.Faults{SystemBusyRate: 0.05}}, f.ids)
	tp := newTap(sim, 20*time.Millisecond, 50*time.Millisecond, true)
	endpoint := tp.serve(t)
	apply(t, s.url(), "chaos", endpoint, f.path)
	ws := startWorkers(t, 3, s.url(), "chaos", endpoint)
	return f, sim, ws, s.ledger("chaos")
}

// TestSentinelFailover fails the primary over with SENTINEL FAILOVER in
// the middle of a rollout of 300 instances (long form: 1,000, three
// failovers): the old primary becomes a replica of the new one, and the
// workers, apply and the test's ledger follow the sentinels there.
//
// The servers run with min-replicas-to-write 1, as docs/operations.md
// asks: until the sentinels demote it, the old primary would otherwise
// take the writes of workers that have not switched yet and drop them on
// rejoining, while their next writes (a task's completion) reach the new
// primary. Without it, the long form left 1 or 2 of 1,000 instances
// pending with a completed reset task: never reset twice, but the rollout
// never finished (one such case, an intent lost before an accepted call
// was recorded, is now retried by the worker; the other, intent and
// accepted call both lost, needs a sweep the engine does not have).
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	s := startSentinelSet(t, "--min-replicas-to-write", "1", "--min-replicas-max-lag", "5")
	n, failovers := size(300, 1000), size(1, 3)
	f, sim, ws, l := sentinelRollout(t, s, "chaos-sentinel-failover", n, 61)
	for i := range failovers {
		awaitAccepted(t, sim, (i+1)*n/(failovers+2), 3*time.Minute)
		old, err := s.master()
		must(t, err)
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.addrs[i%3], MaxRetries: -1})
		err = sc.Failover(context.Background(), sentinelMaster).Err()
		sc.Close()
		must(t, err)
		start := time.Now()
		nm := s.awaitNewMaster(old, time.Minute)
		t.Logf("failover %d after %d accepted resets: master %s -> %s in %s", i+1, accepted(sim), old, nm, time.Since(start).Round(time.Millisecond))
		// The old primary rejoins as a replica; the next failover needs it.
		s.awaitLinkUp(old, time.Minute)
	}
	r := awaitSettled(t, s.connOpt(), ws, l, "chaos", f, size(3*time.Minute, 15*time.Minute))
	ws.stop()
	checkSucceeded(t, r)
	checkExactlyOnce(t, sim, f.ids)
}

// TestSentinelPrimaryKilled SIGKILLs the primary in the middle of a
// rollout of 300 instances: the sentinels promote the replica, whatever
// the primary had not yet replicated is gone, and tasks whose completion
// was lost with it come back through asynq's lease recovery.
func TestSentinelPrimaryKilled(t *testing.T) {
	t.Parallel()
	s := startSentinelSet(t)
	n := size(300, 1000)
	f, sim, ws, l := sentinelRollout(t, s, "chaos-sentinel-kill", n, 67)
	awaitAccepted(t, sim, n/3, 3*time.Minute)
	old := s.primary.addr()
	s.primary.p.signal(t, syscall.SIGKILL)
	killed := accepted(sim)
	start := time.Now()
	nm := s.awaitNewMaster(old, time.Minute)
	t.Logf("primary %s SIGKILLed after %d accepted resets; sentinels promoted %s in %s", old, killed, nm, time.Since(start).Round(time.Millisecond))
	r := awaitSettled(t, s.connOpt(), ws, l, "chaos", f, size(4*time.Minute, 15*time.Minute))
	ws.stop()
	checkSucceeded(t, r)
	checkExactlyOnce(t, sim, f.ids)
}

// TestSentinelLostWrites makes a failover lose writes the old primary
// acknowledged, as asynchronous replication can: the replica stops
// applying its replication stream (CLIENT PAUSE WRITE on a replica also
// pauses the stream from its master; what arrives waits, unapplied, in
// its buffer), the workers go on through the primary while the cloud
// accepts at least 20 more resets, then the primary is SIGKILLed. The
// replica drops the unapplied stream with the dead link, is unpaused and
// promoted: its ledger lacks those instances' accepted calls (and often
// their intents and their tasks' dequeues). Each of them is judged from
// the cloud (the check before a call adopts the reinstall it shows; a
// reconcile of an intent finds it landed) and none is reset twice.
func TestSentinelLostWrites(t *testing.T) {
	t.Parallel()
	s := startSentinelSet(t)
	n := size(300, 1000)
	f, sim, ws, l := sentinelRollout(t, s, "chaos-sentinel-lost", n, 71)
	awaitAccepted(t, sim, n/4, 3*time.Minute)

	rc := redis.NewClient(&redis.Options{Addr: s.replica.addr(), MaxRetries: -1})
	defer rc.Close()
	ctx := context.Background()
	must(t, rc.Do(ctx, "CLIENT", "PAUSE", 120000, "WRITE").Err())
	paused := accepted(sim)
	awaitAccepted(t, sim, paused+20, time.Minute)
	old := s.primary.addr()
	s.primary.p.signal(t, syscall.SIGKILL)
	killed := accepted(sim)
	deadline := time.Now().Add(10 * time.Second)
	for info(s.replica.addr(), "master_link_status") != "down" {
		if time.Now().After(deadline) {
			t.Fatal("the replica still sees its dead master")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// What the replica holds now is what the new primary starts from:
	// the instances the cloud reset whose ledger record says otherwise.
	before := ledger.New(rc, ledger.Config{Prefix: "chaos:"})
	ins, err := before.Instances(ctx, f.plan.Spec.ID, f.ids)
	must(t, err)
	st := sim.Stats()
	lost := map[ledger.InstanceState]int{}
	for _, in := range ins {
		if in != nil && st.AcceptedResets[in.ID] > 0 && (in.State == ledger.Pending || in.State == ledger.Calling) {
			lost[in.State]++
		}
	}
	must(t, rc.Do(ctx, "CLIENT", "UNPAUSE").Err())
	nm := s.awaitNewMaster(old, time.Minute)
	t.Logf("replica paused after %d accepted resets, primary killed after %d; promoted %s, whose ledger lost the accepted call of %d instances (%d back to pending, %d with only the intent)",
		paused, killed, nm, lost[ledger.Pending]+lost[ledger.Calling], lost[ledger.Pending], lost[ledger.Calling])
	if lost[ledger.Pending]+lost[ledger.Calling] == 0 {
		t.Fatalf("the failover lost no accepted call (%d resets accepted while the replica was paused): the test did not make the loss it is about", killed-paused)
	}
	r := awaitSettled(t, s.connOpt(), ws, l, "chaos", f, size(4*time.Minute, 15*time.Minute))
	ws.stop()
	checkSucceeded(t, r)
	checkExactlyOnce(t, sim, f.ids)
}

// linesAbout returns every line of the workers' logs that names id.
func (w *workers) linesAbout(id string) string {
	var b strings.Builder
	ents, _ := os.ReadDir(w.dir)
	for _, e := range ents {
		data, _ := os.ReadFile(filepath.Join(w.dir, e.Name()))
		for line := range strings.Lines(string(data)) {
			if strings.Contains(line, id) {
				b.WriteString(e.Name() + ": " + line)
			}
		}
	}
	return b.String()
}
