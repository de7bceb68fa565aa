package hook_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/hook"
	"github.com/fleetreset/fleetreset/rollout"
)

// manualClock is a clock the test moves by hand.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *manualClock {
	return &manualClock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
}

// invocation is what fakeTAT answers for an invocation.
type invocation struct {
	status string
	code   int
	output string
	err    error
}

// fakeTAT is an Automation that answers from a script; the real TAT client
// is tested in package cvm.
type fakeTAT struct {
	mu      sync.Mutex
	runErr  error
	runs    []string // instance IDs RunCommand was called for
	timeout time.Duration
	content string
	answer  invocation
}

func (f *fakeTAT) RunCommand(_ context.Context, instanceID string, c rollout.CommandHook, timeout time.Duration) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.runErr != nil {
		return "", f.runErr
	}
	f.runs = append(f.runs, instanceID)
	f.timeout, f.content = timeout, c.Content
	return fmt.Sprintf("inv-%d", len(f.runs)), nil
}

func (f *fakeTAT) Invocation(_ context.Context, invocationID, instanceID string) (string, int, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if invocationID != "inv-1" || instanceID != "ins-00000001" {
		return "", 0, "", fmt.Errorf("unknown invocation %s on %s", invocationID, instanceID)
	}
	a := f.answer
	return a.status, a.code, a.output, a.err
}

func (f *fakeTAT) set(a invocation) { f.mu.Lock(); defer f.mu.Unlock(); f.answer = a }

var facts = hook.Facts{InstanceID: "ins-00000001", PrivateIP: "10.0.0.1", Zone: "ap-guangzhou-3", Name: "web-1", OldImage: "img-old00001", NewImage: "img-new00001"}

func commandHook(timeout time.Duration) rollout.Hook {
	return rollout.Hook{Name: "drain-app", Command: &rollout.CommandHook{Content: "systemctl stop app"}, Timeout: timeout, OnFailure: rollout.HookAbandon}
}

// TestCommandHook: each invocation status, read after some time, gives the
// step's status; a read that fails is an error before the timeout and the
// timeout's verdict after it.
func TestCommandHook(t *testing.T) {
	tests := []struct {
		name   string
		answer invocation
		after  time.Duration // time passed since Start when polled
		want   hook.Status
		// wantDetail lists what the detail must contain; wantErr an error.
		wantDetail []string
		wantErr    bool
	}{
		{name: "success", answer: invocation{status: "SUCCESS"}, want: hook.Status{Done: true, OK: true}},
		{name: "failed", answer: invocation{status: "FAILED", code: 3, output: "\n  disk full on /data  \nsecond line\n"}, want: hook.Status{Done: true},
			wantDetail: []string{"FAILED", "exit code 3", ": disk full on /data"}},
		{name: "task-timeout", answer: invocation{status: "TASK_TIMEOUT", code: -1}, want: hook.Status{Done: true}, wantDetail: []string{"TASK_TIMEOUT"}},
		{name: "deliver-failed", answer: invocation{status: "DELIVER_FAILED"}, want: hook.Status{Done: true}, wantDetail: []string{"DELIVER_FAILED"}},
		{name: "start-failed", answer: invocation{status: "START_FAILED"}, want: hook.Status{Done: true}},
		{name: "timeout", answer: invocation{status: "TIMEOUT"}, want: hook.Status{Done: true}},
		{name: "cancelled", answer: invocation{status: "CANCELLED"}, want: hook.Status{Done: true}},
		{name: "terminated", answer: invocation{status: "TERMINATED"}, want: hook.Status{Done: true}},
		{name: "running", answer: invocation{status: "RUNNING"}, after: time.Minute, want: hook.Status{}},
		{name: "pending", answer: invocation{status: "PENDING"}, want: hook.Status{}},
		{name: "delivering", answer: invocation{status: "DELIVERING"}, want: hook.Status{}},
		{name: "deliver-delayed", answer: invocation{status: "DELIVER_DELAYED"}, want: hook.Status{}},
		{name: "cancelling", answer: invocation{status: "CANCELLING"}, want: hook.Status{}},
		{name: "running-at-timeout", answer: invocation{status: "RUNNING"}, after: 5 * time.Minute, want: hook.Status{Done: true},
			wantDetail: []string{"timed out after 5m0s"}},
		{name: "success-at-timeout", answer: invocation{status: "SUCCESS"}, after: 6 * time.Minute, want: hook.Status{Done: true, OK: true}},
		{name: "read-fails", answer: invocation{err: errors.New("RequestLimitExceeded")}, after: time.Minute, wantErr: true},
		{name: "read-fails-at-timeout", answer: invocation{err: errors.New("RequestLimitExceeded")}, after: 5 * time.Minute, want: hook.Status{Done: true},
			wantDetail: []string{"timed out after 5m0s", "RequestLimitExceeded"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tat, clk := &fakeTAT{}, newClock()
			r := &hook.Runner{Automation: tat, Clock: clk}
			h := commandHook(5 * time.Minute)
			hd, err := r.Start(t.Context(), "r1", hook.PhaseBefore, h, facts)
			if err != nil {
				t.Fatal(err)
			}
			if hd.Kind != hook.KindCommand || hd.InvocationID != "inv-1" || !hd.StartedAt.Equal(clk.Now()) || hd.Verdict != nil {
				t.Fatalf("Start = %+v; want a command handle of inv-1 started now", hd)
			}
			if tat.timeout != 5*time.Minute || tat.content != "systemctl stop app" {
				t.Errorf("RunCommand got timeout %s, content %q", tat.timeout, tat.content)
			}
			tat.set(tc.answer)
			clk.Add(tc.after)
			st, err := r.Poll(t.Context(), "r1", h, hd)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Poll = %+v, %v; want error %v", st, err, tc.wantErr)
			}
			if st.Done != tc.want.Done || st.OK != tc.want.OK {
				t.Errorf("Poll = %+v; want done %v ok %v", st, tc.want.Done, tc.want.OK)
			}
			for _, s := range tc.wantDetail {
				if !strings.Contains(st.Detail, s) {
					t.Errorf("detail %q lacks %q", st.Detail, s)
				}
			}
			if strings.Contains(st.Detail, "second line") {
				t.Errorf("detail %q quotes more than the first line", st.Detail)
			}
			if n := len(tat.runs); n != 1 {
				t.Errorf("RunCommand called %d times; want once", n)
			}
		})
	}
}

