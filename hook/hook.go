// Package hook runs the steps around each reset (rollout.Hook): a TAT
// command on the instance, or a webhook that an external system completes.
//
// A step is resumable. Start begins it and returns a small Handle, which
// the caller persists; Poll reads where the step is from the Handle alone,
// so a worker that crashed polls the same step again instead of starting a
// second one, and no goroutine waits out a hook's whole timeout.
//
// Errors from Start and Poll are transient (API throttled, Redis down): the
// caller retries the call. A Status with Done && !OK is the hook's verdict,
// which the hook's OnFailure policy judges.
package hook

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/fleetreset/fleetreset/internal/clock"
	"github.com/fleetreset/fleetreset/rollout"
)

// Kinds of Handle.
const (
	KindCommand = "command"
	KindWebhook = "webhook"
)

// Phases of a step around the reset.
const (
	PhaseBefore = "before"
	PhaseAfter  = "after"
)

// Results an external system completes a webhook step with.
const (
	ResultContinue = rollout.HookContinue
	ResultAbandon  = rollout.HookAbandon
)

const (
	// TimeoutDefault bounds a step whose Hook.Timeout is zero.
	TimeoutDefault = 10 * time.Minute
	// WebhookTimeout bounds the webhook's POST.
	WebhookTimeout = 10 * time.Second
	// MaxContent is the most a command's base64-encoded content may be
	// (TAT RunCommand).
	MaxContent = 64 << 10
)

// ErrRejected marks an Automation error as permanent: the command can never
// run as given (invalid parameters, content too long). An Automation wraps
// such refusals with it (fmt.Errorf("%w: %w", hook.ErrRejected, err)); Start
// then returns a failed verdict instead of an error to retry.
var ErrRejected = errors.New("hook: command rejected")

// Automation runs commands on instances; the worker adapts the TAT client
// to it.
type Automation interface {
	// RunCommand starts c on the instance, bounded by timeout, and returns
	// its invocation.
	RunCommand(ctx context.Context, instanceID string, c rollout.CommandHook, timeout time.Duration) (invocationID string, err error)
	// Invocation reads the task of the invocation on the instance: its
	// TaskStatus (SUCCESS, RUNNING, ...), exit code and decoded output.
	Invocation(ctx context.Context, invocationID, instanceID string) (status string, exitCode int, output string, err error)
}

// Completions reads how external systems completed webhook steps; the
// ledger implements it.
type Completions interface {
	// HookResult returns the result a token was completed with
	// (ResultContinue or ResultAbandon), ok false while it is not.
	HookResult(ctx context.Context, rollout, token string) (result string, ok bool, err error)
}

// Registrar records a webhook step's token before the webhook is called,
// so that a completion arriving at once finds it. When Runner.Completions
// implements it too (the ledger does), Start registers every token.
type Registrar interface {
	RegisterHookToken(ctx context.Context, rollout, token, instanceID string) error
}

// Facts describe the instance a step runs for; a webhook receives them.
type Facts struct {
	InstanceID string `json:"instance_id"`
	PrivateIP  string `json:"private_ip,omitempty"`
	Zone       string `json:"zone,omitempty"`
	Name       string `json:"name,omitempty"`
	OldImage   string `json:"old_image,omitempty"`
	NewImage   string `json:"new_image,omitempty"`
}

// Handle is what the caller persists of a started step: enough for Poll to
// find it again after a crash.
type Handle struct {
	// Kind is KindCommand or KindWebhook.
	Kind string `json:"kind"`
	// InstanceID is the instance the step runs for.
	InstanceID string `json:"instance_id"`
	// InvocationID is the TAT invocation of a command.
	InvocationID string `json:"invocation_id,omitempty"`
	// Token is a webhook step's one-time completion token. It lets anyone
	// who holds it complete the step: never log it.
	Token string `json:"token,omitempty"`
	// StartedAt is when Start began; the hook's Timeout counts from it.
	StartedAt time.Time `json:"started_at"`
	// Verdict, when set, was settled by Start itself (a webhook that
	// answered other than 202, a command that could never run); Poll
	// returns it.
	Verdict *Status `json:"verdict,omitempty"`
}

