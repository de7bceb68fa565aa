package cli

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
)

type waitOpts struct {
	common
	timeout time.Duration
}

func (o *waitOpts) flags() []flagDef {
	return append(o.common.flags(),
		durationFlag(&o.timeout, "timeout", 0, "give up after this long, exit 3 (0: wait as long as it takes)"))
}

// waitCmd blocks until a rollout ends or stops where a person must act,
// for CI pipelines and scripts: the exit status is run's.
func waitCmd(ctx context.Context, env *Env, o *waitOpts) error {
	cn, err := o.common.openReadOnly(ctx)
	if err != nil {
		return err
	}
	defer cn.Close()
	return waitFor(ctx, env, cn.controller(o.common.namespace, o.common.logger(env, true)), o.arg(0), o.timeout)
}

// waitFor watches rollout id until it completes, is aborted, pauses or
// awaits approval (never answering it), or timeout passes (0: none), and
// returns run's exit status: nil when every instance succeeded or was
// skipped; exit 1 for failures or an abort; exit 3 for a pause, an
// approval, Ctrl-C, SIGTERM or the timeout.
func waitFor(ctx context.Context, env *Env, eng *engine.Engine, id string, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, fmt.Errorf("--timeout %s passed", timeout))
		defer cancel()
	}
	sctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	r, err := watch(sctx, env, eng, id, watchOpts{noPrompt: true})
	switch {
	case errors.Is(err, errInterrupted):
		cause := context.Cause(sctx)
		if ctx.Err() == nil {
			cause = errors.New("interrupted")
		}
		state := "unknown"
		if r != nil {
			state = string(r.State)
		}
		return &ExitError{Code: exitStopped, Err: fmt.Errorf("rollout %s is still %s (%v); it goes on without this command", id, state, cause)}
	case errors.Is(err, ledger.ErrNotFound):
		return &ExitError{Code: exitFailed, Err: fmt.Errorf("there is no rollout %q", id)}
	case err != nil:
		return err
	}
	c := r.Counters
	fmt.Fprintf(env.Stdout, "Rollout %s %s: %d succeeded, %d skipped, %d failed, %d cancelled of %d.\n",
		id, r.State, c.Succeeded, c.Skipped, c.Failures(), c.Cancelled, r.Total)
	switch {
	case r.State == ledger.Completed && c.Failures() == 0 && c.Cancelled == 0:
		return nil
	case r.State == ledger.Paused || r.State == ledger.AwaitingApproval:
		return &ExitError{Code: exitStopped, Err: fmt.Errorf("rollout %s is %s: %s", id, r.State, r.Reason)}
	}
	return &ExitError{Code: exitFailed, Err: fmt.Errorf("rollout %s ended %s with %d failed", id, r.State, c.Failures())}
}
