package ledger

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Paged reads of a rollout's instances, for the UI and its JSON API, whose
// cost follows the page asked for rather than the size of the fleet.
//
// What each read costs (n = instances of the selected waves, p = the page
// size, one round trip moves up to scanChunk IDs or hashes):
//
//   - no filter, or a wave filter only: the page's position is computed
//     from the wave sizes; one LRANGE per wave the page spans plus p
//     HGETALLs. O(p), whatever n is.
//   - a state filter on terminal states only (succeeded, skipped, failed,
//     ambiguous, cancelled): the per-wave counters give the exact total and
//     say which waves hold matches, so waves without matches, or whose
//     matches all fall before the page, are never read. The waves the page
//     falls in are scanned (LRANGE, then HMGET of st and code) until the
//     page is full or the wave's matches are all found. O(positions up to
//     the last match of the page).
//   - an ID, code or non-terminal state filter: the selected waves are
//     scanned in chunks (an ID filter reads IDs only; code and state add an
//     HMGET of st and code per candidate) until the page is full and one
//     more match is seen, then for at most CountBudget more positions to
//     count the matches. The total is exact when the scan reached the end,
//     else a lower bound. O(positions up to the page's last match +
//     CountBudget), at worst O(n) when matches are rare.
//
// Nothing here locks or blocks Redis for long: every command touches at
// most scanChunk keys, so workers' scripts interleave with a scan.

// Page sizes and scan bounds.
const (
	// PageLimitDefault is Query.Limit when zero.
	PageLimitDefault = 100
	// PageLimitMax caps Query.Limit.
	PageLimitMax = 1000
	// CountBudgetDefault is Query.CountBudget when zero: with it a rollout
	// of up to 10,000 instances always gets an exact total.
	CountBudgetDefault = 10_000
)

// scanChunk is how many positions one LRANGE (and one pipeline of HMGETs)
// covers: large enough that a 200,000-instance scan is 200 round trips,
// small enough that no single command holds Redis for long.
const scanChunk = 1000

// Query selects instances of one rollout for one page. The zero value is
// the first PageLimitDefault instances of every wave, in plan order.
type Query struct {
	// IDContains keeps instances whose ID contains it, ignoring case (a
	// prefix is a substring too).
	// Defaults to "": any ID.
	IDContains string
	// Waves keeps instances of these waves (0-based); out-of-range waves
	// match nothing.
	// Defaults to nil: every wave.
	Waves []int
	// States keeps instances in one of these states.
	// Defaults to nil: any state.
	States []InstanceState
	// Code keeps instances whose recorded error code equals it, ignoring
	// case (codes are CamelCase words an operator retypes).
	// Defaults to "": any code, or none.
	Code string
	// Offset skips that many matches, in plan order (wave by wave, each
	// wave in the plan's order). Negative counts as 0.
	Offset int
	// Limit is the page size, at most PageLimitMax.
	// Defaults to PageLimitDefault.
	Limit int
	// CountBudget is how many more positions a scan examines, once the
	// page is full and a further match was seen, to count matches that
	// the counters cannot count. Negative: none (the total is then what
	// the page needed).
	// Defaults to CountBudgetDefault.
	CountBudget int
	// MaxScan, when positive, stops a scan after that many positions even
	// if the page is not full (Page.Partial). It bounds reads that must
	// stay cheap whatever they find, such as a summary of failures.
	// Defaults to 0: a scan goes on until the page is full or the
	// selected waves end.
	MaxScan int
}

// Page is one page of instances and what is known of the whole match.
type Page struct {
	// Instances are the page, in plan order. An instance that vanished
	// or changed between the scan and the read may be missing or no
	// longer match: a page is a snapshot of a moving rollout.
	Instances []*Instance
	// Offset and Limit are those of the query, after defaults and caps.
	Offset, Limit int
	// Total counts the matching instances: exactly when Exact, else it is
	// the number a scan saw before it stopped, a lower bound.
	Total int
	Exact bool
	// More reports matches after this page.
	More bool
	// Partial reports that the scan stopped at Query.MaxScan before the
	// page was full: later positions were not examined. Total and More
	// may still be exact, from the counters.
	Partial bool
	// Scanned counts the positions a scan examined (IDs read from the
	// wave lists); zero when the page was found from the counters alone.
	Scanned int
}

