package planner

import (
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fleetreset/fleetreset/rollout"
)

// waves reads the `waves` list. An entry is a size ("5", "20%") or a
// mapping {size, soak, approval, failureBudget}.
func (p *parser) waves(en entry) {
	items, ok := p.seq(en.val, en.field, "of waves like {size: 1, soak: 10m}")
	if !ok {
		return
	}
	if len(items) == 0 {
		p.at(en.val, en.field, "is empty: list at least one wave, e.g. [{size: 1, soak: 10m}, {size: 100%%}]")
		return
	}
	for i, it := range items {
		path := index(en.field, i)
		w := &wave{node: it, path: path, budget: setting[rollout.Budget]{v: rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit}, ok: true}}
		p.raw.waves = append(p.raw.waves, w)
		if it.Kind == yaml.ScalarNode && !isNull(it) {
			w.size = p.size(entry{val: it, field: path})
			continue
		}
		f, ok := p.mapping(it, path, "a wave: {size, soak, approval, failureBudget} or just a size", "size", "soak", "approval", "failureBudget")
		if !ok {
			continue
		}
		if s, ok := f.get("size"); !ok {
			p.at(it, join(path, "size"), "is required: a count like 5 or a percentage of the plan like 20%%")
		} else {
			w.size = p.size(s)
		}
		if s, ok := f.get("soak"); ok {
			w.soak, _ = p.duration(s.val, s.field, true)
		}
		if a, ok := f.get("approval"); ok {
			if v, ok := p.str(a.val, a.field, "manual or auto"); ok {
				switch v {
				case "manual":
					w.approval = true
				case "auto":
				default:
					p.at(a.val, a.field, "%q: want manual (hold the next wave until `fleetreset approve`) or auto", v)
				}
			}
		}
		if b, ok := f.get("failureBudget"); ok {
			w.budget = p.budget(b)
		}
	}
}

// size reads a wave size.
func (p *parser) size(en entry) setting[rollout.Size] {
	s, ok := p.str(en.val, en.field, "a count like 5 or a percentage like 20%")
	if !ok {
		return bad[rollout.Size](en)
	}
	sz, err := rollout.ParseSize(s)
	if err != nil {
		p.at(en.val, en.field, "%v", err)
		return bad[rollout.Size](en)
	}
	return set(en, sz)
}

// budget reads `failureBudget: {max, percent, minSample}`. A limit left out
// is off (NoLimit); at least one must be given.
func (p *parser) budget(en entry) setting[rollout.Budget] {
	f, ok := p.mapping(en.val, en.field, "like {max: 2, percent: 10%, minSample: 10}", "max", "percent", "minSample")
	if !ok {
		return bad[rollout.Budget](en)
	}
	b := rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit}
	good := true
	if m, ok := f.get("max"); ok {
		if v, ok := p.integer(m.val, m.field); !ok {
			good = false
		} else if v < 0 {
			p.at(m.val, m.field, "must be 0 or more (0: the first failure breaches); leave max out for no count limit")
			good = false
		} else {
			b.Max = v
		}
	}
	if pc, ok := f.get("percent"); ok {
		if v, ok := p.percent(pc); ok {
			b.Percent = v
		} else {
			good = false
		}
	}
	if ms, ok := f.get("minSample"); ok {
		if v, ok := p.integer(ms.val, ms.field); !ok {
			good = false
		} else if v < 0 {
			p.at(ms.val, ms.field, "must be 0 or more")
			good = false
		} else if !f.has("percent") {
			p.at(ms.val, ms.field, "applies to percent only, and percent is not set (max is judged from the first failure)")
			good = false
		} else {
			b.MinSample = v
		}
	}
	if !f.has("max") && !f.has("percent") {
		p.at(en.val, en.field, "is empty: give max, percent or both (leave %s out for the default)", lastKey(en.field))
		good = false
	}
	if !good {
		return bad[rollout.Budget](en)
	}
	return set(en, b)
}

// percent reads a budget percentage: "10%", "2.5%", or a bare number, from
// 0 to 100 with at most two decimals.
func (p *parser) percent(en entry) (float64, bool) {
	s, ok := p.str(en.val, en.field, "a percentage like 10%")
	if !ok {
		return 0, false
	}
	num := strings.TrimSuffix(s, "%")
	whole, frac, dot := strings.Cut(num, ".")
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || !digits(whole) || (dot && (len(frac) > 2 || !digits(frac))) || v > 100 {
		p.at(en.val, en.field, "%q: want a percentage from 0%% to 100%% with at most two decimals, like 10%% or 2.5%%", s)
		return 0, false
	}
	return v, true
}

