package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

// aggregate turns a group of verification polls of one rollout into one batch.
func (w *Worker) aggregate(group string, ts []*asynq.Task) *asynq.Task {
	p := tasks.VerifyBatchPayload{Rollout: group}
	for _, t := range ts {
		var v tasks.VerifyPayload
		if json.Unmarshal(t.Payload(), &v) == nil {
			p.Instances = append(p.Instances, v)
		}
	}
	t, err := tasks.NewVerifyBatch(w.q, p)
	if err != nil {
		w.log.Error("aggregate verify polls", "rollout", group, "err", err)
		return nil
	}
	return t
}

func (w *Worker) handleVerifyOne(ctx context.Context, t *asynq.Task) error {
	var p tasks.VerifyPayload
	if err := tasks.Parse(t, &p); err != nil {
		return err
	}
	return w.verify(ctx, tasks.VerifyBatchPayload{Rollout: p.Rollout, Instances: []tasks.VerifyPayload{p}})
}

func (w *Worker) handleVerifyBatch(ctx context.Context, t *asynq.Task) error {
	var p tasks.VerifyBatchPayload
	if err := tasks.Parse(t, &p); err != nil {
		return err
	}
	return w.verify(ctx, p)
}

// verify polls up to 100 instances with one DescribeInstances call.
func (w *Worker) verify(ctx context.Context, p tasks.VerifyBatchPayload) error {
	spec, _, err := w.spec(ctx, p.Rollout)
	if err != nil {
		return err
	}
	api, err := w.api(spec)
	if err != nil {
		return err
	}
	polls := map[string]tasks.VerifyPayload{}
	var ids []string
	for _, v := range p.Instances {
		if _, dup := polls[v.InstanceID]; !dup {
			ids = append(ids, v.InstanceID)
		}
		if v.Poll >= polls[v.InstanceID].Poll {
			polls[v.InstanceID] = v
		}
	}
	ins, err := w.l.Instances(ctx, spec.ID, ids)
	if err != nil {
		return err
	}
	var live []*ledger.Instance
	var liveIDs []string
	for _, in := range ins {
		if in != nil && in.State == ledger.Resetting && in.Gen == polls[in.ID].Gen {
			live = append(live, in)
			liveIDs = append(liveIDs, in.ID)
		}
	}
	if len(live) == 0 {
		return nil
	}
	found, err := w.describe(ctx, spec, api, liveIDs)
	if err != nil {
		if cvm.Classify(err) == cvm.Fatal {
			return w.ctl.PauseFatal(ctx, spec, live[0].Wave, "verify: "+err.Error())
		}
		return err
	}
	gen := cvm.Generation(cmp.Or(w.cfg.API, spec.API))
	now := w.clock.Now()
	for _, in := range live {
		obs := found[in.ID]
		target := cmp.Or(spec.Groups[in.Group].ImageID, in.OldImage)
		v, code, msg := verifyCheck(gen, target, in.OldImage, in.RequestID, in.CalledAt, now, spec.VerifyTimeout, w.cfg.ReconcileGrace, obs)
		switch v {
		case verified:
			if err := w.finishVerified(ctx, spec, in, ledger.Succeeded, "", "", obs.ImageID, now); err != nil {
				return err
			}
		case verifyFailed:
			w.log.Error("reset not verified", "rollout", spec.ID, "wave", in.Wave+1, "instance_id", in.ID, "request_id", in.RequestID, "code", code, "err", msg)
			img := ""
			if obs != nil {
				img = obs.ImageID
			}
			if err := w.finishVerified(ctx, spec, in, ledger.Failed, code, msg, img, now); err != nil {
				return err
			}
		default:
			next := polls[in.ID]
			next.Poll++
			if err := w.ctl.EnqueueVerify(ctx, next, spec.VerifyInterval); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *Worker) finishVerified(ctx context.Context, spec rollout.Spec, in *ledger.Instance, to ledger.InstanceState, code, msg, img string, now time.Time) error {
	if to == ledger.Succeeded {
		w.log.Info("instance verified", "rollout", spec.ID, "wave", in.Wave+1, "instance_id", in.ID, "request_id", in.RequestID, "image", img)
	}
	return w.finishLatency(ctx, spec, in.ID, ledger.Outcome{From: []ledger.InstanceState{ledger.Resetting},
		To: to, Code: code, Message: msg, NewImage: img}, now.Sub(in.CalledAt))
}