// TestCommandHookStart: RunCommand's refusals are errors to retry, unless
// marked permanent; content TAT cannot take never reaches it.
func TestCommandHookStart(t *testing.T) {
	clk := newClock()
	tests := []struct {
		name    string
		runErr  error
		content string
		wantErr bool
		// wantVerdict is the start of a failed verdict's detail.
		wantVerdict string
		wantRuns    int
	}{
		{name: "agent-offline", runErr: errors.New("ResourceUnavailable.AgentStatusNotOnline"), wantErr: true},
		{name: "rejected", runErr: fmt.Errorf("%w: InvalidParameterValue.Username", hook.ErrRejected), wantVerdict: "command refused"},
		{name: "too-long", content: strings.Repeat("x", 49153), wantVerdict: "command content is 65540 bytes"},
		{name: "longest", content: strings.Repeat("x", 49152), wantRuns: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tat := &fakeTAT{runErr: tc.runErr}
			r := &hook.Runner{Automation: tat, Clock: clk}
			h := commandHook(0)
			if tc.content != "" {
				h.Command.Content = tc.content
			}
			hd, err := r.Start(t.Context(), "r1", hook.PhaseAfter, h, facts)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Start = %+v, %v; want error %v", hd, err, tc.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "AgentStatusNotOnline") {
					t.Errorf("Start's error %q hides the cause", err)
				}
				return
			}
			if len(tat.runs) != tc.wantRuns {
				t.Errorf("RunCommand called %d times; want %d", len(tat.runs), tc.wantRuns)
			}
			if tc.wantRuns > 0 && tat.timeout != hook.TimeoutDefault {
				t.Errorf("RunCommand timeout %s for a hook without one; want %s", tat.timeout, hook.TimeoutDefault)
			}
			st, err := r.Poll(t.Context(), "r1", h, hd)
			if tc.wantVerdict == "" {
				return
			}
			if err != nil || !st.Done || st.OK || !strings.HasPrefix(st.Detail, tc.wantVerdict) {
				t.Errorf("Poll = %+v, %v; want failed %q…", st, err, tc.wantVerdict)
			}
		})
	}
}

// TestHookWithoutAction: a hook with neither a command nor a webhook fails
// as a verdict, not as an error retried for ever.
func TestHookWithoutAction(t *testing.T) {
	r := &hook.Runner{}
	h := rollout.Hook{Name: "empty", Timeout: time.Minute}
	hd, err := r.Start(t.Context(), "r1", hook.PhaseBefore, h, facts)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := r.Poll(t.Context(), "r1", h, hd); err != nil || !st.Done || st.OK {
		t.Errorf("Poll = %+v, %v; want a failed verdict", st, err)
	}
	if st, err := r.Poll(t.Context(), "r1", h, hook.Handle{Kind: "carrier-pigeon"}); err != nil || !st.Done || st.OK {
		t.Errorf("Poll of an unknown kind = %+v, %v; want a failed verdict", st, err)
	}
}
