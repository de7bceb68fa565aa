package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/fleetreset/fleetreset/rollout"
	"github.com/redis/go-redis/v9"
)

// applyLease bounds how long a creator may go without writing before
// another may take the creation over (it is renewed by every chunk; an
// apply of 100,000 instances writes them in about a second).
const applyLease = 2 * time.Minute

// createChunk is how many instances one createChunkScript call writes: a
// few milliseconds of Redis time.
const createChunk = 1000

// createPipeline is how many chunk calls go to Redis in one round trip.
const createPipeline = 4

// Create records a new rollout in state Applying with its targets, every
// instance pending unless opts.Seeds says otherwise; Activate finishes it.
//
// Creation is decided inside Redis, once: of any number of concurrent
// Creates of one rollout (applies of one plan, a scheduled occurrence),
// exactly one returns created=true. The others return created=false, nil
// when the rollout was created (or is being created: ErrApplying, which
// callers treat alike), and ErrPlanChanged when the name is taken by a
// different plan (PlanHash). Nothing is rewritten once created: the
// instances are written in chunks that only the winner's token may write
// while the rollout is still applying. A creation whose creator died
// (its lease of applyLease ran out before Activate) is redone from scratch
// by the next Create: nothing ran yet, since workers wait for Activate.
func (l *Ledger) Create(ctx context.Context, spec rollout.Spec, targets []rollout.Target, opts CreateOptions) (created bool, err error) {
	k := l.keys(spec.ID)
	nw := len(spec.Waves)
	sizes := make([]int, nw)
	perWave := make([][6]int, nw)
	var overall [6]int
	for _, t := range targets {
		if t.Wave < 0 || t.Wave >= nw {
			return false, fmt.Errorf("ledger: create %s: instance %s in wave %d of %d", spec.ID, t.InstanceID, t.Wave+1, nw)
		}
		sizes[t.Wave]++
		if st := opts.Seeds[t.InstanceID].State; st.Terminal() {
			i := counterIndex(st)
			overall[i]++
			overall[5]++
			perWave[t.Wave][i]++
			perWave[t.Wave][5]++
		}
	}
	var maxTok int64
	for _, s := range opts.Seeds {
		maxTok = max(maxTok, s.Token)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return false, fmt.Errorf("ledger: encode spec: %w", err)
	}
	token := strconv.FormatUint(rand.Uint64()|1, 36)
	now := l.now()

	ks := []string{k.record(), k.counters(), k.fence(), k.held(), k.resetting(), k.retrying()}
	for w := range nw {
		ks = append(ks, k.wave(w))
	}
	for w := range nw {
		ks = append(ks, k.waveCounters(w))
	}
	args := []any{spec.PlanHash, token, now, applyLease.Milliseconds(), specJSON, len(targets), nw, opts.Wave, opts.Seq,
		// Tokens from a journal must stay below every token issued from now on.
		maxTok}
	for _, n := range overall {
		args = append(args, n)
	}
	for w := range nw {
		args = append(args, sizes[w])
		for _, n := range perWave[w] {
			args = append(args, n)
		}
		args = append(args, b01(perWave[w][5] >= sizes[w]), b01(w < opts.Wave))
	}
	res, err := createScript.Run(ctx, l.rdb, ks, args...).StringSlice()
	if err != nil {
		return false, fmt.Errorf("ledger: create %s: %w", spec.ID, err)
	}
	switch res[0] {
	case "changed":
		return false, fmt.Errorf("%w: rollout %q was applied from a plan with hash %.12s, this plan has %.12s", ErrPlanChanged, spec.ID, res[1], spec.PlanHash)
	case "exists":
		return false, nil
	case "applying":
		return false, fmt.Errorf("%w: %q", ErrApplying, spec.ID)
	}
	if err := l.writeInstances(ctx, k, spec.ID, token, res[0] == "created", nw, targets, opts.Seeds, now); err != nil {
		return false, err
	}
	if err := l.rdb.ZAdd(ctx, l.indexKey(), redis.Z{Score: float64(l.clock.Now().UnixMilli()), Member: spec.ID}).Err(); err != nil {
		return false, fmt.Errorf("ledger: create %s: index: %w", spec.ID, err)
	}
	l.tokens.Store(spec.ID, token)
	return true, nil
}

