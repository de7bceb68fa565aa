package worker

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

// This file keeps a rollout under its maxUnavailable (rollout.MaxUnavailable):
// before the worker takes an instance out of service (its drain, or the
// reset call when its group has no load balancer) the instance takes a
// place among the rollout's unavailable instances in the ledger, and
// gives it back when it ends (ledger/unavailable.go). A worker that finds
// no place free hands the task back for a short while; that is waiting,
// not failing, so it uses up no retry.

// placeWaitMax bounds how long a task waits for a place before asking again.
const placeWaitMax = 5 * time.Second

// takePlace gives instance in a place among the unavailable instances of
// its zone (as the cloud reports it, else as the plan says). It returns
// nil when the instance may be taken down, or the error that brings the
// task back. force counts an instance the cloud already shows down
// (adopted) even over the caps. A rollout without maxUnavailable needs no
// place.
func (w *Worker) takePlace(ctx context.Context, spec rollout.Spec, in *ledger.Instance, obs *cvm.Instance, force bool) error {
	m := spec.MaxUnavailable
	if !m.Capped() {
		return nil
	}
	zone := in.Zone
	if obs != nil {
		zone = cmp.Or(obs.Zone, zone)
	}
	total, perZone := m.Limits(zone)
	res, err := w.l.Take(ctx, spec.ID, in.ID, in.Gen, ledger.Place{Zone: zone, Total: total, PerZone: perZone, Force: force})
	if err != nil {
		return err
	}
	switch res.Verdict {
	case ledger.TakeTaken:
		w.log.Debug("took a place among the unavailable", "rollout", spec.ID, "instance_id", in.ID, "zone", zone,
			"unavailable", res.Unavailable, "in_zone", res.InZone)
		return nil
	case ledger.TakeHolding:
		return nil
	case ledger.TakeTotal:
		return &retryLater{In: w.placeWait(spec), Cause: fmt.Sprintf("maxUnavailable: %d of %d instances unavailable", res.Unavailable, total)}
	case ledger.TakeZone:
		return &retryLater{In: w.placeWait(spec), Cause: fmt.Sprintf("maxUnavailable: %d of %d instances unavailable in zone %s", res.InZone, perZone, zone)}
	}
	// Stopped or gone: the next delivery judges the instance again (and
	// parks, cancels or drops it).
	return &retryLater{In: time.Second, Cause: fmt.Sprintf("no place among the unavailable: %s", res.Verdict)}
}

// placeWait is how long a task without a place waits before asking again.
// Places free up as instances are verified, polled every VerifyInterval:
// asking much more often finds nothing new. Jitter spreads the tasks of a
// wave so that they do not ask all at once.
func (w *Worker) placeWait(spec rollout.Spec) time.Duration {
	d := min(max(spec.VerifyInterval, time.Second), placeWaitMax)
	return d + rand.N(d/2+1)
}