// Status is where a step is.
type Status struct {
	// Done is false while the step is pending.
	Done bool `json:"done"`
	// OK, once Done, says the step passed.
	OK bool `json:"ok"`
	// Detail says why, for the report. It never holds a token.
	Detail string `json:"detail,omitempty"`
}

// Runner starts and polls steps. Its zero value runs webhooks with a
// default HTTP client; command steps need Automation, and webhook steps
// that answer 202 need Completions.
type Runner struct {
	// Automation runs command steps.
	Automation Automation
	// Completions answers webhook steps that answered 202.
	Completions Completions
	// HTTP posts webhooks; it never follows redirects (a redirect is an
	// answer other than 2xx). Each POST is bounded by WebhookTimeout.
	// Defaults to a client on http.DefaultTransport.
	HTTP *http.Client
	// Clock times steps. Defaults to the wall clock.
	Clock clock.Clock
	// Log logs starts and verdicts. Defaults to a discarding logger.
	Log *slog.Logger
}

func (r *Runner) now() time.Time { return clock.Or(r.Clock).Now() }

func (r *Runner) log() *slog.Logger { return cmp.Or(r.Log, slog.New(slog.DiscardHandler)) }

// Start begins step h of rolloutID for the instance f describes, in phase
// (PhaseBefore or PhaseAfter). A command is started with RunCommand; a
// webhook gets a one-time token and is posted once. The caller persists
// the Handle before anything else and then polls it.
//
// An error means nothing durable began, or may have (a command whose
// RunCommand answer was lost): the caller retries Start, and bounds its
// retries by h.Timeout from its first try (a TAT agent still coming online
// after a reinstall refuses RunCommand for a while).
func (r *Runner) Start(ctx context.Context, rolloutID, phase string, h rollout.Hook, f Facts) (Handle, error) {
	hd := Handle{InstanceID: f.InstanceID, StartedAt: r.now()}
	log := r.log().With("rollout", rolloutID, "instance_id", f.InstanceID, "hook", h.Name, "phase", phase)
	switch {
	case h.Command != nil && h.Webhook == nil:
		hd.Kind = KindCommand
		return r.startCommand(ctx, log, h, f, hd)
	case h.Webhook != nil && h.Command == nil:
		hd.Kind = KindWebhook
		return r.startWebhook(ctx, log, rolloutID, phase, h, f, hd)
	}
	// The planner refuses such hooks; a verdict, since no retry fixes it.
	hd.Verdict = &Status{Done: true, Detail: "hook " + h.Name + " has no command or webhook, or both"}
	return hd, nil
}

// Poll reports where the step hd of rolloutID is. It never starts anything
// again: a webhook is never posted twice for one Handle.
func (r *Runner) Poll(ctx context.Context, rolloutID string, h rollout.Hook, hd Handle) (Status, error) {
	if hd.Verdict != nil {
		return *hd.Verdict, nil
	}
	var (
		st  Status
		err error
	)
	switch hd.Kind {
	case KindCommand:
		st, err = r.pollCommand(ctx, hd)
	case KindWebhook:
		st, err = r.pollWebhook(ctx, rolloutID, hd)
	default:
		return Status{Done: true, Detail: fmt.Sprintf("unknown hook kind %q", hd.Kind)}, nil
	}
	if st.Done {
		r.log().Info("hook: step done", "rollout", rolloutID, "instance_id", hd.InstanceID, "hook", h.Name, "ok", st.OK, "detail", st.Detail)
		return st, nil
	}
	timeout := cmp.Or(h.Timeout, TimeoutDefault)
	if r.now().Sub(hd.StartedAt) < timeout {
		// Not yet late: a read that failed is retried.
		return st, err
	}
	detail := "timed out after " + timeout.String()
	if err != nil {
		// Past the deadline a read that keeps failing must not keep the
		// step open for ever.
		detail += " (its state could not be read: " + err.Error() + ")"
	}
	r.log().Info("hook: step timed out", "rollout", rolloutID, "instance_id", hd.InstanceID, "hook", h.Name, "timeout", timeout)
	return Status{Done: true, Detail: detail}, nil
}
