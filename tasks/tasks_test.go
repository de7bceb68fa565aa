package tasks

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

func TestResetTaskIsDeterministic(t *testing.T) {
	q := QueuesFor("ns")
	p := ResetPayload{Rollout: "r", InstanceID: "ins-1", Wave: 2, Gen: 3}
	a, err := NewReset(q, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got ResetPayload
	if err := Parse(a, &got); err != nil || got != p {
		t.Errorf("Parse = %+v, %v; want %+v", got, err, p)
	}
	if id := ResetTaskID("r", "ins-1", 3); id != "reset:r:ins-1:3" {
		t.Errorf("ResetTaskID = %q", id)
	}
	if q.Reset != "ns" || q.Control != "ns-control" {
		t.Errorf("QueuesFor = %+v", q)
	}
}

func TestParseRejectsBadPayloadsForGood(t *testing.T) {
	for _, payload := range []string{"{", `{"rollout":""}`} {
		err := Parse(asynq.NewTask(TypeReset, []byte(payload)), &ResetPayload{})
		if !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("Parse(%s) = %v; want a SkipRetry error", payload, err)
		}
	}
}

func TestDescribeShowsOnlyKnownFields(t *testing.T) {
	got := Describe(TypeReset, []byte(`{"rollout":"r","instance_id":"ins-1","gen":0,"password":"x"}`))
	if strings.Contains(got, "password") || !strings.Contains(got, "instance_id=ins-1") {
		t.Errorf("Describe = %q", got)
	}
}

func TestSweepsShareAnInterval(t *testing.T) {
	base := time.Unix(1000, 0)
	a := SweepAt(base.Add(100*time.Millisecond), 10*time.Second)
	b := SweepAt(base.Add(9*time.Second), 10*time.Second)
	if !a.Equal(b) || !a.Equal(time.Unix(1010, 0)) {
		t.Errorf("SweepAt = %v, %v; want both 1010", a.Unix(), b.Unix())
	}
	if c := SweepAt(time.Unix(1010, 0), 10*time.Second); !c.After(a) {
		t.Errorf("a sweep at its own time scheduled the next at %v", c.Unix())
	}
}
