package ledger

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Unavailable instances (rollout.MaxUnavailable). The ledger keeps them as
// membership, not counters, so that no crash can leak or double-count a
// place:
//
//	B u          set    instances of the rollout holding a place among the unavailable
//	B uz:<zone>  set    the same, per availability zone (zone "" when unknown)
//	B uzs        set    zones that ever had a B uz:<zone> set (for pruning)
//
// and the instance hash field uz names the zone an instance holds its
// place in (absent when it holds none). Take adds an instance when the
// caps allow; the scripts that take it out of service for good or send it
// back without a call give the place back (releaseUnavailable): finish
// (every terminal outcome), begin (parked or cancelled), release (a
// refused call, unless the instance stays drained) and the abort sweep.

func (k keys) unavailable() string             { return k.b + "u" }
func (k keys) unavailableZone(z string) string { return k.b + "uz:" + z }
func (k keys) unavailableZones() string        { return k.b + "uzs" }

// releaseUnavailable is prepended (after sib) to the scripts that give an
// instance's place back: releaseUnavailable(ik, k, suffix, id) removes
// instance id (hash ik) from B u and its zone's set, where k is a key of
// the same rollout ending in suffix (the sets are derived from it with
// sib, so they share its hash tag). A no-op for an instance without one.
const releaseUnavailable = `
local function releaseUnavailable(ik, k, suffix, id)
  local z = redis.call('HGET', ik, 'uz')
  if not z then return end
  redis.call('SREM', sib(k, suffix, 'u'), id)
  redis.call('SREM', sib(k, suffix, 'uz:' .. z), id)
  redis.call('HDEL', ik, 'uz')
end
`

// takeScript gives an instance a place among the rollout's unavailable
// instances. It is idempotent: an instance that holds one keeps it.
//
// KEYS[1] B i:<id>, KEYS[2] B r, KEYS[3] B u, KEYS[4] B uz:<zone>, KEYS[5] B uzs
// ARGV[1] instance ID, ARGV[2] gen, ARGV[3] zone, ARGV[4] overall cap
// (0: none), ARGV[5] zone cap (0: none), ARGV[6] 1 to take a place even
// over the caps (the instance is down already: count it, hold others back)
// Returns {verdict, unavailable overall, unavailable in the zone}, the
// counts after the call; verdict is one of
// taken | holding (had one) | total | zone (that cap is full) |
// stopped (the rollout is not running) | gone (the instance is not in
// this attempt: another generation, held or terminal).
var takeScript = redis.NewScript(`
local ik, id = KEYS[1], ARGV[1]
local f = redis.call('HMGET', ik, 'st', 'gen', 'uz')
local st = f[1]
local function counts(v) return {v, redis.call('SCARD', KEYS[3]), redis.call('SCARD', KEYS[4])} end
if f[3] then return counts('holding') end
if not st or (f[2] or '0') ~= ARGV[2] then return counts('gone') end
if st ~= 'pending' and st ~= 'calling' and st ~= 'resetting' then return counts('gone') end
if redis.call('HGET', KEYS[2], 'state') ~= 'running' then return counts('stopped') end
if ARGV[6] ~= '1' then
  local total, zone = tonumber(ARGV[4]), tonumber(ARGV[5])
  if total > 0 and redis.call('SCARD', KEYS[3]) >= total then return counts('total') end
  if zone > 0 and redis.call('SCARD', KEYS[4]) >= zone then return counts('zone') end
end
redis.call('SADD', KEYS[3], id)
redis.call('SADD', KEYS[4], id)
redis.call('SADD', KEYS[5], ARGV[3])
redis.call('HSET', ik, 'uz', ARGV[3])
return counts('taken')
`)

// TakeVerdict is the outcome of Take.
type TakeVerdict string

// Take verdicts. Only TakeTaken and TakeHolding let the caller take the
// instance down.
const (
	TakeTaken   TakeVerdict = "taken"   // the instance now holds a place
	TakeHolding TakeVerdict = "holding" // it held one already (a redelivery)
	TakeTotal   TakeVerdict = "total"   // the overall cap is full: try later
	TakeZone    TakeVerdict = "zone"    // the zone's cap is full: try later
	TakeStopped TakeVerdict = "stopped" // the rollout is not running
	TakeGone    TakeVerdict = "gone"    // the instance left this attempt (stale generation, held or terminal)
)

// Allowed reports whether v lets the caller take the instance down.
func (v TakeVerdict) Allowed() bool { return v == TakeTaken || v == TakeHolding }

// Place is what Take requests: where an instance is and the caps there.
type Place struct {
	// Zone is the instance's availability zone; "" counts as a zone of its own.
	Zone string
	// Total and PerZone are the caps (rollout.MaxUnavailable.Limits); 0 for none.
	Total, PerZone int
	// Force takes a place even over the caps: for an instance the cloud
	// already shows down (an adopted reinstall), which must be counted.
	Force bool
}

// TakeResult is the outcome of Take with the counts after it.
type TakeResult struct {
	Verdict TakeVerdict
	// Unavailable and InZone count the instances holding a place, overall
	// and in the instance's zone.
	Unavailable, InZone int
}

// Take gives instance id (generation gen) of a running rollout a place
// among its unavailable instances when the caps allow; see takeScript.
func (l *Ledger) Take(ctx context.Context, rollout, id string, gen int, p Place) (TakeResult, error) {
	k := l.keys(rollout)
	vals, err := takeScript.Run(ctx, l.rdb,
		[]string{k.instance(id), k.record(), k.unavailable(), k.unavailableZone(p.Zone), k.unavailableZones()},
		id, gen, p.Zone, p.Total, p.PerZone, b01(p.Force)).Slice()
	if err != nil {
		return TakeResult{}, fmt.Errorf("ledger: take unavailable place for %s: %w", id, err)
	}
	v, _ := vals[0].(string)
	return TakeResult{Verdict: TakeVerdict(v), Unavailable: toInt(vals[1]), InZone: toInt(vals[2])}, nil
}

// Unavailable returns the instances holding a place among a rollout's
// unavailable ones, by zone.
func (l *Ledger) Unavailable(ctx context.Context, rollout string) (map[string][]string, error) {
	k := l.keys(rollout)
	zones, err := l.rdb.SMembers(ctx, k.unavailableZones()).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: unavailable of %s: %w", rollout, err)
	}
	out := map[string][]string{}
	for _, z := range zones {
		ids, err := l.rdb.SMembers(ctx, k.unavailableZone(z)).Result()
		if err != nil {
			return nil, fmt.Errorf("ledger: unavailable of %s in %q: %w", rollout, z, err)
		}
		if len(ids) > 0 {
			out[z] = ids
		}
	}
	return out, nil
}

// unavailableZoneKeys lists the per-zone sets of a rollout, for pruning.
func (l *Ledger) unavailableZoneKeys(ctx context.Context, base string) ([]string, error) {
	zones, err := l.rdb.SMembers(ctx, base+"uzs").Result()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(zones))
	for i, z := range zones {
		out[i] = base + "uz:" + z
	}
	return out, nil
}
