package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fleetreset/fleetreset/health"
	"github.com/fleetreset/fleetreset/hook"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

// This file runs the steps around one instance's reset that make
// "succeeded" mean "serving again" (rollout/serving.go): drain and before
// hooks while the instance is pending, after hooks, health and the
// restored weight once its image is verified. Each step's progress is in
// the ledger (ledger.Serving) under a version that every write compares,
// so a crash resumes the step where it stood and two deliveries of one
// task never both act on it. No step blocks a handler for long: a step
// that must wait returns and its task (or the next verification sweep)
// comes back.

// stepPoll is how often a running hook is polled.
const stepPoll = 2 * time.Second

// servingCloud is what the steps need of Tencent Cloud besides CVM.
type servingCloud interface {
	// Weights reads an instance's current weights on ls.
	Weights(ctx context.Context, ls []rollout.Listener, id string) ([]ledger.Weight, error)
	// SetWeights sets an instance's weights and waits until the CLB
	// applied them.
	SetWeights(ctx context.Context, id string, ws []ledger.Weight) error
	health.TargetHealthReader
	health.AgentReader
	hook.Automation
}

// hasPrecall reports whether g has steps before the reset call.
func hasPrecall(g rollout.Group) bool { return g.LoadBalancer != nil || len(g.Hooks.Before) > 0 }

// hasPostverify reports whether g has steps after the image is verified.
func hasPostverify(g rollout.Group) bool {
	return g.LoadBalancer != nil || g.Health != nil || len(g.Hooks.After) > 0
}

// stepState is an instance's serving state and version as read, kept in
// step with each write.
type stepState struct {
	sv  ledger.Serving
	ver int
}

func stateOf(in *ledger.Instance) *stepState {
	st := &stepState{ver: in.ServingV}
	if in.Serving != nil {
		st.sv = *in.Serving
	}
	return st
}

// save writes s when nobody else wrote since it was read.
func (w *Worker) save(ctx context.Context, spec rollout.Spec, id string, s *stepState, states ...ledger.InstanceState) error {
	v, err := w.l.SetServing(ctx, spec.ID, id, s.ver, states, s.sv)
	if err != nil {
		if errors.Is(err, ledger.ErrFenced) {
			return &retryLater{In: time.Second, Cause: "serving state changed under us"}
		}
		return err
	}
	s.ver = v
	return nil
}

// prepare runs the steps before an instance's reset call: the drain, then
// the before hooks. It reports ready when the call may go ahead; otherwise
// it returns the error that brings the task back, or nil when the
// instance was finished here (a before hook abandoned it).
func (w *Worker) prepare(ctx context.Context, spec rollout.Spec, in *ledger.Instance) (ready bool, err error) {
	g := spec.Groups[in.Group]
	if !hasPrecall(g) {
		return true, nil
	}
	cloud, err := w.cloud(spec)
	if err != nil {
		return false, err
	}
	s := stateOf(in)
	pending := []ledger.InstanceState{ledger.Pending}
	switch s.sv.Phase {
	case ledger.PhaseReady:
		return true, nil
	case ledger.PhaseDrain, ledger.PhaseBefore:
	default:
		// Fresh, or a failed instance given another attempt: start over,
		// keeping weights recorded and not yet restored (they are the
		// instance's real ones; what the CLB shows now may be our 0).
		fresh := ledger.Serving{}
		if s.sv.Drained() {
			fresh.Weights = s.sv.Weights
		}
		s.sv = fresh
		if g.LoadBalancer != nil {
			if len(s.sv.Weights) == 0 {
				ws, err := w.weightsToRestore(ctx, spec, cloud, g.LoadBalancer.Listeners, in.ID)
				if err != nil {
					return false, err
				}
				s.sv.Weights = ws
			}
			s.sv.Phase = ledger.PhaseDrain
		} else {
			s.sv.Phase = ledger.PhaseBefore
		}
		// Recorded before the drain call: a crash after it restores
		// what was there, never the 0 we set.
		if err := w.save(ctx, spec, in.ID, s, pending...); err != nil {
			return false, err
		}
	}
	for {
		switch s.sv.Phase {
		case ledger.PhaseDrain:
			if !s.sv.Zeroed {
				// After the weights are recorded, before they are 0: a later
				// rollout that finds this instance at 0 learns from whom.
				if err := w.l.NoteDrainer(ctx, spec.ID, in.ID); err != nil {
					return false, err
				}
				if err := cloud.SetWeights(ctx, in.ID, zeroed(s.sv.Weights)); err != nil {
					return false, fmt.Errorf("worker: drain %s: %w", in.ID, err)
				}
				s.sv.Zeroed, s.sv.DrainedAt = true, w.clock.Now()
				if err := w.save(ctx, spec, in.ID, s, pending...); err != nil {
					return false, err
				}
				w.log.Info("instance drained", "rollout", spec.ID, "instance_id", in.ID, "drain_time", g.LoadBalancer.DrainTime)
			}
			if left := s.sv.DrainedAt.Add(g.LoadBalancer.DrainTime).Sub(w.clock.Now()); left > 0 {
				return false, &retryLater{In: left, Cause: "draining"}
			}
			s.sv.Phase, s.sv.Hook = ledger.PhaseBefore, 0
			if err := w.save(ctx, spec, in.ID, s, pending...); err != nil {
				return false, err
			}
		case ledger.PhaseBefore:
			if s.sv.Hook >= len(g.Hooks.Before) {
				s.sv.Phase = ledger.PhaseReady
				if err := w.save(ctx, spec, in.ID, s, pending...); err != nil {
					return false, err
				}
				return true, nil
			}
			h := g.Hooks.Before[s.sv.Hook]
			st, err := w.hookStep(ctx, spec, in, cloud, "before", h, s, pending)
			if err != nil || !st.Done {
				return false, err
			}
			s.sv.HookLog = append(s.sv.HookLog, hookLine("before", h, st))
			if !st.OK && h.OnFailure != rollout.HookContinue {
				return false, w.abandon(ctx, spec, in, cloud, s, fmt.Sprintf("before hook %s failed: %s", h.Name, st.Detail))
			}
			s.sv.Hook++
			s.sv.Handle, s.sv.Starting = nil, false
			if err := w.save(ctx, spec, in.ID, s, pending...); err != nil {
				return false, err
			}
		default:
			return true, nil
		}
	}
}

