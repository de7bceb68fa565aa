package ratelimit

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fleetreset/fleetreset/internal/redistest"
)

// base is the origin of the scripted clocks: a realistic Unix time with odd
// microseconds, so a script that lost precision storing it would show.
var base = time.Date(2026, 11, 27, 4, 30, 0, 123457000, time.UTC)

// clocked is a limiter whose clock the test sets on every call.
type clocked interface {
	reserveAt(t *testing.T, key string, rate float64, now time.Time, maxDelay time.Duration) (time.Duration, bool)
	throttleAt(t *testing.T, key string, now time.Time) float64
}

type clockedRedis struct{ l *Redis }

func (c clockedRedis) reserveAt(t *testing.T, key string, rate float64, now time.Time, maxDelay time.Duration) (time.Duration, bool) {
	t.Helper()
	g, err := c.l.reserve(context.Background(), key, rate, maxDelay, now.UnixMicro())
	if err != nil {
		t.Fatalf("reserve(%s, %v) = %v", key, rate, err)
	}
	return g.delay, g.reserved
}

func (c clockedRedis) throttleAt(t *testing.T, key string, now time.Time) float64 {
	t.Helper()
	m, err := c.l.throttle(context.Background(), key, now.UnixMicro())
	if err != nil {
		t.Fatalf("throttle(%s) = %v", key, err)
	}
	return m
}

type clockedLocal struct{ l *Local }

func (c clockedLocal) reserveAt(t *testing.T, key string, rate float64, now time.Time, maxDelay time.Duration) (time.Duration, bool) {
	return c.l.reserve(key, rate, now, maxDelay)
}

func (c clockedLocal) throttleAt(t *testing.T, key string, now time.Time) float64 {
	return c.l.throttle(key, now)
}

// step is one call in a rules case: at ms after base, either a throttle
// report (want: multiplier) or a reservation (want: delay in ms, or -1 for
// "refused because beyond maxMS").
type step struct {
	at       float64 // ms after base
	throttle bool
	rate     float64
	maxMS    float64 // longest acceptable delay, ms; 0 means unbounded
	want     float64
}

// w is a reservation of rate at at ms, expected to be due after want ms.
func w(at, rate, want float64) step { return step{at: at, rate: rate, want: want} }

// th is a throttle report at at ms, expected to leave multiplier want.
func th(at, want float64) step { return step{at: at, throttle: true, want: want} }

// rulesCases pin the scheduling rules exactly, with the clock in the
// test's hands. Guard is the default 20ms.
var rulesCases = []struct {
	name  string
	cfg   Config
	steps []step
	local bool // Local is expected to agree exactly (x/time/rate converts queued debt differently after a rate change)
}{
	{
		name:  "queue_spaced_then_window",
		local: true,
		steps: []step{ // ten queued at once at 10/s: 100ms apart; the 11th waits for the 1st + 1.02s
			w(0, 10, 0), w(0, 10, 100), w(0, 10, 200), w(0, 10, 300), w(0, 10, 400),
			w(0, 10, 500), w(0, 10, 600), w(0, 10, 700), w(0, 10, 800), w(0, 10, 900),
			w(0, 10, 1020), w(0, 10, 1120), w(0, 10, 1220),
		},
	},
	{
		name:  "fractional_rate_window_is_floor",
		local: true,
		steps: []step{ // 2.5/s: spacing 400ms, but at most 2 per 1.02s
			w(0, 2.5, 0), w(0, 2.5, 400), w(0, 2.5, 1020), w(0, 2.5, 1420), w(0, 2.5, 2040),
		},
	},
	{
		name:  "rate_below_one",
		local: true,
		steps: []step{w(0, 0.5, 0), w(0, 0.5, 2000), w(100, 0.5, 3900)},
	},
	{
		name:  "idle_resets_burst_1",
		local: true,
		steps: []step{ // after an idle gap the next call goes at once, the one after is spaced again
			w(0, 10, 0), w(50, 10, 50), w(5000, 10, 0), w(5000, 10, 100), w(5150, 10, 50),
		},
	},
	{
		name:  "late_arrivals_not_delayed",
		local: true,
		steps: []step{w(0, 40, 0), w(30, 40, 0), w(31, 40, 24), w(80, 40, 0)},
	},
	{
		name:  "refused_past_max_takes_nothing",
		local: true,
		steps: []step{
			w(0, 2, 0),
			{at: 0, rate: 2, maxMS: 100, want: -1},   // due in 500ms, caller can wait 100ms
			w(0, 2, 500),                             // so the slot is still free
			{at: 10, rate: 2, maxMS: 1009, want: -1}, // window: the 2nd most recent (0) + 1.02s
			{at: 10, rate: 2, maxMS: 1010, want: 1010},
		},
	},
	{
		name:  "throttle_halves_then_recovers",
		local: true,
		steps: []step{
			w(0, 10, 0),
			th(500, 0.5),
			w(500, 10, 0), w(500, 10, 200), w(500, 10, 400), // 5/s
			th(700, 0.52),                    // within Hold of the last report: ignored (0.5 recovered for 0.2s)
			w(3500, 10, 0), w(3500, 10, 125), // 0.5 + 3s*0.1 = 0.8: 8/s
			w(8000, 10, 0), w(8000, 10, 100), // fully recovered
		},
	},
	{
		name: "throttle_floor",
		cfg:  Config{Backoff: 0.25, Hold: time.Millisecond, Recovery: 1e-9},
		steps: []step{
			th(0, 0.25), th(10, 0.1), th(20, 0.1),
			w(30, 10, 0), w(30, 10, 1000), // 10% of 10/s
		},
		local: true,
	},
	{
		name: "throttle_with_queue",
		steps: []step{ // the slot already handed out stays; the next is spaced at the new rate
			w(0, 10, 0), w(0, 10, 100),
			th(10, 0.5),
			w(10, 10, 290),
		},
	},
	{
		name:  "rate_change_keeps_recent_grants",
		local: true,
		steps: []step{
			w(0, 4, 0), w(0, 4, 250), w(0, 4, 500),
			w(700, 2, 570), // window 2: the 2nd most recent (250) + 1020 = 1270
			w(700, 5, 770), // window 5 not full; spaced 200ms after 1270
		},
	},
}

