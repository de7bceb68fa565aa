package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

// The simulated load balancer every instance of a serving test sits behind.
const (
	testLB       = "lb-web00001"
	testListener = "lbl-web00001"
	weightKey    = testLB + "/" + testListener
)

// servingSim is a simulator whose instances serve /healthz on their own
// loopback addresses (a free port, picked when setup starts it) and sit
// behind testListener with weight 10.
func servingSim(f cvmsim.Faults) cvmsim.Config {
	return cvmsim.Config{HealthPort: -1, Faults: f, ResetDuration: 300 * time.Millisecond,
		LoadBalancers: []cvmsim.LoadBalancer{{ID: testLB, Listeners: []cvmsim.Listener{{ID: testListener, Port: 80, EveryInstance: true}}}}}
}

// healthYAML is a plan's health block checking each instance's /healthz,
// with more top-level YAML after it.
func healthYAML(deadline, more string) func(b *bundle) string {
	return func(b *bundle) string {
		return fmt.Sprintf("health: {checks: [{http: 'http://{privateIp}:%d/healthz', body: ok}], interval: 200ms, timeout: 150ms, healthyThreshold: 2, deadline: %s}\n", b.sim.HealthPort(), deadline) + more
	}
}

const drainYAML = "loadBalancer: {listeners: [{loadBalancer: " + testLB + ", listener: " + testListener + ", port: 80}], drainTime: 200ms}\n"

