package hook

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/fleetreset/fleetreset/internal/textcut"
	"log/slog"

	"github.com/fleetreset/fleetreset/rollout"
)

// TAT invocation task statuses that end a task. Any other status
// (PENDING, DELIVERING, DELIVER_DELAYED, RUNNING, CANCELLING, or one TAT
// adds later) is pending.
var finalStatuses = map[string]bool{
	"SUCCESS":        true,
	"FAILED":         true,
	"TIMEOUT":        true,
	"TASK_TIMEOUT":   true,
	"DELIVER_FAILED": true,
	"START_FAILED":   true,
	"CANCELLED":      true,
	"TERMINATED":     true,
}

// maxOutputLine caps the line of output a failed command's detail quotes.
const maxOutputLine = 200

func (r *Runner) startCommand(ctx context.Context, log *slog.Logger, h rollout.Hook, f Facts, hd Handle) (Handle, error) {
	if n := base64.StdEncoding.EncodedLen(len(h.Command.Content)); n > MaxContent {
		hd.Verdict = &Status{Done: true, Detail: fmt.Sprintf("command content is %d bytes base64-encoded; TAT takes at most %d", n, MaxContent)}
		return hd, nil
	}
	if r.Automation == nil {
		return Handle{}, errors.New("hook: a command step needs Runner.Automation")
	}
	inv, err := r.Automation.RunCommand(ctx, f.InstanceID, *h.Command, cmp.Or(h.Timeout, TimeoutDefault))
	if errors.Is(err, ErrRejected) {
		hd.Verdict = &Status{Done: true, Detail: "command refused: " + err.Error()}
		log.Info("hook: command refused", "err", err)
		return hd, nil
	}
	if err != nil {
		return Handle{}, fmt.Errorf("hook: run command %s on %s: %w", h.Name, f.InstanceID, err)
	}
	hd.InvocationID = inv
	log.Info("hook: command started", "invocation_id", inv)
	return hd, nil
}

func (r *Runner) pollCommand(ctx context.Context, hd Handle) (Status, error) {
	if r.Automation == nil {
		return Status{}, errors.New("hook: a command step needs Runner.Automation")
	}
	status, code, output, err := r.Automation.Invocation(ctx, hd.InvocationID, hd.InstanceID)
	if err != nil {
		return Status{}, fmt.Errorf("hook: read invocation %s on %s: %w", hd.InvocationID, hd.InstanceID, err)
	}
	switch {
	case status == "SUCCESS":
		return Status{Done: true, OK: true, Detail: "command succeeded"}, nil
	case finalStatuses[status]:
		detail := fmt.Sprintf("command %s with exit code %d", status, code)
		if line := textcut.FirstLine(output, maxOutputLine); line != "" {
			detail += ": " + line
		}
		return Status{Done: true, Detail: detail}, nil
	}
	return Status{Detail: "command " + status}, nil
}
