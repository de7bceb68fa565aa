package worker

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/fleetreset/fleetreset/alarm"
	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/hook"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

// ServingRateDefault is the documented per-second limit of the CLB, TAT
// and Cloud Monitor actions fleetreset calls.
const ServingRateDefault = 20

// weightTaskWait bounds the wait for the CLB to apply a weight change
// (an asynchronous task); weightTaskPoll spaces its status reads.
const (
	weightTaskWait = 30 * time.Second
	weightTaskPoll = 200 * time.Millisecond
)

// cloud adapts cvm.Serving to the steps around a reset (servingCloud),
// the health prober and the hook runner, taking a slot of the fleet-wide
// limiter before every call: each action has its own budget per account
// and region, as the CVM actions do.
type cloud struct {
	w    *Worker
	spec rollout.Spec
	api  *cvm.Serving
}

// cloud returns the (cached) serving client of a rollout's location
// (spec.At).
func (w *Worker) cloud(spec rollout.Spec) (*cloud, error) {
	k := clientKey(spec)
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.clouds[k]; ok {
		return c, nil
	}
	f := w.cfg.ServingFunc
	if f == nil {
		f = w.defaultServing
	}
	api, err := f(spec)
	if err != nil {
		return nil, fmt.Errorf("worker: CLB/TAT client for %s: %w", spec.ID, err)
	}
	c := &cloud{w: w, spec: spec, api: api}
	w.clouds[k] = c
	return c, nil
}

func (w *Worker) defaultServing(spec rollout.Spec) (*cvm.Serving, error) {
	creds, err := w.provider(context.Background(), spec)
	if err != nil {
		return nil, err
	}
	return cvm.NewServing(cvm.Config{
		Generation: cvm.V3,
		Endpoint:   spec.Endpoint,
		Region:     spec.Region,
		Provider:   creds,
		Timeout:    w.cfg.CallTimeout,
	})
}

func (w *Worker) hookRunner(c hook.Automation) *hook.Runner {
	return &hook.Runner{Automation: c, Completions: w.l, HTTP: w.cfg.HTTP, Clock: w.clock, Log: w.log}
}

// alarms returns the alarm checker of a rollout. Cloud Monitor policies
// need the serving client; a rollout without them does not build it.
func (w *Worker) alarms(spec rollout.Spec) *alarm.Checker {
	ch := &alarm.Checker{HTTP: w.cfg.HTTP, Clock: w.clock}
	if spec.StopWhen != nil && len(spec.StopWhen.MonitorPolicies) > 0 {
		if c, err := w.cloud(spec); err == nil {
			ch.Monitor = c
		} else {
			ch.Monitor = failingMonitor{err}
		}
	}
	return ch
}

// failingMonitor reports why the Cloud Monitor client could not be built,
// as an alarm that cannot be read.
type failingMonitor struct{ err error }

func (f failingMonitor) AlarmingPolicies(context.Context, []string, time.Time, time.Time) ([]string, error) {
	return nil, f.err
}

// wait takes a slot of action's budget.
func (c *cloud) wait(ctx context.Context, action string) error {
	rate := cmp.Or(c.w.cfg.ServingRate, ServingRateDefault)
	waited, err := c.w.cfg.Limiter.Wait(ctx, c.w.limiterKey(c.spec, action), rate)
	if o := c.w.cfg.Observer; o != nil {
		o.RateWait(action, waited)
	}
	return err
}

// call runs one limited, observed API call.
func (c *cloud) call(ctx context.Context, action string, f func() error) error {
	if err := c.wait(ctx, action); err != nil {
		return err
	}
	start := c.w.clock.Now()
	err := f()
	c.w.observeCall(action, err, start)
	return err
}

