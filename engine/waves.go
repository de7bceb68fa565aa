package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/fleetreset/fleetreset/alarm"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/notify"
	"github.com/fleetreset/fleetreset/rollout"
)

// Later is returned by a use case that cannot go on yet and is not a
// failure: the task that asked comes back after In.
type Later struct {
	In    time.Duration
	Cause string
}

func (e *Later) Error() string { return "retry in " + e.In.String() + ": " + e.Cause }

// Adapter is what a use case needs from the process running it: the API's
// describe, which of its errors no retry can fix, and who else records a
// finished instance. The worker adapts its client, journal and metrics.
type Adapter struct {
	Describe rollout.DescribeFunc
	// DescribeAt, when set, describes instances of one location (a
	// group's region and account): the engine then sends every request
	// to the location of its instances, never mixing two, and Describe
	// is not used.
	DescribeAt func(loc rollout.Location) rollout.DescribeFunc
	// Fatal reports an error that pauses the rollout (credentials,
	// balance) rather than being retried.
	Fatal func(error) bool
	// Finished, when set, hears every outcome this process recorded (not
	// those another worker recorded first).
	Finished func(ctx context.Context, spec rollout.Spec, id string, o ledger.Outcome)
	// Alarms, when set, reads a rollout's stopWhen alarms; the engine
	// decides what they mean (alarm.Decide).
	Alarms func(ctx context.Context, sw rollout.StopWhen) alarm.Status
}

// maxDescribe is DescribeInstances' limit of IDs per request.
const maxDescribe = 100

// StartWave starts (or rescans) wave k of a rollout: the rollout leaves
// Scheduled when its window allows, the instances of the wave are
// pre-flighted in batches of 100 and every one still to reset gets its
// task. seq > 0 marks a re-kick (resume, recovery) that also rescans the
// earlier waves for instances whose tasks were lost.
func (c *Engine) StartWave(ctx context.Context, spec rollout.Spec, st ledger.RolloutState, k, seq int, ad Adapter) error {
	if st == ledger.Applying {
		// The apply has not finished writing the rollout yet.
		return &Later{In: time.Second, Cause: "rollout still being applied"}
	}
	if st == ledger.Scheduled {
		// The first wave also keeps to the maintenance window.
		wait, err := rollout.StartWait(spec, c.clock.Now())
		if err != nil {
			return fmt.Errorf("engine: window: %w: %w", err, ErrPermanent)
		}
		if wait > 0 {
			return &Later{In: wait, Cause: "outside the maintenance window"}
		}
		if ok, err := c.l.SetState(ctx, spec.ID, []ledger.RolloutState{ledger.Scheduled}, ledger.Running, ""); err != nil {
			return err
		} else if ok {
			c.changed(spec.ID, ledger.Running, "started")
		}
		st = ledger.Running
	}
	if st != ledger.Running {
		// Paused or waiting: resume and approve start the wave again.
		return nil
	}
	if _, cur, err := c.l.State(ctx, spec.ID); err != nil || cur != k {
		return err
	}
	if k == 0 && seq == 0 {
		// Later waves read the alarms at their gate; the first one here.
		if stopped, err := c.stopOnAlarm(ctx, spec, k, ad); stopped || err != nil {
			return err
		}
	}
	// A start task runs again after any error (a describe refused, Redis
	// busy): announce each transition once.
	if k == 0 && seq == 0 {
		if first, err := c.l.Once(ctx, spec.ID, "rollout-started"); err != nil {
			return err
		} else if first {
			total := 0
			for _, wv := range spec.Waves {
				total += wv.Size
			}
			c.log.Info("rollout started", "rollout", spec.ID, "instances", total, "waves", len(spec.Waves))
			c.Notify(ctx, spec, notify.RolloutStarted, 0, "")
		}
	}
	if first, err := c.l.Once(ctx, spec.ID, fmt.Sprintf("wave-started:%d", k)); err != nil {
		return err
	} else if first {
		c.log.Info("wave started", "rollout", spec.ID, "wave", k+1)
	} else {
		c.log.Debug("wave rescanned", "rollout", spec.ID, "wave", k+1, "seq", seq)
	}
	from := k
	if seq > 0 {
		from = 0
	}
	for j := from; j <= k; j++ {
		if err := c.scanWave(ctx, spec, j, seq, ad); err != nil {
			return err
		}
	}
	return c.CheckGate(ctx, spec)
}

// ErrPermanent marks an error no retry of the task can fix.
var ErrPermanent = errors.New("engine: permanent")