func TestRulesRedis(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	for _, tc := range rulesCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Prefix = r.Prefix
			runRules(t, clockedRedis{NewRedis(r.Client, cfg)}, tc.steps, time.Microsecond)
		})
	}
}

func TestRulesLocal(t *testing.T) {
	t.Parallel()
	for _, tc := range rulesCases {
		if !tc.local {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			runRules(t, clockedLocal{NewLocal(tc.cfg)}, tc.steps, time.Microsecond)
		})
	}
}

// runRules plays steps against l on one fresh key and compares results
// within tol (the Redis script rounds slots up to whole microseconds).
func runRules(t *testing.T, l clocked, steps []step, tol time.Duration) {
	t.Helper()
	key := t.Name()
	for i, s := range steps {
		now := base.Add(ms(s.at))
		if s.throttle {
			if got := l.throttleAt(t, key, now); math.Abs(got-s.want) > 1e-6 {
				t.Errorf("step %d: throttle at %vms: multiplier = %v; want %v", i, s.at, got, s.want)
			}
			continue
		}
		maxDelay := time.Duration(-1)
		if s.maxMS > 0 {
			maxDelay = ms(s.maxMS)
		}
		got, ok := l.reserveAt(t, key, s.rate, now, maxDelay)
		switch {
		case s.want < 0 && ok:
			t.Errorf("step %d: reserve at %vms: granted in %v; want refused", i, s.at, got)
		case s.want >= 0 && !ok:
			t.Errorf("step %d: reserve at %vms: refused (%v); want %vms", i, s.at, got, s.want)
		case s.want >= 0 && (got-ms(s.want)).Abs() > tol:
			t.Errorf("step %d: reserve at %vms: delay = %v; want %vms", i, s.at, got, s.want)
		}
	}
}

// ms converts milliseconds to a Duration, rounding to the microsecond the
// script works in.
func ms(v float64) time.Duration {
	return time.Duration(math.Round(v*1000)) * time.Microsecond
}

