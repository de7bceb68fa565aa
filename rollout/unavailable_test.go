package rollout

import "testing"

func TestResolveUnavailable(t *testing.T) {
	for _, tc := range []struct {
		size Size
		n    int
		want int
	}{
		{Size{Count: 5}, 200, 5},
		{Size{Count: 500}, 200, 500}, // a count is kept as written
		{Size{Percent: 10}, 200, 20},
		{Size{Percent: 10}, 199, 19}, // rounded down
		{Size{Percent: 7}, 100, 7},   // exact: not 6 from 0.07*100 in floating point
		{Size{Percent: 1}, 50, 1},    // never below 1
		{Size{Percent: 12.5}, 8, 1},
		{Size{Percent: 100}, 3, 3},
		{Size{Percent: 50}, 0, 1},
	} {
		if got := ResolveUnavailable(tc.size, tc.n); got != tc.want {
			t.Errorf("ResolveUnavailable(%v, %d) = %d, want %d", tc.size, tc.n, got, tc.want)
		}
	}
}

func TestMaxUnavailableLimits(t *testing.T) {
	var none *MaxUnavailable
	if tot, z := none.Limits("ap-guangzhou-3"); tot != 0 || z != 0 || none.Capped() {
		t.Errorf("nil cap: Limits = %d, %d, Capped %v; want 0, 0, false", tot, z, none.Capped())
	}
	m := &MaxUnavailable{Total: 10, PerZone: 2, Zones: map[string]int{"ap-guangzhou-3": 4}}
	for _, tc := range []struct {
		zone       string
		total, per int
	}{
		{"ap-guangzhou-3", 10, 4},
		{"ap-guangzhou-4", 10, 2}, // not listed: the default
		{"", 10, 2},
	} {
		if tot, per := m.Limits(tc.zone); tot != tc.total || per != tc.per {
			t.Errorf("Limits(%q) = %d, %d; want %d, %d", tc.zone, tot, per, tc.total, tc.per)
		}
	}
}

func TestMaxUnavailableRounds(t *testing.T) {
	zones := map[string]int{"a": 70, "b": 70, "c": 60}
	for _, tc := range []struct {
		name string
		m    *MaxUnavailable
		in   map[string]int
		want int
	}{
		{"no cap", nil, zones, 1},
		{"empty wave", &MaxUnavailable{PerZone: 5}, map[string]int{}, 0},
		{"per zone", &MaxUnavailable{PerZone: 5}, zones, 14},
		{"total binds", &MaxUnavailable{Total: 10, PerZone: 5}, zones, 20},
		{"zone binds", &MaxUnavailable{Total: 100, PerZone: 5}, zones, 14},
		{"per-zone map", &MaxUnavailable{Zones: map[string]int{"a": 7, "b": 7, "c": 30}}, zones, 10},
		{"cap above the wave", &MaxUnavailable{Total: 1000}, zones, 1},
		{"unknown zones: the total only", &MaxUnavailable{Total: 50, PerZone: 5}, map[string]int{"": 200}, 4},
	} {
		if got := tc.m.Rounds(tc.in); got != tc.want {
			t.Errorf("%s: Rounds = %d, want %d", tc.name, got, tc.want)
		}
	}
}