// scanWave enqueues a task for every instance of wave k still to reset;
// a rescan (seq > 0) also requeues instances whose task is done
// (requeueStranded).
func (c *Engine) scanWave(ctx context.Context, spec rollout.Spec, k, seq int, ad Adapter) error {
	ids, err := c.l.WaveInstances(ctx, spec.ID, k)
	if err != nil {
		return err
	}
	verify := false
	for start := 0; start < len(ids); start += maxDescribe {
		chunk := ids[start:min(start+maxDescribe, len(ids))]
		ins, err := c.l.Instances(ctx, spec.ID, chunk)
		if err != nil {
			return err
		}
		var need []string
		for _, in := range ins {
			if in != nil && in.State == ledger.Pending && !in.Preflighted {
				need = append(need, in.ID)
			}
		}
		var finished map[string]bool
		if len(need) > 0 {
			var stop bool
			finished, stop, err = c.preflight(ctx, spec, ad, ins, need)
			if err != nil || stop {
				return err
			}
		}
		for _, in := range ins {
			// What pre-flight finished (skipped, refused) needs no task;
			// the rest is as read: a task enqueued for an instance that
			// changed since is a no-op (task IDs, and the handler reads
			// the ledger first).
			if in == nil || finished[in.ID] {
				continue
			}
			switch in.State {
			case ledger.Pending, ledger.Calling:
				rq := ledger.Requeue{ID: in.ID, Gen: in.Gen, Wave: in.Wave}
				if seq > 0 {
					err = c.requeueStranded(ctx, spec.ID, rq)
				} else {
					err = c.EnqueueReset(ctx, spec.ID, rq)
				}
			case ledger.Resetting:
				verify = true
			}
			if err != nil {
				return err
			}
		}
	}
	if verify {
		return c.EnqueueVerify(ctx, spec.ID, spec.VerifyInterval, time.Time{})
	}
	return nil
}

// preflight describes the instances in need (at most 100) and records,
// skips or refuses each; finished holds those it skipped or refused. stop
// reports that the rollout was paused.
func (c *Engine) preflight(ctx context.Context, spec rollout.Spec, ad Adapter, ins []*ledger.Instance, need []string) (finished map[string]bool, stop bool, err error) {
	found, err := ad.describe(ctx, spec, ins, need)
	if err != nil {
		if ad.Fatal != nil && ad.Fatal(err) {
			return nil, true, c.PauseFatal(ctx, spec, 0, "pre-flight: "+err.Error())
		}
		return nil, false, err
	}
	finished = map[string]bool{}
	for _, in := range ins {
		if in == nil || in.State != ledger.Pending || in.Preflighted {
			continue
		}
		obs := found[in.ID]
		v, why := rollout.Preflight(spec.Groups[in.Group].ImageID, obs, spec.ResetMatching)
		switch v {
		case rollout.Proceed:
			err = c.l.Preflight(ctx, spec.ID, in.ID, obs.ImageID, obs.OpRequestID)
		case rollout.Await:
			// A running reinstall is recorded without its request ID, so
			// that the check before the call counts it as new and adopts
			// it; any other operation is recorded as the one to wait out.
			op := obs.OpRequestID
			if rollout.IsReset(obs.Op) || obs.Op == "" {
				op = ""
			}
			c.log.Warn("pre-flight: an operation is running; it will be waited for and judged, not repeated",
				"rollout", spec.ID, "instance_id", in.ID, "why", why, "request_id", obs.OpRequestID)
			err = c.l.Preflight(ctx, spec.ID, in.ID, obs.ImageID, op)
		case rollout.Skip:
			if err = c.l.Preflight(ctx, spec.ID, in.ID, obs.ImageID, obs.OpRequestID); err != nil {
				return nil, false, err
			}
			finished[in.ID] = true
			_, err = c.Finish(ctx, spec, in.ID, ledger.Outcome{From: []ledger.InstanceState{ledger.Pending},
				To: ledger.Skipped, Code: "AlreadyOnTarget", Message: why, NewImage: obs.ImageID}, ad)
		case rollout.Refuse:
			finished[in.ID] = true
			_, err = c.Finish(ctx, spec, in.ID, ledger.Outcome{From: []ledger.InstanceState{ledger.Pending},
				To: ledger.Failed, Code: "PreflightRefused", Message: why}, ad)
		}
		if err != nil {
			return nil, false, err
		}
	}
	return finished, false, nil
}

// Advanced says what the gate after a wave did.
type Advanced struct {
	// Outcome is the ledger's: started the next wave, awaiting approval,
	// window closed, completed, or stale (already past).
	Outcome ledger.AdvanceOutcome
	// Passed is true when wave k passed its gate (the next wave started or
	// the rollout completed): the caller's journal records it.
	Passed bool
}

