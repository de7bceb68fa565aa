package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetreset/fleetreset/alarm"
	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
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
// for another API generation or endpoint, or holds another credential,
// than the rollout was applied with (rollout.Account.Serves).
func (w *Worker) notServed(spec rollout.Spec) (reason, why string) {
	a := spec.Account()
	switch reason = a.Serves(rollout.Account{API: w.cfg.API, Endpoint: w.cfg.Endpoint, Identity: w.creds.Identity()}); reason {
	case "api":
		why = fmt.Sprintf("rollout applied for api %s, worker started with --api %s", spec.API, w.cfg.API)
	case "endpoint":
		why = fmt.Sprintf("rollout applied for endpoint %q, worker started with --endpoint %s", cmp.Or(spec.Endpoint, "the real API"), w.cfg.Endpoint)
	case "identity":
		why = fmt.Sprintf("rollout applied with credential %s, this worker has %s", a.Identity, cmp.Or(w.creds.Identity(), "none"))
	}
	if reason != "" {
		return reason, why
	}
	if none, ok := w.creds.(cvm.NoCredentials); ok && spec.UsesDefaultAccount() {
		return "identity", fmt.Sprintf("some of its groups use the default credentials and this worker has none (%v)", none.Err)
	}
	// Each named account must resolve here to the credential it had where
	// the plan was applied: the same source name (a variable prefix, a
	// profile) can hold another account's key on another machine.
	for name, want := range spec.AccountIdentities {
		at := spec
		at.AccountName = name
		p, err := w.provider(context.Background(), at)
		if err != nil {
			continue // a missing source pauses the rollout when called, naming it
		}
		if got := p.Identity(); got != "" && got != want {
			return "identity", fmt.Sprintf("account %s was applied with credential %s, this worker's source for it has %s", name, want, got)
		}
	}
	return "", ""
}

// handleStartWave starts or rescans a wave through the engine.
func (w *Worker) handleStartWave(ctx context.Context, t *asynq.Task) error {
	var p tasks.WavePayload
	if err := tasks.Parse(t, &p); err != nil {
		return err
	}
	spec, st, err := w.spec(ctx, p.Rollout)
	if err != nil {
		return err
	}
	api, err := w.api(spec)
	if err != nil {
		return err
	}
	return w.engineErr(w.ctl.StartWave(ctx, spec, st, p.Wave, p.Seq, w.adapter(spec, api)))
}

// adapter gives the engine this worker's API client, journal and metrics.
func (w *Worker) adapter(spec rollout.Spec, api cvm.API) engine.Adapter {
	return engine.Adapter{
		Describe: func(ctx context.Context, ids []string) (map[string]rollout.Observed, error) {
			found, err := w.describe(ctx, spec, api, ids)
			if err != nil {
				return nil, err
			}
			obs := make(map[string]rollout.Observed, len(found))
			for id, in := range found {
				obs[id] = Observe(in)
			}
			return obs, nil
		},
		DescribeAt: func(loc rollout.Location) rollout.DescribeFunc {
			return func(ctx context.Context, ids []string) (map[string]rollout.Observed, error) {
				at := spec.At(loc)
				api, err := w.api(at)
				if err != nil {
					return nil, err
				}
				return w.adapter(at, api).Describe(ctx, ids)
			}
		},
		Fatal:    func(err error) bool { return cvm.Classify(err) == cvm.Fatal },
		Finished: w.finished,
		Alarms: func(ctx context.Context, sw rollout.StopWhen) alarm.Status {
			return w.alarms(spec).Check(ctx, sw)
		},
	}
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

// handleAdvance runs the gate after a wave through the engine.
func (w *Worker) handleAdvance(ctx context.Context, t *asynq.Task) error {
	var p tasks.WavePayload
	if err := tasks.Parse(t, &p); err != nil {
		return err
	}
	spec, _, err := w.spec(ctx, p.Rollout)
	if err != nil {
		return err
	}
	api, err := w.api(spec)
	if err != nil {
		return err
	}
	res, err := w.ctl.Advance(ctx, spec, p.Wave, w.adapter(spec, api))
	if res.Passed {
		if j := w.cfg.Journal; j != nil {
			if err := j.WavePassed(ctx, spec.ID, p.Wave); err != nil {
				w.log.Error("journal write failed", "err", err)
			}
		}
	}
	return w.engineErr(err)
}

// engineErr maps the engine's "later" and "permanent" errors to asynq's.
func (w *Worker) engineErr(err error) error {
	var later *engine.Later
	switch {
	case errors.As(err, &later):
		return &retryLater{In: later.In, Cause: later.Cause}
	case errors.Is(err, engine.ErrPermanent):
		return fmt.Errorf("worker: %w: %w", err, asynq.SkipRetry)
	}
	return err
}
