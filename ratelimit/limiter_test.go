package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// fleetDuration is how long each fleet test drives its limiters.
const fleetDuration = 3 * time.Second

// newProcesses returns n Redis limiters, each with its own go-redis client
// (its own connection pool), as n worker processes would have.
func newProcesses(t testing.TB, r *redistest.Redis, n int, cfg Config) []Limiter {
	t.Helper()
	cfg.Prefix = r.Prefix
	lims := make([]Limiter, n)
	for i := range lims {
		c := redis.NewClient(&redis.Options{Addr: r.Addr})
		t.Cleanup(func() { c.Close() })
		lims[i] = NewRedis(c, cfg)
	}
	return lims
}

// runFleet runs perLimiter goroutines on each limiter, all waiting on key at
// rate until dur has passed, and returns the times their Waits returned.
func runFleet(t testing.TB, lims []Limiter, perLimiter int, key string, rate float64, dur time.Duration) []time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var (
		mu     sync.Mutex
		grants []time.Time
		wg     sync.WaitGroup
	)
	for _, l := range lims {
		for range perLimiter {
			wg.Go(func() {
				for {
					if _, err := l.Wait(ctx, key, rate); err != nil {
						if !errors.Is(err, context.DeadlineExceeded) {
							t.Errorf("Wait(%s) = %v; want nil or a deadline error", key, err)
						}
						return
					}
					at := time.Now()
					mu.Lock()
					grants = append(grants, at)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	slices.SortFunc(grants, time.Time.Compare)
	return grants
}

// worstWindow returns the most grants (sorted) in any half-open one-second
// window, the unit the API counts in.
func worstWindow(grants []time.Time) int {
	worst, j := 0, 0
	for i := range grants {
		for grants[i].Sub(grants[j]) >= time.Second {
			j++
		}
		worst = max(worst, i-j+1)
	}
	return worst
}

// gaps returns the shortest and the median gap between consecutive
// (sorted) grants.
func gaps(grants []time.Time) (shortest, median time.Duration) {
	var gs []time.Duration
	for i := 1; i < len(grants); i++ {
		gs = append(gs, grants[i].Sub(grants[i-1]))
	}
	if len(gs) == 0 {
		return 0, 0
	}
	slices.Sort(gs)
	return gs[0], gs[len(gs)/2]
}

// checkFleet checks the guarantees on a fleet run's grants: never more
// than floor(rate) in a second, spaced rather than bursting, and at least
// 90% of rate*dur used. It returns what failed.
func checkFleet(t testing.TB, grants []time.Time, rate float64, dur time.Duration) (problems []string) {
	t.Helper()
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	used := float64(len(grants)) / (rate * dur.Seconds())
	worst := worstWindow(grants)
	shortest, median := gaps(grants)
	t.Logf("rate %v/s for %v: %d grants, used %.3f of the budget, worst 1s window %d, gaps: shortest %v, median %v",
		rate, dur, len(grants), used, worst, shortest, median)
	if worst > window(rate) {
		errorf("worst 1s window holds %d grants; want <= %d", worst, window(rate))
	}
	// Slots are 1/rate apart. Single wake-ups wander by a few ms (jitter,
	// Redis round trip, scheduling; more under -race), so the median shows
	// the spacing; a burst would pull it towards zero.
	if interval := time.Duration(float64(time.Second) / rate); median < interval*9/10 || median > interval*11/10 {
		errorf("median gap between grants = %v; want about %v (evenly spaced)", median, interval)
	}
	if used < 0.9 {
		errorf("%d grants in %v at %v/s = %.3f of the budget; want >= 0.9", len(grants), dur, rate, used)
	}
	return problems
}

// fail reports problems as errors of t.
func fail(t testing.TB, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Error(p)
	}
}

// realTime runs attempt, which measures the limiter on the wall clock, and
// reports its problems. Such measurements only mean something while the
// test process gets the CPU when its timers fire: a process starved by
// other load wakes late and bunches its grants, whatever the limiter did.
// So a ticker watches how late this process's timers run, and an attempt
// that failed while they ran more than half the guard late is retried
// once (attempt gets the try number, for fresh keys); a second starved
// failure is reported as such.
func realTime(t *testing.T, attempt func(try int) []string) {
	t.Helper()
	for try := 1; ; try++ {
		stop := watchTimers()
		problems := attempt(try)
		lateness := stop()
		starved := lateness > GuardDefault/2
		t.Logf("try %d: this process's timers ran up to %v late", try, lateness)
		if len(problems) == 0 {
			return
		}
		if !starved || try == 2 {
			fail(t, problems)
			if starved {
				t.Errorf("the test process was starved of CPU: its timers ran up to %v late (load from elsewhere?)", lateness)
			}
			return
		}
		t.Logf("try %d failed while the process was starved (timers up to %v late); retrying: %q", try, lateness, problems)
	}
}

// watchTimers starts measuring how late a 5ms ticker is delivered to this
// process; stop returns the worst lateness seen.
func watchTimers() (stop func() time.Duration) {
	const tick = 5 * time.Millisecond
	done := make(chan struct{})
	worst := make(chan time.Duration)
	go func() {
		tk := time.NewTicker(tick)
		defer tk.Stop()
		var most time.Duration
		last := time.Now()
		for {
			select {
			case <-done:
				worst <- most
				return
			case <-tk.C:
				// A late delivery shows as a longer gap since the last one.
				now := time.Now()
				most = max(most, now.Sub(last)-tick)
				last = now
			}
		}
	}()
	return func() time.Duration {
		close(done)
		return <-worst
	}
}

func TestFleetRedis(t *testing.T) {
	t.Parallel()
	for _, rate := range []float64{10, 40} {
		t.Run(rateName(rate), func(t *testing.T) {
			t.Parallel()
			r := redistest.New(t)
			lims := newProcesses(t, r, 3, Config{})
			realTime(t, func(try int) []string {
				key := Key("ResetInstance", "cvm.ap-guangzhou.tencentcloudapi.com", "AKIDtest"+strconv.Itoa(try))
				grants := runFleet(t, lims, 4, key, rate, fleetDuration)
				return checkFleet(t, grants, rate, fleetDuration)
			})
		})
	}
}

func TestFleetLocal(t *testing.T) {
	t.Parallel()
	for _, rate := range []float64{10, 40} {
		t.Run(rateName(rate), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := NewLocal(Config{})
				grants := runFleet(t, []Limiter{l}, 12, "k", rate, fleetDuration)
				fail(t, checkFleet(t, grants, rate, fleetDuration))
			})
		})
	}
}