// TestRedisKeyExpires checks that a budget's key carries a TTL covering
// what still matters in it, and nothing else under the prefix.
func TestRedisKeyExpires(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	l := NewRedis(r.Client, Config{Prefix: r.Prefix})
	ctx := context.Background()
	if _, err := l.Wait(ctx, "k", 10); err != nil {
		t.Fatal(err)
	}
	if err := l.Throttled(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	keys, err := r.Client.Keys(ctx, r.Prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := r.Prefix + "rl:{k}"; len(keys) != 1 || keys[0] != want {
		t.Fatalf("keys = %q; want [%q]", keys, want)
	}
	ttl, err := r.Client.PTTL(ctx, keys[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	// Recovery from 0.5 at 0.1/s takes 5s, plus Hold and a second's margin.
	if ttl < 5*time.Second || ttl > 8*time.Second {
		t.Errorf("PTTL(%s) = %v; want 5s..8s", keys[0], ttl)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the panic; "" means valid
	}{
		{name: "zero", cfg: Config{}},
		{name: "no_guard_no_jitter", cfg: Config{Guard: -1, Jitter: -1}},
		{name: "small_guard_scales_jitter", cfg: Config{Guard: time.Millisecond}},
		{name: "jitter_over_guard", cfg: Config{Jitter: 30 * time.Millisecond}, want: "Config.Jitter"},
		{name: "backoff_one", cfg: Config{Backoff: 1}, want: "Config.Backoff"},
		{name: "floor_over_one", cfg: Config{Floor: 1.5}, want: "Config.Floor"},
		{name: "recovery_negative", cfg: Config{Recovery: -1}, want: "Config.Recovery"},
		{name: "hold_negative", cfg: Config{Hold: -time.Second}, want: "Config.Hold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			func() {
				defer func() {
					if p := recover(); p != nil {
						got = fmt.Sprint(p)
					}
				}()
				NewLocal(tc.cfg)
			}()
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("NewLocal(%+v) panic = %q; want %q", tc.cfg, got, tc.want)
			}
		})
	}
}

// TestWaitStaleSlot checks that wait aims at the slot despite a late reply,
// and that a wake-up more than Guard/2 after the slot abandons it and
// reserves again, giving up doing so after staleRetries.
func TestWaitStaleSlot(t *testing.T) {
	type attempt struct {
		delay, behind time.Duration // the reservation
		pause         time.Duration // how long the process stalls while it sleeps
	}
	const ms = time.Millisecond
	for _, tc := range []struct {
		name     string
		guard    time.Duration
		attempts []attempt // the last repeats
		reserves int
	}{
		{name: "on_time", attempts: []attempt{{delay: 100 * ms}}, reserves: 1},
		{name: "stall_within_half_guard", attempts: []attempt{{delay: 100 * ms, pause: 10 * ms}}, reserves: 1},
		{name: "stall_once", attempts: []attempt{{pause: 11 * ms}, {}}, reserves: 2},
		{name: "stall_long", attempts: []attempt{{delay: 50 * ms, pause: 5 * time.Second}, {delay: 100 * ms}}, reserves: 2},
		{name: "always_stalls", attempts: []attempt{{pause: time.Second}}, reserves: staleRetries + 1},
		{name: "late_reply_compensated", attempts: []attempt{{delay: 100 * ms, behind: 90 * ms}}, reserves: 1},
		{name: "late_reply_within_half_guard", attempts: []attempt{{delay: 5 * ms, behind: 15 * ms}}, reserves: 1},
		{name: "late_reply_past_slot", attempts: []attempt{{delay: 5 * ms, behind: 16 * ms}, {}}, reserves: 2},
		{name: "no_guard_no_check", guard: -1, attempts: []attempt{{pause: time.Second}}, reserves: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := Config{Guard: tc.guard, Jitter: -1}.withDefaults()
				// A clock of its own, so the test decides how late a
				// wake-up is: between going to sleep and waking it moves by
				// the sleep (zero if the slot has passed) plus the stall.
				var (
					clock    = base
					reserves int
					cur      attempt
					reads    int
				)
				now := func() time.Time {
					reads++
					if reads == 2 { // 1: going to sleep, 2: waking
						clock = clock.Add(max(0, cur.delay-cur.behind) + cur.pause)
					}
					return clock
				}
				reserve := func(time.Duration) (slot, error) {
					cur = tc.attempts[min(reserves, len(tc.attempts)-1)]
					reserves++
					reads = 0
					return slot{delay: cur.delay, behind: cur.behind, reserved: true}, nil
				}
				if _, err := cfg.wait(context.Background(), "k", now, reserve); err != nil {
					t.Fatalf("wait = %v", err)
				}
				if reserves != tc.reserves {
					t.Errorf("wait reserved %d slots; want %d", reserves, tc.reserves)
				}
			})
		})
	}
}

func TestOffsetsUsual(t *testing.T) {
	var o offsets
	for i, tc := range []struct{ add, want int64 }{
		{add: 500, want: 500},
		{add: 300, want: 300},
		{add: 9000, want: 300}, // a late reply: 8.7ms behind the usual
		{add: 400, want: 300},
	} {
		if got := o.add(tc.add); got != tc.want {
			t.Errorf("add #%d (%d) = %d; want %d", i, tc.add, got, tc.want)
		}
	}
	// The usual follows a lasting change once the old samples are gone.
	for range len(o.v) {
		o.add(2000)
	}
	if got := o.add(2100); got != 2000 {
		t.Errorf("after %d samples of 2000, add(2100) = %d; want 2000", len(o.v), got)
	}
}
