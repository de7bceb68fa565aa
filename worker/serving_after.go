package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/health"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

// inAfterSteps reports whether a resetting instance is past its image
// check, in the steps after it (the sweep runs them instead of describing).
func inAfterSteps(in *ledger.Instance) bool {
	if in.Serving == nil {
		return false
	}
	switch in.Serving.Phase {
	case ledger.PhaseAfter, ledger.PhaseHealth, ledger.PhaseRestore:
		return true
	}
	return false
}

// verifiedImage moves an instance whose new image was verified into the
// steps after it, recording the facts health checks and hooks address.
func (w *Worker) verifiedImage(ctx context.Context, spec rollout.Spec, in *ledger.Instance, obs *cvm.Instance, now time.Time) (*ledger.Instance, error) {
	s := stateOf(in)
	s.sv.Phase, s.sv.Hook, s.sv.Handle, s.sv.Starting = ledger.PhaseAfter, 0, nil, false
	s.sv.VerifiedAt, s.sv.HealthSince = now, now
	s.sv.Health, s.sv.NextProbe = health.State{}, time.Time{}
	if obs != nil {
		s.sv.PrivateIP, s.sv.PublicIP, s.sv.Name = first(obs.PrivateIPs), first(obs.PublicIPs), obs.Name
		s.sv.Image = obs.ImageID
	}
	if err := w.save(ctx, spec, in.ID, s, ledger.Resetting); err != nil {
		return nil, err
	}
	w.log.Info("image verified; after hooks and health next", "rollout", spec.ID, "wave", in.Wave+1, "instance_id", in.ID)
	out := *in
	sv := s.sv
	out.Serving, out.ServingV = &sv, s.ver
	return &out, nil
}

func first(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ss[0]
}

// afterSteps advances instances in the steps after their image check:
// after hooks, then health (probed in batches, per group), then the
// weights restored, then succeeded. It returns how many are still on their
// way, and when the sweep should come back for them.
func (w *Worker) afterSteps(ctx context.Context, spec rollout.Spec, ins []*ledger.Instance) (left int, next time.Duration, err error) {
	if len(ins) == 0 {
		return 0, 0, nil
	}
	cloud, err := w.cloud(spec)
	if err != nil {
		return 0, 0, err
	}
	now := w.clock.Now()
	next = spec.VerifyInterval
	due := map[int][]*ledger.Instance{} // by group: probes share the group's checks
	for _, in := range ins {
		g := spec.Groups[in.Group]
		s := stateOf(in)
		running, err := w.afterHooks(ctx, spec, in, g, cloud, s)
		if err != nil {
			return left, next, err
		}
		if running {
			left++
			next = min(next, stepPoll)
			continue
		}
		switch s.sv.Phase {
		case ledger.PhaseHealth:
			if wait := s.sv.NextProbe.Sub(now); wait > 0 {
				left++
				next = min(next, wait)
				continue
			}
			in.Serving, in.ServingV = &s.sv, s.ver
			due[in.Group] = append(due[in.Group], in)
		case ledger.PhaseRestore:
			if err := w.serving(ctx, spec, in, cloud, s); err != nil {
				return left, next, err
			}
		}
	}
	for gi, batch := range due {
		h := *spec.Groups[gi].Health
		n, err := w.probe(ctx, spec, h, cloud, batch)
		if err != nil {
			return left, next, err
		}
		left += n
		if n > 0 {
			next = min(next, h.Interval)
		}
	}
	return left, next, nil
}

// afterHooks runs the after hooks of an instance in PhaseAfter and moves
// it on to health (or the restore) when they are done. running says a
// hook is still running.
func (w *Worker) afterHooks(ctx context.Context, spec rollout.Spec, in *ledger.Instance, g rollout.Group, cloud servingCloud, s *stepState) (running bool, err error) {
	for s.sv.Phase == ledger.PhaseAfter {
		if s.sv.Hook >= len(g.Hooks.After) {
			s.sv.Handle, s.sv.Starting = nil, false
			if g.Health != nil {
				s.sv.Phase = ledger.PhaseHealth
				s.sv.NextProbe = health.TrackerFor(*g.Health).First(s.sv.VerifiedAt)
			} else {
				s.sv.Phase = ledger.PhaseRestore
			}
			return false, w.save(ctx, spec, in.ID, s, ledger.Resetting)
		}
		h := g.Hooks.After[s.sv.Hook]
		st, err := w.hookStep(ctx, spec, in, cloud, "after", h, s, []ledger.InstanceState{ledger.Resetting})
		var rl *retryLater
		if errors.As(err, &rl) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		s.sv.HookLog = append(s.sv.HookLog, hookLine("after", h, st))
		if !st.OK && h.OnFailure != rollout.HookContinue {
			// The reset happened: the instance keeps weight 0 until it is
			// proven (a retry-failed or a rollback restores it).
			if err := w.save(ctx, spec, in.ID, s, ledger.Resetting); err != nil {
				return false, err
			}
			return false, w.finishServing(ctx, spec, in, ledger.Failed, "HookFailed", fmt.Sprintf("after hook %s failed: %s", h.Name, st.Detail))
		}
		s.sv.Hook++
		s.sv.Handle, s.sv.Starting = nil, false
		if err := w.save(ctx, spec, in.ID, s, ledger.Resetting); err != nil {
			return false, err
		}
	}
	return false, nil
}

