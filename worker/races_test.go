package worker_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/worker"
)

// operatorAt plays an operator's pause at the moment a reset handler reads
// its rollout (before it decides what to do) and a resume right after the
// handler read its instance: the handler has seen the rollout paused, but
// it runs again by the time the handler records its intent.
type operatorAt struct {
	armed, resumeNext atomic.Bool
	pause, resume     func()
}

func inResetTask(ctx context.Context) bool {
	id, _ := asynq.GetTaskID(ctx)
	return strings.HasPrefix(id, "reset:")
}

func (h *operatorAt) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *operatorAt) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if a := cmd.Args(); cmd.Name() == "hmget" && len(a) > 2 && a[2] == "spec" && inResetTask(ctx) && h.armed.CompareAndSwap(true, false) {
			h.pause()
			h.resumeNext.Store(true)
		}
		return next(ctx, cmd)
	}
}

func (h *operatorAt) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if len(cmds) == 1 && cmds[0].Name() == "hgetall" && inResetTask(ctx) && h.resumeNext.CompareAndSwap(true, false) {
			h.resume()
		}
		return err
	}
}

// TestResumeWhileAHandlerReadsItPausedDrainsFirst: a reset handler that
// read its rollout paused did none of the steps before a call (drain,
// before hooks, maxUnavailable, describe); when the rollout is resumed
// before the handler records its intent, it must start over, not call.
// (Found by the 2026-12-07 audit: the reset ran at weight 10, hook unrun.)
func TestResumeWhileAHandlerReadsItPausedDrainsFirst(t *testing.T) {
	all := ids(1)
	b := setup(t, servingSim(cvmsim.Faults{}), planOpts{n: 1, extraAt: healthYAML("30s", drainYAML+
		"hooks: {before: [{name: stop-app, command: 'systemctl stop app', timeout: 30s}]}\n")})
	h := &operatorAt{}
	var paused, resumed atomic.Bool
	h.pause = func() {
		if err := b.ctl.Pause(context.WithoutCancel(t.Context()), b.plan.Spec.ID, "operator"); err != nil {
			t.Errorf("pause: %v", err)
		}
		paused.Store(true)
	}
	h.resume = func() {
		if _, err := b.ctl.Resume(context.WithoutCancel(t.Context()), b.plan.Spec.ID); err != nil {
			t.Errorf("resume: %v", err)
		}
		resumed.Store(true)
	}
	h.armed.Store(true)
	b.r.Client.AddHook(h)
	b.apply(t)
	b.startWorkers(t, 1, nil)
	b.await(t, time.Minute, ledger.Completed)
	if !paused.Load() || !resumed.Load() {
		t.Fatal("the pause and resume were not played: the hook no longer matches the handler's reads")
	}
	b.exactlyOnce(t, nil)
	in := b.instance(t, all[0])
	hist := b.sim.WeightHistory(all[0])
	if len(hist) != 2 || hist[0].To != 0 || !hist[0].At.Before(in.CalledAt) {
		t.Errorf("weight history %+v, reset called at %s; want drained to 0 before the call, then restored", hist, in.CalledAt)
	}
	if n := len(b.sim.Invocations(all[0])); n != 1 {
		t.Errorf("before hook ran %d times; want once, before the reset", n)
	}
}

// gatedAPI holds the reset calls of one rollout until open is closed: a
// call in flight (a slow answer, a request held in the network).
type gatedAPI struct {
	cvm.API
	sent chan<- struct{}
	open <-chan struct{}
}

