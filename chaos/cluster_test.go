package chaos

// Redis Cluster (issue 13): three primaries, real redis-server processes
// in cluster mode on loopback ports, joined by `redis-cli --cluster
// create`; `fleetreset apply` and three `fleetreset worker` processes
// reach them only through REDIS_URL's redis+cluster:// form. One test
// SIGKILLs a worker mid-rollout, the other moves every slot of the node
// that holds the rollout's ledger keys to another node (`redis-cli
// --cluster reshard`) while the rollout runs. Every instance must be
// reset exactly once, at no more than the plan's rate.
//
// Short form: 300 instances. Long form (FLEETRESET_CHAOS_LONG=1): 1,000
// instances, three worker kills, and two reshards.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// redisCluster is three primaries without replicas.
type redisCluster struct {
	t     *testing.T
	nodes []*redisServer
}

// startCluster starts three cluster-mode servers (no persistence) and
// joins them with redis-cli, then waits until every node says the
// cluster is ok.
func startCluster(t *testing.T) *redisCluster {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("redis-cli is not on PATH (apt-get install redis-tools): %v", err)
	}
	c := &redisCluster{t: t}
	var addrs []string
	for range 3 {
		// The bus port is given: the default, port+10000, may not exist.
		s := startRedisWith(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(freePort(t)), "--cluster-node-timeout", "5000",
			"--save", "", "--appendonly", "no")
		c.nodes = append(c.nodes, s)
		addrs = append(addrs, s.addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	out, err := exec.Command("redis-cli", append(args, "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range addrs {
		rc := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
		for {
			ci, err := rc.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(ci, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				rc.Close()
				t.Fatalf("node %s: cluster not ok within 30s: %v %s", a, err, ci)
			}
			time.Sleep(100 * time.Millisecond)
		}
		rc.Close()
	}
	return c
}

func (c *redisCluster) addrs() []string {
	var out []string
	for _, s := range c.nodes {
		out = append(out, s.addr())
	}
	return out
}

// url is the REDIS_URL of the cluster: two of its nodes are enough to
// find the rest.
func (c *redisCluster) url() string { return "redis+cluster://" + strings.Join(c.addrs()[:2], ",") }

// client returns a cluster client for the test's own reads.
func (c *redisCluster) client() *redis.ClusterClient {
	// No retries, as fleetreset's own (and no warning from ledger.New).
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.addrs(), MaxRetries: -1, MaxRedirects: -1})
	c.t.Cleanup(func() { rdb.Close() })
	return rdb
}

// owner returns the address and node ID of the primary serving key's slot.
func (c *redisCluster) owner(rdb *redis.ClusterClient, key string) (addr, id string) {
	c.t.Helper()
	ctx := context.Background()
	slot, err := rdb.ClusterKeySlot(ctx, key).Result()
	must(c.t, err)
	slots, err := rdb.ClusterSlots(ctx).Result()
	must(c.t, err)
	for _, s := range slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) {
			return s.Nodes[0].Addr, s.Nodes[0].ID
		}
	}
	c.t.Fatalf("no node serves slot %d of %s", slot, key)
	return "", ""
}

// nodeID returns the ID of the node at addr.
func nodeID(t *testing.T, addr string) string {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rc.Close()
	id, err := rc.Do(context.Background(), "CLUSTER", "MYID").Text()
	must(t, err)
	return id
}

// reshard moves every slot of the node serving key to another node with
// redis-cli, in pipelines of pipeline keys, and returns how long it took.
func (c *redisCluster) reshard(rdb *redis.ClusterClient, key string, pipeline int) (from, to string, took time.Duration) {
	c.t.Helper()
	from, fromID := c.owner(rdb, key)
	for _, a := range c.addrs() {
		if a != from {
			to = a
			break
		}
	}
	rc := redis.NewClient(&redis.Options{Addr: from, MaxRetries: -1})
	n := 0
	slots, err := rc.ClusterSlots(context.Background()).Result()
	rc.Close()
	must(c.t, err)
	for _, s := range slots {
		if s.Nodes[0].ID == fromID {
			n += s.End - s.Start + 1
		}
	}
	start := time.Now()
	out, err := exec.Command("redis-cli", "--cluster", "reshard", from, "--cluster-from", fromID, "--cluster-to", nodeID(c.t, to),
		"--cluster-slots", strconv.Itoa(n), "--cluster-pipeline", strconv.Itoa(pipeline), "--cluster-yes").CombinedOutput()
	if err != nil {
		c.t.Fatalf("redis-cli --cluster reshard: %v\n%s", err, tail2(string(out), 20))
	}
	return from, to, time.Since(start)
}