func rateName(rate float64) string {
	return "rate=" + strconv.FormatFloat(rate, 'g', -1, 64)
}

// throttleGaps are mean gaps between grants before a throttle report,
// right after it, and once the rate has recovered.
type throttleGaps struct{ before, after, late time.Duration }

// throttleRate and throttleRecovery make the recovery from 0.5 take 2s.
const (
	throttleRate     = 20
	throttleRecovery = 0.25
)

// runThrottle has one sequential caller wait on wait while report, which
// may be another process, reports a throttle in the middle.
func runThrottle(t *testing.T, wait, report Limiter, key string) throttleGaps {
	t.Helper()
	ctx := context.Background()
	var before []time.Time
	for range 6 {
		if _, err := wait.Wait(ctx, key, throttleRate); err != nil {
			t.Fatal(err)
		}
		before = append(before, time.Now())
	}
	// Two workers see the same overload; Hold makes it one back-off.
	for range 2 {
		if err := report.Throttled(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	reported := time.Now()
	var after, late []time.Time
	for time.Since(reported) < 2600*time.Millisecond {
		if _, err := wait.Wait(ctx, key, throttleRate); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		switch {
		case len(after) < 4:
			after = append(after, now)
		case now.Sub(reported) > 2200*time.Millisecond:
			late = append(late, now)
		}
	}
	// The first gap after the report is from the last grant before it.
	after = append([]time.Time{before[len(before)-1]}, after...)
	return throttleGaps{meanGap(before), meanGap(after), meanGap(late)}
}

// meanGap returns the mean gap between grants, or 0 with fewer than two.
func meanGap(ts []time.Time) time.Duration {
	if len(ts) < 2 {
		return 0 // checkThrottle reports it as out of range
	}
	return ts[len(ts)-1].Sub(ts[0]) / time.Duration(len(ts)-1)
}

// checkThrottle asserts that spacing roughly doubled right after the
// report, not quadrupled (the second report is inside Hold), and was back
// to normal once recovered. slack widens the bounds for real-time runs.
// It returns what failed.
func checkThrottle(t *testing.T, g throttleGaps, slack time.Duration) (problems []string) {
	t.Helper()
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	t.Logf("mean gaps: before %v, right after the report %v, after recovery %v", g.before, g.after, g.late)
	nominal := time.Second / throttleRate
	// Right after: 0.5 recovering at 0.25/s, so about 2x nominal, falling.
	if g.after < nominal*17/10-slack || g.after > nominal*21/10+slack {
		errorf("mean gap right after the report = %v; want about %v", g.after, 2*nominal)
	}
	for _, c := range []struct {
		name string
		got  time.Duration
	}{{"before the report", g.before}, {"after recovery", g.late}} {
		// The guard stretches every 20th gap by 20ms: 51ms on average.
		if c.got < nominal-slack || c.got > nominal*21/20+slack {
			errorf("mean gap %s = %v; want about %v", c.name, c.got, nominal)
		}
	}
	return problems
}

func TestThrottledRedis(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	procs := newProcesses(t, r, 2, Config{Recovery: throttleRecovery})
	realTime(t, func(try int) []string {
		return checkThrottle(t, runThrottle(t, procs[0], procs[1], "throttled"+strconv.Itoa(try)), 8*time.Millisecond)
	})
}

func TestThrottledLocal(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := NewLocal(Config{Recovery: throttleRecovery})
		fail(t, checkThrottle(t, runThrottle(t, l, l, "throttled"), 2*time.Millisecond))
	})
}

