package rollout

import "strings"

// Observed is what the cloud says of an instance: at pre-flight, right
// before a reset call, and when a call's outcome is unknown.
type Observed struct {
	// Found is false when DescribeInstances did not return the instance.
	Found   bool
	ImageID string
	// State is the v3 InstanceState (or the v2 status mapped to it).
	State string
	// Resetting is true while an operation (a reinstall, on the legacy API
	// status 14) is visibly in progress.
	Resetting bool
	// Zone is the instance's availability zone, when known.
	Zone string
	// Op, OpState and OpRequestID are the instance's latest operation (API
	// 3.0 LatestOperation, LatestOperationState, LatestOperationRequestId).
	// The legacy API has none: all three are empty.
	Op, OpState, OpRequestID string
}

// IsReset reports whether an operation name is a reinstall.
func IsReset(op string) bool { return op == "ResetInstance" || op == "ResetInstances" }

// Verdict is the pre-flight decision for one instance.
type Verdict int

const (
	// Proceed: reset the instance.
	Proceed Verdict = iota
	// Skip: the instance already runs the target image; resetting it again
	// would wipe a disk for nothing.
	Skip
	// Refuse: the instance cannot be reset (missing, terminating, ...).
	Refuse
	// Await: an operation is running on the instance. It is never reset
	// while it runs: a running reinstall is adopted and judged as this
	// rollout's (it may be the call of an earlier attempt whose record was
	// lost), anything else is waited out. See BeforeCall.
	Await
)

func (v Verdict) String() string {
	switch v {
	case Proceed:
		return "proceed"
	case Skip:
		return "skip"
	case Await:
		return "await"
	}
	return "refuse"
}

// Preflight decides what to do with an instance given the target image
// (empty: reinstall the current image, which never skips) and what the
// cloud shows. An instance already on the target image is skipped unless
// resetMatching. The reason explains Skip, Refuse and Await for people.
func Preflight(targetImage string, o Observed, resetMatching bool) (Verdict, string) {
	if !o.Found {
		return Refuse, "instance not found"
	}
	if o.Resetting {
		// Never Proceed here: the reinstall that runs may be ours from a
		// record that was lost (Redis restored, a re-apply, another
		// directory's run); calling again would wipe the disk twice.
		if IsReset(o.Op) || o.Op == "" {
			return Await, "a reinstall is already running; it is judged, not repeated"
		}
		return Await, "operation " + o.Op + " is running; waiting for it to end"
	}
	switch o.State {
	case "RUNNING", "STOPPED":
	default:
		return Refuse, "instance state " + o.State + " does not allow a reset"
	}
	if targetImage != "" && o.ImageID == targetImage && !resetMatching {
		return Skip, "already on image " + targetImage
	}
	return Proceed, ""
}

// Prior is what a rollout knows of an instance before its reset call.
type Prior struct {
	// Target is the image the rollout installs ("" for the current one).
	Target string
	// Image and OpRequestID are the pre-flight observation: the image and
	// the latest operation's request ID before the rollout touched the
	// instance. OpRequestID is empty when pre-flight found an operation
	// running (Await), so that operation counts as new.
	Image, OpRequestID string
	// Judged is the request ID of this rollout's earlier reset of the
	// instance that was already judged (failed) and is being retried;
	// empty on a first attempt.
	Judged string
}

// CallVerdict is what BeforeCall decides.
type CallVerdict int

const (
	// Call: nothing has happened to the instance since pre-flight and
	// nothing runs on it; the reset call may go out.
	Call CallVerdict = iota
	// Adopt: a reinstall runs, or one finished since pre-flight that the
	// rollout has not judged yet: judge that one (verify it) instead of
	// calling. Its request ID is Observed.OpRequestID (empty on the legacy API).
	Adopt
	// Wait: another operation runs; look again later, call nothing.
	Wait
	// Gone: DescribeInstances no longer returns the instance.
	Gone
)

func (v CallVerdict) String() string {
	return [...]string{"call", "adopt", "wait", "gone"}[v]
}

// BeforeCall decides, from what DescribeInstances shows immediately before
// a reset call, whether the call may go out. The cloud is the second record
// of what happened: whatever the ledger says (it may have been restored
// from an old snapshot, lost, or be a new rollout applied over a running
// one), an instance whose latest operation is a reinstall that runs, or one
// that appeared since pre-flight and was not judged, is never reset again.
//
// An earlier reset of this rollout that was judged failed (p.Judged, the
// retry-failed case) is reset again only when the cloud shows it FAILED or
// ended off the target image; one that in fact finished on the target is
// adopted, so that verification records it as succeeded.
func BeforeCall(p Prior, o Observed) (CallVerdict, string) {
	if !o.Found {
		return Gone, "instance no longer returned by DescribeInstances"
	}
	if o.Resetting {
		if IsReset(o.Op) || o.Op == "" {
			return Adopt, "a reinstall is running" + reqSuffix(o.OpRequestID)
		}
		return Wait, "operation " + o.Op + " is running"
	}
	onTarget := p.Target == "" || o.ImageID == p.Target
	if IsReset(o.Op) && o.OpRequestID != "" && o.OpRequestID != p.OpRequestID {
		if o.OpRequestID != p.Judged {
			return Adopt, "a reinstall" + reqSuffix(o.OpRequestID) + " ended " + strings.ToLower(o.OpState) + " since pre-flight"
		}
		if o.OpState == "SUCCESS" && onTarget {
			return Adopt, "the earlier reinstall" + reqSuffix(o.OpRequestID) + " finished on the target after all"
		}
		return Call, ""
	}
	if p.Target != "" && p.Target != p.Image && o.ImageID == p.Target {
		// The legacy API shows no operations: the image is the only trace
		// of a reinstall since pre-flight.
		return Adopt, "the instance runs the target image since pre-flight"
	}
	return Call, ""
}

func reqSuffix(id string) string {
	if id == "" {
		return ""
	}
	return " (request " + id + ")"
}
