package chaos

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/internal/testfleet"
	"github.com/fleetreset/fleetreset/ledger"
)

// TestKillWorkersWhileDrained SIGKILLs every worker process while
// instances are drained on their load balancer and not yet reset, then
// starts new ones. The recorded weights survive in the ledger: every
// instance is reset exactly once, proves healthy, and gets its weight back;
// none is left at 0.
func TestKillWorkersWhileDrained(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	redisURL := "redis://" + r.Addr
	const lb, listener = "lb-chaos001", "lbl-chaos001"
	sim := cvmsim.New(cvmsim.Config{ResetDuration: 300 * time.Millisecond, ReplayWindow: chaosReplay, HealthPort: -1,
		LoadBalancers: []cvmsim.LoadBalancer{{ID: lb, Listeners: []cvmsim.Listener{{ID: listener, Port: 80, EveryInstance: true}}}}})
	if err := sim.Start(); err != nil {
		t.Fatalf("simulator health endpoints: %v", err)
	}
	t.Cleanup(func() { sim.Close() })
	extra := fmt.Sprintf("loadBalancer: {listeners: [{loadBalancer: %s, listener: %s, port: 80}], drainTime: 3s}\n"+
		"health: {checks: [{http: 'http://{privateIp}:%d/healthz'}], interval: 500ms, timeout: 400ms, healthyThreshold: 2, deadline: 2m}\n",
		lb, listener, sim.HealthPort())
	f := writePlan(t, planOpts{name: "chaos-drain", n: size(40, 200), seed: 47, waves: "[5, 100%]", extra: extra})
	sim.AddInstances(testfleet.SimFleet(f.ids)...)
	url := newTap(sim, 0, 0, true).serve(t)
	apply(t, redisURL, ns, url, f.path)
	ws := startWorkers(t, 2, redisURL, ns, url, "--concurrency", "20")
	l, _ := newLedger(t, r.Addr, ns)

	drainedNotReset := func() int {
		n := 0
		st := sim.Stats()
		for _, id := range f.ids {
			if st.AcceptedResets[id] == 0 && sim.Weights(id)[lb+"/"+listener] == 0 {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(2 * time.Minute)
	for drainedNotReset() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no instance was ever drained and waiting for its reset")
		}
		time.Sleep(50 * time.Millisecond)
	}
	held := drainedNotReset()
	for i := range ws.slots {
		ws.slots[i].signal(t, syscall.SIGKILL)
	}
	t.Logf("killed every worker with %d instances drained and not reset", held)
	for i := range ws.slots {
		ws.restart(i)
	}
	res := awaitRollout(t, l, f.plan.Spec.ID, size(5*time.Minute, 15*time.Minute), ledger.Completed, ledger.Paused, ledger.Aborted)
	ws.stop()
	checkSucceeded(t, res)
	checkExactlyOnce(t, sim, f.ids)
	for _, id := range f.ids {
		if w := sim.Weights(id)[lb+"/"+listener]; w != cvmsim.WeightDefault {
			t.Errorf("%s ends with weight %d; want %d back", id, w, cvmsim.WeightDefault)
		}
	}
}