// writeInstances writes the instance hashes and wave lists of a rollout
// being created under token, createChunk instances per script call and
// createPipeline calls per round trip. The next round trip is encoded
// while Redis runs the current one; they run in order, as the chunks'
// position check requires.
func (l *Ledger) writeInstances(ctx context.Context, k keys, id, token string, fresh bool, nw int,
	targets []rollout.Target, seeds map[string]Seed, now string) error {
	if err := createChunkScript.Load(ctx, l.rdb).Err(); err != nil {
		return fmt.Errorf("ledger: create %s: %w", id, err)
	}
	head := []string{k.record(), k.resetting()}
	for w := range nw {
		head = append(head, k.wave(w))
	}
	lease := applyLease.Milliseconds()
	type call struct {
		end int
		cmd *redis.Cmd
	}
	type trip struct {
		pipe  redis.Pipeliner
		calls []call
	}
	ctx, cancel := context.WithCancel(ctx)
	trips := make(chan trip, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		defer close(trips)
		for batch := 0; batch < len(targets); batch += createChunk * createPipeline {
			tr := trip{pipe: l.rdb.Pipeline()}
			for start := batch; start < min(batch+createChunk*createPipeline, len(targets)); start += createChunk {
				part := targets[start:min(start+createChunk, len(targets))]
				ks := make([]string, 0, len(head)+len(part))
				ks = append(ks, head...)
				args := make([]any, 0, 5+6*len(part))
				args = append(args, token, start, b01(fresh), lease, nw)
				for _, t := range part {
					ks = append(ks, k.instance(t.InstanceID))
					args = append(args, t.InstanceID, t.Wave, t.Group, t.Zone)
					args = appendSeed(args, seeds[t.InstanceID], now)
				}
				tr.calls = append(tr.calls, call{start + len(part), tr.pipe.EvalSha(ctx, createChunkScript.Hash(), ks, args...)})
			}
			select {
			case trips <- tr:
			case <-ctx.Done():
				return
			}
		}
	})
	for tr := range trips {
		if _, err := tr.pipe.Exec(ctx); err != nil {
			return fmt.Errorf("ledger: create %s: write instances: %w", id, err)
		}
		for _, c := range tr.calls {
			switch n, _ := c.cmd.Int(); {
			case n == -1:
				return fmt.Errorf("%w: %q: another apply took the creation over", ErrApplying, id)
			case n != c.end:
				return fmt.Errorf("ledger: create %s: %d instances written, want %d", id, n, c.end)
			}
		}
	}
	return ctx.Err()
}

// appendSeed appends what a seed changes of an instance's defaults:
// the count of field/value pairs, then the pairs.
func appendSeed(args []any, s Seed, now string) []any {
	n := len(args)
	args = append(args, 0)
	if s.State != "" && s.State != Pending {
		args = append(args, "st", string(s.State))
	}
	if s.OldImage != "" || s.OldOpRequestID != "" {
		args = append(args, "oimg", s.OldImage, "oop", s.OldOpRequestID, "pf", 1)
	}
	if s.RequestID != "" {
		args = append(args, "rid", s.RequestID)
	}
	if s.Token != 0 {
		args = append(args, "tok", s.Token)
	}
	if !s.IntentAt.IsZero() {
		args = append(args, "intent", s.IntentAt.UnixMilli(), "first", s.IntentAt.UnixMilli())
	}
	if !s.CalledAt.IsZero() {
		args = append(args, "called", s.CalledAt.UnixMilli(), "resets", 1)
	}
	if s.Code != "" || s.Error != "" {
		args = append(args, "code", s.Code, "err", s.Error)
	}
	if s.NewImage != "" {
		args = append(args, "nimg", s.NewImage)
	}
	if s.State.Terminal() {
		args = append(args, "done", now)
	}
	args[n] = (len(args) - n - 1) / 2
	return args
}

// counterIndex is the position of terminal state s in the counters order
// succeeded skipped failed ambiguous cancelled (terminal is 5).
func counterIndex(s InstanceState) int {
	switch s {
	case Succeeded:
		return 0
	case Skipped:
		return 1
	case Failed:
		return 2
	case Ambiguous:
		return 3
	}
	return 4
}

// Activate ends the creation of a rollout: it becomes running, or
// scheduled when it starts later. The planner calls it after the first
// wave's task is enqueued, so an apply interrupted in between is redone.
// When this Ledger created the rollout, only its own creation is
// activated; ErrApplying says the rollout was already activated or
// another apply took the creation over.
func (l *Ledger) Activate(ctx context.Context, spec rollout.Spec) error {
	state := Running
	if spec.StartAt.After(l.clock.Now()) || spec.Window != nil {
		// The first wave's task moves it to running at its time, inside
		// the window.
		state = Scheduled
	}
	token := ""
	if v, ok := l.tokens.Load(spec.ID); ok {
		token = v.(string)
	}
	n, err := activateScript.Run(ctx, l.rdb, []string{l.keys(spec.ID).record()}, token, string(state), l.now()).Int()
	if err != nil {
		return fmt.Errorf("ledger: activate %s: %w", spec.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: activate %q: another apply started it", ErrApplying, spec.ID)
	}
	l.tokens.CompareAndDelete(spec.ID, token)
	return nil
}
