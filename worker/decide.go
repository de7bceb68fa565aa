package worker

import (
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/rollout"
)

// Observe converts a DescribeInstances entry (nil: not returned) into what
// the rollout decisions (rollout.Preflight, rollout.BeforeCall) judge.
func Observe(in *cvm.Instance) rollout.Observed {
	if in == nil {
		return rollout.Observed{}
	}
	return rollout.Observed{Found: true, ImageID: in.ImageID, State: in.State, Resetting: in.Resetting(), Zone: in.Zone,
		Op: in.LatestOperation, OpState: in.LatestOperationState, OpRequestID: in.LatestOperationRequestID}
}

// landing is what a reconcile concluded about a call whose outcome the
// ledger does not know (the worker died, or the answer was lost).
type landing int

const (
	// notLanded: the instance shows no trace of the call; calling again is safe.
	notLanded landing = iota
	// landed: the cloud accepted the call; verify it, never call again.
	landed
	// unknown: the evidence is contradictory; a human decides.
	unknown
)

// reconcile decides whether a reset call of ours reached the cloud, from
// what the instance shows now. oldImage and oldOp are the pre-flight
// observation (image, and v3 LatestOperationRequestId) taken before any
// call. The caller waits out a grace period after the intent first, so
// that a call still in flight, or a state the cloud has not yet updated
// (Terraform waits 10 s), is not mistaken for "not landed".
func reconcile(gen cvm.Generation, target, oldImage, oldOp string, in *cvm.Instance) (landing, string, string) {
	if in == nil {
		return unknown, "", "instance no longer returned by DescribeInstances"
	}
	if gen == cvm.V3 {
		switch {
		case in.LatestOperation == "ResetInstance" && in.LatestOperationRequestID != "" && in.LatestOperationRequestID != oldOp:
			// A reset we had not seen before the intent: ours, since the
			// rollout holds the only claim on the instance.
			return landed, in.LatestOperationRequestID, "latest operation is a new ResetInstance"
		case in.LatestOperationRequestID == oldOp && !in.Resetting():
			return notLanded, "", "latest operation unchanged since pre-flight"
		}
		return unknown, "", "latest operation " + in.LatestOperation + " (" + in.LatestOperationState + ") is not ours"
	}
	switch {
	case in.V2Status == 14:
		return landed, "", "instance is reinstalling (status 14)"
	case target != "" && target != oldImage && in.ImageID == target:
		return landed, "", "instance already runs the target image"
	case target == oldImage:
		// A reinstall of the same image leaves no trace on the legacy API
		// once it has finished: nothing proves the call did not land.
		return unknown, "", "the legacy API shows no trace of a finished reinstall of the same image"
	case in.ImageID == oldImage && (in.V2Status == 2 || in.V2Status == 4):
		return notLanded, "", "image and status unchanged since pre-flight"
	}
	return unknown, "", "instance shows image " + in.ImageID + " in state " + in.State
}

// verdict is the outcome of one verification poll.
type verdict int

const (
	waitMore verdict = iota
	verified
	verifyFailed
)

// verifyCheck judges one poll of an instance whose reset the cloud accepted
// at calledAt under requestID (empty when a reconcile adopted the call on
// the legacy API, which has no operation IDs). Done means: the reset
// finished (v3: our request, SUCCESS), the instance runs or rests normally,
// and it is on the target image.
// A conclusive observation wins over the timeout: a sweep that comes late
// (a busy worker, a throttled describe) does not fail a reset the cloud
// shows finished.
func verifyCheck(gen cvm.Generation, target, oldImage, requestID string, calledAt, now time.Time, timeout, grace time.Duration, in *cvm.Instance) (verdict, string, string) {
	v, code, msg := judgeReset(gen, target, oldImage, requestID, calledAt, now, grace, in)
	if v == waitMore && now.Sub(calledAt) > timeout {
		return verifyFailed, "VerifyTimeout", "not verified within " + timeout.String() + " of the accepted call"
	}
	return v, code, msg
}

// judgeReset is verifyCheck without the timeout.
func judgeReset(gen cvm.Generation, target, oldImage, requestID string, calledAt, now time.Time, grace time.Duration, in *cvm.Instance) (verdict, string, string) {
	if in == nil {
		return waitMore, "", ""
	}
	settled := in.State == "RUNNING" || in.State == "STOPPED"
	if gen == cvm.V3 {
		if requestID != "" && in.LatestOperationRequestID != requestID {
			// The cloud has not yet recorded our operation.
			return waitMore, "", ""
		}
		switch in.LatestOperationState {
		case "FAILED":
			return verifyFailed, "ResetFailed", "reinstall failed: " + in.LatestOperationErrorMsg
		case "SUCCESS":
			if target != "" && in.ImageID != target {
				return verifyFailed, "WrongImage", "reinstall finished on image " + in.ImageID + ", not " + target
			}
			if settled {
				return verified, "", ""
			}
		}
		return waitMore, "", ""
	}
	if in.V2Status == 14 || !settled {
		return waitMore, "", ""
	}
	if target == "" || in.ImageID == target {
		// The legacy API may not show status 14 at once; for a reinstall of
		// the same image only the grace period tells the call had time to show.
		if (target == "" || target == oldImage) && now.Sub(calledAt) < grace {
			return waitMore, "", ""
		}
		return verified, "", ""
	}
	if now.Sub(calledAt) < grace {
		return waitMore, "", ""
	}
	return verifyFailed, "WrongImage", "reinstall finished on image " + in.ImageID + ", not " + target
}