// probe checks a batch of one group's instances whose probe is due, and
// judges each by the group's thresholds. It returns how many are still
// unproven.
func (w *Worker) probe(ctx context.Context, spec rollout.Spec, h rollout.Health, cloud servingCloud, ins []*ledger.Instance) (int, error) {
	facts := make([]health.Facts, len(ins))
	for i, in := range ins {
		facts[i] = healthFacts(in, *in.Serving)
	}
	p := &health.Prober{HTTP: w.cfg.HTTP, CLB: cloud, Agent: cloud, MaxInFlight: w.cfg.ProbeInFlight}
	results := p.ProbeAll(ctx, h, facts)
	tr := health.TrackerFor(h)
	now := w.clock.Now()
	left := 0
	var undecided []string
	for i, in := range ins {
		s := stateOf(in)
		var outcome health.Outcome
		s.sv.Health, outcome, s.sv.NextProbe = tr.Next(s.sv.Health, results[i], now, s.sv.HealthSince)
		switch outcome {
		case health.Healthy:
			s.sv.Phase = ledger.PhaseRestore
			if err := w.save(ctx, spec, in.ID, s, ledger.Resetting); err != nil {
				return left, err
			}
			w.log.Info("instance healthy", "rollout", spec.ID, "wave", in.Wave+1, "instance_id", in.ID, "passes", s.sv.Health.Passes)
			if err := w.serving(ctx, spec, in, cloud, s); err != nil {
				return left, err
			}
			continue
		case health.Unhealthy:
			if err := w.save(ctx, spec, in.ID, s, ledger.Resetting); err != nil {
				return left, err
			}
			if err := w.finishServing(ctx, spec, in, ledger.Failed, "Unhealthy",
				fmt.Sprintf("not healthy within %s of its image's verification: %s", h.Deadline, s.sv.Health.Reason())); err != nil {
				return left, err
			}
			continue
		case health.Undecided:
			// The probes prove nothing about the instance (the prober's
			// own network, the CLB API): it is neither failed nor passed,
			// and the rollout stops until someone looks.
			// Once resumed it gets a whole new window: a deadline spent
			// while the prober was blind would fail it at the first probe.
			undecided = append(undecided, in.ID+": "+s.sv.Health.Reason())
			s.sv.Health, s.sv.HealthSince, s.sv.NextProbe = health.State{}, now, now.Add(h.Interval)
		}
		left++
		if err := w.save(ctx, spec, in.ID, s, ledger.Resetting); err != nil {
			return left, err
		}
	}
	if len(undecided) > 0 {
		why := fmt.Sprintf("health checks inconclusive at the deadline for %d instance(s), e.g. %s; fix what the prober cannot reach, then resume", len(undecided), undecided[0])
		if err := w.ctl.PauseFatal(ctx, spec, ins[0].Wave, why); err != nil {
			return left, err
		}
	}
	return left, nil
}

// serving finishes an instance that proved healthy (or had nothing to
// prove): its weights come back, then it succeeds.
func (w *Worker) serving(ctx context.Context, spec rollout.Spec, in *ledger.Instance, cloud servingCloud, s *stepState) error {
	if err := w.restore(ctx, spec, in.ID, cloud, s, ledger.Resetting); err != nil {
		return err
	}
	return w.finishServing(ctx, spec, in, ledger.Succeeded, "", "")
}

func (w *Worker) finishServing(ctx context.Context, spec rollout.Spec, in *ledger.Instance, to ledger.InstanceState, code, msg string) error {
	img := ""
	if in.Serving != nil {
		img = in.Serving.Image
	}
	return w.finishVerified(ctx, spec, in, to, code, msg, img, w.clock.Now())
}
