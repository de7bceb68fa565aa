package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/internal/redistest"
)

// BenchmarkBudget measures how much of a budget a saturated fleet uses and
// the busiest second it produces. One op is one grant, so ns/op is about
// 1/rate; the interesting numbers are the metrics:
//
//	used        grants / (rate * time from first to last grant)
//	worst_1s    most grants in any sliding one-second window (limit floor(rate))
//
// Run it for a few seconds so the windows mean something:
//
//	go test -run '^$' -bench Budget -benchtime 5s ./ratelimit/
//	FLEETRESET_TEST_REDIS=127.0.0.1:6379 go test -run '^$' -bench Budget -benchtime 5s ./ratelimit/
func BenchmarkBudget(b *testing.B) {
	for _, c := range []struct {
		backend string
		clients int // Redis clients, i.e. worker processes
		rate    float64
	}{
		{"redis", 1, 10},
		{"redis", 3, 10},
		{"redis", 1, 40},
		{"redis", 3, 40},
		{"local", 1, 10}, // baseline: x/time/rate in one process
		{"local", 1, 40},
	} {
		b.Run(fmt.Sprintf("%s/clients=%d/rate=%g", c.backend, c.clients, c.rate), func(b *testing.B) {
			var lims []Limiter
			if c.backend == "redis" {
				lims = newProcesses(b, redistest.New(b), c.clients, Config{})
			} else {
				lims = []Limiter{NewLocal(Config{})}
			}
			grants := benchFleet(b, lims, 4, c.rate)
			span := grants[len(grants)-1].Sub(grants[0])
			if len(grants) > 1 && span > 0 {
				b.ReportMetric(float64(len(grants)-1)/(c.rate*span.Seconds()), "used")
			}
			b.ReportMetric(float64(worstWindow(grants)), "worst_1s")
		})
	}
}

// benchFleet runs perLimiter waiters on each limiter and takes one grant
// per b.Loop iteration; it returns the grant times in order.
func benchFleet(b *testing.B, lims []Limiter, perLimiter int, rate float64) []time.Time {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	granted := make(chan time.Time)
	var wg sync.WaitGroup
	for _, l := range lims {
		for range perLimiter {
			wg.Go(func() {
				for {
					if _, err := l.Wait(ctx, "bench", rate); err != nil {
						if !errors.Is(err, context.Canceled) {
							b.Errorf("Wait = %v", err)
						}
						return
					}
					select {
					case granted <- time.Now():
					case <-ctx.Done():
						return
					}
				}
			})
		}
	}
	var grants []time.Time
	for b.Loop() {
		grants = append(grants, <-granted)
	}
	cancel()
	wg.Wait()
	// Senders race to the channel; order by the time Wait returned.
	slices.SortFunc(grants, time.Time.Compare)
	return grants
}
