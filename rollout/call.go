package rollout

import (
	"fmt"
	"time"
)

// Answer is what became of one reset attempt, as far as the caller knows
// when it must decide: the API's answer, classified, or a failure before
// the call was sent.
type Answer int

const (
	// Accepted: the API returned a RequestId.
	Accepted Answer = iota
	// MayHaveLanded: the answer was lost (timeout, connection reset after
	// the request was sent); the reinstall may be running.
	MayHaveLanded
	// Throttled: the API refused for the request rate.
	Throttled
	// Busy: a refusal that a later try may pass (OperationFail.SystemBusy,
	// an internal error).
	Busy
	// Fatal: a refusal no try can pass until a human acts (credentials,
	// balance, a permission): it stops the whole rollout, not one instance.
	Fatal
	// Permanent: a refusal about this instance or request (bad image,
	// unsupported instance): retrying it cannot help.
	Permanent
	// SecretUnavailable: the password reference could not be resolved;
	// nothing was sent.
	SecretUnavailable
	// JournalFailed: the local journal could not record the intent;
	// nothing was sent.
	JournalFailed
)

var answerNames = [...]string{"accepted", "may have landed", "throttled", "busy", "fatal", "permanent", "secret unavailable", "journal failed"}

func (a Answer) String() string {
	if int(a) < len(answerNames) {
		return answerNames[a]
	}
	return fmt.Sprintf("Answer(%d)", int(a))
}

// CallAction is what the caller does after a reset attempt.
type CallAction int

const (
	// RecordAccepted: calling → resetting, then verify.
	RecordAccepted CallAction = iota
	// Reconcile: keep the intent; the task comes back after the grace
	// period and judges from DescribeInstances whether the call landed,
	// instead of calling again.
	Reconcile
	// RetryThrottled: release the intent (pending), slow every caller of
	// the limiter key, try again after a backoff.
	RetryThrottled
	// Retry: release the intent (pending) and try again after a backoff.
	Retry
	// FailExhausted: the retry budget is used up; the instance failed.
	FailExhausted
	// HoldAndPause: park the instance (held) and pause the rollout until
	// an operator fixes the cause and resumes.
	HoldAndPause
	// Fail: the instance failed for good.
	Fail
)

var actionNames = [...]string{"record accepted", "reconcile", "retry throttled", "retry", "fail: retries used up", "hold and pause", "fail"}

func (a CallAction) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("CallAction(%d)", int(a))
}

// CallFacts are what the decision after a reset attempt rests on.
type CallFacts struct {
	Answer Answer
	// Tries counts the attempts before this one; Attempts and Deadline are
	// the rollout's retry budget (Spec.RetryAttempts, Spec.RetryDeadline),
	// counted from FirstTry.
	Tries    int
	Attempts int
	Deadline time.Duration
	FirstTry time.Time
	Now      time.Time
}

// AfterCall decides what follows a reset attempt. The one rule it must
// never break: an attempt that may have reached the cloud is never
// released for another call; only a reconcile from the cloud's own record
// may lead to one. Throttling spends no retry: the limiter, not the
// instance, was at fault.
func AfterCall(f CallFacts) (CallAction, string) {
	switch f.Answer {
	case Accepted:
		return RecordAccepted, "accepted"
	case MayHaveLanded:
		return Reconcile, "outcome unknown: the call may have reached the cloud"
	case Throttled:
		return RetryThrottled, "throttled"
	case Busy:
		if f.Tries+1 >= f.Attempts {
			return FailExhausted, fmt.Sprintf("gave up after %d tries", f.Tries+1)
		}
		if !f.FirstTry.IsZero() && f.Now.Sub(f.FirstTry) >= f.Deadline {
			return FailExhausted, fmt.Sprintf("gave up after %d tries in %s", f.Tries+1, f.Now.Sub(f.FirstTry).Round(time.Second))
		}
		return Retry, "refused for now"
	case Fatal:
		return HoldAndPause, "no call can pass until the cause is fixed"
	case SecretUnavailable:
		return HoldAndPause, "the password cannot be resolved on this worker"
	case JournalFailed:
		return Retry, "the intent could not be journaled; nothing was sent"
	}
	return Fail, "refused for good"
}
