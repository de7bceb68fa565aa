package rollout

import (
	"slices"
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
			if got := BreachReason(spec, Outcomes{Wave: tt.wave, InWave: tt.inWave, Overall: tt.overall}); got != tt.want {
				t.Errorf("BreachReason = %q\nwant            %q", got, tt.want)
			}
		})
	}
}

func TestBreachReasonPerRegion(t *testing.T) {
	spec := Spec{
		Budget:       Budget{Max: 10, Percent: NoLimit},
		RegionBudget: &Budget{Max: NoLimit, Percent: 20, MinSample: 5},
		Waves:        []Wave{{Size: 100, Budget: Budget{Max: NoLimit, Percent: NoLimit}}},
	}
	tests := []struct {
		name     string
		o        Outcomes
		want     string
		noBudget string // the same outcomes without a RegionBudget
	}{
		{"region within", Outcomes{Region: "ap-guangzhou", InRegion: Counts{1, 5}, Overall: Counts{1, 20}}, "", ""},
		{"region below its sample", Outcomes{Region: "ap-guangzhou", InRegion: Counts{3, 4}, Overall: Counts{3, 20}}, "", ""},
		{"one region over while the rollout is within", Outcomes{Region: "ap-shanghai", InRegion: Counts{2, 6}, Overall: Counts{2, 30}},
			"region ap-shanghai failure budget exceeded: 2 failed of 6 finished (max 20% once 5 finished)", ""},
		{"region and rollout", Outcomes{Region: "ap-shanghai", InRegion: Counts{11, 20}, Overall: Counts{11, 40}},
			"region ap-shanghai failure budget exceeded: 11 failed of 20 finished (max 20% once 5 finished); rollout failure budget exceeded: 11 failed of 40 finished (max 10)",
			"rollout failure budget exceeded: 11 failed of 40 finished (max 10)"},
		{"no region counted", Outcomes{InRegion: Counts{5, 5}, Overall: Counts{5, 40}}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BreachReason(spec, tt.o); got != tt.want {
				t.Errorf("BreachReason = %q\nwant            %q", got, tt.want)
			}
			plain := spec
			plain.RegionBudget = nil
			if got := BreachReason(plain, tt.o); got != tt.noBudget {
				t.Errorf("without a region budget: BreachReason = %q\nwant %q", got, tt.noBudget)
			}
		})
	}
}

func TestCountedRegions(t *testing.T) {
	one := Spec{Region: "ap-guangzhou", Groups: []Group{{Name: "a"}, {Name: "b", Account: "other"}}}
	two := Spec{Region: "ap-guangzhou", Groups: []Group{{Name: "a"}, {Name: "b", Region: "ap-shanghai"}, {Name: "c"}}}
	withBudget := one
	withBudget.RegionBudget = &Budget{Max: 1, Percent: NoLimit}
	for _, tt := range []struct {
		name string
		spec Spec
		want []string
	}{
		{"one region, no budget", one, nil},
		{"two regions", two, []string{"ap-guangzhou", "ap-shanghai"}},
		{"one region with a budget", withBudget, []string{"ap-guangzhou"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.spec.CountedRegions(); !slices.Equal(got, tt.want) {
				t.Errorf("CountedRegions = %q, want %q", got, tt.want)
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
