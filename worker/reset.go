package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/secretref"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

// handleReset resets one instance at most once per rollout attempt. A
// pending instance is first described: the cloud is the second record of
// what happened, and a reinstall that runs, or one that appeared since
// pre-flight, is adopted and judged instead of repeated
// (rollout.BeforeCall). Only then does the handler take a rate-limit slot,
// record its intent and call, in that order and back to back, so that
// calls reach the API spaced as the limiter granted them and a pause stops
// every call whose intent came after it.
func (w *Worker) handleReset(ctx context.Context, t *asynq.Task) error {
	var p tasks.ResetPayload
	if err := tasks.Parse(t, &p); err != nil {
		return err
	}
	spec, st, err := w.spec(ctx, p.Rollout)
	if err != nil {
		return err
	}
	in, err := w.l.Instance(ctx, spec.ID, p.InstanceID)
	if errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("worker: %w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return err // a Redis hiccup: asynq retries the task
	}
	if in.Gen != p.Gen || in.State.Terminal() || in.State == ledger.Held {
		// An attempt that stopped short of its call (paused, aborted,
		// failed before the call) gives the drained weights back.
		return w.undrain(ctx, spec, in.ID)
	}
	// Every call for this instance goes to its group's region and account.
	spec = spec.At(spec.LocationOf(in.Group))
	api, err := w.api(spec)
	if err != nil {
		if cvm.Classify(err) == cvm.Fatal {
			return w.ctl.PauseFatal(ctx, spec, in.Wave, err.Error())
		}
		return err
	}
	verdict, why, rid := rollout.Call, "", ""
	var slot time.Time
	// ready: this delivery did the steps before a call. One that read the
	// rollout stopped did none, and must not call if it runs again by the
	// time Begin looks (a resume in between): it only parks (Park).
	ready := in.State == ledger.Pending && st == ledger.Running
	if ready {
		obs, err := w.describeOne(ctx, spec, api, in.ID)
		if err != nil {
			if cvm.Classify(err) == cvm.Fatal {
				return w.ctl.PauseFatal(ctx, spec, in.Wave, "describe before reset: "+err.Error())
			}
			return err
		}
		prior := rollout.Prior{Target: spec.Groups[in.Group].ImageID, Image: in.OldImage, OpRequestID: in.OldOpRequestID, Judged: in.RequestID}
		verdict, why = rollout.BeforeCall(prior, Observe(obs))
		switch verdict {
		case rollout.Wait:
			return &retryLater{In: max(spec.VerifyInterval, w.backoff(in.Tries)), Cause: why}
		case rollout.Adopt:
			rid = obs.LatestOperationRequestID
			// Down already, by the cloud's word: counted, so that it
			// holds other instances back.
			if err := w.takePlace(ctx, spec, in, obs, true); err != nil {
				return err
			}
		case rollout.Call:
			// A place among the unavailable before anything takes the
			// instance out of service (maxUnavailable).
			if err := w.takePlace(ctx, spec, in, obs, false); err != nil {
				return err
			}
			// Drain and before hooks first: they take time and come back;
			// the call itself happens only once they are done.
			if ready, err := w.prepare(ctx, spec, in); !ready {
				return err
			}
			// Take the rate-limit slot before recording the intent, so
			// that no intent waits in the limiter's queue.
			if err := w.waitReset(ctx, spec); err != nil {
				return err
			}
			slot = w.clock.Now()
		}
	}
	begin := w.l.Begin
	if !ready {
		begin = w.l.Park
	}
	res, err := begin(ctx, spec.ID, p.InstanceID, p.Gen)
	if err != nil {
		return err
	}
	switch res.Action {
	case ledger.ActAgain:
		return &retryLater{In: time.Second, Cause: "the rollout runs again: starting the attempt over, drain and checks first"}
	case ledger.ActProceed:
		switch verdict {
		case rollout.Adopt:
			return w.adopt(ctx, spec, in, res.Token, rid, why)
		case rollout.Gone:
			return w.finish(ctx, spec, in.ID, ledger.Outcome{From: []ledger.InstanceState{ledger.Calling}, Token: res.Token,
				To: ledger.Failed, Code: "InstanceNotFound", Message: why})
		}
		return w.call(ctx, spec, api, in, res.Token, res.IntentAt, slot)
	case ledger.ActReconcile:
		return w.reconcileCall(ctx, spec, api, in, res)
	case ledger.ActVerify:
		return w.ctl.EnqueueVerify(ctx, spec.ID, spec.VerifyInterval, time.Time{})
	case ledger.ActHeld, ledger.ActCancelled:
		return w.undrain(ctx, spec, in.ID)
	}
	return nil
}