// Advance runs the gate after wave k: approval, maintenance window, then
// the next wave or the completion of the rollout (claims released, the
// next occurrence of a series scheduled).
func (c *Engine) Advance(ctx context.Context, spec rollout.Spec, k int, ad Adapter) (Advanced, error) {
	var res Advanced
	if k >= len(spec.Waves) {
		return res, nil
	}
	if every := alarmCheckEvery(spec); every > 0 {
		// Alarms are read before the next wave, and every interval of the
		// soak: the advance task comes back until the soak is over.
		r, err := c.l.Get(ctx, spec.ID)
		if err != nil {
			return res, err
		}
		if r.State == ledger.Running && r.Wave == k {
			if stopped, err := c.stopOnAlarm(ctx, spec, k, ad); stopped || err != nil {
				return res, err
			}
			if left := r.Waves[k].SoakUntil.Sub(c.clock.Now()); left > 0 {
				return res, &Later{In: min(left, every), Cause: "soaking; alarms checked"}
			}
		}
	}
	now := c.clock.Now()
	g, err := rollout.GateAfter(spec, k, now)
	if err != nil {
		return res, fmt.Errorf("engine: window: %w: %w", err, ErrPermanent)
	}
	out, cur, err := c.l.Advance(ctx, spec.ID, k, g.Approval, g.WindowOpen, g.Last)
	if err != nil {
		return res, err
	}
	res.Outcome = out
	switch out {
	case ledger.AdvStarted:
		res.Passed = true
		c.log.Info("wave passed", "rollout", spec.ID, "wave", k+1)
		c.Notify(ctx, spec, notify.WavePassed, k, "")
		if err := c.EnqueueStartWave(ctx, spec.ID, cur, 0, time.Time{}); err != nil {
			return res, err
		}
		c.changed(spec.ID, ledger.Running, fmt.Sprintf("wave %d passed", k+1))
	case ledger.AdvStale:
		// A crash between the gate and the enqueue of the next wave: the
		// start task's ID makes this idempotent.
		if cur == k+1 {
			return res, c.EnqueueStartWave(ctx, spec.ID, cur, 0, time.Time{})
		}
	case ledger.AdvAwaiting:
		c.log.Warn("waiting for approval", "rollout", spec.ID, "wave", k+2)
		c.Notify(ctx, spec, notify.AwaitingApproval, k+1, fmt.Sprintf("wave %d awaits `fleetreset approve %s`", k+2, spec.ID))
		c.changed(spec.ID, ledger.AwaitingApproval, "")
	case ledger.AdvWindow:
		c.log.Info("outside the maintenance window", "rollout", spec.ID, "wave", k+2, "opens", g.Opens)
		return res, &Later{In: g.Opens.Sub(now), Cause: "outside the maintenance window"}
	case ledger.AdvCompleted:
		res.Passed = true
		c.log.Info("rollout completed", "rollout", spec.ID)
		r, err := c.l.Get(ctx, spec.ID)
		if err != nil {
			return res, err
		}
		if err := c.l.UnclaimAll(ctx, r); err != nil {
			return res, err
		}
		c.Notify(ctx, spec, notify.RolloutCompleted, k, "")
		if err := c.ScheduleNext(ctx, spec); err != nil {
			return res, err
		}
		// Announced when everything completion does is done.
		c.changed(spec.ID, ledger.Completed, "")
	}
	return res, nil
}

// Finish records a terminal outcome of one instance and runs its
// consequences: a breached failure budget pauses (or aborts) the rollout,
// a complete wave gets its gate. changed reports whether this call made
// the transition (another worker may have made it first); it is
// idempotent, so a redelivered handler may call it again. ad.Finished
// hears the outcome when this call recorded it.
func (c *Engine) Finish(ctx context.Context, spec rollout.Spec, id string, o ledger.Outcome, ad Adapter) (ledger.FinishResult, error) {
	res, err := c.l.Finish(ctx, spec.ID, id, o)
	if err != nil {
		return res, err
	}
	if res.Changed && ad.Finished != nil {
		ad.Finished(ctx, spec, id, o)
	}
	if res.State == ledger.Aborted {
		// The abort left this instance claimed while its call was in
		// flight (ledger.UnclaimAll); it has an outcome now, and unless
		// it stays drained it is free. (A crash before this leaves a
		// claim other rollouts may take over: ledger.Claim judges it.)
		if err := c.l.UnclaimIdle(ctx, spec.ID, []string{id}); err != nil {
			return res, err
		}
	}
	return res, c.AfterFinish(ctx, spec, res)
}

// describe asks what the cloud shows of ids (instances among ins), one
// request per location when the adapter knows locations.
func (ad Adapter) describe(ctx context.Context, spec rollout.Spec, ins []*ledger.Instance, ids []string) (map[string]rollout.Observed, error) {
	if ad.DescribeAt == nil {
		return ad.Describe(ctx, ids)
	}
	group := make(map[string]int, len(ins))
	for _, in := range ins {
		if in != nil {
			group[in.ID] = in.Group
		}
	}
	order, by := spec.ByLocation(ids, func(id string) int { return group[id] })
	out := make(map[string]rollout.Observed, len(ids))
	for _, loc := range order {
		found, err := ad.DescribeAt(loc)(ctx, by[loc])
		if err != nil && len(order) > 1 {
			return nil, fmt.Errorf("%s: %w", loc, err)
		}
		if err != nil {
			return nil, err
		}
		maps.Copy(out, found)
	}
	return out, nil
}
