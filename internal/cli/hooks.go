package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

// completeHookOpts are complete-hook's options.
type completeHookOpts struct {
	common
	result string
}

func (o *completeHookOpts) flags() []flagDef {
	return append(o.common.flags(), enumFlag(&o.result, "result", "", []string{rollout.HookContinue, rollout.HookAbandon},
		"how the hook step ends: `continue|abandon` (required)"))
}

// completeHookCmd completes a webhook hook step that answered 202, with
// the token the webhook was sent.
func completeHookCmd(ctx context.Context, env *Env, o *completeHookOpts) error {
	id, token := o.arg(0), o.arg(1)
	if o.result == "" {
		return &ExitError{Code: exitUsage, Err: errors.New("complete-hook: --result continue|abandon is required")}
	}
	cn, err := o.common.open(ctx)
	if err != nil {
		return err
	}
	defer cn.Close()
	if _, _, err := cn.ledger.State(ctx, id); err != nil {
		return err
	}
	// Never echo the token: it completes the step for whoever holds it.
	err = cn.ledger.CompleteHook(ctx, id, token, o.result)
	switch {
	case errors.Is(err, ledger.ErrHookNotFound):
		return &ExitError{Code: exitFailed, Err: fmt.Errorf("complete-hook: no hook step of rollout %s waits for that token", id)}
	case errors.Is(err, ledger.ErrHookCompleted):
		return &ExitError{Code: exitFailed, Err: fmt.Errorf("complete-hook: %w", err)}
	case err != nil:
		return err
	}
	fmt.Fprintf(env.Stdout, "Hook step of rollout %s completed: %s.\n", id, o.result)
	return nil
}
