package worker

import (
	"context"
	"fmt"
	"sync"

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

// describeOne describes one instance right before its reset call. Calls
// of concurrent handlers of one rollout share DescribeInstances requests:
// a handler joins the rollout's open batch, and the batch's first member
// waits for the rollout's request in flight (if any) to end, closes the
// batch and describes all of it at once. A lone handler waits for nothing;
// under load one request serves up to 100 resets.
func (w *Worker) describeOne(ctx context.Context, spec rollout.Spec, api cvm.API, id string) (*cvm.Instance, error) {
	b, lead := w.batches.join(spec.ID, id)
	if lead {
		w.batches.run(ctx, spec.ID, b, func(ids []string) (map[string]*cvm.Instance, error) {
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
}

// lane is one rollout's: the batch taking IDs, and a one-slot semaphore
// held while a request is in flight. refs counts the batches that still
// use the lane, so that it can be dropped when idle.
type lane struct {
	open *batch
	sem  chan struct{}
	refs int
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
		l = &lane{sem: make(chan struct{}, 1)}
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
func (bs *batches) run(ctx context.Context, rollout string, b *batch, describe func([]string) (map[string]*cvm.Instance, error)) {
	bs.mu.Lock()
	l := bs.lanes[rollout]
	bs.mu.Unlock()
	select {
	case l.sem <- struct{}{}:
		bs.seal(l, b)
		b.found, b.err = describe(b.ids)
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
	}
}

func (bs *batches) seal(l *lane, b *batch) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if l.open == b {
		l.open = nil
	}
}
