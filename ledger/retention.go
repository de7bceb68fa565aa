package ledger

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fleetreset/fleetreset/rollout"
)

// Retention: finished rollouts (completed or aborted) are deleted, every
// key of them, once they are older than a cutoff; a scheduled series keeps
// its latest occurrences whatever their age.
//
// Keys beside the rollout's own (see scripts.go):
//
//	<prefix>finished   zset   finished rollouts, scored by finish time (unix ms)
//	B pruning          hash   the record of a rollout being pruned, renamed from B r
//
// A prune of one rollout is linearized at one script that renames its
// record B r to B pruning and takes it out of the rollout index: from then
// on every other script sees no rollout (Get says ErrNotFound, retry-failed
// and resume change nothing, its claims are free), and what remains is
// garbage, deleted in chunks. A prune that dies half way is finished by the
// next one, which finds the rollout in the finished index with its
// B pruning record.

// Defaults of PruneOptions.
const (
	// DefaultRetention is how long a finished rollout is kept.
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultKeepPerSeries is how many finished occurrences of a scheduled
	// series are kept whatever their age.
	DefaultKeepPerSeries = 10
	// DefaultPruneChunk is the most keys one Redis call of a prune deletes
	// (or, for claims, checks and deletes).
	DefaultPruneChunk = 500
)

// rolloutKeys are the fixed keys under a rollout's base besides its
// record, instances (B i:<id>) and waves (B w:<k>, B wc:<k>). Keep in step
// with the key layout in scripts.go; TestPruneLeavesNoKey scans Redis for
// any key a prune left behind.
var rolloutKeys = []string{"c", "held", "resetting", "retrying", "fence", "once", "applying", "claiming", "hooks", "u", "uzs", "src", "sel"}

func (l *Ledger) finishedKey() string { return l.prefix + "finished" }

// pruneBeginScript starts the prune of a finished rollout: its record
// becomes the pruning record. The caller indexes it as finished before
// and takes it out of the rollout index after: the indexes lie in other
// Redis Cluster slots than the rollout's keys, so no script touches both.
//
// KEYS[1] record, KEYS[2] pruning record; ARGV[1] cutoff (unix ms): the
// rollout must have finished before it.
// Returns 1 when the prune began (or had begun earlier), 0 when the
// rollout is not (or no longer) finished before the cutoff, -1 when it
// does not exist.
var pruneBeginScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
  return -1
end
if st ~= 'completed' and st ~= 'aborted' then return 0 end
local at = tonumber(redis.call('HGET', KEYS[1], 'updated') or '') or 0
if at >= tonumber(ARGV[1]) then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
`)

// pruneKeysScript deletes one chunk of a rollout being pruned. Claims are
// not among them (each lies in a slot of its own): the caller runs this
// script without keys to learn that the prune still holds, then releases
// the claims with unclaimScript.
//
// KEYS[1] record, KEYS[2] pruning record, KEYS[3...] the keys to delete.
// Returns how many keys it deleted, or -1 when the rollout was created
// again under its ID, -2 when no prune of it is under way (another prune
// finished it).
var pruneKeysScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if redis.call('EXISTS', KEYS[2]) == 0 then return -2 end
if #KEYS < 3 then return 0 end
return redis.call('UNLINK', unpack(KEYS, 3))
`)

