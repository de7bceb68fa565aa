package cvmsim

import (
	"testing"
	"time"
)

// resetDurations resets every instance of a fresh simulator built from cfg
// at the same fake instant and returns how long each reinstall lasts, in
// the order of ins, plus which of them end FAILED.
func resetDurations(t *testing.T, cfg Config, ins []Instance) ([]time.Duration, map[string]bool) {
	t.Helper()
	b := setup(t, cfg, ins...)
	now := b.clk.Now()
	var out []time.Duration
	for _, in := range ins {
		wantCode(t, b.c.reset(genTC3, in.ID, nil), "")
		iv, _ := b.srv.Instance(in.ID)
		out = append(out, iv.OperationEndsAt.Sub(now))
	}
	b.clk.Advance(time.Hour)
	failed := map[string]bool{}
	for _, in := range ins {
		if iv, _ := b.srv.Instance(in.ID); iv.LatestOperationState == OperationFailed {
			failed[in.ID] = true
		}
	}
	return out, failed
}

// TestResetDurationMax checks that with ResetDurationMax each reinstall
// lasts a duration drawn uniformly from [ResetDuration, ResetDurationMax]:
// within the range, spread over it, repeated for a seed, different for
// another seed, and without shifting the FailRate dice.
func TestResetDurationMax(t *testing.T) {
	ins := GenerateSeed(60, 3)
	lo, hi := 30*time.Second, time.Minute
	cfg := Config{ResetDuration: lo, ResetDurationMax: hi, Faults: Faults{Seed: 7, FailRate: 0.3, ResetRateLimit: -1}}
	got, failed := resetDurations(t, cfg, ins)
	distinct := map[time.Duration]bool{}
	short, long := 0, 0
	for i, d := range got {
		if d < lo || d > hi {
			t.Errorf("%s: reinstall lasts %s; want within [%s, %s]", ins[i].ID, d, lo, hi)
		}
		distinct[d] = true
		if d < lo+(hi-lo)/3 {
			short++
		}
		if d > hi-(hi-lo)/3 {
			long++
		}
	}
	if len(distinct) < len(got)/2 || short == 0 || long == 0 {
		t.Errorf("durations %v: %d distinct, %d in the lowest third, %d in the highest; want them spread over [%s, %s]", got, len(distinct), short, long, lo, hi)
	}

	again, _ := resetDurations(t, cfg, ins)
	for i := range got {
		if got[i] != again[i] {
			t.Fatalf("seed 7 gave %s then %s for %s; want the same durations for the same seed", got[i], again[i], ins[i].ID)
		}
	}
	other := cfg
	other.Seed = 8
	if diff, _ := resetDurations(t, other, ins); equalDurations(diff, got) {
		t.Error("seeds 7 and 8 gave the same durations")
	}

	// The fault dice are not shifted by the duration draws.
	fixed := cfg
	fixed.ResetDurationMax = 0
	fixedDur, fixedFailed := resetDurations(t, fixed, ins)
	for i, d := range fixedDur {
		if d != lo {
			t.Fatalf("without ResetDurationMax %s lasts %s; want exactly %s", ins[i].ID, d, lo)
		}
	}
	if len(failed) == 0 || len(failed) != len(fixedFailed) {
		t.Fatalf("%d failed with ResetDurationMax, %d without; want the same non-empty set", len(failed), len(fixedFailed))
	}
	for id := range failed {
		if !fixedFailed[id] {
			t.Fatalf("%s failed only with ResetDurationMax: the duration draws shifted the FailRate dice", id)
		}
	}
}

// TestResetDurationMaxLifecycle checks that an instance stays OPERATING
// until its own drawn end, and no longer.
func TestResetDurationMaxLifecycle(t *testing.T) {
	b := setup(t, Config{ResetDuration: 30 * time.Second, ResetDurationMax: time.Minute}, linuxA)
	wantCode(t, b.c.reset(genTC3, linuxA.ID, map[string]string{"ImageId": ImageLinuxNew}), "")
	iv, _ := b.srv.Instance(linuxA.ID)
	d := iv.OperationEndsAt.Sub(b.clk.Now())
	b.clk.Advance(d - time.Nanosecond)
	if v := b.c.describe(genTC3, linuxA.ID); v.opState != OperationOperating {
		t.Fatalf("1ns before the drawn end (%s): %s; want OPERATING", d, v.opState)
	}
	b.clk.Advance(time.Nanosecond)
	if v := b.c.describe(genTC3, linuxA.ID); v.opState != OperationSuccess || v.image != ImageLinuxNew {
		t.Fatalf("at the drawn end (%s): %+v; want SUCCESS on %s", d, v, ImageLinuxNew)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