// weightsToRestore reads the weights an instance must get back after its
// reset. An instance found at weight 0 may be at the 0 an earlier rollout
// left (unhealthy instances keep 0): a rollback asks its original
// rollout's record, any other rollout the record of the last one that
// drained the instance and never gave its weights back. Restoring the 0
// would keep a healthy, reinstalled machine out of service for good.
func (w *Worker) weightsToRestore(ctx context.Context, spec rollout.Spec, cloud servingCloud, ls []rollout.Listener, id string) ([]ledger.Weight, error) {
	ws, err := cloud.Weights(ctx, ls, id)
	if err != nil {
		return nil, fmt.Errorf("worker: weights of %s: %w", id, err)
	}
	if len(ws) == 0 {
		return nil, fmt.Errorf("worker: %s is not a target of the plan's listeners: %w", id, errNotTarget)
	}
	if !allZero(ws) {
		return ws, nil
	}
	if spec.RollbackOf != "" {
		if orig, err := w.l.Instance(ctx, spec.RollbackOf, id); err == nil && orig.Serving != nil && len(orig.Serving.Weights) > 0 {
			return orig.Serving.Weights, nil
		}
	}
	by, left, err := w.l.LeftDrained(ctx, id, spec.ID)
	if err != nil {
		return nil, err
	}
	if sameListeners(left, ws) {
		w.log.Info("instance found at the weight 0 an earlier rollout left it at: its weights from before that drain come back when it is healthy",
			"rollout", spec.ID, "instance_id", id, "drained_by", by)
		return left, nil
	}
	return ws, nil
}

// sameListeners reports whether recorded weights cover exactly the
// listeners (and rules) found now: an earlier rollout's record is used only
// for the places it describes.
func sameListeners(rec, now []ledger.Weight) bool {
	if len(rec) == 0 || len(rec) != len(now) {
		return false
	}
	places := make(map[ledger.Weight]bool, len(rec))
	for _, w := range zeroed(rec) {
		places[w] = true
	}
	for _, w := range zeroed(now) {
		if !places[w] {
			return false
		}
	}
	return true
}

var errNotTarget = errors.New("not a load-balancer target")

func allZero(ws []ledger.Weight) bool {
	for _, w := range ws {
		if w.Weight != 0 {
			return false
		}
	}
	return true
}

func zeroed(ws []ledger.Weight) []ledger.Weight {
	out := make([]ledger.Weight, len(ws))
	for i, w := range ws {
		w.Weight = 0
		out[i] = w
	}
	return out
}

// abandon fails an instance whose reset was never called and gives its
// weights back.
func (w *Worker) abandon(ctx context.Context, spec rollout.Spec, in *ledger.Instance, cloud servingCloud, s *stepState, why string) error {
	if err := w.restore(ctx, spec, in.ID, cloud, s, ledger.Pending); err != nil {
		return err
	}
	w.log.Error("instance abandoned before its reset", "rollout", spec.ID, "wave", in.Wave+1, "instance_id", in.ID, "reason", why)
	return w.finish(ctx, spec, in.ID, ledger.Outcome{From: []ledger.InstanceState{ledger.Pending}, To: ledger.Failed, Code: "HookFailed", Message: why})
}

