package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/notify"
	"github.com/fleetreset/fleetreset/rollout"
)

// Rolling a rollout back (rollout.RollbackSpec says what it restores):
//
//  1. the original is aborted when it is not over yet, with a reason that
//     starts "rolled back", and its claims are released;
//  2. its resets still in flight finish and are verified: a rollback made
//     while one runs would judge that reinstall as its own (pre-flight
//     awaits and adopts a running reinstall) and fail it for landing on
//     the new image. Rollback returns ErrInFlight until none is left;
//  3. its instances are read page by page, those it reset with a known
//     earlier image become the rollback's targets, and the rollback is
//     applied as a plan is: pre-flight, claims, first wave, through Apply,
//     so creating it is exactly-once and a second call finds it.
//
// OnBreach "rollback" runs the same steps from the breach, inside a
// worker's task handler: the abort at once, the rest as soon as nothing
// of the original is in flight, from whichever handler records its last
// outcome (AfterFinish). No describe is at hand there, so the rollback is
// applied without an apply-time pre-flight, as `apply --no-preflight`
// does: each wave's start pre-flights its instances with the worker's own
// client, skipping those already back on their old image and failing
// (not refusing the whole rollback) those that cannot be reset.

// rolledBack starts the abort reason of a rollout that is rolled back: a
// handler that runs after the abort (a redelivery, the last reset in
// flight) tells a rollback still to create from an abort by a person.
const rolledBack = "rolled back"

// ErrInFlight is returned (wrapped) by Rollback while resets of the
// original, aborted now, are still in flight; roll back again once they
// finish (RollbackResult.InFlight counts them).
var ErrInFlight = errors.New("engine: resets of the rolled back rollout are still in flight")

// RollbackPlan is the rollback of a rollout as it stands: what Rollback
// would apply, for a preview.
type RollbackPlan struct {
	// Original is the rollout to roll back, as read.
	Original *ledger.Rollout
	// Spec and Targets are the rollback; empty when there is nothing to
	// roll back (see Err).
	Spec    rollout.Spec
	Targets []rollout.Target
	// Images counts the rollback's instances per image they go back to.
	Images map[string]int
	// LeftOut maps instances the original reset, or may have, that the
	// rollback leaves alone to the reason (rollout.RolledInstance.LeftOut).
	LeftOut map[string]string
	// InFlight counts the original's instances without an outcome yet.
	InFlight int
	// Err is rollout.RollbackSpec's error (ErrNothingToRollBack, say).
	Err error
}

// RollbackResult says what Rollback did.
type RollbackResult struct {
	// ID is the rollback's rollout ID (rollout.RollbackID).
	ID string
	// Aborted is true when this call aborted the original.
	Aborted bool
	// Created is false when the rollback already existed (an earlier
	// call, a breach) or was not made (an error).
	Created bool
	// InFlight counts the original's resets that still had no outcome.
	InFlight int
	// Instances counts the rollback's targets, per image in Images; zero
	// when the rollback already existed.
	Instances int
	Images    map[string]int
	// LeftOut: see RollbackPlan.
	LeftOut map[string]string
	// Skipped maps instances pre-flight found already on their old image.
	Skipped map[string]string
	State   ledger.RolloutState
}

// Rollback rolls rollout origID back: it aborts the original when it is
// not over ("rolled back"), waits for nothing but returns ErrInFlight while
// its resets are in flight, and applies the rollback built from the
// instances it reset (RollbackSpec) with describe as the apply-time
// pre-flight (nil for none). It is idempotent: when the rollback exists,
// it returns it and changes nothing.
func (c *Engine) Rollback(ctx context.Context, origID string, describe rollout.DescribeFunc) (RollbackResult, error) {
	return c.rollback(ctx, origID, rolledBack, describe)
}

func (c *Engine) rollback(ctx context.Context, origID, reason string, describe rollout.DescribeFunc) (RollbackResult, error) {
	res := RollbackResult{ID: rollout.RollbackID(origID)}
	if ok, err := c.existing(ctx, &res); err != nil || ok {
		return res, err
	}
	r, err := c.l.Get(ctx, origID)
	if err != nil {
		return res, err
	}
	if r.Spec.RollbackOf != "" {
		return res, fmt.Errorf("engine: %w: %s rolls back %s", rollout.ErrRollbackOfRollback, origID, r.Spec.RollbackOf)
	}
	if !r.State.Terminal() {
		if res.Aborted, err = c.abortForRollback(ctx, r, reason); err != nil {
			return res, err
		}
	}
	p, err := c.PlanRollback(ctx, origID)
	if err != nil {
		return res, err
	}
	res.InFlight, res.LeftOut, res.Images = p.InFlight, p.LeftOut, p.Images
	if p.InFlight > 0 {
		return res, fmt.Errorf("%w: %d of %s; they finish and are verified first", ErrInFlight, p.InFlight, origID)
	}
	if p.Err != nil {
		return res, fmt.Errorf("engine: %w", p.Err)
	}
	ar, err := c.Apply(ctx, ApplyRequest{Spec: p.Spec, Targets: p.Targets, Describe: describe})
	if err != nil {
		return res, err
	}
	res.Created, res.Skipped, res.State, res.Instances = ar.Created, ar.Skipped, ar.State, len(p.Targets)
	if ar.Created {
		why := fmt.Sprintf("rollback %s started: %d instance(s) back to their earlier image", res.ID, len(p.Targets))
		c.log.Warn("rollback started", "rollout", origID, "rollback", res.ID, "instances", len(p.Targets), "left_out", len(p.LeftOut))
		c.Notify(ctx, r.Spec, notify.RollbackStarted, r.Wave, why)
	}
	return res, nil
}

