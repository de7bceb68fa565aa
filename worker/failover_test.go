package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/worker"
)

// forgetful is a CVM client whose first accepted reset is followed by what
// a Redis failover can do to the ledger (issue 13): the new primary never
// saw the intent, so the instance is pending again and the fencing counter
// is back where it was, while the worker that called goes on.
type forgetful struct {
	cvm.API
	forget func(ctx context.Context, id string)
	once   sync.Once
}

func (f *forgetful) ResetInstance(ctx context.Context, req cvm.ResetRequest) (string, error) {
	rid, err := f.API.ResetInstance(ctx, req)
	if err == nil {
		f.once.Do(func() { f.forget(ctx, req.InstanceID) })
	}
	return rid, err
}

// TestIntentLostAfterAcceptedCall: the intent of an accepted reset call is
// lost (a Sentinel failover promoted a replica that never had it), so the
// worker's record of the accepted call is fenced out. The instance must
// still be judged, from the cloud, and not left pending with no task:
// before the fix the handler completed its task on the fence and the
// rollout never finished (chaos TestSentinelFailover's long form met it).
func TestIntentLostAfterAcceptedCall(t *testing.T) {
	t.Parallel()
	b := setup(t, cvmsim.Config{ResetDuration: 300 * time.Millisecond,
		Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}},
		planOpts{n: 3, extra: fast})
	b.apply(t)
	rdb := b.r.Client
	base := b.ns + ":{" + b.plan.Spec.ID + "}:"
	var forgotten string
	forget := func(ctx context.Context, id string) {
		ctx = context.WithoutCancel(ctx)
		ik := base + "i:" + id
		if err := rdb.HSet(ctx, ik, "st", string(ledger.Pending)).Err(); err != nil {
			t.Error(err)
		}
		rdb.HDel(ctx, ik, "tok", "intent", "first")
		rdb.HIncrBy(ctx, ik, "tries", -1)
		rdb.Decr(ctx, base+"fence")
		forgotten = id
	}
	b.startWorkers(t, 1, func(c *worker.Config) {
		c.APIFunc = func(spec rollout.Spec) (cvm.API, error) {
			api, err := cvm.New(cvm.Config{Generation: cvm.V3, Endpoint: b.url, Region: spec.Region, Credentials: b.creds})
			if err != nil {
				return nil, err
			}
			return &forgetful{API: api, forget: forget}, nil
		}
	})
	r := b.await(t, 30*time.Second, ledger.Completed, ledger.Paused, ledger.Aborted)
	if r.State != ledger.Completed || r.Counters.Succeeded != 3 {
		t.Fatalf("rollout %s (%s) with %+v; want all 3 succeeded", r.State, r.Reason, r.Counters)
	}
	b.exactlyOnce(t, nil)
	in, err := b.l.Instance(t.Context(), b.plan.Spec.ID, forgotten)
	if err != nil {
		t.Fatal(err)
	}
	if in.Adopted == "" {
		t.Errorf("%s: adopted %q; want the reinstall of the forgotten call adopted", forgotten, in.Adopted)
	}
}
