package rollout

import (
	"fmt"
	"testing"
)

func TestBudgetBreached(t *testing.T) {
	tests := []struct {
		name     string
		budget   Budget
		failed   int
		terminal int
		want     bool
	}{
		// Count limits trip when exceeded, not when reached.
		{name: "max2-below", budget: Budget{Max: 2, Percent: NoLimit}, failed: 1, terminal: 50, want: false},
		{name: "max2-reached", budget: Budget{Max: 2, Percent: NoLimit}, failed: 2, terminal: 50, want: false},
		{name: "max2-exceeded", budget: Budget{Max: 2, Percent: NoLimit}, failed: 3, terminal: 50, want: true},
		{name: "max0-none", budget: Budget{Max: 0, Percent: NoLimit}, failed: 0, terminal: 50, want: false},
		{name: "max0-first", budget: Budget{Max: 0, Percent: NoLimit}, failed: 1, terminal: 1, want: true},
		{name: "count-ignores-minsample", budget: Budget{Max: 1, Percent: NoLimit, MinSample: 100}, failed: 2, terminal: 2, want: true},

		// Percent limits: 10% of 20 terminal is 2 failures.
		{name: "pct10-below", budget: Budget{Max: NoLimit, Percent: 10}, failed: 1, terminal: 20, want: false},
		{name: "pct10-reached", budget: Budget{Max: NoLimit, Percent: 10}, failed: 2, terminal: 20, want: false},
		{name: "pct10-exceeded", budget: Budget{Max: NoLimit, Percent: 10}, failed: 3, terminal: 20, want: true},
		{name: "pct-fractional-boundary", budget: Budget{Max: NoLimit, Percent: 33.33}, failed: 3333, terminal: 10000, want: false},
		{name: "pct-fractional-over", budget: Budget{Max: NoLimit, Percent: 33.33}, failed: 3334, terminal: 10000, want: true},
		{name: "pct-float-trap", budget: Budget{Max: NoLimit, Percent: 7}, failed: 7, terminal: 100, want: false}, // 7*100 vs 0.07 rounding
		{name: "pct0-first", budget: Budget{Max: NoLimit, Percent: 0}, failed: 1, terminal: 1, want: true},
		{name: "pct100-all-failed", budget: Budget{Max: NoLimit, Percent: 100}, failed: 5, terminal: 5, want: false},

		// Minimum sample: the percentage waits for MinSample terminal outcomes.
		{name: "minsample-1-below", budget: Budget{Max: NoLimit, Percent: 10, MinSample: 10}, failed: 1, terminal: 9, want: false},
		{name: "minsample-at", budget: Budget{Max: NoLimit, Percent: 10, MinSample: 10}, failed: 2, terminal: 10, want: true},
		{name: "minsample-at-reached", budget: Budget{Max: NoLimit, Percent: 10, MinSample: 10}, failed: 1, terminal: 10, want: false},
		{name: "minsample-canary", budget: Budget{Max: NoLimit, Percent: 10, MinSample: 10}, failed: 1, terminal: 2, want: false}, // 50% but too early

		// Both limits: either one breaches.
		{name: "both-count-trips", budget: Budget{Max: 2, Percent: 50}, failed: 3, terminal: 100, want: true},
		{name: "both-pct-trips", budget: Budget{Max: 10, Percent: 5}, failed: 6, terminal: 100, want: true},
		{name: "both-neither", budget: Budget{Max: 10, Percent: 5}, failed: 5, terminal: 100, want: false},

		// Zero value and no limit.
		{name: "zero-budget-clean", budget: Budget{}, failed: 0, terminal: 10, want: false},
		{name: "zero-budget-first", budget: Budget{}, failed: 1, terminal: 1, want: true},
		{name: "unlimited", budget: Budget{Max: NoLimit, Percent: NoLimit}, failed: 100, terminal: 100, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.budget.Breached(tt.failed, tt.terminal); got != tt.want {
				t.Errorf("%+v.Breached(%d, %d) = %v; want %v", tt.budget, tt.failed, tt.terminal, got, tt.want)
			}
		})
	}
}

// TestBudgetBoundaries walks budget-1, budget and budget+1 for count and
// percent limits of several sizes.
func TestBudgetBoundaries(t *testing.T) {
	for _, max := range []int{0, 1, 2, 5, 100} {
		b := Budget{Max: max, Percent: NoLimit}
		for _, c := range []struct {
			failed int
			want   bool
		}{{max - 1, false}, {max, false}, {max + 1, true}} {
			if c.failed < 0 {
				continue
			}
			if got := b.Breached(c.failed, 1000); got != c.want {
				t.Errorf("max=%d: Breached(%d, 1000) = %v; want %v", max, c.failed, got, c.want)
			}
		}
	}
	for _, pct := range []float64{1, 5, 10, 12.5, 50} {
		for _, terminal := range []int{8, 40, 200, 1000} {
			b := Budget{Max: NoLimit, Percent: pct}
			limit := int(pct * float64(terminal) / 100) // exact for these values
			for _, c := range []struct {
				failed int
				want   bool
			}{{limit - 1, false}, {limit, false}, {limit + 1, true}} {
				if c.failed < 0 {
					continue
				}
				if got := b.Breached(c.failed, terminal); got != c.want {
					t.Errorf("percent=%v: Breached(%d, %d) = %v; want %v", pct, c.failed, terminal, got, c.want)
				}
			}
		}
	}
}

// TestBudgetAllowed checks that Allowed is the exact edge of Breached.
func TestBudgetAllowed(t *testing.T) {
	budgets := []Budget{
		{}, {Max: 3, Percent: NoLimit}, {Max: NoLimit, Percent: 10}, {Max: NoLimit, Percent: 10, MinSample: 5},
		{Max: 4, Percent: 25, MinSample: 8}, {Max: NoLimit, Percent: 33.33}, {Max: NoLimit, Percent: NoLimit},
		{Max: NoLimit, Percent: 100},
	}
	for _, b := range budgets {
		for terminal := 0; terminal <= 60; terminal++ {
			allowed := b.Allowed(terminal)
			for failed := 0; failed <= terminal; failed++ {
				want := allowed != NoLimit && failed > allowed
				if got := b.Breached(failed, terminal); got != want {
					t.Fatalf("%+v: Breached(%d, %d) = %v but Allowed(%d) = %d", b, failed, terminal, got, terminal, allowed)
				}
			}
		}
	}
}

func ExampleBudget_Breached() {
	// "max: 2" tolerates two failures and trips at the third.
	count := Budget{Max: 2, Percent: NoLimit}
	for failed := 1; failed <= 3; failed++ {
		fmt.Printf("max 2, %d failed: breached=%v\n", failed, count.Breached(failed, 40))
	}
	// "percent: 10%, minSample: 10": judged from the 10th terminal outcome.
	pct := Budget{Max: NoLimit, Percent: 10, MinSample: 10}
	fmt.Println("1 of 2 failed (50%, sample too small):", pct.Breached(1, 2))
	fmt.Println("1 of 10 failed (10%, reached):", pct.Breached(1, 10))
	fmt.Println("2 of 10 failed (20%, exceeded):", pct.Breached(2, 10))
	// Output:
	// max 2, 1 failed: breached=false
	// max 2, 2 failed: breached=false
	// max 2, 3 failed: breached=true
	// 1 of 2 failed (50%, sample too small): false
	// 1 of 10 failed (10%, reached): false
	// 2 of 10 failed (20%, exceeded): true
}
