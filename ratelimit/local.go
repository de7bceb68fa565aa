package ratelimit

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Local is the Limiter of the single-process mode: the same rules as Redis
// (window of floor(rate) grants per 1s+Guard, spacing of 1/rate, throttle
// back-off and recovery), kept in memory and timed by Config.Clock. Its
// methods are safe for concurrent use.
//
// It keeps a few hundred bytes per key for the life of the Local; keys are
// API budgets, of which a process has few.
type Local struct {
	cfg Config

	mu   sync.Mutex
	keys map[string]*localKey
}

// localKey is the state of one budget. Fields are guarded by Local.mu.
type localKey struct {
	// lim spaces grants (burst 1) at the effective rate.
	lim *rate.Limiter
	// at is the latest time passed to lim. x/time/rate keeps its token
	// count as of that time, so it must never be handed an earlier one.
	at time.Time
	// ring holds the last len(ring) grant times; ring[i] is the oldest
	// (zero until the ring has filled), the next to overwrite.
	ring []time.Time
	i    int
	// m is the rate multiplier set by the last Throttled, at mt (zero if
	// never); it recovers linearly from there.
	m  float64
	mt time.Time
}

// NewLocal returns an in-process limiter. It panics if cfg is invalid.
func NewLocal(cfg Config) *Local {
	return &Local{cfg: mustConfig(cfg), keys: make(map[string]*localKey)}
}

// Wait blocks until the caller may make one call under key at rate calls
// per second within this process, or ctx ends. See Limiter.Wait.
func (l *Local) Wait(ctx context.Context, key string, r float64) (time.Duration, error) {
	if err := checkRate(key, r); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return l.cfg.wait(ctx, key, l.cfg.Clock.Now, func(maxDelay time.Duration) (slot, error) {
		delay, ok := l.reserve(key, r, l.cfg.Clock.Now(), maxDelay)
		return slot{delay: delay, reserved: ok}, nil
	})
}

// reserve takes the next slot of key at now and returns the delay until
// it, or reports false (taking nothing) when that is more than maxDelay;
// maxDelay < 0 means unbounded.
func (l *Local) reserve(key string, r float64, now time.Time, maxDelay time.Duration) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.key(key)
	k.resize(window(r))

	// The earliest moment the window allows, never before lim's own time.
	t := now
	if k.at.After(t) {
		t = k.at
	}
	if oldest := k.ring[k.i]; !oldest.IsZero() {
		if w := oldest.Add(time.Second + l.cfg.Guard); w.After(t) {
			t = w
		}
	}

	lim := rate.Limit(r * multiplier(k.m, k.mt, now, l.cfg.Recovery))
	if k.lim.Limit() != lim {
		k.lim.SetLimitAt(t, lim)
	}
	// Look before reserving, so a caller that cannot wait takes nothing.
	slot := t
	if tokens := k.lim.TokensAt(t); tokens < 1 {
		slot = t.Add(time.Duration((1 - tokens) / float64(lim) * float64(time.Second)))
	}
	if maxDelay >= 0 && slot.Sub(now) > maxDelay {
		return slot.Sub(now), false
	}
	slot = t.Add(k.lim.ReserveN(t, 1).DelayFrom(t))
	k.at = t
	k.ring[k.i] = slot
	k.i = (k.i + 1) % len(k.ring)
	return slot.Sub(now), true
}

// Throttled lowers key's effective rate within this process. See
// Limiter.Throttled.
func (l *Local) Throttled(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.throttle(key, l.cfg.Clock.Now())
	return nil
}

// throttle applies a Throttled report at now and returns the multiplier
// after it.
func (l *Local) throttle(key string, now time.Time) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.key(key)
	m := multiplier(k.m, k.mt, now, l.cfg.Recovery)
	if !k.mt.IsZero() && now.Sub(k.mt) < l.cfg.Hold {
		return m // the same overload as the last report
	}
	k.m = max(l.cfg.Floor, m*l.cfg.Backoff)
	k.mt = now
	return k.m
}

// key returns the state of key, creating it. l.mu must be held.
func (l *Local) key(key string) *localKey {
	k := l.keys[key]
	if k == nil {
		// The limit is set on first use; burst 1 is what spaces grants.
		k = &localKey{lim: rate.NewLimiter(0, 1), ring: make([]time.Time, 1)}
		l.keys[key] = k
	}
	return k
}

// resize makes the ring hold n grants, keeping the most recent ones.
func (k *localKey) resize(n int) {
	if len(k.ring) == n {
		return
	}
	var recent []time.Time // oldest first
	for j := range k.ring {
		if g := k.ring[(k.i+j)%len(k.ring)]; !g.IsZero() {
			recent = append(recent, g)
		}
	}
	recent = recent[max(0, len(recent)-n):]
	k.ring = make([]time.Time, n)
	copy(k.ring, recent)
	k.i = len(recent) % n
}
