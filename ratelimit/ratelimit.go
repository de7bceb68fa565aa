package ratelimit

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/internal/clock"
)

// Limiter paces calls under named budgets. Implementations are safe for
// concurrent use.
type Limiter interface {
	// Wait blocks until the caller may make one call under key at rate
	// calls per second, counting every caller that shares the limiter's
	// state, or until ctx ends. It returns how long it waited. On error no
	// call may be made; the error is ctx.Err() when ctx ended while waiting,
	// and wraps context.DeadlineExceeded when the next slot lies beyond ctx's
	// deadline (then Wait returns at once without using up a slot). A caller
	// woken too late for its slot silently takes a later one (Config.Guard).
	//
	// Every caller of one key must pass the same rate.
	Wait(ctx context.Context, key string, rate float64) (waited time.Duration, err error)

	// Throttled reports that the API answered a call under key with
	// RequestLimitExceeded. The effective rate of key drops for every caller
	// and then recovers gradually; see Config.Backoff and Config.Recovery.
	// Slots reserved before the report keep their times; the ones after
	// them are spaced at the lowered rate.
	Throttled(ctx context.Context, key string) error
}

// Defaults for the zero values of Config fields.
const (
	// PrefixDefault is the default Config.Prefix.
	PrefixDefault = "fleetreset:"
	// GuardDefault is the default Config.Guard.
	GuardDefault = 20 * time.Millisecond
	// JitterDefault is the default Config.Jitter.
	JitterDefault = 2 * time.Millisecond
	// BackoffDefault is the default Config.Backoff.
	BackoffDefault = 0.5
	// FloorDefault is the default Config.Floor.
	FloorDefault = 0.1
	// RecoveryDefault is the default Config.Recovery.
	RecoveryDefault = 0.1
	// HoldDefault is the default Config.Hold.
	HoldDefault = time.Second
)

// MaxRate is the highest rate Wait accepts, in calls per second. Both
// implementations keep the last floor(rate) grant times per key, so the
// bound keeps that history small; the CVM API's limits are far below it.
const MaxRate = 1000

// Config configures a Redis or Local limiter. The zero value of every field
// means its default.
type Config struct {
	// Prefix starts every Redis key the limiter writes; keys are
	// Prefix + "rl:{" + key + "}" (one hash tag per budget). Not used by Local.
	//
	// Defaults to PrefixDefault.
	Prefix string

	// Guard is added to the one-second window: a grant needs the
	// floor(rate)-th most recent grant to be at least 1s+Guard old. It must
	// cover the variation in delay between a grant and the call's arrival at
	// the API (Redis reply, timer lateness, Jitter, network); the price is a
	// steady-state throughput of 1s/(1s+Guard) of the rate. Wait spends
	// half of it itself: a caller that wakes more than Guard/2 after its
	// slot (a starved or paused process) gives the slot up and queues
	// again. Negative means no guard and no such check.
	//
	// Defaults to GuardDefault (20ms, so 98% of the rate).
	Guard time.Duration

	// Jitter is the upper bound of a random delay added to every sleep, so
	// that processes woken for adjacent slots do not hit the API in
	// lockstep. It eats into Guard, so it must be smaller. Negative disables
	// it.
	//
	// Defaults to JitterDefault, or Guard/4 if that is smaller.
	Jitter time.Duration

	// Backoff multiplies a key's effective rate on each Throttled report.
	// It must be in (0, 1).
	//
	// Defaults to BackoffDefault (halve the rate).
	Backoff float64

	// Floor is the lowest fraction of the rate that Throttled reports can
	// push a key down to. It must be in (0, 1].
	//
	// Defaults to FloorDefault (10% of the rate).
	Floor float64

	// Recovery is the fraction of the rate regained per second after the
	// last Throttled report, until the full rate is back (additive
	// increase). It must be positive.
	//
	// Defaults to RecoveryDefault (+10% of the rate per second).
	Recovery float64

	// Hold is how long after a Throttled report further reports for the
	// same key are ignored. The API counts per second and many workers
	// learn of one overload at once; Hold makes them back off once, not
	// once per worker.
	//
	// Defaults to HoldDefault.
	Hold time.Duration

	// Clock tells the time for Local. Redis ignores it: it schedules on the
	// Redis server's clock and times its sleeps on the wall clock. Local
	// sleeps on real timers, so a Clock other than the wall clock
	// must move with them (as time does inside a testing/synctest bubble).
	//
	// Defaults to the wall clock.
	Clock clock.Clock
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	c.Prefix = cmp.Or(c.Prefix, PrefixDefault)
	c.Guard = max(0, cmp.Or(c.Guard, GuardDefault))
	c.Jitter = max(0, cmp.Or(c.Jitter, min(JitterDefault, c.Guard/4)))
	c.Backoff = cmp.Or(c.Backoff, BackoffDefault)
	c.Floor = cmp.Or(c.Floor, FloorDefault)
	c.Recovery = cmp.Or(c.Recovery, RecoveryDefault)
	c.Hold = cmp.Or(c.Hold, HoldDefault)
	c.Clock = clock.Or(c.Clock)
	return c
}