// digits reports whether s is one or more ASCII digits.
func digits(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }

// rateLimit reads `rateLimit: {reset, describe, unsafeAboveApiLimit}`.
func (p *parser) rateLimit(f fields) {
	r := &p.raw
	r.resetRate = setting[float64]{v: ResetRateDefault, ok: true}
	r.describeRate = setting[float64]{v: DescribeRateDefault, ok: true}
	en, ok := f.get("rateLimit")
	if !ok {
		return
	}
	m, ok := p.mapping(en.val, en.field, "like {reset: 10, describe: 40}", "reset", "describe", "unsafeAboveApiLimit")
	if !ok {
		return
	}
	if u, ok := m.get("unsafeAboveApiLimit"); ok {
		r.unsafeRate, _ = p.boolean(u.val, u.field)
	}
	for _, x := range []struct {
		key    string
		dst    *setting[float64]
		limit  float64
		action string
	}{
		{"reset", &r.resetRate, ResetRateLimit, "ResetInstance"},
		{"describe", &r.describeRate, DescribeRateLimit, "DescribeInstances"},
	} {
		k, ok := m.get(x.key)
		if !ok {
			continue
		}
		v, ok := p.number(k.val, k.field)
		switch {
		case !ok:
			*x.dst = bad[float64](k)
		case v <= 0:
			p.at(k.val, k.field, "must be more than 0 calls per second")
			*x.dst = bad[float64](k)
		case v < MinRate:
			p.at(k.val, k.field, "%v calls/s is below the least a plan may ask for (%v/s, one call in %s); stage a slower rollout with waves and soaks", v, MinRate, time.Duration(float64(time.Second)/MinRate))
			*x.dst = bad[float64](k)
		case v > MaxRate:
			p.at(k.val, k.field, "%v calls/s is above the most the workers' rate limiter supports (%v/s)", v, MaxRate)
			*x.dst = bad[float64](k)
		case v > x.limit && !r.unsafeRate:
			p.at(k.val, k.field, "%v calls/s is above the %s API limit of %v/s, so the cloud would throttle the rollout; set rateLimit.unsafeAboveApiLimit: true only if your quota was raised", v, x.action, x.limit)
			*x.dst = bad[float64](k)
		default:
			*x.dst = set(k, v)
		}
	}
}

// verifyAndRetry reads `verify: {interval, timeout}` and `retry: {attempts, deadline}`.
func (p *parser) verifyAndRetry(f fields) {
	r := &p.raw
	r.verifyEvery = setting[time.Duration]{v: VerifyIntervalDefault, ok: true}
	r.verifyFor = setting[time.Duration]{v: VerifyTimeoutDefault, ok: true}
	r.retryTimes = setting[int]{v: RetryAttemptsDefault, ok: true}
	r.retryFor = setting[time.Duration]{v: RetryDeadlineDefault, ok: true}
	if en, ok := f.get("verify"); ok {
		if m, ok := p.mapping(en.val, en.field, "like {interval: 10s, timeout: 20m}", "interval", "timeout"); ok {
			for key, dst := range map[string]*setting[time.Duration]{"interval": &r.verifyEvery, "timeout": &r.verifyFor} {
				if k, ok := m.get(key); ok {
					if d, ok := p.duration(k.val, k.field, false); ok {
						*dst = set(k, d)
					} else {
						*dst = bad[time.Duration](k)
					}
				}
			}
			if r.verifyEvery.ok && r.verifyFor.ok && r.verifyEvery.v > r.verifyFor.v {
				n, field := r.verifyEvery.node, r.verifyEvery.field
				if n == nil {
					n, field = en.val, join(en.field, "interval")
				}
				p.at(n, field, "%v is longer than verify.timeout %v: no instance could be checked before it times out", r.verifyEvery.v, r.verifyFor.v)
			}
		}
	}
	if en, ok := f.get("retry"); ok {
		if m, ok := p.mapping(en.val, en.field, "like {attempts: 20, deadline: 30m}", "attempts", "deadline"); ok {
			if k, ok := m.get("attempts"); ok {
				if v, ok := p.integer(k.val, k.field); ok && v >= 1 {
					r.retryTimes = set(k, v)
				} else if ok {
					p.at(k.val, k.field, "must be at least 1 (1: no retry)")
				}
			}
			if k, ok := m.get("deadline"); ok {
				if d, ok := p.duration(k.val, k.field, false); ok {
					r.retryFor = set(k, d)
				}
			}
		}
	}
}