func (b *bundle) instance(t *testing.T, id string) *ledger.Instance {
	t.Helper()
	in, err := b.l.Instance(t.Context(), b.plan.Spec.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// An unhealthy canary fails its wave's budget: the rollout stops before
// wave 2 and no wave-2 instance is reset.
func TestUnhealthyCanaryStopsTheRollout(t *testing.T) {
	all := ids(6)
	b := setup(t, servingSim(cvmsim.Faults{UnhealthyIDs: []string{all[0]}}), planOpts{n: 6, waves: "[{size: 1}, {size: 100%}]",
		extraAt: healthYAML("1500ms", drainYAML+"failureBudget: {max: 0}\n")})
	b.apply(t)
	b.startWorkers(t, 2, nil)
	r := b.await(t, time.Minute, ledger.Paused)
	if !strings.Contains(r.Reason, "budget") && !strings.Contains(r.Reason, "fail") {
		t.Errorf("paused for %q; want the failure budget", r.Reason)
	}
	canary := b.instance(t, all[0])
	if canary.State != ledger.Failed || canary.Code != "Unhealthy" {
		t.Errorf("canary %s: %s %s %q; want failed Unhealthy", canary.ID, canary.State, canary.Code, canary.Error)
	}
	st := b.sim.Stats()
	if st.AcceptedResets[all[0]] != 1 {
		t.Errorf("canary reset %d times; want 1", st.AcceptedResets[all[0]])
	}
	for _, id := range all[1:] {
		if n := st.AcceptedResets[id]; n != 0 {
			t.Errorf("wave-2 instance %s reset %d times after an unhealthy canary", id, n)
		}
	}
	// Traffic never returns to the unproven canary.
	if w := b.sim.Weights(all[0])[weightKey]; w != 0 {
		t.Errorf("unhealthy canary's weight = %d; want it left at 0", w)
	}
}

// Every instance is drained before its reset and gets its weight back
// only once healthy on the new image.
func TestDrainResetHealthyRestore(t *testing.T) {
	b := setup(t, servingSim(cvmsim.Faults{}), planOpts{n: 6, waves: "[{size: 2}, {size: 100%}]", extraAt: healthYAML("30s", drainYAML)})
	b.apply(t)
	b.startWorkers(t, 2, nil)
	b.await(t, time.Minute, ledger.Completed)
	b.exactlyOnce(t, nil)
	for _, id := range ids(6) {
		in := b.instance(t, id)
		h := b.sim.WeightHistory(id)
		if len(h) != 2 || h[0].From != 10 || h[0].To != 0 || h[1].From != 0 || h[1].To != 10 {
			t.Errorf("%s weight history %+v; want 10→0 then 0→10", id, h)
			continue
		}
		if !h[0].At.Before(in.CalledAt) {
			t.Errorf("%s drained at %s, not before its reset call at %s", id, h[0].At, in.CalledAt)
		}
		if !h[1].RequestedAt.After(in.CalledAt) {
			t.Errorf("%s restored at %s, not after its reset call at %s", id, h[1].RequestedAt, in.CalledAt)
		}
		if in.Serving == nil || in.Serving.Health.Passes < 2 || !in.Serving.Restored {
			t.Errorf("%s serving record %+v; want 2 passes and weights restored", id, in.Serving)
		}
	}
}

// A before hook that fails abandons its instance: the reset is never
// called, and the instance gets its weight back.
func TestFailingBeforeHookNeverResets(t *testing.T) {
	all := ids(4)
	b := setup(t, servingSim(cvmsim.Faults{CommandFailIDs: []string{all[1]}}), planOpts{n: 4, extraAt: healthYAML("30s", drainYAML+
		"hooks: {before: [{name: stop-app, command: 'systemctl stop app', timeout: 30s}]}\nfailureBudget: {max: 2}\n")})
	b.apply(t)
	b.startWorkers(t, 1, nil)
	b.await(t, time.Minute, ledger.Completed)
	st := b.sim.Stats()
	bad := b.instance(t, all[1])
	if bad.State != ledger.Failed || bad.Code != "HookFailed" || st.AcceptedResets[all[1]] != 0 {
		t.Errorf("%s: %s %s %q, %d resets; want failed HookFailed and never reset", all[1], bad.State, bad.Code, bad.Error, st.AcceptedResets[all[1]])
	}
	if w := b.sim.Weights(all[1])[weightKey]; w != 10 {
		t.Errorf("abandoned %s has weight %d; want its 10 back", all[1], w)
	}
	for _, id := range []string{all[0], all[2], all[3]} {
		if st.AcceptedResets[id] != 1 || len(b.sim.Invocations(id)) != 1 {
			t.Errorf("%s: %d resets, %d hook runs; want 1 and 1", id, st.AcceptedResets[id], len(b.sim.Invocations(id)))
		}
	}
}

// An alarm that fires while a wave soaks pauses the rollout before the
// next wave.
func TestAlarmDuringSoakPauses(t *testing.T) {
	all := ids(4)
	b := setup(t, cvmsim.Config{}, planOpts{n: 4, waves: "[{size: 1, soak: 10m}, {size: 100%}]", extraAt: func(b *bundle) string {
		return fmt.Sprintf("stopWhen: {prometheus: [{name: HighErrorRate, url: '%s/prometheus', query: 'rate(errors[1m]) > 0.1'}], interval: 1s}\n", b.url)
	}})
	b.apply(t)
	b.startWorkers(t, 1, nil)
	if !eventually(30*time.Second, func() bool {
		in, err := b.l.Instance(t.Context(), b.plan.Spec.ID, all[0])
		return err == nil && in.State == ledger.Succeeded
	}) {
		t.Fatal("the canary did not succeed")
	}
	b.sim.SetAlert("HighErrorRate", true)
	r := b.await(t, 30*time.Second, ledger.Paused)
	if !strings.Contains(r.Reason, "HighErrorRate") {
		t.Errorf("paused for %q; want the alarm named", r.Reason)
	}
	for _, id := range all[1:] {
		if n := b.sim.Stats().AcceptedResets[id]; n != 0 {
			t.Errorf("%s reset %d times after the alarm fired", id, n)
		}
	}
}

// A worker that stops between the drain and the reset leaves the weight
// recorded: the next worker either finishes the instance (weight back
// after healthy) or, when the rollout was aborted meanwhile, gives the
// weight back without a reset.
func TestDrainSurvivesTheWorker(t *testing.T) {
	for _, abort := range []bool{false, true} {
		t.Run(fmt.Sprintf("abort=%v", abort), func(t *testing.T) {
			id := ids(1)[0]
			b := setup(t, servingSim(cvmsim.Faults{}), planOpts{n: 1, extraAt: healthYAML("30s",
				strings.Replace(drainYAML, "drainTime: 200ms", "drainTime: 2s", 1))})
			b.apply(t)
			stop := b.startWorkers(t, 1, nil)
			if !eventually(30*time.Second, func() bool { return b.sim.Weights(id)[weightKey] == 0 }) {
				t.Fatal("the instance was never drained")
			}
			stop()
			in := b.instance(t, id)
			if !in.Serving.Drained() || in.Serving.Weights[0].Weight != 10 || in.RequestID != "" {
				t.Fatalf("after the stop: %+v %+v; want weight 10 recorded and no call", in, in.Serving)
			}
			if abort {
				if _, err := b.ctl.Abort(t.Context(), b.plan.Spec.ID, "test"); err != nil {
					t.Fatal(err)
				}
			}
			b.startWorkers(t, 1, nil)
			if abort {
				if !eventually(30*time.Second, func() bool { return b.sim.Weights(id)[weightKey] == 10 }) {
					t.Fatalf("weight of the aborted instance = %v; want 10 back", b.sim.Weights(id))
				}
				if n := b.sim.Stats().AcceptedResets[id]; n != 0 {
					t.Errorf("aborted instance reset %d times", n)
				}
				return
			}
			b.await(t, time.Minute, ledger.Completed)
			b.exactlyOnce(t, nil)
			if h := b.sim.WeightHistory(id); len(h) != 2 || h[1].To != 10 {
				t.Errorf("weight history %+v; want one drain and one restore", h)
			}
		})
	}
}

// TestLaterRolloutRestoresWhatAnEarlierOneLeftAtZero: an instance that
// failed its health checks keeps weight 0 when its rollout completes. A
// later rollout of another name that reinstalls it (a fixed image) finds
// it at 0 and, once it is healthy, gives back the weight it had before the
// first drain (10) — not the 0 it found, which would keep a healthy
// machine out of service for good. An instance an operator set to 0
// itself (no rollout left it so) stays at 0.
func TestLaterRolloutRestoresWhatAnEarlierOneLeftAtZero(t *testing.T) {
	all := ids(3)
	b := setup(t, servingSim(cvmsim.Faults{UnhealthyIDs: []string{all[0]}}), planOpts{n: 3,
		extraAt: healthYAML("1500ms", drainYAML+"failureBudget: {max: 3}\nskipMatching: false\n")})
	b.apply(t)
	b.startWorkers(t, 2, nil)
	if r := b.await(t, time.Minute, ledger.Completed, ledger.Paused); r.State != ledger.Completed || r.Counters.Failed != 1 {
		t.Fatalf("first rollout %s with %+v; want completed with the unhealthy one failed", r.State, r.Counters)
	}
	if w := b.sim.Weights(all[0])[weightKey]; w != 0 {
		t.Fatalf("unhealthy instance's weight = %d; want it left at 0", w)
	}
	// The operator takes all[1] out of service by hand, and fixes the
	// image all[0] failed on.
	if err := b.sim.SetFaults(cvmsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	if !b.sim.SetWeight(all[1], weightKey, 0) {
		t.Fatal("SetWeight: not bound")
	}

	again := *b.plan
	again.Spec.ID = "test-fixed"
	again.Spec.Waves = []rollout.Wave{{Size: 2, Budget: b.plan.Spec.Waves[0].Budget}}
	again.Targets = nil
	for _, tg := range b.plan.Targets {
		if tg.InstanceID != all[2] {
			again.Targets = append(again.Targets, tg)
		}
	}
	b.stack.Apply(t, &again)
	if r := b.stack.Await(t, again.Spec.ID, time.Minute, ledger.Completed, ledger.Paused); r.State != ledger.Completed || r.Counters.Succeeded != 2 {
		t.Fatalf("second rollout %s with %+v; want both succeeded", r.State, r.Counters)
	}
	if w := b.sim.Weights(all[0])[weightKey]; w != 10 {
		t.Errorf("weight of the instance the first rollout left at 0 = %d after the second; want its 10 back", w)
	}
	if w := b.sim.Weights(all[1])[weightKey]; w != 0 {
		t.Errorf("weight of the instance set to 0 by hand = %d after the second; want 0 kept", w)
	}
	if !strings.Contains(b.logs.String(), `"drained_by":"test"`) {
		t.Errorf("the worker did not say which rollout left the instance at 0:\n%s", b.logs.String())
	}
}
