package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// sweepChunk is how many instances one call of the abort and retry-failed
// scripts examines: the longest those operations hold Redis at a time is
// one chunk (a few milliseconds), whatever the size of the fleet.
const sweepChunk = 500

// Abort stops a rollout for good: nothing new starts, calls in flight
// finish, and every instance not yet called (pending or parked) is
// cancelled. It returns whether the state changed.
//
// The state changes first, in one script; then the instances are
// cancelled wave by wave, sweepChunk per script call. Meanwhile workers
// see the rollout aborted (Begin cancels what it is given) and may finish
// calls in flight: every instance changes and is counted once. An Abort
// interrupted during the sweep (an error, a crash) is completed by
// calling Abort again, which then returns false.
func (l *Ledger) Abort(ctx context.Context, rollout, reason string) (bool, error) {
	k := l.keys(rollout)
	res, err := abortScript.Run(ctx, l.rdb, []string{k.record()}, reason, l.now()).Slice()
	if err != nil {
		return false, fmt.Errorf("ledger: abort %s: %w", rollout, err)
	}
	prev, _ := res[0].(string)
	l.noteFinished(ctx, rollout)
	if toInt(res[1]) == 1 {
		return prev != "", nil
	}
	waves, err := l.waveCount(ctx, k)
	if err != nil {
		return false, fmt.Errorf("ledger: abort %s: %w", rollout, err)
	}
	now := l.now()
	for w := range waves {
		ks := []string{k.record(), k.counters(), k.wave(w), k.waveCounters(w), k.held()}
		for off := 0; off >= 0; {
			vals, err := abortChunkScript.Run(ctx, l.rdb, ks, off, sweepChunk, now).Int64Slice()
			if err != nil {
				return false, fmt.Errorf("ledger: abort %s: wave %d from %d: %w", rollout, w, off, err)
			}
			if vals[0] == -2 {
				return false, fmt.Errorf("ledger: abort %s: the rollout is no longer aborted", rollout)
			}
			l.observeSweep(int(vals[1]))
			off = int(vals[0])
		}
	}
	if err := abortDoneScript.Run(ctx, l.rdb, []string{k.record(), k.held()}).Err(); err != nil {
		return false, fmt.Errorf("ledger: abort %s: %w", rollout, err)
	}
	return prev != "", nil
}

// RetryFailed gives every failed instance (and ambiguous ones when
// includeAmbiguous) a new attempt and sets the rollout running. It does
// nothing to an aborted rollout, and changes nothing when no instance
// failed.
//
// The instances are reopened wave by wave, sweepChunk per script call,
// and the rollout is set running after the last chunk. Workers may finish
// other instances meanwhile: counters change per instance, atomically. A
// RetryFailed interrupted during the sweep is completed by calling it
// again, which returns the instances the first call reopened as well.
func (l *Ledger) RetryFailed(ctx context.Context, rollout string, includeAmbiguous bool) (ResumeResult, error) {
	k := l.keys(rollout)
	waves, err := l.waveCount(ctx, k)
	if err != nil {
		return ResumeResult{}, fmt.Errorf("ledger: retry-failed %s: %w", rollout, err)
	}
	var rq []Requeue
	for w := range waves {
		ks := []string{k.record(), k.counters(), k.wave(w), k.waveCounters(w), k.retrying()}
		for off := 0; off >= 0; {
			vals, err := retryChunkScript.Run(ctx, l.rdb, ks, off, sweepChunk, b01(includeAmbiguous)).Slice()
			if err != nil {
				return ResumeResult{}, fmt.Errorf("ledger: retry-failed %s: wave %d from %d: %w", rollout, w, off, err)
			}
			off = toInt(vals[0])
			if off == -2 {
				return ResumeResult{}, nil // aborted: instances reopened so far are cancelled by the abort
			}
			l.observeSweep(toInt(vals[1]))
			for i := 2; i+1 < len(vals); i += 2 {
				id, _ := vals[i].(string)
				rq = append(rq, Requeue{ID: id, Gen: toInt(vals[i+1]), Wave: w})
			}
		}
	}
	res, err := retryDoneScript.Run(ctx, l.rdb, []string{k.record(), k.retrying()}, l.now(), b01(len(rq) > 0)).Slice()
	if err != nil {
		return ResumeResult{}, fmt.Errorf("ledger: retry-failed %s: %w", rollout, err)
	}
	if len(res) < 2 || toInt(res[0]) == 0 {
		return ResumeResult{}, nil
	}
	l.noteFinished(ctx, rollout) // reopened: no longer finished
	return ResumeResult{Changed: true, Seq: toInt(res[0]), Wave: toInt(res[1]), Requeue: rq}, nil
}

// waveCount reads how many waves a rollout has (0 when it does not exist).
func (l *Ledger) waveCount(ctx context.Context, k keys) (int, error) {
	s, err := l.rdb.HGet(ctx, k.record(), "waves").Result()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return 0, nil
		}
		return 0, err
	}
	return strconv.Atoi(s)
}

// observeSweep tells the test hook, if any, how many instances a sweep
// script call examined.
func (l *Ledger) observeSweep(n int) {
	if l.sweepObserver != nil {
		l.sweepObserver(n)
	}
}
