package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// grantScript reserves the next slot of one budget and returns how long the
// caller must sleep until it.
//
// Clock: Redis TIME, read inside the script, unless ARGV[5] overrides it
// (tests only). Every process thus measures slots on the one clock of the
// Redis server, immune to skew between worker hosts; callers only ever see
// a delay relative to that clock, never an absolute time.
//
// Rules, for N = max(1, floor(rate)) and m the throttle multiplier:
//   - window: a grant needs the N-th most recent grant to be at least
//     1s + guard old, so no sliding second holds more than N grants;
//   - spacing (GCRA, burst 1): a grant is at least 1/(rate*m) after the
//     previous one, so the budget is used evenly rather than in bursts.
//
// The slot is written before the caller sleeps, so concurrent callers queue
// in order without retrying; an unused slot is simply wasted.
//
// KEYS[1] the budget's hash, Prefix.."rl:{"..key.."}", with fields
//
//	n      ring size N
//	i      ring index of the oldest of the last N grants, i.e. the next to
//	       overwrite; that field is absent while fewer than N grants exist
//	g<j>   a grant (slot) time in µs on the Redis clock, 0 <= j < N
//	last   the most recent grant, µs
//	m, mt  written by throttleScript: multiplier and when it was set, µs
//
// ARGV[1] rate, calls per second (0 < rate <= MaxRate)
// ARGV[2] guard, µs
// ARGV[3] longest delay the caller can wait, µs; negative means unbounded
// ARGV[4] recovery: multiplier regained per second after a throttle
// ARGV[5] now in µs, or "" to read Redis TIME
//
// Returns {delay, reserved, multiplier, now}: delay in µs from now until the
// slot; reserved is 1, or 0 when delay exceeds ARGV[3] (nothing was
// written); multiplier is the effective fraction of the rate in millionths;
// now is the script's clock in µs (callers track their reply latency by it).
var grantScript = redis.NewScript(`
-- Redis < 5 refuses writes after TIME unless effects are replicated; from
-- 7.0 on this is a no-op.
if redis.replicate_commands then redis.replicate_commands() end
local now
if ARGV[5] ~= '' then
  now = tonumber(ARGV[5])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local rate = tonumber(ARGV[1])
local guard = tonumber(ARGV[2])
local maxdelay = tonumber(ARGV[3])
local recovery = tonumber(ARGV[4])
local n = math.max(1, math.floor(rate))

local st = redis.call('HMGET', KEYS[1], 'n', 'i', 'last', 'm', 'mt')
local m = 1
if st[4] then
  m = math.min(1, tonumber(st[4]) + recovery * math.max(0, now - tonumber(st[5])) / 1000000)
end
local i = tonumber(st[2]) or 0

-- The rate, and so N, changed: rebuild the ring from the most recent grants.
local oldn = tonumber(st[1])
if oldn and oldn ~= n then
  local fields = {}
  for j = 0, oldn - 1 do fields[#fields + 1] = 'g' .. j end
  local vals = redis.call('HMGET', KEYS[1], unpack(fields))
  local g = {}
  for j = 0, oldn - 1 do
    -- oldest first: from index i round the ring; absent fields are skipped
    local v = vals[(i + j) % oldn + 1]
    if v then g[#g + 1] = v end
  end
  redis.call('HDEL', KEYS[1], unpack(fields))
  local keep = math.min(#g, n)
  local args = {}
  for j = 1, keep do
    args[#args + 1] = 'g' .. (j - 1)
    args[#args + 1] = g[#g - keep + j]
  end
  if keep > 0 then redis.call('HSET', KEYS[1], unpack(args)) end
  i = keep % n
end

local interval = 1000000 / (rate * m)
local slot = now
if st[3] then slot = math.max(slot, tonumber(st[3]) + interval) end
local oldest = redis.call('HGET', KEYS[1], 'g' .. i)
if oldest then slot = math.max(slot, tonumber(oldest) + 1000000 + guard) end
slot = math.ceil(slot)
local delay = slot - now
if maxdelay >= 0 and delay > maxdelay then
  return {delay, 0, math.floor(m * 1000000), now}
end

-- '%.0f': tostring would print 14 significant digits and lose microseconds.
local s = string.format('%.0f', slot)
redis.call('HSET', KEYS[1], 'n', n, 'i', (i + 1) % n, 'g' .. i, s, 'last', s)
-- Keep the key while anything in it still matters: the window and the
-- spacing after the last slot, and the recovery from a throttle.
local keep = delay + math.max(1000000 + guard, interval) + (1 - m) / recovery * 1000000 + 1000000
redis.call('PEXPIRE', KEYS[1], math.ceil(keep / 1000))
return {delay, 1, math.floor(m * 1000000), now}
`)

