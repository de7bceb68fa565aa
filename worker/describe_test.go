package worker

import (
	"testing"
	"time"
)

func TestPrecallSpacing(t *testing.T) {
	for _, tc := range []struct {
		concurrency int
		rate        float64
		want        time.Duration
	}{
		{20, 10, 500 * time.Millisecond}, // the API's limit: two describes a second at most
		{20, 40, 250 * time.Millisecond},
		{20, 1000, 10 * time.Millisecond},
		{10, 100, 50 * time.Millisecond},
		{20, 0, 500 * time.Millisecond},
	} {
		w := &Worker{cfg: Config{Concurrency: tc.concurrency}}
		if got := w.precallSpacing(tc.rate); got != tc.want {
			t.Errorf("precallSpacing(%d handlers, %v/s) = %v; want %v", tc.concurrency, tc.rate, got, tc.want)
		}
	}
}