// adopt records, instead of a call, the reinstall the cloud shows, and
// has it verified like an accepted call of ours.
func (w *Worker) adopt(ctx context.Context, spec rollout.Spec, in *ledger.Instance, token int64, requestID, why string) error {
	if err := w.l.Adopt(ctx, spec.ID, in.ID, token, requestID, why); err != nil {
		if errors.Is(err, ledger.ErrFenced) {
			// As after an accepted call: judged again, never dropped.
			return &retryLater{In: time.Second, Cause: "fenced while adopting"}
		}
		return err
	}
	taskID, _ := asynq.GetTaskID(ctx)
	w.log.Warn("not calling: adopted the reinstall the cloud shows", "rollout", spec.ID, "wave", in.Wave+1,
		"instance_id", in.ID, "task_id", taskID, "request_id", requestID, "why", why)
	return w.ctl.EnqueueVerify(ctx, spec.ID, spec.VerifyInterval, time.Time{})
}

func (w *Worker) waitReset(ctx context.Context, spec rollout.Spec) error {
	waited, err := w.cfg.Limiter.Wait(ctx, w.limiterKey(spec, "ResetInstance"), spec.ResetRate)
	if o := w.cfg.Observer; o != nil {
		o.RateWait("ResetInstance", waited)
	}
	return err
}

// slotSlack is how long after its rate-limit slot a call may still go out.
// A later call (Redis stalled in between, a slow disk under the journal)
// takes a new slot: calls released together after a stall would exceed
// the per-second budget at the API.
const slotSlack = 20 * time.Millisecond

// request builds the API request of an instance, resolving its password
// reference now: the password exists only in this process's memory, for
// the duration of the call.
func (w *Worker) request(spec rollout.Spec, in *ledger.Instance) (cvm.ResetRequest, error) {
	g := spec.Groups[in.Group]
	req := cvm.ResetRequest{
		InstanceID: in.ID, ImageID: g.ImageID, ImageType: g.ImageType,
		KeyIDs: g.KeyIDs, KeepImageLogin: g.KeepImageLogin,
		SecurityAgent: g.SecurityAgent, MonitorAgent: g.MonitorAgent,
		RootSize: g.RootSize, HostName: g.HostName, AutomationAgent: g.WantsAutomationAgent(),
	}
	var err error
	if req.UserData, err = g.UserData.Read(w.cfg.ReadFile); err != nil {
		return req, err
	}
	if g.Password != nil {
		pw, err := secretref.Resolve(*g.Password, w.cfg.LookupEnv, w.cfg.ReadFile)
		if err != nil {
			return req, err
		}
		if err := secretref.CheckPassword(spec.API, g.OS, pw); err != nil {
			return req, fmt.Errorf("password %s: %w", g.Password, err)
		}
		req.Password = cvm.Secret(pw)
	}
	return req, nil
}