// existing fills res from the rollback when it exists and is not being
// created right now (an apply that stopped half way is redone by Apply).
func (c *Engine) existing(ctx context.Context, res *RollbackResult) (bool, error) {
	_, st, err := c.l.Spec(ctx, res.ID)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	res.State = st
	return st != ledger.Applying, nil
}

// abortForRollback aborts r for its rollback and releases its claims, as
// Abort does; it reports whether this call aborted it.
func (c *Engine) abortForRollback(ctx context.Context, r *ledger.Rollout, reason string) (bool, error) {
	ok, err := c.l.Abort(ctx, r.ID, reason)
	if err != nil {
		return false, err
	}
	// Released whether or not this call aborted it: an abort interrupted
	// before its release is finished here. The rollback claims them next.
	if err := c.l.UnclaimAll(ctx, r); err != nil {
		return ok, err
	}
	if ok {
		c.log.Warn("rollout aborted", "rollout", r.ID, "reason", reason)
		c.Notify(ctx, r.Spec, notify.RolloutAborted, r.Wave, reason)
		c.changed(r.ID, ledger.Aborted, reason)
	}
	return ok, nil
}

// PlanRollback reads rollout origID page by page and builds its rollback
// as it would be made now; it changes nothing. The plan's Err says why
// there is no rollback to make.
func (c *Engine) PlanRollback(ctx context.Context, origID string) (RollbackPlan, error) {
	r, err := c.l.Get(ctx, origID)
	if err != nil {
		return RollbackPlan{}, err
	}
	p := RollbackPlan{Original: r, Images: map[string]int{}, LeftOut: map[string]string{},
		InFlight: r.Total - r.Counters.Terminal}
	var reset []rollout.RolledInstance
	// Pages keep each read O(page) whatever the fleet's size (ledger.Page).
	for q := (ledger.Query{Limit: ledger.PageLimitMax, CountBudget: -1}); ; q.Offset += ledger.PageLimitMax {
		page, err := c.l.Page(ctx, r, q)
		if err != nil {
			return p, err
		}
		for _, in := range page.Instances {
			ri := rollout.RolledInstance{ID: in.ID, Group: in.Group, Wave: in.Wave, Zone: in.Zone,
				OldImage: in.OldImage, RequestID: in.RequestID, Ambiguous: in.State == ledger.Ambiguous}
			switch why := ri.LeftOut(r.Spec); {
			case why == "":
				reset = append(reset, ri)
				p.Images[ri.OldImage]++
			case !rollout.NotReset(why):
				p.LeftOut[in.ID] = why
			}
		}
		if !page.More {
			break
		}
	}
	p.Spec, p.Targets, p.Err = rollout.RollbackSpec(r.Spec, reset)
	return p, nil
}

// rollbackOnBreach is breach for OnBreach "rollback": abort, then roll
// back once nothing of the rollout is in flight. A rollout that is over
// for another reason (completed, aborted by a person) is left alone.
func (c *Engine) rollbackOnBreach(ctx context.Context, spec rollout.Spec, wave int, why string) error {
	r, err := c.l.Get(ctx, spec.ID)
	if err != nil {
		return err
	}
	if !r.State.Terminal() {
		aborted, err := c.abortForRollback(ctx, r, rolledBack+": "+why)
		if err != nil {
			return err
		}
		if aborted {
			c.log.Error("failure budget breached: rolling back", "rollout", spec.ID, "wave", wave+1, "reason", why)
		}
	} else if !rollingBack(r) {
		return nil
	}
	return c.settleRollback(ctx, spec.ID)
}

// rollbackSettled creates the rollback of a rollout aborted for one once
// its last outcome is in (overall.Terminal == total): AfterFinish calls it
// for every outcome of a rollout whose OnBreach is "rollback".
func (c *Engine) rollbackSettled(ctx context.Context, spec rollout.Spec, res ledger.FinishResult) error {
	if res.Overall.Terminal < res.Total {
		return nil
	}
	r, err := c.l.Get(ctx, spec.ID)
	if err != nil || !rollingBack(r) {
		return err
	}
	return c.settleRollback(ctx, spec.ID)
}

// rollingBack reports whether r was aborted for its rollback.
func rollingBack(r *ledger.Rollout) bool {
	return r.State == ledger.Aborted && strings.HasPrefix(r.Reason, rolledBack)
}

// settleRollback creates the rollback of an aborted rollout when nothing of
// it is in flight any more; while something is, the handler that records
// the last outcome does it (rollbackSettled).
func (c *Engine) settleRollback(ctx context.Context, id string) error {
	res, err := c.rollback(ctx, id, rolledBack, nil)
	switch {
	case errors.Is(err, ErrInFlight):
		c.log.Info("rollback waits for resets in flight", "rollout", id, "in_flight", res.InFlight)
		return nil
	case errors.Is(err, rollout.ErrNothingToRollBack):
		c.log.Warn("nothing to roll back", "rollout", id, "left_out", len(res.LeftOut))
		return nil
	case errors.Is(err, ErrRefused):
		// Another active rollout holds an instance: retrying the handler
		// would not change that. A person runs `fleetreset rollback` then.
		c.log.Error("rollback refused; run `fleetreset rollback` once the conflict is resolved", "rollout", id, "err", err)
		return nil
	}
	return err
}