// pruneEndScript ends the prune of a rollout: its pruning record goes; the
// caller then takes it out of both indexes.
//
// KEYS[1] record, KEYS[2] pruning record
// Returns 1 when this call ended the prune, 0 when another did, or -1
// when the rollout was created again under its ID.
var pruneEndScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
return redis.call('DEL', KEYS[2])
`)

// noteFinished indexes a rollout that became terminal. It is best effort:
// Prune finds terminal rollouts the index missed in the rollout index.
func (l *Ledger) noteFinished(ctx context.Context, id string) {
	// Plain commands, not one script: the finished index and the
	// rollout's record live in different Redis Cluster slots. A race with
	// a concurrent reopen can leave a stale entry; Prune deletes only what
	// its own script finds terminal, so a stale entry costs nothing.
	b := l.base(id)
	vals, err := l.rdb.HMGet(ctx, b+"r", "state", "updated").Result()
	if err != nil {
		return
	}
	st, _ := vals[0].(string)
	if st == string(Completed) || st == string(Aborted) {
		s, _ := vals[1].(string)
		at, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			at = l.clock.Now().UnixMilli()
		}
		_ = l.rdb.ZAdd(ctx, l.finishedKey(), redis.Z{Score: float64(at), Member: id}).Err()
		return
	}
	// A rollout being pruned keeps its entry: the next prune finishes
	// the job from it.
	if n, err := l.rdb.Exists(ctx, b+"pruning").Result(); err != nil || n == 1 {
		return
	}
	_ = l.rdb.ZRem(ctx, l.finishedKey(), id).Err()
}

// Finished returns the rollouts that finished in [from, to), oldest first,
// with their finish times.
func (l *Ledger) Finished(ctx context.Context, from, to time.Time) ([]FinishedRollout, error) {
	zs, err := l.rdb.ZRangeByScoreWithScores(ctx, l.finishedKey(), &redis.ZRangeBy{
		Min: strconv.FormatInt(from.UnixMilli(), 10), Max: "(" + strconv.FormatInt(to.UnixMilli(), 10)}).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: finished: %w", err)
	}
	out := make([]FinishedRollout, len(zs))
	for i, z := range zs {
		id, _ := z.Member.(string)
		out[i] = FinishedRollout{ID: id, At: time.UnixMilli(int64(z.Score))}
	}
	return out, nil
}

// FinishedRollout is an entry of the finished index.
type FinishedRollout struct {
	ID string
	At time.Time
}

// PruneOptions say which finished rollouts Prune deletes.
type PruneOptions struct {
	// OlderThan: rollouts that finished longer ago than this are deleted.
	// Zero means DefaultRetention; it must not be negative.
	OlderThan time.Duration
	// KeepPerSeries is how many finished occurrences of each scheduled
	// series (rollout.Spec.Series) are kept whatever their age. Zero means
	// DefaultKeepPerSeries; negative keeps none but the series' latest
	// occurrence, which is always kept: the next occurrence is created
	// from it.
	KeepPerSeries int
	// DryRun deletes nothing and reports what would be deleted.
	DryRun bool
	// Now defaults to the ledger's clock.
	Now time.Time
	// Chunk is the most keys one Redis call deletes. Defaults to
	// DefaultPruneChunk.
	Chunk int
}

// PruneResult is what Prune deleted (or, in a dry run, would delete).
type PruneResult struct {
	// Rollouts are the rollouts deleted, oldest finish first.
	Rollouts []PrunedRollout
	// Keys counts the Redis keys deleted: records, counters, wave lists,
	// instance entries and claims.
	Keys int
}

// PrunedRollout is one rollout Prune deleted.
type PrunedRollout struct {
	ID         string
	State      RolloutState
	FinishedAt time.Time
	Keys       int
}

// pruneFact is what Prune knows of one rollout when it decides.
type pruneFact struct {
	ID, Series string
	State      RolloutState
	Created    time.Time
	Finished   time.Time
	// Pruning: an earlier prune began and did not end.
	Pruning bool
}

// prunable returns the rollouts to delete, oldest finish first: the ones
// an earlier prune began, and the terminal ones that finished before
// cutoff, except in each series the latest occurrence (whatever its state)
// and the keep most recent finished ones.
func prunable(facts []pruneFact, cutoff time.Time, keep int) []pruneFact {
	kept := map[string]bool{}
	series := map[string][]pruneFact{}
	for _, f := range facts {
		if f.Series != "" && !f.Pruning {
			series[f.Series] = append(series[f.Series], f)
		}
	}
	for _, fs := range series {
		slices.SortFunc(fs, func(a, b pruneFact) int {
			return cmp.Or(b.Created.Compare(a.Created), cmp.Compare(b.ID, a.ID))
		})
		kept[fs[0].ID] = true
		n := 0
		for _, f := range fs {
			if f.State.Terminal() && n < keep {
				kept[f.ID] = true
				n++
			}
		}
	}
	var out []pruneFact
	for _, f := range facts {
		if f.Pruning || (f.State.Terminal() && f.Finished.Before(cutoff) && !kept[f.ID]) {
			out = append(out, f)
		}
	}
	slices.SortStableFunc(out, func(a, b pruneFact) int { return a.Finished.Compare(b.Finished) })
	return out
}

// Prune deletes every key of the finished rollouts that opts select, in
// calls of at most opts.Chunk keys: the record, counters, wave lists, one
// entry per instance, the claims that still name the rollout, and its
// entries in the rollout and finished indexes. A rollout that is not
// completed or aborted is never touched. Concurrent prunes are safe and
// count each key once: a rollout is reported by the prune that ended it.
func (l *Ledger) Prune(ctx context.Context, opts PruneOptions) (PruneResult, error) {
	if opts.OlderThan < 0 {
		return PruneResult{}, errors.New("ledger: prune: OlderThan must not be negative")
	}
	older := cmp.Or(opts.OlderThan, DefaultRetention)
	keep := cmp.Or(opts.KeepPerSeries, DefaultKeepPerSeries)
	chunk := cmp.Or(opts.Chunk, DefaultPruneChunk)
	now := opts.Now
	if now.IsZero() {
		now = l.clock.Now()
	}
	cutoff := now.Add(-older)
	facts, err := l.pruneFacts(ctx, chunk, !opts.DryRun)
	if err != nil {
		return PruneResult{}, err
	}
	var res PruneResult
	for _, f := range prunable(facts, cutoff, keep) {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("ledger: prune: %w", err)
		}
		var (
			n     int
			ended bool
		)
		if opts.DryRun {
			n, err = l.countRollout(ctx, f.ID, chunk)
			ended = err == nil
		} else {
			n, ended, err = l.pruneRollout(ctx, f.ID, f.Finished, cutoff, chunk)
		}
		res.Keys += n
		if err != nil {
			return res, err
		}
		if ended {
			res.Rollouts = append(res.Rollouts, PrunedRollout{ID: f.ID, State: f.State, FinishedAt: f.Finished, Keys: n})
		}
	}
	return res, nil
}

// pruneFacts reads every rollout of the rollout and finished indexes:
// state, finish time and series. With index set, terminal rollouts the
// finished index misses (a process died between the state change and
// noteFinished) are indexed.
func (l *Ledger) pruneFacts(ctx context.Context, chunk int, index bool) ([]pruneFact, error) {
	created := map[string]time.Time{}
	finished := map[string]time.Time{}
	var ids []string
	for _, src := range []struct {
		key string
		to  map[string]time.Time
	}{{l.indexKey(), created}, {l.finishedKey(), finished}} {
		for start := int64(0); ; start += int64(chunk) {
			zs, err := l.rdb.ZRangeWithScores(ctx, src.key, start, start+int64(chunk)-1).Result()
			if err != nil {
				return nil, fmt.Errorf("ledger: prune: read %s: %w", src.key, err)
			}
			for _, z := range zs {
				id, _ := z.Member.(string)
				if _, seen := created[id]; !seen {
					if _, seen := finished[id]; !seen {
						ids = append(ids, id)
					}
				}
				src.to[id] = time.UnixMilli(int64(z.Score))
			}
			if len(zs) < chunk {
				break
			}
		}
	}
	var facts []pruneFact
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		pipe := l.rdb.Pipeline()
		recs := make([]*redis.SliceCmd, len(part))
		pruning := make([]*redis.IntCmd, len(part))
		for i, id := range part {
			b := l.base(id)
			recs[i] = pipe.HMGet(ctx, b+"r", "state", "updated", "spec")
			pruning[i] = pipe.Exists(ctx, b+"pruning")
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("ledger: prune: read rollouts: %w", err)
		}
		for i, id := range part {
			vals := recs[i].Val()
			st, _ := vals[0].(string)
			if st == "" {
				if pruning[i].Val() == 1 {
					facts = append(facts, pruneFact{ID: id, Pruning: true, Finished: finished[id]})
				}
				continue // a rollout being created, or gone
			}
			f := pruneFact{ID: id, State: RolloutState(st), Created: created[id], Finished: msTime(str(vals[1]))}
			var spec struct {
				Series string `json:"series"`
			}
			if s := str(vals[2]); s != "" {
				if err := json.Unmarshal([]byte(s), &spec); err != nil {
					return nil, fmt.Errorf("ledger: prune: spec of %s: %w", id, err)
				}
			}
			f.Series = spec.Series
			if f.Finished.IsZero() {
				f.Finished = cmp.Or(finished[id], f.Created)
			}
			_, indexed := finished[id]
			if index && f.State.Terminal() != indexed {
				l.noteFinished(ctx, id)
			}
			facts = append(facts, f)
		}
	}
	return facts, nil
}

func str(v any) string { s, _ := v.(string); return s }

// pruneRollout deletes one rollout. It returns the keys it deleted and
// whether it ended the prune (false when another prune did, or when the
// rollout turned out not to be prunable).
func (l *Ledger) pruneRollout(ctx context.Context, id string, finished time.Time, cutoff time.Time, chunk int) (int, bool, error) {
	b := l.base(id)
	rk, pk := b+"r", b+"pruning"
	// Indexed as finished before the record goes, so that a prune cut off
	// after pruneBeginScript is found and finished by the next one. An
	// entry for a rollout that turns out not to be prunable costs nothing.
	added := int64(0)
	if !finished.IsZero() {
		n, err := l.rdb.ZAddNX(ctx, l.finishedKey(), redis.Z{Score: float64(finished.UnixMilli()), Member: id}).Result()
		if err != nil {
			return 0, false, fmt.Errorf("ledger: prune %s: %w", id, err)
		}
		added = n
	}
	began, err := pruneBeginScript.Run(ctx, l.rdb, []string{rk, pk}, cutoff.UnixMilli()).Int()
	if err != nil {
		return 0, false, fmt.Errorf("ledger: prune %s: %w", id, err)
	}
	if began != 1 {
		// Reopened, recreated or gone since pruneFacts read it.
		if added == 1 {
			l.noteFinished(ctx, id) // undoes the entry unless it is right
		}
		return 0, false, nil
	}
	if err := l.rdb.ZRem(ctx, l.indexKey(), id).Err(); err != nil {
		return 0, false, fmt.Errorf("ledger: prune %s: %w", id, err)
	}
	deleted := 0
	del := func(mode string, keys []string) (bool, error) {
		if mode == "claims" {
			// The guard alone, then the claims in their own slots.
			if ok, err := l.del1(ctx, id, rk, pk, nil, &deleted); err != nil || !ok {
				return ok, err
			}
			n, err := l.unclaimKeys(ctx, id, keys)
			deleted += n
			if err != nil {
				return false, fmt.Errorf("ledger: prune %s: claims: %w", id, err)
			}
			return true, nil
		}
		return l.del1(ctx, id, rk, pk, keys, &deleted)
	}
	more, err := l.eachRolloutChunk(ctx, id, pk, chunk, del)
	if err != nil || !more {
		return deleted, false, err
	}
	ended, err := pruneEndScript.Run(ctx, l.rdb, []string{rk, pk}).Int()
	if err != nil {
		return deleted, false, fmt.Errorf("ledger: prune %s: %w", id, err)
	}
	if ended < 0 {
		return deleted, false, nil
	}
	deleted += ended
	// Index entries go last: a prune cut off before this leaves entries
	// naming no record, which List and Prune skip.
	for _, k := range []string{l.indexKey(), l.finishedKey()} {
		if err := l.rdb.ZRem(ctx, k, id).Err(); err != nil {
			return deleted, false, fmt.Errorf("ledger: prune %s: %w", id, err)
		}
	}
	return deleted, ended == 1, nil
}

// del1 runs pruneKeysScript on keys (none: only its guard), adding what it
// deleted to deleted; false when the prune no longer holds.
func (l *Ledger) del1(ctx context.Context, id, rk, pk string, keys []string, deleted *int) (bool, error) {
	n, err := pruneKeysScript.Run(ctx, l.rdb, append([]string{rk, pk}, keys...)).Int()
	if err != nil {
		return false, fmt.Errorf("ledger: prune %s: %w", id, err)
	}
	if n < 0 {
		return false, nil
	}
	*deleted += n
	return true, nil
}

// countRollout counts the keys pruneRollout would delete.
func (l *Ledger) countRollout(ctx context.Context, id string, chunk int) (int, error) {
	b := l.base(id)
	rec := b + "r"
	if n, err := l.rdb.Exists(ctx, rec).Result(); err != nil {
		return 0, fmt.Errorf("ledger: prune %s: %w", id, err)
	} else if n == 0 {
		rec = b + "pruning"
	}
	count := 1
	_, err := l.eachRolloutChunk(ctx, id, rec, chunk, func(mode string, keys []string) (bool, error) {
		if len(keys) == 0 {
			return true, nil
		}
		if mode == "claims" {
			vals, err := l.rdb.MGet(ctx, keys...).Result()
			if err != nil {
				return false, fmt.Errorf("ledger: prune %s: %w", id, err)
			}
			for _, v := range vals {
				if v == id {
					count++
				}
			}
			return true, nil
		}
		n, err := l.rdb.Exists(ctx, keys...).Result()
		if err != nil {
			return false, fmt.Errorf("ledger: prune %s: %w", id, err)
		}
		count += int(n)
		return true, nil
	})
	return count, err
}

// countedRegions reads the regions whose counters (B rc:<region>) the
// rollout of record rec keeps.
func (l *Ledger) countedRegions(ctx context.Context, rec string) ([]string, error) {
	js, err := l.rdb.HGet(ctx, rec, "spec").Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var spec rollout.Spec
	if err := json.Unmarshal([]byte(js), &spec); err != nil {
		return nil, fmt.Errorf("decode spec: %w", err)
	}
	return spec.CountedRegions(), nil
}

// eachRolloutChunk hands every key of a rollout except its record to del,
// at most chunk at a time: claims and drainer notes ("claims": deleted only
// while they name the rollout) and instance entries ("keys") wave by wave, then wave keys and the rollout's other keys. Wave lists go
// last, since they name the instances. rec is the record that holds the
// number of waves. It stops, returning false, when del does.
func (l *Ledger) eachRolloutChunk(ctx context.Context, id, rec string, chunk int, del func(mode string, keys []string) (bool, error)) (bool, error) {
	b := l.base(id)
	waves, err := l.rdb.HGet(ctx, rec, "waves").Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("ledger: prune %s: %w", id, err)
	}
	for k := range waves {
		wk := b + "w:" + strconv.Itoa(k)
		for start := int64(0); ; start += int64(chunk) {
			ids, err := l.rdb.LRange(ctx, wk, start, start+int64(chunk)-1).Result()
			if err != nil {
				return false, fmt.Errorf("ledger: prune %s: %w", id, err)
			}
			if len(ids) == 0 {
				break
			}
			claims := make([]string, len(ids))
			drainers := make([]string, len(ids))
			insts := make([]string, len(ids))
			for i, in := range ids {
				claims[i] = l.claimKey(in)
				drainers[i] = l.drainerKey(in)
				insts[i] = b + "i:" + in
			}
			for _, step := range []struct {
				mode string
				keys []string
			}{{"claims", claims}, {"claims", drainers}, {"keys", insts}} {
				if ok, err := del(step.mode, step.keys); err != nil || !ok {
					return false, err
				}
			}
			if len(ids) < chunk {
				break
			}
		}
	}
	// The per-zone sets of the unavailable go before B uzs, which names them.
	rest, err := l.unavailableZoneKeys(ctx, b)
	if err != nil {
		return false, fmt.Errorf("ledger: prune %s: %w", id, err)
	}
	for _, s := range rolloutKeys {
		rest = append(rest, b+s)
	}
	regions, err := l.countedRegions(ctx, rec)
	if err != nil {
		return false, fmt.Errorf("ledger: prune %s: %w", id, err)
	}
	for _, rg := range regions {
		rest = append(rest, b+"rc:"+rg)
	}
	for k := range waves {
		rest = append(rest, b+"wc:"+strconv.Itoa(k), b+"w:"+strconv.Itoa(k))
	}
	for start := 0; start < len(rest); start += chunk {
		if ok, err := del("keys", rest[start:min(start+chunk, len(rest))]); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}