// validate reports the first field of a defaulted Config that is out of range.
func (c Config) validate() error {
	switch {
	case c.Jitter > 0 && c.Jitter >= c.Guard:
		return fmt.Errorf("ratelimit: Config.Jitter %v: must be below Config.Guard %v", c.Jitter, c.Guard)
	case !(c.Backoff > 0 && c.Backoff < 1):
		return fmt.Errorf("ratelimit: Config.Backoff %v: must be in (0, 1)", c.Backoff)
	case !(c.Floor > 0 && c.Floor <= 1):
		return fmt.Errorf("ratelimit: Config.Floor %v: must be in (0, 1]", c.Floor)
	case !(c.Recovery > 0) || math.IsInf(c.Recovery, 0):
		return fmt.Errorf("ratelimit: Config.Recovery %v: must be positive and finite", c.Recovery)
	case c.Hold < 0:
		return fmt.Errorf("ratelimit: Config.Hold %v: must not be negative", c.Hold)
	}
	return nil
}

// mustConfig fills defaults and panics on an invalid Config: a bad Config
// is a programmer error, and the constructors have no error result.
func mustConfig(c Config) Config {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		panic(err)
	}
	return c
}

// checkRate rejects rates the limiters cannot honour.
func checkRate(key string, rate float64) error {
	if !(rate > 0 && rate <= MaxRate) {
		return fmt.Errorf("ratelimit: %s: rate %v: must be in (0, %d]", key, rate, MaxRate)
	}
	return nil
}

// window returns how many grants a one-second window may hold at rate.
func window(rate float64) int {
	return max(1, int(math.Floor(rate)))
}

// errPastDeadline is returned by Wait when the next slot is beyond ctx's
// deadline.
func errPastDeadline(key string, delay time.Duration) error {
	return fmt.Errorf("ratelimit: %s: next slot in %v is past the context deadline: %w",
		key, delay.Round(time.Millisecond), context.DeadlineExceeded)
}

// staleRetries is how many stale slots wait gives up in a row before it
// lets the call go anyway. A process that wakes late every time is late by
// about the same amount for each call, which shifts its calls rather than
// bunching them; giving up slots for ever would starve it.
const staleRetries = 3

// slot is a reservation as wait sees it.
type slot struct {
	// delay is from the reserving clock's now until the slot.
	delay time.Duration
	// reserved is false when delay exceeded the caller's limit; nothing
	// was taken.
	reserved bool
	// behind is how much of delay had already passed, unseen, when reserve
	// returned: for Redis, how much longer than usual the reply took to
	// come back after the script ran.
	behind time.Duration
}

// reserveFunc takes the next slot of a budget unless it is more than
// maxDelay away (maxDelay < 0: unbounded).
type reserveFunc func(maxDelay time.Duration) (slot, error)

// wait is Limiter.Wait around an implementation's reserve: reserve a slot,
// sleep until it, and make sure the caller is not let go late.
//
// A process starved of CPU (or paused, or whose Redis reply was held up)
// can wake long after its slot. Its call would then arrive next to calls
// granted after it, and a second at the API could hold more than
// floor(rate) of them. So wait aims at the slot itself (subtracting a late
// reply's extra latency from the sleep), and when it still wakes more than
// Guard/2 after the slot, it abandons the slot (the budget loses one, and
// is never exceeded) and reserves again.
func (c Config) wait(ctx context.Context, key string, now func() time.Time, reserve reserveFunc) (time.Duration, error) {
	start := now()
	for stale := 0; ; stale++ {
		maxDelay := time.Duration(-1)
		if dl, ok := ctx.Deadline(); ok {
			// The deadline is on the wall clock; compare durations, not times.
			maxDelay = max(0, time.Until(dl))
		}
		s, err := reserve(maxDelay)
		if err != nil {
			return now().Sub(start), err
		}
		if !s.reserved {
			return now().Sub(start), errPastDeadline(key, s.delay)
		}
		// d < 0 means the slot has passed already.
		d := s.delay - s.behind
		if c.Jitter > 0 {
			// Only ever later than the slot: earlier would break the window.
			d += rand.N(c.Jitter)
		}
		wake := now().Add(d)
		if err := sleep(ctx, d); err != nil {
			return now().Sub(start), err
		}
		late := now().Sub(wake)
		if c.Guard == 0 || late <= c.Guard/2 || stale == staleRetries {
			return now().Sub(start), nil
		}
	}
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// multiplier is the effective fraction of the rate at now, for a key last
// throttled down to m at time at (zero if never), regaining recovery per
// second.
func multiplier(m float64, at, now time.Time, recovery float64) float64 {
	if at.IsZero() {
		return 1
	}
	return min(1, m+recovery*max(0, now.Sub(at).Seconds()))
}

// AccountKey names the budget of one API action for one account target:
// the endpoint as given (empty means the API's default host, written
// "default"), the region, and the credential identity (a static key's
// SecretID, or "role:<name>" for a CVM role: stable when temporary
// credentials rotate). Every process that calls the API with the same
// target builds the same key, so they share one budget. The identity is
// hashed (see Key).
func AccountKey(action, endpoint, region, identity string) string {
	if endpoint == "" {
		endpoint = "default"
	}
	return Key(action, endpoint+"|"+region, identity)
}

// Key names the budget of one API action in one region endpoint for one
// credential, e.g. Key("ResetInstance", "cvm.ap-guangzhou.tencentcloudapi.com",
// secretID). The credential ID is hashed so that it never reaches Redis in
// clear text; the endpoint is compared case-insensitively.
func Key(action, endpoint, credentialID string) string {
	sum := sha256.Sum256([]byte(credentialID))
	// 64 bits tell credentials apart; the key stays short.
	return action + ":" + strings.ToLower(strings.TrimSpace(endpoint)) + ":" + hex.EncodeToString(sum[:8])
}