func (g gatedAPI) ResetInstance(ctx context.Context, req cvm.ResetRequest) (string, error) {
	select {
	case g.sent <- struct{}{}:
	default:
	}
	select {
	case <-g.open:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return g.API.ResetInstance(ctx, req)
}

// TestAbortKeepsInstancesWithCallsInFlight: an operator aborts a rollout
// while its reset call is in flight and applies another over the same
// instance. The new rollout is refused until the call has an outcome, then
// accepted, and the instance is reset once in all. (Found by the
// 2026-12-07 audit: the abort released the claim, and both rollouts reset
// the instance.)
func TestAbortKeepsInstancesWithCallsInFlight(t *testing.T) {
	all := ids(1)
	b := setup(t, cvmsim.Config{}, planOpts{n: 1})
	b.apply(t)
	sent, open := make(chan struct{}, 1), make(chan struct{})
	b.startWorkers(t, 1, func(c *worker.Config) {
		c.APIFunc = func(spec rollout.Spec) (cvm.API, error) {
			api, err := cvm.New(cvm.Config{Generation: cvm.V3, Endpoint: b.url, Region: spec.Region, Credentials: b.creds})
			if err != nil || spec.ID != b.plan.Spec.ID {
				return api, err
			}
			return gatedAPI{API: api, sent: sent, open: open}, nil
		}
	})
	select {
	case <-sent:
	case <-time.After(30 * time.Second):
		t.Fatal("the reset call was never made")
	}
	inFlight, err := b.ctl.Abort(t.Context(), b.plan.Spec.ID, "operator: wrong plan")
	if err != nil || inFlight != 1 {
		t.Fatalf("Abort = %d in flight, %v; want 1", inFlight, err)
	}
	next := b.plan.Spec
	next.ID = "test-next"
	req := engine.ApplyRequest{Spec: next, Targets: b.plan.Targets}
	_, err = b.ctl.Apply(t.Context(), req)
	if !errors.Is(err, engine.ErrRefused) || !strings.Contains(err.Error(), "still out of service in aborted rollout") {
		t.Fatalf("Apply over an instance with a call in flight = %v; want refused, naming the aborted rollout", err)
	}
	close(open)
	if !eventually(30*time.Second, func() bool {
		in, err := b.l.Instance(t.Context(), b.plan.Spec.ID, all[0])
		return err == nil && in.State.Terminal()
	}) {
		t.Fatal("the aborted rollout's call never got an outcome")
	}
	if res, err := b.ctl.Apply(t.Context(), req); err != nil || !res.Created {
		t.Fatalf("Apply once the call ended = %+v, %v; want created", res, err)
	}
	b.stack.Await(t, next.ID, time.Minute, ledger.Completed)
	if n := b.sim.Stats().AcceptedResets[all[0]]; n != 1 {
		t.Errorf("%s reset %d times; want once in all", all[0], n)
	}
}

// TestAbortKeepsDrainedInstances: an instance drained for a reset that
// was never called (waiting out its drain time) stays its aborted
// rollout's until its weight is back; a rollout applied over it meanwhile
// is refused, so it never drains an instance at weight 0 and "restores" 0.
// (Found by the 2026-12-07 audit, round 2.)
func TestAbortKeepsDrainedInstances(t *testing.T) {
	all := ids(1)
	b := setup(t, servingSim(cvmsim.Faults{}), planOpts{n: 1, extraAt: healthYAML("30s",
		"loadBalancer: {listeners: [{loadBalancer: "+testLB+", listener: "+testListener+", port: 80}], drainTime: 3s}\n")})
	b.apply(t)
	b.startWorkers(t, 1, nil)
	if !eventually(30*time.Second, func() bool { return b.sim.Weights(all[0])[weightKey] == 0 }) {
		t.Fatal("the instance was never drained")
	}
	if _, err := b.ctl.Abort(t.Context(), b.plan.Spec.ID, "operator: wrong plan"); err != nil {
		t.Fatal(err)
	}
	next := b.plan.Spec
	next.ID = "test-next"
	req := engine.ApplyRequest{Spec: next, Targets: b.plan.Targets}
	if _, err := b.ctl.Apply(t.Context(), req); !errors.Is(err, engine.ErrRefused) || !strings.Contains(err.Error(), "still out of service") {
		t.Fatalf("Apply over a drained instance = %v; want refused", err)
	}
	// The drain's task comes back, finds the rollout aborted and gives
	// the weight back; then the instance is free.
	if !eventually(30*time.Second, func() bool { return b.sim.Weights(all[0])[weightKey] == 10 }) {
		t.Fatal("the aborted rollout never gave the weight back")
	}
	var res engine.ApplyResult
	if !eventually(10*time.Second, func() bool {
		var err error
		res, err = b.ctl.Apply(t.Context(), req)
		return err == nil
	}) || !res.Created {
		t.Fatalf("Apply once the weight was back = %+v; want created", res)
	}
	b.stack.Await(t, next.ID, time.Minute, ledger.Completed)
	if n := b.sim.Stats().AcceptedResets[all[0]]; n != 1 {
		t.Errorf("%s reset %d times; want once (by the second rollout)", all[0], n)
	}
	if w := b.sim.Weights(all[0])[weightKey]; w != 10 {
		t.Errorf("weight after the second rollout = %d; want 10", w)
	}
}

// lostAPI loses every reset call of one rollout on the way: the request
// may have been sent (a timeout), but it never reaches the cloud.
type lostAPI struct {
	cvm.API
	lost chan<- struct{}
}

func (l lostAPI) ResetInstance(ctx context.Context, req cvm.ResetRequest) (string, error) {
	select {
	case l.lost <- struct{}{}:
	default:
	}
	return "", &cvm.TransportError{Op: "v3 ResetInstance", Err: context.DeadlineExceeded, Sent: true}
}

// TestAbortedRolloutNeverCallsAgain: a reset call was lost (it may have
// been sent), and the rollout is aborted before the reconcile proves it
// never landed. The reconcile must cancel the instance, not call again for
// an aborted rollout. (Found by the 2026-12-07 audit: reconcile checked
// nothing, and then checked the state apart from taking the new token.)
func TestAbortedRolloutNeverCallsAgain(t *testing.T) {
	all := ids(1)
	b := setup(t, servingSim(cvmsim.Faults{}), planOpts{n: 1, extraAt: healthYAML("30s", drainYAML)})
	b.apply(t)
	lost := make(chan struct{}, 1)
	b.startWorkers(t, 1, func(c *worker.Config) {
		c.APIFunc = func(spec rollout.Spec) (cvm.API, error) {
			api, err := cvm.New(cvm.Config{Generation: cvm.V3, Endpoint: b.url, Region: spec.Region, Credentials: b.creds})
			return lostAPI{API: api, lost: lost}, err
		}
	})
	select {
	case <-lost:
	case <-time.After(30 * time.Second):
		t.Fatal("the reset call was never made")
	}
	if _, err := b.ctl.Abort(t.Context(), b.plan.Spec.ID, "operator"); err != nil {
		t.Fatal(err)
	}
	// The reconcile comes after the grace (1 s) and the replay window
	// (3 s): then the call provably never landed.
	if !eventually(30*time.Second, func() bool { return b.instance(t, all[0]).State == ledger.Cancelled }) {
		in := b.instance(t, all[0])
		t.Fatalf("%s is %s (%s %s); want cancelled", all[0], in.State, in.Code, in.Error)
	}
	if in := b.instance(t, all[0]); in.Tries != 1 {
		t.Errorf("%s tried %d times; want the one lost call only", all[0], in.Tries)
	}
	// Drained for the call, never reset: its weight comes back.
	if !eventually(10*time.Second, func() bool { return b.sim.Weights(all[0])[weightKey] == 10 }) {
		t.Errorf("weight of the cancelled %s = %d; want 10 back", all[0], b.sim.Weights(all[0])[weightKey])
	}
}

// TestRollbackTakesOverAnUnhealthyInstance: an instance that came back
// unhealthy fails and stays at weight 0, drained, in its rollout. Rolled
// back, the rollback (and only it) takes the instance over although the
// aborted original still keeps it out of service, reinstalls its old image
// and gives its weight back.
func TestRollbackTakesOverAnUnhealthyInstance(t *testing.T) {
	all := ids(2)
	b := setup(t, servingSim(cvmsim.Faults{UnhealthyIDs: all[:1]}), planOpts{n: 2, waves: "[{size: 1}, {size: 100%}]", extraAt: healthYAML("2s", drainYAML)})
	b.apply(t)
	b.startWorkers(t, 1, nil)
	r := b.await(t, time.Minute, ledger.Paused, ledger.Completed, ledger.Aborted)
	if r.State != ledger.Paused {
		t.Fatalf("rollout %s (%s); want paused by the unhealthy canary", r.State, r.Reason)
	}
	if in := b.instance(t, all[0]); in.State != ledger.Failed || !in.Serving.Drained() || b.sim.Weights(all[0])[weightKey] != 0 {
		t.Fatalf("canary %s drained %v weight %d; want failed and left at weight 0", in.State, in.Serving.Drained(), b.sim.Weights(all[0])[weightKey])
	}
	// The operator fixes what made it unhealthy, then rolls back.
	if err := b.sim.SetFaults(cvmsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	res, err := b.ctl.Rollback(t.Context(), b.plan.Spec.ID, nil)
	if err != nil || !res.Created {
		t.Fatalf("Rollback = %+v, %v; want created", res, err)
	}
	rb := b.stack.Await(t, res.ID, time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted)
	if rb.State != ledger.Completed {
		t.Fatalf("rollback %s (%s); want completed", rb.State, rb.Reason)
	}
	if n := b.sim.Stats().AcceptedResets[all[0]]; n != 2 {
		t.Errorf("canary reset %d times; want 2 (the rollout's, the rollback's)", n)
	}
	if w := b.sim.Weights(all[0])[weightKey]; w != 10 {
		t.Errorf("canary weight after the rollback = %d; want its 10 back", w)
	}
	if n := b.sim.Stats().AcceptedResets[all[1]]; n != 0 {
		t.Errorf("%s, never reached, reset %d times", all[1], n)
	}
}
