package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/fleetreset/fleetreset/rollout"
	"github.com/redis/go-redis/v9"
)

// applyLease bounds how long a creator may go without writing before
// another may take the creation over (every chunk renews it; an apply of
// 100,000 instances writes them in about a second).
const applyLease = 2 * time.Minute

// createChunk is how many instances one transaction of Create writes: a
// few milliseconds of Redis time.
const createChunk = 2000

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
	// Rollouts that count regions keep counters per region too, and each
	// instance names its region (rg) for the scripts that count it.
	regions := spec.CountedRegions()
	perRegion := make([][6]int, len(regions))
	regionAt := map[string]int{}
	for i, r := range regions {
		regionAt[r] = i
	}
	regionSizes := make([]int, len(regions))
	for _, t := range targets {
		if t.Wave < 0 || t.Wave >= nw {
			return false, fmt.Errorf("ledger: create %s: instance %s in wave %d of %d", spec.ID, t.InstanceID, t.Wave+1, nw)
		}
		sizes[t.Wave]++
		r := -1
		if regions != nil {
			r = regionAt[spec.LocationOf(t.Group).Region]
			regionSizes[r]++
		}
		if st := opts.Seeds[t.InstanceID].State; st.Terminal() {
			i := counterIndex(st)
			overall[i]++
			overall[5]++
			perWave[t.Wave][i]++
			perWave[t.Wave][5]++
			if r >= 0 {
				perRegion[r][i]++
				perRegion[r][5]++
			}
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

	ks := []string{k.record(), k.applying(), k.counters(), k.fence(), k.held(), k.resetting(), k.retrying()}
	for w := range nw {
		ks = append(ks, k.wave(w))
	}
	for w := range nw {
		ks = append(ks, k.waveCounters(w))
	}
	for _, r := range regions {
		ks = append(ks, k.regionCounters(r))
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
	args = append(args, len(regions))
	for r, c := range perRegion {
		args = append(args, regionSizes[r])
		for _, n := range c {
			args = append(args, n)
		}
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
	var regionOf func(group int) string
	if regions != nil {
		regionOf = func(group int) string { return spec.LocationOf(group).Region }
	}
	if opts.Source != nil {
		// Written before the instances, under the creator's lease: a
		// creation redone after a crash writes it again.
		src, err := json.Marshal(opts.Source)
		if err != nil {
			return false, fmt.Errorf("ledger: encode plan source: %w", err)
		}
		if err := l.rdb.Set(ctx, k.source(), src, 0).Err(); err != nil {
			return false, fmt.Errorf("ledger: create %s: plan source: %w", spec.ID, err)
		}
	}
	if err := l.writeInstances(ctx, k, spec.ID, token, res[0] == "created", nw, targets, opts.Seeds, regionOf, now); err != nil {
		return false, err
	}
	if err := l.rdb.ZAdd(ctx, l.indexKey(), redis.Z{Score: float64(l.clock.Now().UnixMilli()), Member: spec.ID}).Err(); err != nil {
		return false, fmt.Errorf("ledger: create %s: index: %w", spec.ID, err)
	}
	l.tokens.Store(spec.ID, token)
	return true, nil
}

// Source reads the plan source kept with a rollout (CreateOptions.Source);
// nil, without error, for a rollout that keeps none.
func (l *Ledger) Source(ctx context.Context, id string) (*rollout.PlanSource, error) {
	data, err := l.rdb.Get(ctx, l.keys(id).source()).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: plan source of %s: %w", id, err)
	}
	var src rollout.PlanSource
	if err := json.Unmarshal(data, &src); err != nil {
		return nil, fmt.Errorf("ledger: plan source of %s: %w", id, err)
	}
	return &src, nil
}

// resolvedTTL bounds how long a resolved occurrence (Resolve) is kept:
// longer than the recur task's retries run in practice, so every creator
// of one occurrence creates the same rollout. Once the occurrence is
// created nothing reads it (a prune deletes it if it is still there); a
// skipped occurrence's expires.
const resolvedTTL = 7 * 24 * time.Hour

// Resolved is what the select of a scheduled occurrence resolved to.
type Resolved struct {
	Spec    rollout.Spec     `json:"spec"`
	Targets []rollout.Target `json:"targets"`
}

// Resolve records res as what the select of occurrence id resolved to,
// unless a resolution was recorded first, and returns the one recorded.
// Every creator of the occurrence (a redelivered recur task, a second
// worker) creates from the first resolution, so they all create the same
// rollout (one PlanHash) however the cloud's tags changed between their
// listings; Create's own rules then make exactly one of them the creator.
func (l *Ledger) Resolve(ctx context.Context, id string, res Resolved) (Resolved, error) {
	data, err := json.Marshal(res)
	if err != nil {
		return Resolved{}, fmt.Errorf("ledger: encode resolution of %s: %w", id, err)
	}
	k := l.keys(id).resolved()
	if err := l.rdb.SetNX(ctx, k, data, resolvedTTL).Err(); err != nil {
		return Resolved{}, fmt.Errorf("ledger: resolution of %s: %w", id, err)
	}
	got, ok, err := l.Resolution(ctx, id)
	if err == nil && !ok {
		err = fmt.Errorf("ledger: resolution of %s vanished as it was written", id)
	}
	return got, err
}

// Resolution reads what Resolve recorded for occurrence id; ok is false
// when nothing was.
func (l *Ledger) Resolution(ctx context.Context, id string) (res Resolved, ok bool, err error) {
	data, err := l.rdb.Get(ctx, l.keys(id).resolved()).Bytes()
	if errors.Is(err, redis.Nil) {
		return Resolved{}, false, nil
	}
	if err != nil {
		return Resolved{}, false, fmt.Errorf("ledger: resolution of %s: %w", id, err)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return Resolved{}, false, fmt.Errorf("ledger: resolution of %s: %w", id, err)
	}
	return res, true, nil
}

// DropResolution deletes what Resolve recorded for occurrence id, once
// the occurrence is created.
func (l *Ledger) DropResolution(ctx context.Context, id string) error {
	if err := l.rdb.Del(ctx, l.keys(id).resolved()).Err(); err != nil {
		return fmt.Errorf("ledger: resolution of %s: %w", id, err)
	}
	return nil
}

// errLost: another creator took the creation over.
var errLost = errors.New("another apply took the creation over")

// writeInstances writes the instance hashes and wave lists of a rollout
// being created under token, createChunk instances per transaction: one
// HSET per instance with all its fields, one RPUSH per wave, and the
// renewal of the lease. Each transaction WATCHes the record and runs only
// if, when it starts, the record still names token as its creator, the
// rollout is still applying and the instances before the chunk are
// written: so a creator that lost its lease writes nothing, and no chunk
// is written twice. The next chunk is encoded while Redis runs the
// current one.
func (l *Ledger) writeInstances(ctx context.Context, k keys, id, token string, fresh bool, nw int,
	targets []rollout.Target, seeds map[string]Seed, regionOf func(group int) string, now string) error {
	type chunk struct {
		start, end int
		cmds       [][]any
	}
	ctx, cancel := context.WithCancel(ctx)
	chunks := make(chan chunk, 2)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	lease := applyLease.Milliseconds()
	wg.Go(func() {
		defer close(chunks)
		for start := 0; start < len(targets); start += createChunk {
			part := targets[start:min(start+createChunk, len(targets))]
			c := chunk{start: start, end: start + len(part), cmds: make([][]any, 0, len(part)+nw+2)}
			waves := make([][]any, nw)
			for _, t := range part {
				ik := k.instance(t.InstanceID)
				if !fresh {
					c.cmds = append(c.cmds, []any{"del", ik})
				}
				cmd := []any{"hset", ik, "st", "pending", "w", t.Wave, "g", t.Group}
				if t.Zone != "" {
					cmd = append(cmd, "zone", t.Zone)
				}
				if regionOf != nil {
					cmd = append(cmd, "rg", regionOf(t.Group))
				}
				s := seeds[t.InstanceID]
				cmd = appendSeed(cmd, s, now)
				c.cmds = append(c.cmds, cmd)
				if s.State == Resetting {
					c.cmds = append(c.cmds, []any{"sadd", k.resetting(), t.InstanceID})
				}
				if waves[t.Wave] == nil {
					waves[t.Wave] = []any{"rpush", k.wave(t.Wave)}
				}
				waves[t.Wave] = append(waves[t.Wave], t.InstanceID)
			}
			for _, w := range waves {
				if w != nil {
					c.cmds = append(c.cmds, w)
				}
			}
			c.cmds = append(c.cmds, []any{"hset", k.record(), "written", c.end},
				[]any{"set", k.applying(), token, "px", lease})
			select {
			case chunks <- c:
			case <-ctx.Done():
				return
			}
		}
	})
	rk := k.record()
	for c := range chunks {
		write := func(tx *redis.Tx) error {
			vals, err := tx.HMGet(ctx, rk, "token", "state", "written").Result()
			if err != nil {
				return err
			}
			if vals[0] != token || vals[1] != string(Applying) {
				return errLost
			}
			if w, _ := vals[2].(string); w != strconv.Itoa(c.start) {
				return fmt.Errorf("%s instances written before the chunk at %d", w, c.start)
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for _, cmd := range c.cmds {
					p.Do(ctx, cmd...)
				}
				return nil
			})
			return err
		}
		// A transaction fails when the record changed meanwhile (a
		// takeover, or a state change by hand): look again.
		var err error = redis.TxFailedErr
		for try := 0; try < 5 && errors.Is(err, redis.TxFailedErr); try++ {
			err = l.rdb.Watch(ctx, write, rk)
		}
		switch {
		case errors.Is(err, errLost):
			return fmt.Errorf("%w: %q: %w", ErrApplying, id, err)
		case err != nil:
			return fmt.Errorf("ledger: create %s: write instances %d to %d: %w", id, c.start, c.end, err)
		}
	}
	return ctx.Err()
}

// appendSeed appends the fields a seed sets on an instance.
func appendSeed(f []any, s Seed, now string) []any {
	if s.State != "" && s.State != Pending {
		f = append(f, "st", string(s.State))
	}
	if s.OldImage != "" || s.OldOpRequestID != "" {
		f = append(f, "oimg", s.OldImage, "oop", s.OldOpRequestID, "pf", 1)
	}
	if s.RequestID != "" {
		f = append(f, "rid", s.RequestID)
	}
	if s.Token != 0 {
		f = append(f, "tok", s.Token)
	}
	if !s.IntentAt.IsZero() {
		f = append(f, "intent", s.IntentAt.UnixMilli(), "first", s.IntentAt.UnixMilli())
	}
	if !s.CalledAt.IsZero() {
		f = append(f, "called", s.CalledAt.UnixMilli(), "resets", 1)
	}
	if s.Code != "" || s.Error != "" {
		f = append(f, "code", s.Code, "err", s.Error)
	}
	if s.NewImage != "" {
		f = append(f, "nimg", s.NewImage)
	}
	if s.State.Terminal() {
		f = append(f, "done", now)
	}
	return f
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
	k := l.keys(spec.ID)
	n, err := activateScript.Run(ctx, l.rdb, []string{k.record(), k.applying()}, token, string(state), l.now()).Int()
	if err != nil {
		return fmt.Errorf("ledger: activate %s: %w", spec.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: activate %q: another apply started it", ErrApplying, spec.ID)
	}
	l.tokens.CompareAndDelete(spec.ID, token)
	return nil
}
