package ledger

import "strconv"

// keys names the keys of one rollout (see the layout at the top of
// scripts.go). Every name starts with the rollout's base, whose hash tag
// {<rollout>} puts them all in one Redis Cluster slot.
type keys struct{ b string }

func (l *Ledger) keys(rollout string) keys { return keys{l.prefix + "{" + rollout + "}:"} }

func (k keys) record() string            { return k.b + "r" }
func (k keys) applying() string          { return k.b + "applying" }
func (k keys) claiming() string          { return k.b + "claiming" }
func (k keys) counters() string          { return k.b + "c" }
func (k keys) held() string              { return k.b + "held" }
func (k keys) resetting() string         { return k.b + "resetting" }
func (k keys) retrying() string          { return k.b + "retrying" }
func (k keys) fence() string             { return k.b + "fence" }
func (k keys) once() string              { return k.b + "once" }
func (k keys) source() string            { return k.b + "src" }
func (k keys) resolved() string          { return k.b + "sel" }
func (k keys) instance(id string) string { return k.b + "i:" + id }
func (k keys) wave(w int) string         { return k.b + "w:" + strconv.Itoa(w) }
func (k keys) waveCounters(w int) string { return k.b + "wc:" + strconv.Itoa(w) }

// regionCounters counts the outcomes of one region's instances, for
// rollouts that count regions (rollout.Spec.CountedRegions).
func (k keys) regionCounters(region string) string { return k.b + "rc:" + region }

// base is the prefix every key of one rollout starts with.
func (l *Ledger) base(rollout string) string { return l.keys(rollout).b }