// Weights reads an instance's weights on ls, one DescribeTargets per load
// balancer.
func (c *cloud) Weights(ctx context.Context, ls []rollout.Listener, id string) ([]ledger.Weight, error) {
	var out []ledger.Weight
	for lb, lids := range byLoadBalancer(ls) {
		var ts []cvm.Target
		err := c.call(ctx, "DescribeTargets", func() (err error) {
			ts, err = c.api.Targets(ctx, lb, lids)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, l := range ls {
			if l.LoadBalancerID != lb {
				continue
			}
			for _, t := range ts {
				if t.InstanceID == id && t.ListenerID == l.ListenerID && t.LocationID == l.LocationID && (l.Port == 0 || t.Port == l.Port) {
					out = append(out, ledger.Weight{LoadBalancerID: lb, ListenerID: t.ListenerID, LocationID: t.LocationID, Port: t.Port, Weight: t.Weight})
				}
			}
		}
	}
	return out, nil
}

func byLoadBalancer(ls []rollout.Listener) map[string][]string {
	m := map[string][]string{}
	for _, l := range ls {
		m[l.LoadBalancerID] = append(m[l.LoadBalancerID], l.ListenerID)
	}
	return m
}

// SetWeights sets an instance's weights, one BatchModifyTargetWeight per
// load balancer, and waits until the CLB applied each.
func (c *cloud) SetWeights(ctx context.Context, id string, ws []ledger.Weight) error {
	by := map[string][]cvm.TargetWeight{}
	for _, w := range ws {
		by[w.LoadBalancerID] = append(by[w.LoadBalancerID], cvm.TargetWeight{ListenerID: w.ListenerID, LocationID: w.LocationID,
			InstanceID: id, Port: w.Port, Weight: w.Weight})
	}
	for lb, tws := range by {
		var tasks []string
		err := c.call(ctx, "BatchModifyTargetWeight", func() (err error) {
			tasks, err = c.api.SetWeights(ctx, lb, tws)
			return err
		})
		if err != nil {
			return err
		}
		for _, task := range tasks {
			if err := c.awaitTask(ctx, task); err != nil {
				return fmt.Errorf("weights of %s on %s: %w", id, lb, err)
			}
		}
	}
	return nil
}

// awaitTask polls DescribeTaskStatus until the CLB's task ends.
func (c *cloud) awaitTask(ctx context.Context, task string) error {
	if task == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, weightTaskWait)
	defer cancel()
	t := time.NewTicker(weightTaskPoll)
	defer t.Stop()
	for {
		var st cvm.TaskState
		err := c.call(ctx, "DescribeTaskStatus", func() (err error) {
			st, err = c.api.TaskStatus(ctx, task)
			return err
		})
		if err != nil {
			return err
		}
		switch st {
		case cvm.TaskSucceeded:
			return nil
		case cvm.TaskFailed:
			return fmt.Errorf("CLB task %s failed", task)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CLB task %s still running: %w", task, ctx.Err())
		case <-t.C:
		}
	}
}

// TargetHealth reads the CLB's health of ids on listener l.
func (c *cloud) TargetHealth(ctx context.Context, l rollout.Listener, ids []string) (map[string]bool, error) {
	var ths []cvm.TargetHealth
	err := c.call(ctx, "DescribeTargetHealth", func() (err error) {
		ths, err = c.api.TargetHealth(ctx, []string{l.LoadBalancerID})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		th, ok := cvm.FindHealth(ths, l.LoadBalancerID, l.ListenerID, l.LocationID, id, l.Port)
		out[id] = ok && th.Healthy
	}
	return out, nil
}

// AgentOnline reads the TAT agent status of ids, 100 per call.
func (c *cloud) AgentOnline(ctx context.Context, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	for start := 0; start < len(ids); start += cvm.MaxDescribeIDs {
		var st map[string]string
		err := c.call(ctx, "DescribeAutomationAgentStatus", func() (err error) {
			st, err = c.api.AgentStatus(ctx, ids[start:min(start+cvm.MaxDescribeIDs, len(ids))])
			return err
		})
		if err != nil {
			return nil, err
		}
		for id, s := range st {
			out[id] = s == "Online"
		}
	}
	return out, nil
}

// RunCommand runs a hook's command on one instance through TAT.
func (c *cloud) RunCommand(ctx context.Context, instanceID string, h rollout.CommandHook, timeout time.Duration) (string, error) {
	var id string
	err := c.call(ctx, "RunCommand", func() (err error) {
		id, err = c.api.RunCommand(ctx, cvm.CommandRequest{InstanceIDs: []string{instanceID}, Content: h.Content,
			Type: h.Type, WorkingDirectory: h.WorkingDirectory, Username: h.Username, Timeout: timeout})
		return err
	})
	if err != nil && cvm.Classify(err) == cvm.Permanent {
		// No retry runs it (a bad parameter, no agent installed): the
		// hook fails now instead of at its timeout.
		return "", fmt.Errorf("%w: %w", hook.ErrRejected, err)
	}
	return id, err
}

// Invocation reads the state of one instance's task of an invocation.
func (c *cloud) Invocation(ctx context.Context, invocationID, instanceID string) (string, int, string, error) {
	var ts []cvm.InvocationTask
	err := c.call(ctx, "DescribeInvocationTasks", func() (err error) {
		ts, err = c.api.InvocationTasks(ctx, invocationID)
		return err
	})
	if err != nil {
		return "", 0, "", err
	}
	for _, t := range ts {
		if t.InstanceID == instanceID {
			return t.Status, t.ExitCode, t.Output, nil
		}
	}
	// Not listed yet: TAT creates the task shortly after RunCommand.
	return "PENDING", 0, "", nil
}

// AlarmingPolicies reads which Cloud Monitor policies are in alarm.
func (c *cloud) AlarmingPolicies(ctx context.Context, ids []string, since, until time.Time) ([]string, error) {
	var out []string
	err := c.call(ctx, "DescribeAlarmHistories", func() (err error) {
		out, err = c.api.AlarmingPolicies(ctx, ids, since, until)
		return err
	})
	return out, err
}