// call makes the one reset call an intent (token, recorded at intentAt)
// permits; slot is when its rate-limit slot began (zero: take one now).
// The call must be signed within callWindow of the intent: a reconcile
// trusts that no call of an earlier delivery is still in flight
// ReconcileGrace after its intent.
func (w *Worker) call(ctx context.Context, spec rollout.Spec, api cvm.API, in *ledger.Instance, token int64, intentAt, slot time.Time) error {
	taskID, _ := asynq.GetTaskID(ctx)
	log := w.log.With("rollout", spec.ID, "wave", in.Wave+1, "instance_id", in.ID, "task_id", taskID, "attempt", in.Tries+1)
	req, err := w.request(spec, in)
	if err != nil {
		return w.afterCall(ctx, spec, in, token, time.Time{}, rollout.SecretUnavailable, err, log)
	}
	if j := w.cfg.Journal; j != nil {
		if err := j.Intent(ctx, spec.ID, in.ID, token, in.OldImage, in.OldOpRequestID); err != nil {
			return w.afterCall(ctx, spec, in, token, time.Time{}, rollout.JournalFailed, err, log)
		}
	}
	if w.clock.Now().Sub(slot) > slotSlack {
		// No slot yet, or Redis or the disk stalled since: calls released
		// together would exceed the per-second budget at the API.
		if err := w.waitReset(ctx, spec); err != nil {
			return err // the intent stays; a redelivery reconciles it
		}
	}
	if late := w.clock.Now().Sub(intentAt); late > w.callWindow() {
		// Too late to call under this intent: a redelivery may already be
		// reconciling it. Nothing was sent; start over.
		if err := w.l.Release(ctx, spec.ID, in.ID, token, ledger.Pending, "CallWindow", "rate-limit wait outlasted the call window"); err != nil && !errors.Is(err, ledger.ErrFenced) {
			return err
		}
		return &retryLater{In: time.Second, Cause: fmt.Sprintf("intent %s old, call window %s", late.Round(time.Millisecond), w.callWindow())}
	}
	start := w.clock.Now()
	requestID, err := api.ResetInstance(ctx, req)
	w.observeCall("ResetInstance", err, start)
	if err == nil {
		// From here on the ledger must learn the outcome even if ctx ends.
		dctx, cancel := detached(ctx)
		defer cancel()
		return w.accepted(dctx, spec, in, token, requestID, log)
	}
	return w.afterCall(ctx, spec, in, token, start, answerOf(err), err, log)
}

// answerOf classifies the error of a reset call for rollout.AfterCall.
func answerOf(err error) rollout.Answer {
	switch {
	case err == nil:
		return rollout.Accepted
	case cvm.MayHaveLanded(err):
		return rollout.MayHaveLanded
	case cvm.IsThrottled(err):
		return rollout.Throttled
	}
	switch cvm.Classify(err) {
	case cvm.Retryable:
		return rollout.Busy
	case cvm.Fatal:
		return rollout.Fatal
	}
	return rollout.Permanent
}

// afterCall carries out rollout.AfterCall's decision on an attempt that
// did not end accepted: err is the call's error (or why nothing was sent),
// start when the call was made (zero: not made).
func (w *Worker) afterCall(ctx context.Context, spec rollout.Spec, in *ledger.Instance, token int64, start time.Time, answer rollout.Answer, err error, log *slog.Logger) error {
	// The ledger must learn the outcome even if ctx ends.
	dctx, cancel := detached(ctx)
	defer cancel()
	code := ErrorCode(err)
	switch answer {
	case rollout.SecretUnavailable:
		code = "SecretUnavailable"
	case rollout.JournalFailed:
		code = "JournalError"
	}
	action, why := rollout.AfterCall(rollout.CallFacts{Answer: answer, Tries: in.Tries, Attempts: spec.RetryAttempts,
		Deadline: spec.RetryDeadline, FirstTry: cmp.Or(in.FirstTryAt, start), Now: w.clock.Now()})
	switch action {
	case rollout.Reconcile:
		// The answer was lost, not refused: the call may have reached the
		// cloud. Leave the intent in place; the task comes back after the
		// grace period and reconciles instead of calling again.
		log.Warn("reset outcome unknown, will reconcile", "err", err)
		return &retryLater{In: w.cfg.ReconcileGrace, Cause: "outcome unknown: " + err.Error()}
	case rollout.RetryThrottled:
		_ = w.cfg.Limiter.Throttled(dctx, w.limiterKey(spec, "ResetInstance"))
		if err := w.l.Release(dctx, spec.ID, in.ID, token, ledger.Pending, code, err.Error()); err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		return &retryLater{In: w.backoff(1), Cause: "throttled"}
	case rollout.Retry:
		if rerr := w.l.Release(dctx, spec.ID, in.ID, token, ledger.Pending, code, err.Error()); rerr != nil {
			return fmt.Errorf("worker: %w", rerr)
		}
		if answer == rollout.JournalFailed {
			return fmt.Errorf("worker: journal intent of %s: %w", in.ID, err)
		}
		log.Debug("reset refused, will retry", "err", err)
		return &retryLater{In: w.backoff(in.Tries), Cause: code}
	case rollout.FailExhausted:
		log.Error("reset failed: retry budget used up", "err", err, "tries", in.Tries+1)
		if ferr := w.finish(dctx, spec, in.ID, ledger.Outcome{From: []ledger.InstanceState{ledger.Calling}, Token: token,
			To: ledger.Failed, Code: code, Message: fmt.Sprintf("%s: %v", why, err)}); ferr != nil {
			return ferr
		}
		return w.undrain(dctx, spec, in.ID)
	case rollout.HoldAndPause:
		if rerr := w.l.Release(dctx, spec.ID, in.ID, token, ledger.Held, code, err.Error()); rerr != nil {
			return fmt.Errorf("worker: %w", rerr)
		}
		if uerr := w.undrain(dctx, spec, in.ID); uerr != nil {
			return uerr
		}
		if answer == rollout.SecretUnavailable {
			// A worker that cannot read the password cannot reset
			// anything: stop the rollout rather than fail instance after
			// instance.
			return w.ctl.PauseFatal(dctx, spec, in.Wave, "worker cannot resolve the password: "+err.Error())
		}
		return w.ctl.PauseFatal(dctx, spec, in.Wave, fmt.Sprintf("%s: %v (fix the cause, then resume)", code, err))
	}
	log.Error("reset failed", "err", err)
	if ferr := w.finish(dctx, spec, in.ID, ledger.Outcome{From: []ledger.InstanceState{ledger.Calling}, Token: token,
		To: ledger.Failed, Code: code, Message: err.Error()}); ferr != nil {
		return ferr
	}
	if uerr := w.undrain(dctx, spec, in.ID); uerr != nil {
		return uerr
	}
	return fmt.Errorf("worker: reset %s: %w: %w", in.ID, err, asynq.SkipRetry)
}

