package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/notify"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

// spec reads a rollout's spec; a rollout that no longer exists ends the
// task, and the worker says so once.
func (w *Worker) spec(ctx context.Context, id string) (rollout.Spec, ledger.RolloutState, error) {
	spec, st, err := w.l.Spec(ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		if _, seen := w.gone.LoadOrStore(id, true); !seen {
			w.log.Error("rollout not found in Redis: its tasks are dropped, nothing of it is called. "+
				"If Redis lost its data (restart without persistence, FLUSHALL, failover), apply the plan again: "+
				"reinstalls already made are judged from the cloud, never repeated", "rollout", id)
		}
		return spec, st, fmt.Errorf("worker: %w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return spec, st, err
	}
	w.gone.Delete(id)
	if reason, why := w.notServed(spec); reason != "" {
		if _, seen := w.foreign.LoadOrStore(id, true); !seen {
			w.log.Warn("not serving this rollout: "+why+"; its tasks are handed back for a worker started for it", "rollout", id)
		}
		if o := w.cfg.Observer; o != nil {
			o.NotServed(id, reason)
		}
		return spec, st, &retryLater{In: 5 * time.Second, Cause: why}
	}
	return spec, st, nil
}

// notServed says why this worker does not serve a rollout: it was started
// for another API generation or endpoint than the rollout was applied with.
func (w *Worker) notServed(spec rollout.Spec) (reason, why string) {
	if w.cfg.API != "" && w.cfg.API != spec.API {
		return "api", fmt.Sprintf("rollout applied for api %s, worker started with --api %s", spec.API, w.cfg.API)
	}
	if w.cfg.Endpoint != "" && w.cfg.Endpoint != spec.Endpoint {
		return "endpoint", fmt.Sprintf("rollout applied for endpoint %q, worker started with --endpoint %s", cmp.Or(spec.Endpoint, "the real API"), w.cfg.Endpoint)
	}
	return "", ""
}

// handleStartWave pre-flights the instances of a wave in batches of 100
// and enqueues one reset task per instance that still needs one.
func (w *Worker) handleStartWave(ctx context.Context, t *asynq.Task) error {
	var p tasks.WavePayload
	if err := tasks.Parse(t, &p); err != nil {
		return err
	}
	spec, st, err := w.spec(ctx, p.Rollout)
	if err != nil {
		return err
	}
	if st == ledger.Applying {
		// The planner has not finished writing the rollout yet.
		return &retryLater{In: time.Second, Cause: "rollout still being applied"}
	}
	if st == ledger.Scheduled && spec.Window != nil {
		// The first wave also keeps to the maintenance window.
		now := w.clock.Now()
		if open, err := spec.Window.Contains(now); err == nil && !open {
			next, err := spec.Window.Next(now)
			if err != nil {
				return fmt.Errorf("worker: window: %w: %w", err, asynq.SkipRetry)
			}
			return &retryLater{In: next.Sub(now), Cause: "outside the maintenance window"}
		}
	}
	if st == ledger.Scheduled {
		if _, err := w.l.SetState(ctx, spec.ID, []ledger.RolloutState{ledger.Scheduled}, ledger.Running, ""); err != nil {
			return err
		}
		st = ledger.Running
	}
	if st != ledger.Running {
		// Paused or waiting: resume and approve start the wave again.
		return nil
	}
	_, cur, err := w.l.State(ctx, spec.ID)
	if err != nil {
		return err
	}
	if cur != p.Wave {
		return nil
	}
	// A start task runs again after any error (a describe refused, Redis
	// busy): announce each transition once.
	if p.Wave == 0 && p.Seq == 0 {
		if first, err := w.l.Once(ctx, spec.ID, "rollout-started"); err != nil {
			return err
		} else if first {
			total := 0
			for _, wv := range spec.Waves {
				total += wv.Size
			}
			w.log.Info("rollout started", "rollout", spec.ID, "instances", total, "waves", len(spec.Waves))
			w.ctl.Notify(ctx, spec, notify.RolloutStarted, 0, "")
		}
	}
	if first, err := w.l.Once(ctx, spec.ID, fmt.Sprintf("wave-started:%d", p.Wave)); err != nil {
		return err
	} else if first {
		w.log.Info("wave started", "rollout", spec.ID, "wave", p.Wave+1)
	} else {
		w.log.Debug("wave rescanned", "rollout", spec.ID, "wave", p.Wave+1, "seq", p.Seq)
	}
	// A re-kicked wave (resume, recovery) also rescans earlier waves for
	// instances whose tasks were lost.
	from := p.Wave
	if p.Seq > 0 {
		from = 0
	}
	for k := from; k <= p.Wave; k++ {
		if err := w.scanWave(ctx, spec, k); err != nil {
			return err
		}
	}
	return w.ctl.CheckGate(ctx, spec)
}

func (w *Worker) scanWave(ctx context.Context, spec rollout.Spec, k int) error {
	ids, err := w.l.WaveInstances(ctx, spec.ID, k)
	if err != nil {
		return err
	}
	api, err := w.api(spec)
	if err != nil {
		return err
	}
	verify := false
	for start := 0; start < len(ids); start += cvm.MaxDescribeIDs {
		chunk := ids[start:min(start+cvm.MaxDescribeIDs, len(ids))]
		ins, err := w.l.Instances(ctx, spec.ID, chunk)
		if err != nil {
			return err
		}
		var need []string
		for _, in := range ins {
			if in != nil && in.State == ledger.Pending && !in.Preflighted {
				need = append(need, in.ID)
			}
		}
		if len(need) > 0 {
			stop, err := w.preflight(ctx, spec, api, ins, need)
			if err != nil || stop {
				return err
			}
			if ins, err = w.l.Instances(ctx, spec.ID, chunk); err != nil {
				return err
			}
		}
		for _, in := range ins {
			if in == nil {
				continue
			}
			switch in.State {
			case ledger.Pending, ledger.Calling:
				err = w.ctl.EnqueueReset(ctx, spec.ID, ledger.Requeue{ID: in.ID, Gen: in.Gen, Wave: in.Wave})
			case ledger.Resetting:
				verify = true
			}
			if err != nil {
				return err
			}
		}
	}
	if verify {
		return w.ctl.EnqueueVerify(ctx, spec.ID, spec.VerifyInterval, time.Time{})
	}
	return nil
}

// preflight describes the instances in need (at most 100) and records,
// skips or refuses each. stop reports that the rollout was paused.
func (w *Worker) preflight(ctx context.Context, spec rollout.Spec, api cvm.API, ins []*ledger.Instance, need []string) (stop bool, err error) {
	found, err := w.describe(ctx, spec, api, need)
	if err != nil {
		if cvm.Classify(err) == cvm.Fatal {
			return true, w.ctl.PauseFatal(ctx, spec, 0, "pre-flight: "+err.Error())
		}
		return false, err
	}
	for _, in := range ins {
		if in == nil || in.State != ledger.Pending || in.Preflighted {
			continue
		}
		obs := found[in.ID]
		v, why := rollout.Preflight(spec.Groups[in.Group].ImageID, Observe(obs), spec.ResetMatching)
		switch v {
		case rollout.Proceed:
			err = w.l.Preflight(ctx, spec.ID, in.ID, obs.ImageID, obs.LatestOperationRequestID)
		case rollout.Await:
			// A running reinstall is recorded without its request ID, so
			// that the check before the call counts it as new and adopts
			// it; any other operation is recorded as the one to wait out.
			op := obs.LatestOperationRequestID
			if rollout.IsReset(obs.LatestOperation) || obs.LatestOperation == "" {
				op = ""
			}
			w.log.Warn("pre-flight: an operation is running; it will be waited for and judged, not repeated",
				"rollout", spec.ID, "instance_id", in.ID, "why", why, "request_id", obs.LatestOperationRequestID)
			err = w.l.Preflight(ctx, spec.ID, in.ID, obs.ImageID, op)
		case rollout.Skip:
			if err = w.l.Preflight(ctx, spec.ID, in.ID, obs.ImageID, obs.LatestOperationRequestID); err != nil {
				return false, err
			}
			err = w.finish(ctx, spec, in.ID, ledger.Outcome{From: []ledger.InstanceState{ledger.Pending},
				To: ledger.Skipped, Code: "AlreadyOnTarget", Message: why, NewImage: obs.ImageID})
		case rollout.Refuse:
			err = w.finish(ctx, spec, in.ID, ledger.Outcome{From: []ledger.InstanceState{ledger.Pending},
				To: ledger.Failed, Code: "PreflightRefused", Message: why})
		}
		if err != nil {
			return false, err
		}
	}
	return false, nil
}

func (w *Worker) observeCall(action string, err error, start time.Time) {
	o := w.cfg.Observer
	if o == nil {
		return
	}
	o.APICall(action, ErrorCode(err), w.clock.Now().Sub(start))
}

// ErrorCode is the metric label of an API call's result: "Success", the
// cloud's error code, or "TransportError".
func ErrorCode(err error) string {
	if err == nil {
		return "Success"
	}
	var ae *cvm.APIError
	var te *cvm.TransportError
	switch {
	case errors.As(err, &ae):
		return ae.Code
	case errors.As(err, &te):
		return "TransportError"
	}
	return "Error"
}

// handleAdvance runs the gate after a wave: approval, maintenance window,
// then the next wave (or completion of the rollout).
func (w *Worker) handleAdvance(ctx context.Context, t *asynq.Task) error {
	var p tasks.WavePayload
	if err := tasks.Parse(t, &p); err != nil {
		return err
	}
	spec, _, err := w.spec(ctx, p.Rollout)
	if err != nil {
		return err
	}
	k := p.Wave
	if k >= len(spec.Waves) {
		return nil
	}
	last := k == len(spec.Waves)-1
	approval := !last && spec.Waves[k].Approval
	windowOpen := true
	now := w.clock.Now()
	if spec.Window != nil && !last {
		if windowOpen, err = spec.Window.Contains(now); err != nil {
			return fmt.Errorf("worker: window: %w: %w", err, asynq.SkipRetry)
		}
	}
	out, cur, err := w.l.Advance(ctx, spec.ID, k, approval, windowOpen, last)
	if err != nil {
		return err
	}
	switch out {
	case ledger.AdvStarted:
		w.log.Info("wave passed", "rollout", spec.ID, "wave", k+1)
		if j := w.cfg.Journal; j != nil {
			if err := j.WavePassed(ctx, spec.ID, k); err != nil {
				w.log.Error("journal write failed", "err", err)
			}
		}
		w.ctl.Notify(ctx, spec, notify.WavePassed, k, "")
		return w.ctl.EnqueueStartWave(ctx, spec.ID, cur, 0, time.Time{})
	case ledger.AdvStale:
		// A crash between the gate and the enqueue of the next wave: the
		// start task's ID makes this idempotent.
		if cur == k+1 {
			return w.ctl.EnqueueStartWave(ctx, spec.ID, cur, 0, time.Time{})
		}
	case ledger.AdvAwaiting:
		w.log.Warn("waiting for approval", "rollout", spec.ID, "wave", k+2)
		w.ctl.Notify(ctx, spec, notify.AwaitingApproval, k+1, fmt.Sprintf("wave %d awaits `fleetreset approve %s`", k+2, spec.ID))
	case ledger.AdvWindow:
		next, err := spec.Window.Next(now)
		if err != nil {
			return fmt.Errorf("worker: window: %w: %w", err, asynq.SkipRetry)
		}
		w.log.Info("outside the maintenance window", "rollout", spec.ID, "wave", k+2, "opens", next)
		return &retryLater{In: next.Sub(now), Cause: "outside the maintenance window"}
	case ledger.AdvCompleted:
		w.log.Info("rollout completed", "rollout", spec.ID)
		if j := w.cfg.Journal; j != nil {
			if err := j.WavePassed(ctx, spec.ID, k); err != nil {
				w.log.Error("journal write failed", "err", err)
			}
		}
		r, err := w.l.Get(ctx, spec.ID)
		if err != nil {
			return err
		}
		if err := w.l.UnclaimAll(ctx, r); err != nil {
			return err
		}
		w.ctl.Notify(ctx, spec, notify.RolloutCompleted, k, "")
		return w.scheduleNext(ctx, spec)
	}
	return nil
}