// throttleScript lowers the rate multiplier of one budget after the API
// answered RequestLimitExceeded. Clock: as grantScript.
//
// The multiplier recovers linearly (ARGV[3] per second) from the time it was
// set, so it is stored once and computed on read. Reports within ARGV[4] of
// the previous decrease are taken as the same overload and ignored.
//
// KEYS[1] the budget's hash (see grantScript); this script writes m and mt
// ARGV[1] backoff: factor applied to the multiplier, 0 < backoff < 1
// ARGV[2] floor: lowest multiplier
// ARGV[3] recovery: multiplier regained per second
// ARGV[4] hold, µs
// ARGV[5] now in µs, or "" to read Redis TIME
//
// Returns {lowered, multiplier}: lowered is 1, or 0 when the report fell
// within the hold; multiplier is the effective fraction in millionths.
var throttleScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local now
if ARGV[5] ~= '' then
  now = tonumber(ARGV[5])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local backoff = tonumber(ARGV[1])
local floor = tonumber(ARGV[2])
local recovery = tonumber(ARGV[3])
local hold = tonumber(ARGV[4])

local st = redis.call('HMGET', KEYS[1], 'm', 'mt')
local m = 1
if st[1] then
  local since = now - tonumber(st[2])
  m = math.min(1, tonumber(st[1]) + recovery * math.max(0, since) / 1000000)
  if since < hold then return {0, math.floor(m * 1000000)} end