// Page reads one page of the instances of r that match q. r is the
// rollout as Get returned it: its wave sizes and counters decide which
// waves need reading at all. See the top of this file for what it costs.
func (l *Ledger) Page(ctx context.Context, r *Rollout, q Query) (Page, error) {
	p := Page{Offset: max(q.Offset, 0), Limit: q.Limit}
	if p.Limit <= 0 {
		p.Limit = PageLimitDefault
	}
	p.Limit = min(p.Limit, PageLimitMax)
	budget := cmp.Or(q.CountBudget, CountBudgetDefault)

	var waves []int
	for k := range r.Waves {
		if q.Waves == nil || slices.Contains(q.Waves, k) {
			waves = append(waves, k)
		}
	}
	states := map[InstanceState]bool{}
	terminalOnly := true
	for _, s := range q.States {
		states[s] = true
		terminalOnly = terminalOnly && s.Terminal()
	}
	idq := strings.ToLower(q.IDContains)
	// counted: the counters know exactly how many instances of each wave
	// match. bound[k] is that count, or else an upper bound of it.
	counted := idq == "" && q.Code == "" && terminalOnly
	bound := make(map[int]int, len(waves))
	for _, k := range waves {
		w := r.Waves[k]
		switch {
		case len(states) == 0:
			bound[k] = w.Size
		case terminalOnly:
			for s := range states {
				bound[k] += w.Counters.of(s)
			}
		default:
			// A non-terminal state among them: anything not terminal may
			// match, and so may the terminal states asked for.
			bound[k] = w.Size - w.Counters.Terminal
			for s := range states {
				if s.Terminal() {
					bound[k] += w.Counters.of(s)
				}
			}
		}
	}

	var ids []string
	if counted {
		for _, k := range waves {
			p.Total += bound[k]
		}
		p.Exact = true
		p.More = p.Offset+p.Limit < p.Total
		var err error
		if len(states) == 0 {
			ids, err = l.slice(ctx, r, waves, p.Offset, p.Limit)
		} else {
			ids, p.Scanned, p.Partial, err = l.scanCounted(ctx, r.ID, waves, bound, states, p.Offset, p.Limit, q.MaxScan)
		}
		if err != nil {
			return Page{}, err
		}
	} else {
		var err error
		if ids, err = l.scan(ctx, r.ID, waves, bound, q, idq, states, budget, &p); err != nil {
			return Page{}, err
		}
	}
	is, err := l.Instances(ctx, r.ID, ids)
	if err != nil {
		return Page{}, err
	}
	for _, in := range is {
		if in != nil {
			p.Instances = append(p.Instances, in)
		}
	}
	return p, nil
}

// of returns the count of terminal state s.
func (c Counters) of(s InstanceState) int {
	switch s {
	case Succeeded:
		return c.Succeeded
	case Skipped:
		return c.Skipped
	case Failed:
		return c.Failed
	case Ambiguous:
		return c.Ambiguous
	case Cancelled:
		return c.Cancelled
	}
	return 0
}