func tail2(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// clusterRollout applies a plan of n instances through the cluster and
// starts three workers on the same URL.
func clusterRollout(t *testing.T, c *redisCluster, name string, n int, seed int64) (fleet, *cvmsim.Server, *workers, *ledger.Ledger, *redis.ClusterClient) {
	t.Helper()
	f := writePlan(t, planOpts{name: name, n: n, seed: seed, waves: "[10, 100%]"})
	sim := newSim(cvmsim.Config{ResetDuration: 300 * time.Millisecond, Faults: cvmsim.Faults{SystemBusyRate: 0.05}}, f.ids)
	tp := newTap(sim, 20*time.Millisecond, 50*time.Millisecond, true)
	endpoint := tp.serve(t)
	apply(t, c.url(), "chaos", endpoint, f.path)
	ws := startWorkers(t, 3, c.url(), "chaos", endpoint)
	rdb := c.client()
	return f, sim, ws, ledger.New(rdb, ledger.Config{Prefix: "chaos:"}), rdb
}

// checkRate checks rate fidelity: the simulator never saw more reset
// calls in one second than the plan allows, and rate-limited none.
func checkRate(t *testing.T, sim *cvmsim.Server, f fleet) {
	t.Helper()
	st := sim.Stats()
	limit := f.plan.Spec.ResetRate
	t.Logf("busiest second: %d reset calls (plan: %g/s)", st.MaxCallsPerSecond["ResetInstance"], limit)
	if got := float64(st.MaxCallsPerSecond["ResetInstance"]); got > limit {
		t.Errorf("%v reset calls in one second; the plan allows %g", got, limit)
	}
	checkNoRateLimited(t, sim)
}

// TestClusterKillWorker SIGKILLs a worker (long form: three, each once
// n/20 more resets were accepted) in the middle of a rollout on the
// cluster and restarts it: exactly once and the plan's rate, as on one
// Redis.
func TestClusterKillWorker(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	n, kills := size(300, 1000), size(1, 3)
	f, sim, ws, l, _ := clusterRollout(t, c, "chaos-cluster-kill", n, 73)
	awaitAccepted(t, sim, n/4, 3*time.Minute)
	for i := range kills {
		victim := rand.IntN(len(ws.slots))
		ws.slots[victim].signal(t, syscall.SIGKILL)
		ws.restart(victim)
		t.Logf("kill %d: worker %d after %d accepted resets", i+1, victim, accepted(sim))
		if i+1 < kills {
			// The next kill once the rollout has made progress again.
			awaitAccepted(t, sim, accepted(sim)+n/20, 3*time.Minute)
		}
	}
	r := awaitSettled(t, asynq.RedisClusterClientOpt{Addrs: c.addrs()}, ws, l, "chaos", f, size(4*time.Minute, 15*time.Minute))
	ws.stop()
	checkSucceeded(t, r)
	checkExactlyOnce(t, sim, f.ids)
	checkRate(t, sim, f)
}

// TestClusterReshard moves every slot of the node holding the rollout's
// ledger keys to another node while the rollout runs (long form: twice):
// the workers meet MOVED and ASK answers, fail those calls (the ledger's
// client follows no redirect: it never re-sends a command) and retry the
// tasks on the new node. The slots move in pipelines of 1,000 keys, more
// than a rollout of this size has, so that each slot's keys move in one
// MIGRATE (see docs/operations.md, "Cluster").
func TestClusterReshard(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	n, moves := size(300, 1000), size(1, 2)
	f, sim, ws, l, rdb := clusterRollout(t, c, "chaos-cluster-reshard", n, 79)
	for i := range moves {
		awaitAccepted(t, sim, (i+1)*n/(moves+2), 3*time.Minute)
		key := fmt.Sprintf("chaos:{%s}:r", f.plan.Spec.ID)
		from, to, took := c.reshard(rdb, key, 1000)
		t.Logf("reshard %d after %d accepted resets: every slot of %s moved to %s in %s", i+1, accepted(sim), from, to, took.Round(time.Millisecond))
		if now, _ := c.owner(rdb, key); now != to {
			t.Fatalf("the rollout's slot is served by %s after the reshard; want %s", now, to)
		}
	}
	r := awaitSettled(t, asynq.RedisClusterClientOpt{Addrs: c.addrs()}, ws, l, "chaos", f, size(4*time.Minute, 15*time.Minute))
	ws.stop()
	t.Logf("worker log lines naming a redirect: %d MOVED, %d ASK",
		strings.Count(ws.linesAbout("MOVED "), "\n"), strings.Count(ws.linesAbout("ASK "), "\n"))
	checkSucceeded(t, r)
	checkExactlyOnce(t, sim, f.ids)
	checkRate(t, sim, f)
}
