package rollout

import (
	"testing"
	"time"
)

func TestBreachReason(t *testing.T) {
	spec := Spec{
		Budget: Budget{Max: 5, Percent: NoLimit},
		Waves: []Wave{
			{Size: 10, Budget: Budget{Max: 0, Percent: NoLimit}},
			{Size: 100, Budget: Budget{Max: NoLimit, Percent: 10, MinSample: 20}},
		},
	}
	tests := []struct {
		name            string
		wave            int
		inWave, overall Counts
		want            string
	}{
		{"nothing failed", 0, Counts{0, 10}, Counts{0, 10}, ""},
		{"canary allows none", 0, Counts{1, 3}, Counts{1, 3}, "wave 1 failure budget exceeded: 1 failed of 3 finished (max 0)"},
		{"percent below its sample", 1, Counts{5, 19}, Counts{5, 29}, ""},
		{"percent at its sample", 1, Counts{3, 20}, Counts{3, 30}, "wave 2 failure budget exceeded: 3 failed of 20 finished (max 10% once 20 finished)"},
		{"overall only", 1, Counts{2, 40}, Counts{6, 50}, "rollout failure budget exceeded: 6 failed of 50 finished (max 5)"},
		{"both", 1, Counts{6, 20}, Counts{6, 30}, "wave 2 failure budget exceeded: 6 failed of 20 finished (max 10% once 20 finished); rollout failure budget exceeded: 6 failed of 30 finished (max 5)"},
		{"wave beyond the spec judges the rollout", 7, Counts{9, 9}, Counts{1, 9}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BreachReason(spec, tt.wave, tt.inWave, tt.overall); got != tt.want {
				t.Errorf("BreachReason = %q\nwant            %q", got, tt.want)
			}
		})
	}
}

func TestGateAfter(t *testing.T) {
	night := &Window{Start: 60, End: 300} // 01:00-05:00 UTC
	at := func(h, m int) time.Time { return time.Date(2026, 12, 2, h, m, 0, 0, time.UTC) }
	waves := []Wave{{Size: 1, Approval: true}, {Size: 5}, {Size: 10, Approval: true}}
	tests := []struct {
		name   string
		window *Window
		k      int
		now    time.Time
		want   Gate
	}{
		{"approval after the canary", nil, 0, at(12, 0), Gate{Approval: true, WindowOpen: true}},
		{"plain gate", nil, 1, at(12, 0), Gate{WindowOpen: true}},
		{"last wave completes, approval ignored", nil, 2, at(12, 0), Gate{Last: true, WindowOpen: true}},
		{"window closed", night, 1, at(12, 0), Gate{WindowOpen: false, Opens: at(25, 0)}},
		{"window open", night, 1, at(2, 0), Gate{WindowOpen: true}},
		{"window closed with approval", night, 0, at(5, 0), Gate{Approval: true, WindowOpen: false, Opens: at(25, 0)}},
		{"last wave ignores a closed window", night, 2, at(12, 0), Gate{Last: true, WindowOpen: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := GateAfter(Spec{Waves: waves, Window: tt.window}, tt.k, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("GateAfter = %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestStartWaitAndSoakLeft(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 12, 2, h, m, 0, 0, time.UTC) }
	spec := Spec{Window: &Window{Start: 60, End: 300}, Waves: []Wave{{Size: 1, Soak: 10 * time.Minute}, {Size: 2}}}
	for _, tt := range []struct {
		now  time.Time
		want time.Duration
	}{{at(0, 30), 30 * time.Minute}, {at(1, 0), 0}, {at(5, 0), 20 * time.Hour}} {
		if got, err := StartWait(spec, tt.now); err != nil || got != tt.want {
			t.Errorf("StartWait(%v) = %v, %v; want %v", tt.now, got, err, tt.want)
		}
	}
	if got, _ := StartWait(Spec{}, at(0, 0)); got != 0 {
		t.Errorf("no window: StartWait = %v", got)
	}
	for _, tt := range []struct {
		name      string
		k         int
		soakUntil time.Time
		want      time.Duration
	}{
		{"not recorded: the whole soak", 0, time.Time{}, 10 * time.Minute},
		{"recorded: what is left", 0, at(12, 4), 4 * time.Minute},
		{"over", 0, at(11, 0), 0},
		{"no soak", 1, time.Time{}, 0},
		{"beyond the spec", 5, time.Time{}, 0},
	} {
		if got := SoakLeft(spec, tt.k, tt.soakUntil, at(12, 0)); got != tt.want {
			t.Errorf("%s: SoakLeft = %v; want %v", tt.name, got, tt.want)
		}
	}
}