end
m = math.max(floor, m * backoff)
redis.call('HSET', KEYS[1], 'm', string.format('%.6f', m), 'mt', string.format('%.0f', now))
local keep = math.ceil(((1 - m) / recovery * 1000000 + hold + 1000000) / 1000)
if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end
return {1, math.floor(m * 1000000)}
`)

// Redis is the fleet-wide Limiter: every process whose Redis shares the
// Redis server (and Config.Prefix) shares each key's budget. Its methods
// are safe for concurrent use.
//
// When Redis cannot be reached, Wait and Throttled return the error; no
// call should then be made, since the budget cannot be checked.
//
// Besides Redis, it keeps a few hundred bytes in memory per key used.
type Redis struct {
	rdb redis.UniversalClient
	cfg Config

	mu sync.Mutex
	// offsets holds, per key, recent differences between the local clock
	// when a grant reply arrived and the Redis clock when the script ran:
	// clock skew plus reply latency. The smallest is the usual; the excess
	// over it is how late a reply is (see slot.behind). Per key because in
	// a cluster each key lives on its own node, with its own clock.
	offsets map[string]*offsets
}

// NewRedis returns a limiter keeping its state in rdb. It panics if rdb is
// nil or cfg is invalid.
func NewRedis(rdb redis.UniversalClient, cfg Config) *Redis {
	if rdb == nil {
		panic("ratelimit: NewRedis: nil redis client")
	}
	return &Redis{rdb: rdb, cfg: mustConfig(cfg), offsets: make(map[string]*offsets)}
}

// Wait blocks until the caller may make one call under key at rate calls
// per second across every process sharing the Redis, or ctx ends. See
// Limiter.Wait.
func (l *Redis) Wait(ctx context.Context, key string, rate float64) (time.Duration, error) {
	if err := checkRate(key, rate); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return l.cfg.wait(ctx, key, time.Now, func(maxDelay time.Duration) (slot, error) {
		g, err := l.reserve(ctx, key, rate, maxDelay, -1)
		if err != nil {
			return slot{}, err
		}
		return slot{delay: g.delay, reserved: g.reserved, behind: l.behind(key, time.Now(), g.now)}, nil
	})
}

// Throttled lowers key's effective rate for every process sharing the
// Redis. See Limiter.Throttled.
func (l *Redis) Throttled(ctx context.Context, key string) error {
	_, err := l.throttle(ctx, key, -1)
	return err
}

// grant is a reply of grantScript.
type grant struct {
	delay    time.Duration // from the script's now until the slot
	reserved bool          // false: delay exceeded the limit, nothing written
	mult     float64       // effective fraction of the rate
	now      int64         // the script's clock, µs
}

// reserve runs grantScript. maxDelay < 0 means unbounded; nowMicros < 0
// means Redis TIME, otherwise it is the script's clock (tests).
func (l *Redis) reserve(ctx context.Context, key string, rate float64, maxDelay time.Duration, nowMicros int64) (grant, error) {
	res, err := grantScript.Run(ctx, l.rdb, []string{l.key(key)},
		strconv.FormatFloat(rate, 'f', -1, 64),
		l.cfg.Guard.Microseconds(),
		micros(maxDelay),
		strconv.FormatFloat(l.cfg.Recovery, 'f', -1, 64),
		nowArg(nowMicros),
	).Int64Slice()
	if err != nil {
		return grant{}, l.wrap(ctx, key, "wait", err)
	}
	if len(res) != 4 {
		return grant{}, fmt.Errorf("ratelimit: %s: wait: unexpected script reply %v", key, res)
	}
	return grant{
		delay:    time.Duration(res[0]) * time.Microsecond,
		reserved: res[1] == 1,
		mult:     float64(res[2]) / 1e6,
		now:      res[3],
	}, nil
}

// throttle runs throttleScript and returns the multiplier after it, with
// nowMicros as in reserve.
func (l *Redis) throttle(ctx context.Context, key string, nowMicros int64) (float64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	res, err := throttleScript.Run(ctx, l.rdb, []string{l.key(key)},
		strconv.FormatFloat(l.cfg.Backoff, 'f', -1, 64),
		strconv.FormatFloat(l.cfg.Floor, 'f', -1, 64),
		strconv.FormatFloat(l.cfg.Recovery, 'f', -1, 64),
		l.cfg.Hold.Microseconds(),
		nowArg(nowMicros),
	).Int64Slice()
	if err != nil {
		return 0, l.wrap(ctx, key, "throttled", err)
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("ratelimit: %s: throttled: unexpected script reply %v", key, res)
	}
	return float64(res[1]) / 1e6, nil
}

// behind returns how much later than usual a grant reply for key arrived:
// received is the local time it arrived, scriptNow the script's clock.
func (l *Redis) behind(key string, received time.Time, scriptNow int64) time.Duration {
	offset := received.UnixMicro() - scriptNow
	l.mu.Lock()
	o := l.offsets[key]
	if o == nil {
		o = new(offsets)
		l.offsets[key] = o
	}
	usual := o.add(offset)
	l.mu.Unlock()
	return time.Duration(offset-usual) * time.Microsecond
}

// offsets keeps the last len(v) offsets of one key. A window rather than
// an all-time minimum, so that the usual latency follows a changed network
// path or a stepped clock within a few calls.
type offsets struct {
	v [16]int64
	n int // samples seen
}

// add records x and returns the smallest recent offset, x included.
func (o *offsets) add(x int64) int64 {
	o.v[o.n%len(o.v)] = x
	o.n++
	return slices.Min(o.v[:min(o.n, len(o.v))])
}

// key returns the Redis key of a budget: the budget's name in a hash tag,
// so that on Redis Cluster the budget's slot follows its name alone (each
// script touches this one key), whatever the prefix.
func (l *Redis) key(key string) string { return l.cfg.Prefix + "rl:{" + key + "}" }

// wrap turns a Redis error into Wait's or Throttled's: ctx.Err() itself when
// ctx ended during the call, so callers can compare it.
func (l *Redis) wrap(ctx context.Context, key, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return ctxErr
	}
	return fmt.Errorf("ratelimit: %s: %s: %w", key, op, err)
}

// micros converts d to whole microseconds, keeping negative as -1.
func micros(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Microseconds()
}

// nowArg formats a script's clock override: "" selects Redis TIME.
func nowArg(nowMicros int64) string {
	if nowMicros < 0 {
		return ""
	}
	return strconv.FormatInt(nowMicros, 10)
}
