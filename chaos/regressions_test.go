// Regression tests of core bugs the chaos and benchmark runs found
// (issue 7), each fixed since: verification polls that were not batched, a
// burst of reset calls after a Redis stall, replayed ledger scripts, and a
// reset task archived on a transient Redis error. (A plan rate above the
// limiter's ceiling is now refused by the planner: see its bad-plan corpus.)
package chaos

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/fleetreset/fleetreset/worker"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TestRegressionVerifyPollsNotBatched: verification polls are meant to be
// aggregated per rollout into one DescribeInstances call per 100
// instances (issue 4), but every poll is enqueued with ProcessIn(interval)
// (tasks.NewVerify, engine.EnqueueVerify from worker.accepted and
// worker.verify). asynq v0.26.0 aggregates only tasks enqueued into a
// group directly: a scheduled task's hash has no "group" field, so the
// forwarder (internal/rdb forwardCmd) moves it to pending, and
// handleVerifyOne polls one instance per DescribeInstances call.
func TestRegressionVerifyPollsNotBatched(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	const n = 300
	f := writePlan(t, planOpts{name: "bug-verify-batch", n: n, seed: 71, waves: "[100%]", reset: 40})
	sim := newSim(cvmsim.Config{ResetDuration: 2 * time.Second, Faults: cvmsim.Faults{ResetRateLimit: 40}}, f.ids)
	tp := newTap(sim, 0, 0, false)
	url := tp.serve(t)
	apply(t, "redis://"+r.Addr, ns, url, f.path)
	ws := startWorkers(t, 2, "redis://"+r.Addr, ns, url)
	l, _ := newLedger(t, r.Addr, ns)
	res := awaitRollout(t, l, f.plan.Spec.ID, 3*time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted)
	ws.stop()
	checkSucceeded(t, res)
	describes := 0
	var first, last time.Time
	for _, c := range tp.snapshot() {
		if first.IsZero() || c.start.Before(first) {
			first = c.start
		}
		if c.start.After(last) {
			last = c.start
		}
		if c.action == "DescribeInstances" {
			describes++
		}
	}
	// Pre-flight takes n/100 calls; each verification round of n instances
	// should take about n/100 more, and a 2 s reinstall polled every 1 s
	// needs a few rounds. The describe right before each reset call is
	// batched too: at most one request per worker and rollout every
	// 250 ms at this reset rate (20 handlers / (2 × 40/s)).
	const workers = 2
	precall := workers * (4*int(last.Sub(first).Seconds()) + 2)
	if limit := n/10 + precall; describes > limit {
		t.Errorf("%d DescribeInstances calls to verify %d instances in %s; want at most %d (batches of up to 100, and %d before calls)",
			describes, n, last.Sub(first).Round(time.Millisecond), limit, precall)
	}
	t.Logf("%d DescribeInstances calls for %d instances in %s", describes, n, last.Sub(first).Round(time.Millisecond))
}

// TestRegressionResetBurstAfterRedisStall: worker.handleReset takes its
// rate-limit slot and only then records the intent in Redis (Begin) and
// calls the API. When Redis stalls, every handler whose slot passes during
// the stall blocks in Begin and calls the API the moment Redis answers:
// dozens of calls in one second against a 10/s budget, which the API
// answers with RequestLimitExceeded. Issue 4: "never let more calls
// through in any one-second window than configured".
func TestRegressionResetBurstAfterRedisStall(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	f := writePlan(t, planOpts{name: "bug-burst", n: 200, seed: 79, waves: "[100%]"})
	sim := newSim(cvmsim.Config{ResetDuration: 300 * time.Millisecond}, f.ids)
	tp := newTap(sim, 0, 0, false)
	url := tp.serve(t)
	apply(t, rs.url(), "bug", url, f.path)
	ws := startWorkers(t, 3, rs.url(), "bug", url)
	l, _ := newLedger(t, rs.addr(), "bug")
	awaitAccepted(t, sim, 40, 2*time.Minute)
	rs.p.signal(t, syscall.SIGSTOP)
	time.Sleep(5 * time.Second) // the stall itself
	rs.p.signal(t, syscall.SIGCONT)
	awaitRollout(t, l, f.plan.Spec.ID, 5*time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted)
	ws.stop()
	st := sim.Stats()
	if w, rl := st.MaxCallsPerSecond["ResetInstance"], st.RateLimited["ResetInstance"]; w > 10 || rl > 0 {
		t.Errorf("after a 5 s Redis stall: %d reset calls in one second and %d rate-limited; want at most 10 and 0", w, rl)
	}
}

