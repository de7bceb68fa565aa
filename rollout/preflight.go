package rollout

// Observed is what the cloud says of an instance before it is reset.
type Observed struct {
	// Found is false when DescribeInstances did not return the instance.
	Found   bool
	ImageID string
	// State is the v3 InstanceState (or the v2 status mapped to it).
	State string
	// Resetting is true while a reinstall is visibly in progress.
	Resetting bool
	// Zone is the instance's availability zone, when known.
	Zone string
}

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
)

func (v Verdict) String() string {
	switch v {
	case Proceed:
		return "proceed"
	case Skip:
		return "skip"
	}
	return "refuse"
}

// Preflight decides what to do with an instance given the target image
// (empty: reinstall the current image, which never skips) and what the
// cloud shows. An instance already on the target image is skipped unless
// resetMatching. The reason explains Skip and Refuse for people.
func Preflight(targetImage string, o Observed, resetMatching bool) (Verdict, string) {
	if !o.Found {
		return Refuse, "instance not found"
	}
	if o.Resetting {
		// Someone else's reinstall is running: the worker waits for it
		// (InstanceOperationInProgress is retried), then resets.
		return Proceed, ""
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
