package rollout

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// A rollback is a rollout of its own that reinstalls every instance an
// earlier rollout reset with the image it ran before. It is built from the
// original's stored spec and ledger (RollbackSpec) and then applied like a
// plan: pre-flight, claims, waves, the same exactly-once machinery.
//
// What a rollback restores, and what it cannot:
//
//   - the image: each instance gets the image pre-flight saw on it before
//     the original touched it (ledger OldImage). An instance whose old
//     image is unknown is reported and left alone, never guessed.
//   - the login settings: the original group's password reference, key
//     IDs and keepImageLogin. A password still comes by reference, read by
//     the worker at call time: the old login comes back only if the same
//     reference still holds the old password. Whatever login the instance
//     had before the original rollout, if it was not the plan's, is gone.
//   - not the system disk: a reinstall wipes it. Data written since the
//     original reset, and whatever the disk held before it, are lost
//     either way; a rollback restores the software, not the data.
//   - on API v2, the old image's type is not recorded: the original
//     group's ImageType is sent, right when both images are of one kind
//     (both private, say).
//
// A rollback is the fast path: its waves are the original's sizes re-cut
// over its own instances, with no soak and no approval, and it never rolls
// itself back (OnBreach "pause"): a breach stops it for a person to judge.

// OnBreach policies (Spec.OnBreach).
const (
	OnBreachPause    = "pause"
	OnBreachAbort    = "abort"
	OnBreachRollback = "rollback"
)

// RollbackSuffix ends the ID of a rollback: the rollback of rollout X is
// X-rollback, so rolling X back again addresses the same rollout, and
// applying it again changes nothing.
const RollbackSuffix = "-rollback"

// RollbackID returns the ID of the rollback of rollout id.
func RollbackID(id string) string { return id + RollbackSuffix }

// Errors RollbackSpec returns; callers branch on them with errors.Is.
var (
	// ErrNothingToRollBack: the original reset no instance that a
	// rollback could restore.
	ErrNothingToRollBack = errors.New("rollout: nothing to roll back")
	// ErrRollbackOfRollback: the rollout is itself a rollback. Undo it by
	// applying the original plan again.
	ErrRollbackOfRollback = errors.New("rollout: a rollback is not rolled back; apply the original plan again instead")
)

// RolledInstance is one instance of a rollout as its ledger knows it: what
// a rollback needs to decide whether and how to restore it.
type RolledInstance struct {
	ID string
	// Group and Wave index the original Spec's Groups and Waves.
	Group, Wave int
	Zone        string
	// OldImage is the image pre-flight saw before the original touched the
	// instance; empty when unknown.
	OldImage string
	// RequestID is the reset the original called or adopted; empty when it
	// made none.
	RequestID string
	// Ambiguous is true when a call may have gone out whose outcome nobody
	// knows (ledger state ambiguous).
	Ambiguous bool
}

// LeftOut says why a rollback leaves in out: "" when it is to be restored,
// else a reason for people. Only an instance the original reset (a
// request ID) with a known old image other than its group's target is
// restored.
func (in RolledInstance) LeftOut(orig Spec) string {
	switch {
	case in.RequestID == "" && in.Ambiguous:
		return "outcome ambiguous: a reset may have been made; check it in the console"
	case in.RequestID == "":
		return notReset
	case in.OldImage == "":
		return "image before the reset unknown (no pre-flight record); not guessed"
	case in.Group < 0 || in.Group >= len(orig.Groups):
		return fmt.Sprintf("group %d not in the rollout", in.Group)
	case in.OldImage == orig.Groups[in.Group].ImageID:
		return "already ran " + in.OldImage + " before the reset"
	}
	return ""
}

// notReset is LeftOut's reason for an instance the original never reset;
// callers usually count these rather than list them.
const notReset = "not reset by the rollout"

// NotReset reports whether why is LeftOut's reason for an instance the
// original never reset.
func NotReset(why string) bool { return why == notReset }