// accepted records an accepted call and schedules its verification.
func (w *Worker) accepted(ctx context.Context, spec rollout.Spec, in *ledger.Instance, token int64, requestID string, log *slog.Logger) error {
	if err := w.l.Called(ctx, spec.ID, in.ID, token, requestID); err != nil {
		if errors.Is(err, ledger.ErrFenced) {
			// Another worker took the instance over, or a Redis failover
			// lost our intent (the instance is pending again). Not done:
			// a new delivery judges it from the ledger and the cloud.
			log.Error("reset accepted but another worker took the instance over", "request_id", requestID)
			return &retryLater{In: time.Second, Cause: "fenced after an accepted call"}
		}
		return err
	}
	if j := w.cfg.Journal; j != nil {
		if err := j.Called(ctx, spec.ID, in.ID, token, requestID); err != nil {
			log.Error("journal write failed", "err", err)
		}
	}
	log.Info("reset accepted", "request_id", requestID)
	return w.ctl.EnqueueVerify(ctx, spec.ID, spec.VerifyInterval, time.Time{})
}

// reconcileCall handles an instance whose intent exists without a known
// outcome: a previous delivery may have made the call.
func (w *Worker) reconcileCall(ctx context.Context, spec rollout.Spec, api cvm.API, in *ledger.Instance, res ledger.BeginResult) error {
	taskID, _ := asynq.GetTaskID(ctx)
	log := w.log.With("rollout", spec.ID, "wave", in.Wave+1, "instance_id", in.ID, "task_id", taskID)
	if since := w.clock.Now().Sub(res.IntentAt); since < w.cfg.ReconcileGrace {
		return &retryLater{In: w.cfg.ReconcileGrace - since, Cause: "waiting out the reconcile grace period"}
	}
	obs, err := w.describeOne(ctx, spec, api, in.ID)
	if err != nil {
		if cvm.Classify(err) == cvm.Fatal {
			return w.ctl.PauseFatal(ctx, spec, in.Wave, "reconcile: "+err.Error())
		}
		return err
	}
	target := cmp.Or(spec.Groups[in.Group].ImageID, in.OldImage)
	gen := cvm.Generation(spec.API)
	verdict, requestID, why := reconcile(gen, target, in.OldImage, in.OldOpRequestID, obs)
	switch verdict {
	case landed:
		log.Warn("reconciled: the earlier call had landed", "request_id", requestID, "why", why)
		return w.accepted(ctx, spec, in, res.Token, requestID, log)
	case notLanded:
		// No trace of the call yet; but a request delayed in the network
		// can still arrive while its signature is valid. Call again only
		// once the API refuses it for certain.
		if wait := res.IntentAt.Add(w.recallAfter()).Sub(w.clock.Now()); wait > 0 {
			return &retryLater{In: wait, Cause: "no trace of the earlier call; waiting until its signature expired before calling again"}
		}
		// The earlier call certainly never landed: whether to call now
		// is decided as for a new attempt, in the same script that takes
		// the new token (Retake refuses unless the rollout runs). An
		// aborted rollout calls nothing more; a paused one waits.
		at := w.clock.Now()
		tok, err := w.l.Retake(ctx, spec.ID, in.ID, res.Token)
		if errors.Is(err, ledger.ErrFenced) {
			return nil
		}
		if errors.Is(err, ledger.ErrNotRunning) {
			return w.notCallingAgain(ctx, spec, in, res.Token, why, log)
		}
		if err != nil {
			return err
		}
		log.Info("reconciled: the earlier call never landed; calling", "why", why)
		in.Tries++
		return w.call(ctx, spec, api, in, tok, at, time.Time{})
	default:
		log.Error("reset outcome ambiguous; needs a human", "why", why)
		return w.finish(ctx, spec, in.ID, ledger.Outcome{From: []ledger.InstanceState{ledger.Calling}, Token: res.Token,
			To: ledger.Ambiguous, Code: "Ambiguous", Message: why})
	}
}

