package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/rollout"
)

// describe calls DescribeInstances for up to 100 IDs under the describe budget.
func (w *Worker) describe(ctx context.Context, spec rollout.Spec, api cvm.API, ids []string) (map[string]*cvm.Instance, error) {
	waited, err := w.cfg.Limiter.Wait(ctx, w.limiterKey(spec, "DescribeInstances"), spec.DescribeRate)
	if o := w.cfg.Observer; o != nil {
		o.RateWait("DescribeInstances", waited)
	}
	if err != nil {
		return nil, err
	}
	start := w.clock.Now()
	list, err := api.DescribeInstances(ctx, ids)
	w.observeCall("DescribeInstances", err, start)
	if err != nil {
		if cvm.IsThrottled(err) {
			_ = w.cfg.Limiter.Throttled(ctx, w.limiterKey(spec, "DescribeInstances"))
		}
		return nil, fmt.Errorf("worker: describe %d instances: %w", len(ids), err)
	}
	out := make(map[string]*cvm.Instance, len(list))
	for i := range list {
		out[list[i].InstanceID] = &list[i]
	}
	return out, nil
}

// precallSpacingMax is the most time between two describe-before-call
// requests of one rollout in one worker; see precallSpacing.
const precallSpacingMax = 500 * time.Millisecond

// precallSpacing is the least time between two describe-before-call
// requests of one rollout in one worker. Handlers arriving in between join
// the next request, so these describes cost at most 1/spacing requests per
// second per worker and rollout, and the rest of the describe budget stays
// for pre-flight and verification. The spacing is 500 ms, shorter only
// when the reset rate asks for more: each handler waits about one spacing
// per reset, so a worker's Concurrency handlers must reach twice the
// rollout's reset rate on their own (20 handlers at the API's 10/s: 500 ms;
// at 1,000/s: 10 ms). A handler arriving after a quiet spell waits for
// nothing.
func (w *Worker) precallSpacing(resetRate float64) time.Duration {
	if resetRate <= 0 {
		return precallSpacingMax
	}
	return min(precallSpacingMax, time.Duration(float64(w.cfg.Concurrency)/(2*resetRate)*float64(time.Second)))
}

// describeOne describes one instance right before its reset call. Calls
// of concurrent handlers of one rollout share DescribeInstances requests:
// a handler joins the rollout's open batch, and the batch's first member
// waits for the rollout's request in flight (if any) to end and for the
// spacing after the last one to pass, closes the batch and
// describes all of it at once (up to 100 instances).
func (w *Worker) describeOne(ctx context.Context, spec rollout.Spec, api cvm.API, id string) (*cvm.Instance, error) {
	// One lane per location: a request holds one region's and one
	// account's instances.
	b, lead := w.batches.join(clientKey(spec), id)
	if lead {
		w.batches.run(ctx, clientKey(spec), b, w.precallSpacing(spec.ResetRate), func(ids []string) (map[string]*cvm.Instance, error) {
			return w.describe(ctx, spec, api, ids)
		})
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if b.err != nil {
		return nil, b.err
	}
	return b.found[id], nil
}

// batches groups describe-before-call lookups per rollout.
type batches struct {
	mu    sync.Mutex
	lanes map[string]*lane
	// last keeps the start of the latest request of rollouts whose lane
	// was dropped, while it still matters for the spacing.
	last map[string]time.Time
}

// lane is one rollout's: the batch taking IDs, and a one-slot semaphore
// held while a request is in flight. refs counts the batches that still
// use the lane, so that it can be dropped when idle.
type lane struct {
	open *batch
	sem  chan struct{}
	refs int
	// last is when the lane's latest request started (guarded by sem).
	last time.Time
}

type batch struct {
	ids   []string
	done  chan struct{}
	found map[string]*cvm.Instance
	err   error
}

// join adds id to the rollout's open batch; lead is true for the member
// that must run it.
func (bs *batches) join(rollout, id string) (b *batch, lead bool) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.lanes == nil {
		bs.lanes = map[string]*lane{}
	}
	l := bs.lanes[rollout]
	if l == nil {
		l = &lane{sem: make(chan struct{}, 1), last: bs.last[rollout]}
		bs.lanes[rollout] = l
	}
	if l.open == nil || len(l.open.ids) >= cvm.MaxDescribeIDs {
		l.open = &batch{done: make(chan struct{})}
		l.refs++
		lead = true
	}
	l.open.ids = append(l.open.ids, id)
	return l.open, lead
}

// run waits for the lane, closes b to newcomers, describes it and wakes
// its members.
func (bs *batches) run(ctx context.Context, rollout string, b *batch, spacing time.Duration, describe func([]string) (map[string]*cvm.Instance, error)) {
	bs.mu.Lock()
	l := bs.lanes[rollout]
	bs.mu.Unlock()
	select {
	case l.sem <- struct{}{}:
		if err := sleep(ctx, time.Until(l.last.Add(spacing))); err != nil {
			bs.seal(l, b)
			b.err = err
		} else {
			bs.seal(l, b)
			l.last = time.Now()
			b.found, b.err = describe(b.ids)
		}
		<-l.sem
	case <-ctx.Done():
		bs.seal(l, b)
		b.err = ctx.Err()
	}
	close(b.done)
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if l.refs--; l.refs == 0 {
		delete(bs.lanes, rollout)
		if bs.last == nil {
			bs.last = map[string]time.Time{}
		}
		bs.last[rollout] = l.last
		for id, t := range bs.last {
			if time.Since(t) > precallSpacingMax {
				delete(bs.last, id)
			}
		}
	}
}

func (bs *batches) seal(l *lane, b *batch) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if l.open == b {
		l.open = nil
	}
}

// sleep waits d (nothing when d <= 0), or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