// slice returns limit IDs from offset of the concatenated wave lists,
// positioned by the wave sizes without reading the waves before it.
func (l *Ledger) slice(ctx context.Context, r *Rollout, waves []int, offset, limit int) ([]string, error) {
	var out []string
	for _, k := range waves {
		size := r.Waves[k].Size
		if offset >= size {
			offset -= size
			continue
		}
		ids, err := l.rdb.LRange(ctx, l.waveKey(r.ID, k), int64(offset), int64(offset+limit-len(out)-1)).Result()
		if err != nil {
			return nil, fmt.Errorf("ledger: page of %s: %w", r.ID, err)
		}
		out = append(out, ids...)
		offset = 0
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

func (l *Ledger) waveKey(rollout string, k int) string {
	return l.keys(rollout).wave(k)
}

// chunk reads the IDs of wave k at positions [start, start+scanChunk).
func (l *Ledger) chunk(ctx context.Context, rollout string, k, start int) ([]string, error) {
	ids, err := l.rdb.LRange(ctx, l.waveKey(rollout, k), int64(start), int64(start+scanChunk-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: scan wave %d of %s: %w", k, rollout, err)
	}
	return ids, nil
}

// stateCodes reads st and code of ids in one pipeline.
func (l *Ledger) stateCodes(ctx context.Context, rollout string, ids []string) ([][2]string, error) {
	k := l.keys(rollout)
	pipe := l.rdb.Pipeline()
	cmds := make([]interface{ Val() []any }, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, k.instance(id), "st", "code")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("ledger: scan %s: %w", rollout, err)
	}
	out := make([][2]string, len(ids))
	for i, c := range cmds {
		v := c.Val()
		out[i][0], _ = v[0].(string)
		out[i][1], _ = v[1].(string)
	}
	return out, nil
}

// scanCounted finds the page of a terminal-state filter whose per-wave
// counts are exact: waves whose matches all lie before offset are skipped
// unread, and a wave's scan ends once its matches are all found. It stops
// early, partial, once maxScan (when positive) positions were read.
func (l *Ledger) scanCounted(ctx context.Context, rollout string, waves []int, count map[int]int, states map[InstanceState]bool,
	offset, limit, maxScan int) (out []string, scanned int, partial bool, err error) {
	seen := 0 // matches before the current position
	for _, k := range waves {
		if len(out) == limit {
			break
		}
		if seen+count[k] <= offset {
			seen += count[k]
			continue
		}
		found := 0
		for start := 0; found < count[k] && len(out) < limit; start += scanChunk {
			if maxScan > 0 && scanned >= maxScan {
				return out, scanned, true, nil
			}
			ids, err := l.chunk(ctx, rollout, k, start)
			if err != nil {
				return nil, 0, false, err
			}
			scanned += len(ids)
			sc, err := l.stateCodes(ctx, rollout, ids)
			if err != nil {
				return nil, 0, false, err
			}
			for i, id := range ids {
				if !states[InstanceState(sc[i][0])] {
					continue
				}
				if seen >= offset && len(out) < limit {
					out = append(out, id)
				}
				seen++
				found++
			}
			if len(ids) < scanChunk {
				break
			}
		}
		// The counters and the lists may disagree for a moment (a Finish
		// between two reads); continue from the count, not the scan.
		seen += count[k] - found
	}
	return out, scanned, false, nil
}

// scan finds the page of a filter the counters cannot count, counting
// matches as far as q's budget allows; it fills p's Total, Exact, More,
// Partial and Scanned.
func (l *Ledger) scan(ctx context.Context, rollout string, waves []int, bound map[int]int, q Query, idq string, states map[InstanceState]bool,
	budget int, p *Page) ([]string, error) {
	var out []string
	matched := 0
	moreAt := -1 // Scanned when a match after the page was first seen
	stop := func() bool {
		if moreAt >= 0 && p.Scanned-moreAt >= budget {
			return true
		}
		if q.MaxScan > 0 && p.Scanned >= q.MaxScan && moreAt < 0 {
			p.Partial = true
			return true
		}
		return false
	}
	needRead := len(states) > 0 || q.Code != ""
	end := true // the scan reached the end of every selected wave
scan:
	for _, k := range waves {
		if bound[k] == 0 {
			continue
		}
		for start := 0; ; start += scanChunk {
			if stop() {
				end = false
				break scan
			}
			ids, err := l.chunk(ctx, rollout, k, start)
			if err != nil {
				return nil, err
			}
			p.Scanned += len(ids)
			cand := ids
			if idq != "" {
				cand = nil
				for _, id := range ids {
					if strings.Contains(strings.ToLower(id), idq) {
						cand = append(cand, id)
					}
				}
			}
			if needRead && len(cand) > 0 {
				sc, err := l.stateCodes(ctx, rollout, cand)
				if err != nil {
					return nil, err
				}
				keep := cand[:0:0]
				for i, id := range cand {
					if (len(states) == 0 || states[InstanceState(sc[i][0])]) && (q.Code == "" || strings.EqualFold(sc[i][1], q.Code)) {
						keep = append(keep, id)
					}
				}
				cand = keep
			}
			for _, id := range cand {
				switch {
				case matched < p.Offset:
				case len(out) < p.Limit:
					out = append(out, id)
				case moreAt < 0:
					moreAt = p.Scanned
				}
				matched++
			}
			if len(ids) < scanChunk {
				break
			}
		}
	}
	p.Total = matched
	p.Exact = end
	p.More = matched > p.Offset+len(out) && len(out) == p.Limit
	return out, nil
}

// Activity is what a rollout's sets say about its unfinished instances.
type Activity struct {
	// Resetting counts instances whose reset the cloud accepted and that
	// are not verified yet; ResettingByWave splits them by wave (0-based).
	Resetting       int
	ResettingByWave []int
	// Held counts instances parked while the rollout was not running.
	Held int
}

// Activity reads the resetting and held sets of r. It costs one SMEMBERS,
// one SCARD and one HGET per resetting instance: it grows with the
// reinstalls in flight (bounded by the reset rate times the reinstall
// time), not with the fleet. Instances in state calling are in no set and
// are not counted: they are there for the length of one API call.
func (l *Ledger) Activity(ctx context.Context, r *Rollout) (Activity, error) {
	k := l.keys(r.ID)
	pipe := l.rdb.Pipeline()
	members := pipe.SMembers(ctx, k.resetting())
	held := pipe.SCard(ctx, k.held())
	if _, err := pipe.Exec(ctx); err != nil {
		return Activity{}, fmt.Errorf("ledger: activity of %s: %w", r.ID, err)
	}
	a := Activity{Held: int(held.Val()), ResettingByWave: make([]int, len(r.Waves))}
	ids := members.Val()
	for start := 0; start < len(ids); start += scanChunk {
		part := ids[start:min(start+scanChunk, len(ids))]
		pipe := l.rdb.Pipeline()
		cmds := make([]interface{ Val() []any }, len(part))
		for i, id := range part {
			cmds[i] = pipe.HMGet(ctx, k.instance(id), "w", "st")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return Activity{}, fmt.Errorf("ledger: activity of %s: %w", r.ID, err)
		}
		for _, c := range cmds {
			v := c.Val()
			w, _ := v[0].(string)
			st, _ := v[1].(string)
			// The set is maintained by the same scripts that change st;
			// check anyway, so a stale member is not shown as in flight.
			if InstanceState(st) != Resetting {
				continue
			}
			a.Resetting++
			if k, err := strconv.Atoi(w); err == nil && k >= 0 && k < len(a.ResettingByWave) {
				a.ResettingByWave[k]++
			}
		}
	}
	return a, nil
}