// RollbackSpec builds the rollback of orig over reset, the instances to
// restore (each with LeftOut(orig) == "", in plan order), as a rollout of
// its own: ID RollbackID(orig.ID), RollbackOf orig.ID, one group per
// (original group, old image) pair with that image and the group's login,
// health, hooks and load balancer settings. The original's wave sizes are
// re-cut over the instances with no soak and no approval; each wave keeps
// the failure budget of the original wave its size came from. OnBreach is
// "pause"; no schedule and no stopWhen alarms (the alarm that stopped the
// original likely still fires); window, rates and webhook are kept. It
// is pure: the same input gives the same rollback, and PlanHash derives
// from the original's, so applying it again changes nothing.
func RollbackSpec(orig Spec, reset []RolledInstance) (Spec, []Target, error) {
	if orig.RollbackOf != "" {
		return Spec{}, nil, fmt.Errorf("%w: %s rolls back %s", ErrRollbackOfRollback, orig.ID, orig.RollbackOf)
	}
	if len(reset) == 0 {
		return Spec{}, nil, fmt.Errorf("%w: %s reset no instance with a known earlier image", ErrNothingToRollBack, orig.ID)
	}
	// Plan order: wave by wave, the order within a wave as given.
	order := slices.Clone(reset)
	slices.SortStableFunc(order, func(a, b RolledInstance) int { return cmp.Compare(a.Wave, b.Wave) })

	type key struct {
		group int
		image string
	}
	var keys []key
	seen := map[string]bool{}
	index := map[key]int{}
	for _, in := range order {
		if why := in.LeftOut(orig); why != "" {
			return Spec{}, nil, fmt.Errorf("rollout: rollback of %s: instance %s: %s", orig.ID, in.ID, why)
		}
		if seen[in.ID] {
			return Spec{}, nil, fmt.Errorf("rollout: rollback of %s: instance %s listed twice", orig.ID, in.ID)
		}
		seen[in.ID] = true
		k := key{in.Group, in.OldImage}
		if _, ok := index[k]; !ok {
			index[k] = -1
			keys = append(keys, k)
		}
	}
	// Groups in the original's group order, then by image: stable whatever
	// order the instances came in.
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.image, b.image))
	})
	groups := make([]Group, len(keys))
	for i, k := range keys {
		index[k] = i
		g := orig.Groups[k.group]
		g.Name = g.Name + "@" + k.image
		g.ImageID = k.image
		groups[i] = g
	}

	sizes := make([]Size, len(orig.Waves))
	for i, w := range orig.Waves {
		sizes[i] = Size{Count: w.Size}
	}
	steps := Expand(len(order), sizes)
	waves := make([]Wave, len(steps))
	targets := make([]Target, 0, len(order))
	next := 0
	for i, st := range steps {
		w := Wave{Size: st.Size, Budget: orig.Budget}
		if st.Entry >= 0 {
			w.Budget = orig.Waves[st.Entry].Budget
		}
		waves[i] = w
		for _, in := range order[next : next+st.Size] {
			targets = append(targets, Target{InstanceID: in.ID, Group: index[key{in.Group, in.OldImage}], Wave: i, Zone: in.Zone})
		}
		next += st.Size
	}

	spec := orig
	spec.ID = RollbackID(orig.ID)
	spec.RollbackOf = orig.ID
	spec.PlanFile = "rollback of " + orig.ID
	spec.PlanHash = "rollback:" + orig.PlanHash
	spec.Groups = groups
	spec.Waves = waves
	spec.OnBreach = OnBreachPause
	spec.ResetMatching = false
	spec.Schedule, spec.Series = "", ""
	spec.StartAt = time.Time{}
	// The alarm that stopped the original most likely still fires: it
	// would pause the rollback that is meant to clear it.
	spec.StopWhen = nil
	return spec, targets, nil
}

// RolledBackBy takes rollouts as ID → the rollout each rolls back ("" for
// none) and returns, for each of them whose rollback is among them, that
// rollback's ID.
func RolledBackBy(rollbackOf map[string]string) map[string]string {
	out := map[string]string{}
	for id := range rollbackOf {
		if rb := RollbackID(id); rollbackOf[rb] == id {
			out[id] = rb
		}
	}
	return out
}
