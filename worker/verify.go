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
	ids, err := w.l.Resetting(ctx, spec.ID)
	if err != nil {
		return err
	}
	order, byLoc, err := w.byLocation(ctx, spec, ids)
	if err != nil {
		return err
	}
	left, every := 0, spec.VerifyInterval
	for _, loc := range order {
		// Each request holds one location's instances.
		at := spec.At(loc)
		api, err := w.api(at)
		if err != nil {
			return err
		}
		ids := byLoc[loc]
		for start := 0; start < len(ids); start += cvm.MaxDescribeIDs {
			n, next, err := w.verifyBatch(ctx, at, api, ids[start:min(start+cvm.MaxDescribeIDs, len(ids))])
			if err != nil {
				return err
			}
			left += n
			if n > 0 && next > 0 {
				every = min(every, next)
			}
		}
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
		return w.ctl.EnqueueVerify(ctx, spec.ID, max(every, time.Second), time.Unix(p.At, 0))
	}
	return nil
}

// verifyBatch polls up to 100 instances with one DescribeInstances call,
// runs the steps after the image check of those past it, and returns how
// many are still on their way and when the sweep should come back.
func (w *Worker) verifyBatch(ctx context.Context, spec rollout.Spec, api cvm.API, ids []string) (int, time.Duration, error) {
	ins, err := w.l.Instances(ctx, spec.ID, ids)
	if err != nil {
		return 0, 0, err
	}
	var live, stepping []*ledger.Instance
	var liveIDs []string
	for _, in := range ins {
		switch {
		case in == nil || in.State != ledger.Resetting:
		case inAfterSteps(in):
			stepping = append(stepping, in)
		default:
			live = append(live, in)
			liveIDs = append(liveIDs, in.ID)
		}
	}
	left := 0
	if len(live) > 0 {
		n, more, err := w.verifyImages(ctx, spec, api, live, liveIDs)
		if err != nil {
			return 0, 0, err
		}
		left += n
		stepping = append(stepping, more...)
	}
	n, next, err := w.afterSteps(ctx, spec, stepping)
	return left + n, next, err
}

// verifyImages judges instances by what DescribeInstances shows. Those
// verified whose group has steps after the image check are returned, in
// those steps, instead of finished.
func (w *Worker) verifyImages(ctx context.Context, spec rollout.Spec, api cvm.API, live []*ledger.Instance, liveIDs []string) (int, []*ledger.Instance, error) {
	found, err := w.describe(ctx, spec, api, liveIDs)
	if err != nil {
		if cvm.Classify(err) == cvm.Fatal {
			return 0, nil, w.ctl.PauseFatal(ctx, spec, live[0].Wave, "verify: "+err.Error())
		}
		return 0, nil, err
	}
	var stepping []*ledger.Instance
	gen := cvm.Generation(spec.API)
	now := w.clock.Now()
	left := 0
	for _, in := range live {
		obs := found[in.ID]
		target := cmp.Or(spec.Groups[in.Group].ImageID, in.OldImage)
		v, code, msg := verifyCheck(gen, target, in.OldImage, in.RequestID, in.CalledAt, now, spec.VerifyTimeout, w.cfg.ReconcileGrace, obs)
		switch v {
		case verified:
			if hasPostverify(spec.Groups[in.Group]) {
				var next *ledger.Instance
				if next, err = w.verifiedImage(ctx, spec, in, obs, now); err == nil {
					stepping = append(stepping, next)
				}
				break
			}
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
			return left, stepping, err
		}
	}
	return left, stepping, nil
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

// byLocation splits a rollout's instance IDs by the location of their
// group. A rollout in one location needs no ledger read for it.
func (w *Worker) byLocation(ctx context.Context, spec rollout.Spec, ids []string) ([]rollout.Location, map[rollout.Location][]string, error) {
	if !spec.MultiLocation() {
		loc := spec.Locations()[0]
		if len(ids) == 0 {
			return nil, nil, nil
		}
		return []rollout.Location{loc}, map[rollout.Location][]string{loc: ids}, nil
	}
	ins, err := w.l.Instances(ctx, spec.ID, ids)
	if err != nil {
		return nil, nil, err
	}
	group := make(map[string]int, len(ins))
	for _, in := range ins {
		if in != nil {
			group[in.ID] = in.Group
		}
	}
	order, by := spec.ByLocation(ids, func(id string) int { return group[id] })
	return order, by, nil
}
