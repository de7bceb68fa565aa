package health_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetreset/fleetreset/health"
	"github.com/fleetreset/fleetreset/rollout"
)

var (
	pass         = health.Result{Verdict: health.Pass, Check: "tcp 10.0.0.1:22", Detail: "connected"}
	fail         = health.Result{Verdict: health.Fail, Check: "tcp 10.0.0.1:22", Detail: "connection refused"}
	inconclusive = health.Result{Verdict: health.Inconclusive, Check: "tcp 10.0.0.1:22", Detail: "prober network: no route to host"}
)

func TestTrackerNext(t *testing.T) {
	verified := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return verified.Add(d) }
	tr := health.Tracker{HealthyThreshold: 3, InitialDelay: 30 * time.Second, Interval: 10 * time.Second, Deadline: 2 * time.Minute}

	// Each step is one probe: its result and time, then what Next says.
	type step struct {
		r        health.Result
		at       time.Duration
		want     health.Outcome
		wantNext time.Duration // ignored unless want is Wait
	}
	tests := []struct {
		name       string
		tracker    health.Tracker
		steps      []step
		wantPasses int
		wantReason string
	}{
		{name: "healthy_after_threshold", tracker: tr, steps: []step{
			{pass, 30 * time.Second, health.Wait, 40 * time.Second},
			{pass, 40 * time.Second, health.Wait, 50 * time.Second},
			{pass, 50 * time.Second, health.Healthy, 0},
		}, wantPasses: 3},
		{name: "fail_resets_the_run", tracker: tr, steps: []step{
			{pass, 30 * time.Second, health.Wait, 40 * time.Second},
			{pass, 40 * time.Second, health.Wait, 50 * time.Second},
			{fail, 50 * time.Second, health.Wait, 60 * time.Second},
			{pass, 60 * time.Second, health.Wait, 70 * time.Second},
			{pass, 70 * time.Second, health.Wait, 80 * time.Second},
			{pass, 80 * time.Second, health.Healthy, 0},
		}, wantPasses: 3, wantReason: "tcp 10.0.0.1:22: connection refused"},
		{name: "inconclusive_neither_counts_nor_breaks", tracker: tr, steps: []step{
			{pass, 30 * time.Second, health.Wait, 40 * time.Second},
			{inconclusive, 40 * time.Second, health.Wait, 50 * time.Second},
			{pass, 50 * time.Second, health.Wait, 60 * time.Second},
			{pass, 60 * time.Second, health.Healthy, 0},
		}, wantPasses: 3, wantReason: "tcp 10.0.0.1:22: prober network: no route to host"},
		{name: "unhealthy_at_deadline", tracker: tr, steps: []step{
			{fail, 100 * time.Second, health.Wait, 110 * time.Second},
			{fail, 110 * time.Second, health.Wait, 120 * time.Second}, // the deadline itself
			{fail, 120 * time.Second, health.Unhealthy, 0},
		}, wantReason: "tcp 10.0.0.1:22: connection refused"},
		{name: "next_probe_clamped_to_deadline", tracker: tr, steps: []step{
			{fail, 115 * time.Second, health.Wait, 120 * time.Second},
		}, wantReason: "tcp 10.0.0.1:22: connection refused"},
		{name: "pass_at_deadline_reaching_threshold", tracker: tr, steps: []step{
			{pass, 100 * time.Second, health.Wait, 110 * time.Second},
			{pass, 110 * time.Second, health.Wait, 120 * time.Second},
			{pass, 120 * time.Second, health.Healthy, 0},
		}, wantPasses: 3},
		{name: "late_probe_after_deadline", tracker: tr, steps: []step{
			{fail, 5 * time.Minute, health.Unhealthy, 0}, // a worker that came back late decides at once
		}, wantReason: "tcp 10.0.0.1:22: connection refused"},
		{name: "late_passing_probes_get_a_grace", tracker: tr, steps: []step{
			// Nobody probed until long after the deadline (the sweeps had
			// stopped): a pass is not failed for the probes nobody made; it
			// gets healthyThreshold intervals from that probe.
			{pass, 10 * time.Minute, health.Wait, 10*time.Minute + 10*time.Second},
			{pass, 10*time.Minute + 10*time.Second, health.Wait, 10*time.Minute + 20*time.Second},
			{pass, 10*time.Minute + 20*time.Second, health.Healthy, 0},
		}, wantPasses: 3},
		{name: "late_grace_ends_like_a_deadline", tracker: tr, steps: []step{
			{pass, 10 * time.Minute, health.Wait, 10*time.Minute + 10*time.Second},
			{fail, 10*time.Minute + 10*time.Second, health.Wait, 10*time.Minute + 20*time.Second},
			{pass, 10*time.Minute + 20*time.Second, health.Wait, 10*time.Minute + 30*time.Second},
			{pass, 10*time.Minute + 30*time.Second, health.Unhealthy, 0},
		}, wantPasses: 2, wantReason: "tcp 10.0.0.1:22: 2 of 3 passes in a row by the deadline; before: connection refused"},
		{name: "on_time_probe_at_deadline_gets_no_grace", tracker: tr, steps: []step{
			{pass, 125 * time.Second, health.Unhealthy, 0}, // within an interval of the deadline: on schedule
		}, wantPasses: 1, wantReason: "health: 1 of 3 passes in a row by the deadline"},
		{name: "short_run_at_deadline", tracker: tr, steps: []step{
			{pass, 110 * time.Second, health.Wait, 120 * time.Second},
			{pass, 120 * time.Second, health.Unhealthy, 0},
		}, wantPasses: 2, wantReason: "health: 2 of 3 passes in a row by the deadline"},
		{name: "short_run_after_failure", tracker: tr, steps: []step{
			{fail, 100 * time.Second, health.Wait, 110 * time.Second},
			{pass, 110 * time.Second, health.Wait, 120 * time.Second},
			{pass, 120 * time.Second, health.Unhealthy, 0},
		}, wantPasses: 2, wantReason: "tcp 10.0.0.1:22: 2 of 3 passes in a row by the deadline; before: connection refused"},
		{name: "undecided_when_last_is_inconclusive", tracker: tr, steps: []step{
			{fail, 100 * time.Second, health.Wait, 110 * time.Second},
			{inconclusive, 120 * time.Second, health.Undecided, 0},
		}, wantReason: "tcp 10.0.0.1:22: prober network: no route to host"},
		{name: "no_verdict_is_inconclusive", tracker: tr, steps: []step{
			{health.Result{}, 120 * time.Second, health.Undecided, 0},
		}, wantReason: ": no verdict"},
		{name: "zero_tracker_defaults", tracker: health.Tracker{}, steps: []step{
			{fail, 0, health.Wait, health.IntervalDefault},
			{pass, health.IntervalDefault, health.Healthy, 0}, // threshold 1
		}, wantPasses: 1, wantReason: "tcp 10.0.0.1:22: connection refused"},
		{name: "zero_tracker_deadline", tracker: health.Tracker{}, steps: []step{
			{fail, health.DeadlineDefault - time.Second, health.Wait, health.DeadlineDefault},
			{fail, health.DeadlineDefault, health.Unhealthy, 0},
		}, wantReason: "tcp 10.0.0.1:22: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s health.State
			for i, st := range tt.steps {
				var got health.Outcome
				var next time.Time
				s, got, next = tt.tracker.Next(s, st.r, at(st.at), verified)
				wantNext := time.Time{}
				if st.want == health.Wait {
					wantNext = at(st.wantNext)
				}
				if got != st.want || !next.Equal(wantNext) {
					t.Fatalf("step %d: Next = %s, %v; want %s, %v", i, got, next, st.want, wantNext)
				}
			}
			if s.Passes != tt.wantPasses || s.Reason() != tt.wantReason || s.Probes != len(tt.steps) {
				t.Errorf("state = %+v (reason %q); want %d passes, reason %q, %d probes", s, s.Reason(), tt.wantPasses, tt.wantReason, len(tt.steps))
			}
		})
	}
}

func TestTrackerFirst(t *testing.T) {
	verified := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	tr := health.TrackerFor(rollout.Health{InitialDelay: 45 * time.Second, Interval: time.Second, HealthyThreshold: 2, Deadline: time.Minute})
	if got, want := tr.First(verified), verified.Add(45*time.Second); !got.Equal(want) {
		t.Errorf("First = %v; want %v", got, want)
	}
	if want := (health.Tracker{HealthyThreshold: 2, InitialDelay: 45 * time.Second, Interval: time.Second, Deadline: time.Minute}); tr != want {
		t.Errorf("TrackerFor = %+v; want %+v", tr, want)
	}
}

// TestStateJSON: the state survives the ledger's round trip, and an
// unprobed one is small.
func TestStateJSON(t *testing.T) {
	if b, _ := json.Marshal(health.State{}); string(b) != `{"passes":0,"probes":0}` {
		t.Errorf("zero State = %s", b)
	}
	s, _, _ := health.Tracker{}.Next(health.State{}, fail, time.Unix(1000, 0).UTC(), time.Unix(990, 0).UTC())
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back health.State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, back); diff != "" {
		t.Errorf("State round trip (-want +got):\n%s", diff)
	}
}