// TestWaitCtx checks that Wait gives up promptly with ctx's error, and that
// a Wait refused for its deadline leaves the slot to the next caller.
func TestWaitCtx(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	for _, tc := range []struct {
		name string
		new  func() Limiter
		// bubble runs the Local case under synctest: fake time, exact bounds.
		bubble bool
	}{
		{name: "redis", new: func() Limiter { return NewRedis(r.Client, Config{Prefix: r.Prefix}) }},
		{name: "local", new: func() Limiter { return NewLocal(Config{}) }, bubble: true},
	} {
		run := func(t *testing.T, f func(t *testing.T)) { t.Parallel(); f(t) }
		if tc.bubble {
			run = func(t *testing.T, f func(t *testing.T)) { t.Parallel(); synctest.Test(t, f) }
		}
		t.Run(tc.name+"/cancel_while_sleeping", func(t *testing.T) {
			run(t, func(t *testing.T) {
				l := tc.new()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if _, err := l.Wait(ctx, "cancel", 1); err != nil {
					t.Fatal(err)
				}
				// The next slot is a second away; cancel a tenth of the way.
				stop := time.AfterFunc(100*time.Millisecond, cancel)
				defer stop.Stop()
				start := time.Now()
				waited, err := l.Wait(ctx, "cancel", 1)
				elapsed := time.Since(start)
				if !errors.Is(err, context.Canceled) || err != ctx.Err() {
					t.Errorf("Wait after cancel = %v; want ctx.Err() %v", err, ctx.Err())
				}
				if elapsed < 100*time.Millisecond || elapsed > 300*time.Millisecond {
					t.Errorf("Wait returned after %v (waited %v); want soon after the cancel at 100ms", elapsed, waited)
				}
			})
		})
		t.Run(tc.name+"/already_done", func(t *testing.T) {
			run(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				l := tc.new()
				if _, err := l.Wait(ctx, "done", 1); err != context.Canceled {
					t.Errorf("Wait(cancelled ctx) = %v; want %v", err, context.Canceled)
				}
				if err := l.Throttled(ctx, "done"); err != context.Canceled {
					t.Errorf("Throttled(cancelled ctx) = %v; want %v", err, context.Canceled)
				}
			})
		})
		t.Run(tc.name+"/slot_past_deadline", func(t *testing.T) {
			run(t, func(t *testing.T) {
				l := tc.new()
				ctx := context.Background()
				if _, err := l.Wait(ctx, "deadline", 2); err != nil {
					t.Fatal(err)
				}
				// The next slot is 500ms away; this caller can wait 100ms.
				short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
				start := time.Now()
				if _, err := l.Wait(short, "deadline", 2); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Wait(100ms deadline) = %v; want an error wrapping %v", err, context.DeadlineExceeded)
				}
				if elapsed := time.Since(start); elapsed > 50*time.Millisecond {
					t.Errorf("Wait(100ms deadline) returned after %v; want at once", elapsed)
				}
				// The refused caller took nothing: the next gets the 500ms slot.
				waited, err := l.Wait(ctx, "deadline", 2)
				if err != nil || waited > 520*time.Millisecond {
					t.Errorf("Wait after a refusal = %v, %v; want <= 500ms (plus jitter), nil", waited, err)
				}
			})
		})
	}
}

func TestWaitBadRate(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	for _, l := range []Limiter{NewRedis(r.Client, Config{Prefix: r.Prefix}), NewLocal(Config{})} {
		for _, rate := range []float64{0, -1, MaxRate + 1} {
			if _, err := l.Wait(context.Background(), "k", rate); err == nil {
				t.Errorf("%T.Wait(rate %v) = nil; want an error", l, rate)
			}
		}
	}
}
