package worker

import (
	"cmp"
	"context"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/secretref"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

// handleVerify is one verification sweep of a rollout: every instance whose
// reset the cloud accepted is polled, up to 100 per DescribeInstances call,
// and the next sweep is scheduled while any remains.
func (w *Worker) handleVerify(ctx context.Context, t *asynq.Task) error {
	var p tasks.VerifyPayload
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
	ids, err := w.l.Resetting(ctx, spec.ID)
	if err != nil {
		return err
	}
	left := 0
	for start := 0; start < len(ids); start += cvm.MaxDescribeIDs {
		n, err := w.verifyBatch(ctx, spec, api, ids[start:min(start+cvm.MaxDescribeIDs, len(ids))])
		if err != nil {
			return err
		}
		left += n
	}
	// Anything accepted since the read above is counted too, so no
	// instance is left without a sweep.
	if left == 0 {
		more, err := w.l.Resetting(ctx, spec.ID)
		if err != nil {
			return err
		}
		left = len(more)
	}
	if left > 0 {
		return w.ctl.EnqueueVerify(ctx, spec.ID, spec.VerifyInterval, time.Unix(p.At, 0))
	}
	return nil
}

// verifyBatch polls up to 100 instances with one DescribeInstances call and
// returns how many are still resetting.
func (w *Worker) verifyBatch(ctx context.Context, spec rollout.Spec, api cvm.API, ids []string) (int, error) {
	ins, err := w.l.Instances(ctx, spec.ID, ids)
	if err != nil {
		return 0, err
	}
	var live []*ledger.Instance
	var liveIDs []string
	for _, in := range ins {
		if in != nil && in.State == ledger.Resetting {
			live = append(live, in)
			liveIDs = append(liveIDs, in.ID)
		}
	}
	if len(live) == 0 {
		return 0, nil
	}
	found, err := w.describe(ctx, spec, api, liveIDs)
	if err != nil {
		if cvm.Classify(err) == cvm.Fatal {
			return 0, w.ctl.PauseFatal(ctx, spec, live[0].Wave, "verify: "+err.Error())
		}
		return 0, err
	}
	gen := cvm.Generation(spec.API)
	now := w.clock.Now()
	left := 0
	for _, in := range live {
		obs := found[in.ID]
		target := cmp.Or(spec.Groups[in.Group].ImageID, in.OldImage)
		v, code, msg := verifyCheck(gen, target, in.OldImage, in.RequestID, in.CalledAt, now, spec.VerifyTimeout, w.cfg.ReconcileGrace, obs)
		switch v {
		case verified:
			err = w.finishVerified(ctx, spec, in, ledger.Succeeded, "", "", obs.ImageID, now)
		case verifyFailed:
			// A FAILED operation's message is upstream text: it may echo
			// the request, password included.
			msg = cvm.Scrub(msg, w.passwords(spec, in.Group)...)
			img := ""
			if obs != nil {
				img = obs.ImageID
			}
			err = w.finishVerified(ctx, spec, in, ledger.Failed, code, msg, img, now)
		default:
			left++
		}
		if err != nil {
			return left, err
		}
	}
	return left, nil
}

func (w *Worker) finishVerified(ctx context.Context, spec rollout.Spec, in *ledger.Instance, to ledger.InstanceState, code, msg, img string, now time.Time) error {
	changed, err := w.finishLatency(ctx, spec, in.ID, ledger.Outcome{From: []ledger.InstanceState{ledger.Resetting},
		To: to, Code: code, Message: msg, NewImage: img}, now.Sub(in.CalledAt))
	switch {
	case !changed:
		// Another sweep judged it first.
	case to == ledger.Succeeded:
		w.log.Info("instance verified", "rollout", spec.ID, "wave", in.Wave+1, "instance_id", in.ID, "request_id", in.RequestID, "image", img)
	default:
		w.log.Error("reset not verified", "rollout", spec.ID, "wave", in.Wave+1, "instance_id", in.ID, "request_id", in.RequestID, "code", code, "err", msg)
	}
	return err
}

// passwords returns the password of a group, when it has one and it can be
// read, for scrubbing upstream text; never for anything else.
func (w *Worker) passwords(spec rollout.Spec, group int) []cvm.Secret {
	g := spec.Groups[group]
	if g.Password == nil {
		return nil
	}
	pw, err := secretref.Resolve(*g.Password, w.cfg.LookupEnv, w.cfg.ReadFile)
	if err != nil {
		return nil
	}
	return []cvm.Secret{cvm.Secret(pw)}
}