// restore puts an instance's recorded weights back, once.
func (w *Worker) restore(ctx context.Context, spec rollout.Spec, id string, cloud servingCloud, s *stepState, states ...ledger.InstanceState) error {
	if !s.sv.Drained() {
		return nil
	}
	if err := cloud.SetWeights(ctx, id, s.sv.Weights); err != nil {
		return fmt.Errorf("worker: restore weights of %s: %w", id, err)
	}
	s.sv.Restored = true
	if err := w.save(ctx, spec, id, s, states...); err != nil {
		return err
	}
	w.log.Info("weights restored", "rollout", spec.ID, "instance_id", id)
	return nil
}

// undrain gives an instance whose reset was not called its weights back
// when its attempt stops short of the call (the rollout paused or was
// aborted while it drained), and starts its steps over: the next attempt
// drains again.
func (w *Worker) undrain(ctx context.Context, spec rollout.Spec, id string) error {
	in, err := w.l.Instance(ctx, spec.ID, id)
	if err != nil || !in.Serving.Drained() || in.RequestID != "" || !hasPrecall(spec.Groups[in.Group]) {
		return err
	}
	switch in.State {
	case ledger.Pending, ledger.Held, ledger.Cancelled, ledger.Skipped, ledger.Failed:
	default:
		return nil
	}
	cloud, err := w.cloud(spec.At(spec.LocationOf(in.Group)))
	if err != nil {
		return err
	}
	s := stateOf(in)
	if err := w.restore(ctx, spec, id, cloud, s, in.State); err != nil {
		return err
	}
	s.sv = ledger.Serving{}
	if err := w.save(ctx, spec, id, s, in.State); err != nil {
		return err
	}
	// An aborted rollout kept its claim while the instance was drained
	// (ledger.UnclaimAll): it is back in service now, and free.
	if st, _, err := w.l.State(ctx, spec.ID); err == nil && st == ledger.Aborted {
		return w.l.UnclaimIdle(ctx, spec.ID, []string{id})
	}
	return nil
}

// hookStep starts hook h or polls it, persisting its handle so that a
// crash polls the same run rather than starting another. A step still
// running returns the error that brings the task back.
func (w *Worker) hookStep(ctx context.Context, spec rollout.Spec, in *ledger.Instance, cloud servingCloud, phase string, h rollout.Hook, s *stepState, states []ledger.InstanceState) (hook.Status, error) {
	r := w.hookRunner(cloud)
	var hd hook.Handle
	if len(s.sv.Handle) == 0 {
		if !s.sv.Starting {
			// Marked before Start: a crash between Start and saving the
			// handle starts the hook again (hooks must be idempotent, the
			// docs say) rather than losing track of it.
			s.sv.Starting, s.sv.HookSince = true, w.clock.Now()
			if err := w.save(ctx, spec, in.ID, s, states...); err != nil {
				return hook.Status{}, err
			}
		}
		var err error
		hd, err = r.Start(ctx, spec.ID, phase, h, factsOf(in, s.sv))
		if err != nil {
			// Nothing began (a TAT agent still coming online refuses
			// RunCommand for a while): try again until the hook's timeout.
			if w.clock.Now().Sub(s.sv.HookSince) < cmp.Or(h.Timeout, hook.TimeoutDefault) {
				return hook.Status{}, &retryLater{In: stepPoll, Cause: fmt.Sprintf("%s hook %s not started: %v", phase, h.Name, err)}
			}
			return hook.Status{Done: true, Detail: "could not start: " + err.Error()}, nil
		}
		b, err := json.Marshal(hd)
		if err != nil {
			return hook.Status{}, err
		}
		s.sv.Handle = b
		if err := w.save(ctx, spec, in.ID, s, states...); err != nil {
			return hook.Status{}, err
		}
		w.log.Info("hook started", "rollout", spec.ID, "instance_id", in.ID, "phase", phase, "hook", h.Name)
	} else if err := json.Unmarshal(s.sv.Handle, &hd); err != nil {
		return hook.Status{}, fmt.Errorf("worker: hook handle of %s: %w", in.ID, err)
	}
	st, err := r.Poll(ctx, spec.ID, h, hd)
	if err != nil || !st.Done {
		// A read that failed is retried until the hook's timeout, after
		// which Poll itself gives the verdict.
		return st, &retryLater{In: stepPoll, Cause: fmt.Sprintf("%s hook %s running", phase, h.Name)}
	}
	return st, nil
}

func hookLine(phase string, h rollout.Hook, st hook.Status) string {
	if st.OK {
		return phase + " " + h.Name + ": ok"
	}
	return phase + " " + h.Name + ": failed: " + st.Detail
}

func factsOf(in *ledger.Instance, sv ledger.Serving) hook.Facts {
	return hook.Facts{InstanceID: in.ID, PrivateIP: sv.PrivateIP, Zone: in.Zone, Name: sv.Name,
		OldImage: in.OldImage, NewImage: in.NewImage}
}

func healthFacts(in *ledger.Instance, sv ledger.Serving) health.Facts {
	return health.Facts{InstanceID: in.ID, PrivateIP: sv.PrivateIP, PublicIP: sv.PublicIP, Zone: in.Zone, Name: sv.Name}
}