// TestRegressionLedgerScriptReplay: go-redis retries a command whose reply timed
// out (MaxRetries 3 by default; read timeouts are retried when the command
// has no timeout of its own), so a ledger script that ran but whose reply
// was late runs a second time. The fenced scripts are not idempotent:
//
//   - Called's replay finds the instance already "resetting" and returns
//     0, so Ledger.Called reports ErrFenced for a call that it did record;
//     worker.accepted then logs "another worker took the instance over"
//     and returns without enqueueing verification: the instance stays
//     "resetting" and its wave never completes.
//   - Retake's replay finds the new token and returns 0 (ErrFenced);
//     worker.reconcileCall then returns nil without calling: the instance
//     stays "calling" under a token nobody holds, never reset.
//
// The test puts a proxy between the ledger and Redis that holds the first
// script reply of a connection longer than the client's read timeout.
func TestRegressionLedgerScriptReplay(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	f := writePlan(t, planOpts{name: "bug-replay", n: 2, seed: 83, waves: "[100%]"})
	direct := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	ctx := context.Background()
	now := time.Now()
	a, b := f.ids[0], f.ids[1]
	_, err := direct.Create(ctx, f.plan.Spec, f.plan.Targets, ledger.CreateOptions{Seeds: map[string]ledger.Seed{
		a: {State: ledger.Calling, Token: 7, IntentAt: now},
		b: {State: ledger.Calling, Token: 9, IntentAt: now},
	}})
	must(t, err)
	must(t, direct.Activate(ctx, f.plan.Spec)) // Retake issues tokens only while it runs
	// Load both scripts into Redis, so the proxied calls run EVALSHA once.
	direct.Called(ctx, f.plan.Spec.ID, "ins-none0000", 1, "x")
	direct.Retake(ctx, f.plan.Spec.ID, "ins-none0000", 1)

	slow := func() *ledger.Ledger {
		addr := holdProxy(t, r.Addr, time.Second)
		c := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: 200 * time.Millisecond, PoolSize: 1})
		t.Cleanup(func() { c.Close() })
		return ledger.New(c, ledger.Config{Prefix: r.Prefix})
	}
	if err := slow().Called(ctx, f.plan.Spec.ID, a, 7, "req-a"); err != nil {
		in, _ := direct.Instance(ctx, f.plan.Spec.ID, a)
		t.Errorf("Called with a late reply = %v; want nil (the instance is now %s with request %q: the call was recorded)", err, in.State, in.RequestID)
	}
	if tok, err := slow().Retake(ctx, f.plan.Spec.ID, b, 9); err != nil || tok == 0 {
		in, _ := direct.Instance(ctx, f.plan.Spec.ID, b)
		t.Errorf("Retake with a late reply = %d, %v; want a new token (the instance holds token %d, which nobody was given)", tok, err, in.Token)
	}
}

// TestRegressionResetTaskArchivedOnLedgerError: worker.handleReset wraps every
// error of its first ledger read (l.Instance) in asynq.SkipRetry, meant for
// an instance that does not exist. A transient Redis error there (a
// timeout after go-redis's own retries, LOADING after a restart, READONLY
// after a failover) archives the instance's only reset task: the instance
// stays pending with no task, its wave never completes and the rollout
// hangs in "running" until someone resumes it.
//
// The test injects one error into the worker's first instance read (a
// go-redis hook on its ledger client; asynq has its own connection) and
// expects the one-instance rollout to complete anyway.
func TestRegressionResetTaskArchivedOnLedgerError(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	f := writePlan(t, planOpts{name: "bug-skipretry", n: 1, seed: 89, waves: "[100%]"})
	sim := newSim(cvmsim.Config{ResetDuration: 100 * time.Millisecond}, f.ids)
	url := newTap(sim, 0, 0, false).serve(t)
	apply(t, "redis://"+r.Addr, ns, url, f.path)

	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	rdb.AddHook(&failOnce{})
	opt := asynq.RedisClientOpt{Addr: r.Addr}
	client := asynq.NewClient(opt)
	defer client.Close()
	l := ledger.New(rdb, ledger.Config{Prefix: ns + ":"})
	creds := cvm.Credentials{SecretID: cvmsim.SecretIDDefault, SecretKey: cvm.Secret(cvmsim.SecretKeyDefault)}
	w, err := worker.New(worker.Config{Redis: opt, Engine: engine.New(engine.Config{Ledger: l, Client: client, Namespace: ns}),
		Limiter: ratelimit.NewRedis(rdb, ratelimit.Config{Prefix: ns + ":"}), Endpoint: url, Credentials: &creds, ReconcileGrace: 3 * time.Second, ReplayWindow: chaosReplay})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	lr, _ := newLedger(t, r.Addr, ns)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := lr.Get(ctx, f.plan.Spec.ID); err == nil && res.State == ledger.Completed {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	archived, _ := insp.ListArchivedTasks(ns)
	in, _ := lr.Instance(ctx, f.plan.Spec.ID, f.ids[0])
	t.Errorf("rollout not completed 30 s after one transient ledger error: instance %s is %s, %d reset task(s) archived", f.ids[0], in.State, len(archived))
}

// failOnce fails the first pipeline a reset task's handler sends (the
// handler's context names its task).
type failOnce struct {
	done atomic.Bool
}

func (h *failOnce) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *failOnce) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *failOnce) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if id, ok := asynq.GetTaskID(ctx); ok && strings.HasPrefix(id, "reset:") && h.done.CompareAndSwap(false, true) {
			err := errors.New("LOADING Redis is loading the dataset in memory (injected)")
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		return next(ctx, cmds)
	}
}

// holdProxy forwards TCP to target; on the first connection that sends a
// script (EVALSHA/EVAL), it holds the replies for hold.
func holdProxy(t *testing.T, target string, hold time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	var used atomic.Bool
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			var until atomic.Int64
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if bytes.Contains(bytes.ToLower(buf[:n]), []byte("eval")) && used.CompareAndSwap(false, true) {
							until.Store(time.Now().Add(hold).UnixNano())
						}
						s.Write(buf[:n])
					}
					if err != nil {
						s.Close()
						return
					}
				}
			}()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 {
						if u := until.Load(); u != 0 {
							time.Sleep(time.Until(time.Unix(0, u)))
						}
						if _, werr := c.Write(buf[:n]); werr != nil && !errors.Is(werr, net.ErrClosed) {
							c.Close()
						}
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}