// notCallingAgain handles an intent whose call never landed, in a rollout
// that does not run: cancelled when the rollout was aborted (final, so no
// race), else left as it is — calling, drained if it was — and asked again
// later: after a resume the retake succeeds and calls. (Parking it as held
// could race a resume that already requeued the held ones.)
func (w *Worker) notCallingAgain(ctx context.Context, spec rollout.Spec, in *ledger.Instance, token int64, why string, log *slog.Logger) error {
	rs, _, err := w.l.State(ctx, spec.ID)
	if err != nil {
		return err
	}
	if rs == ledger.Aborted {
		log.Info("reconciled: the earlier call never landed; the rollout is aborted, not calling", "why", why)
		if err := w.finish(ctx, spec, in.ID, ledger.Outcome{From: []ledger.InstanceState{ledger.Calling}, Token: token,
			To: ledger.Cancelled, Code: "Aborted", Message: "the rollout was aborted; its earlier call never landed"}); err != nil {
			return err
		}
		// Never reset: its weights go back (and then its claim).
		return w.undrain(ctx, spec, in.ID)
	}
	return &retryLater{In: max(spec.VerifyInterval, 5*time.Second), Cause: "the earlier call never landed and the rollout is " + string(rs) + ": calling again once it runs"}
}

// finish records a terminal outcome and runs its consequences.
func (w *Worker) finish(ctx context.Context, spec rollout.Spec, id string, o ledger.Outcome) error {
	_, err := w.finishLatency(ctx, spec, id, o, 0)
	return err
}

// finishLatency is finish for a verified outcome; changed reports whether
// this call made the transition (another worker may have made it first).
func (w *Worker) finishLatency(ctx context.Context, spec rollout.Spec, id string, o ledger.Outcome, verifyLatency time.Duration) (changed bool, err error) {
	ad := engine.Adapter{Finished: func(ctx context.Context, spec rollout.Spec, id string, o ledger.Outcome) {
		w.record(ctx, spec, id, o, verifyLatency)
	}}
	res, err := w.ctl.Finish(ctx, spec, id, o, ad)
	return res.Changed, err
}

// finished hears outcomes the engine recorded for this worker.
func (w *Worker) finished(ctx context.Context, spec rollout.Spec, id string, o ledger.Outcome) {
	w.record(ctx, spec, id, o, 0)
}

// record writes an outcome this worker recorded to the journal and metrics.
func (w *Worker) record(ctx context.Context, spec rollout.Spec, id string, o ledger.Outcome, verifyLatency time.Duration) {
	if j := w.cfg.Journal; j != nil {
		if err := j.Outcome(ctx, spec.ID, id, o.To, o.Code, o.Message, o.NewImage); err != nil {
			w.log.Error("journal write failed", "instance_id", id, "err", err)
		}
	}
	if ob := w.cfg.Observer; ob != nil {
		ob.Outcome(spec.ID, o.To, verifyLatency)
	}
}
