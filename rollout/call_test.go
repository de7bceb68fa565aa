package rollout

import (
	"testing"
	"time"
)

// TestAfterCall is the reset decision as a table: every way an attempt can
// end, and the retry budget's two edges.
func TestAfterCall(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	budget := func(a Answer, tries int, elapsed time.Duration) CallFacts {
		return CallFacts{Answer: a, Tries: tries, Attempts: 5, Deadline: 10 * time.Minute, FirstTry: t0, Now: t0.Add(elapsed)}
	}
	tests := []struct {
		name string
		f    CallFacts
		want CallAction
	}{
		{"accepted", budget(Accepted, 0, 0), RecordAccepted},
		{"accepted on the last try", budget(Accepted, 4, 9*time.Minute), RecordAccepted},
		{"may have landed is never released", budget(MayHaveLanded, 0, 0), Reconcile},
		{"may have landed even with the budget used up", budget(MayHaveLanded, 9, time.Hour), Reconcile},
		{"throttled spends no retry", budget(Throttled, 9, time.Hour), RetryThrottled},
		{"busy retries", budget(Busy, 0, 0), Retry},
		{"busy, one try left", budget(Busy, 3, time.Minute), Retry},
		{"busy, tries used up", budget(Busy, 4, time.Minute), FailExhausted},
		{"busy, deadline passed", budget(Busy, 1, 10*time.Minute), FailExhausted},
		{"busy, first try now", CallFacts{Answer: Busy, Attempts: 5, Deadline: time.Minute, Now: t0}, Retry},
		{"fatal pauses", budget(Fatal, 0, 0), HoldAndPause},
		{"permanent fails", budget(Permanent, 0, 0), Fail},
		{"secret unavailable pauses", budget(SecretUnavailable, 0, 0), HoldAndPause},
		{"journal failure retries: nothing was sent", budget(JournalFailed, 4, time.Hour), Retry},
		{"unknown answer fails safe: no call", budget(Answer(99), 0, 0), Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := AfterCall(tt.f)
			if got != tt.want {
				t.Errorf("AfterCall(%v, tries %d) = %v (%s); want %v", tt.f.Answer, tt.f.Tries, got, why, tt.want)
			}
			if why == "" {
				t.Error("no reason given")
			}
		})
	}
}
