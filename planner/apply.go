package planner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

// DescribeFunc returns what the cloud shows of up to 100 instances (absent
// ones are not in the map). The CLI adapts the cvm client to it, so the
// planner never depends on an API client.
type DescribeFunc func(ctx context.Context, ids []string) (map[string]rollout.Observed, error)

// ApplyConfig configures Apply.
type ApplyConfig struct {
	Ledger *ledger.Ledger
	// Client enqueues the first wave's task.
	Client *asynq.Client
	// Namespace selects the queues. Defaults to tasks.DefaultNamespace.
	Namespace string
	// Describe, when set, pre-flights every target before anything is
	// written: missing or unresettable instances refuse the whole apply;
	// instances already on the target image are skipped.
	Describe DescribeFunc
	// Recovered carries the state an earlier run left in a local journal.
	Recovered ledger.CreateOptions
}

// ApplyResult says what Apply did.
type ApplyResult struct {
	// Created is false when the same plan was already applied: nothing new
	// was enqueued.
	Created bool
	// Skipped maps instances already on their target image to the reason.
	Skipped map[string]string
	State   ledger.RolloutState
}

// ErrRefused is returned (wrapped) when pre-flight or claims refuse a plan.
var ErrRefused = errors.New("planner: plan refused")

// Apply records the rollout of a validated plan in Redis and enqueues its
// first wave. It is all or nothing: a refused pre-flight or an instance
// claimed by another active rollout changes nothing. Applying the same plan
// again changes nothing and enqueues nothing.
func Apply(ctx context.Context, plan *Plan, cfg ApplyConfig) (ApplyResult, error) {
	spec := plan.Spec
	res := ApplyResult{Skipped: map[string]string{}}
	if spec.Schedule != "" {
		// A schedule without a start time first runs at its next occurrence.
		spec.Series = spec.ID
		if spec.StartAt.IsZero() {
			next, err := tasks.NextOccurrence(spec.Schedule, time.Now())
			if err != nil {
				return res, err
			}
			spec.StartAt = next
		}
	}
	l := cfg.Ledger
	if _, st, err := l.Spec(ctx, spec.ID); err == nil && st != ledger.Applying {
		r, err := l.Get(ctx, spec.ID)
		if err != nil {
			return res, err
		}
		if r.Spec.PlanHash != spec.PlanHash {
			return res, planChanged(r.Spec, plan)
		}
		res.State = r.State
		return res, nil
	} else if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return res, err
	}
	opts := cfg.Recovered
	if opts.Seeds == nil {
		opts.Seeds = map[string]ledger.Seed{}
	}
	if cfg.Describe != nil {
		pf, err := Preflight(ctx, plan, cfg.Describe)
		if err != nil {
			return res, err
		}
		if len(pf.Refused) > 0 {
			return res, fmt.Errorf("%w: %s", ErrRefused, pf.RefusedSummary(10))
		}
		for id, why := range pf.Skipped {
			if _, known := opts.Seeds[id]; !known {
				opts.Seeds[id] = ledger.Seed{State: ledger.Skipped, Code: "AlreadyOnTarget", Error: why, OldImage: pf.Images[id], NewImage: pf.Images[id]}
				res.Skipped[id] = why
			}
		}
	}
	ids := make([]string, len(plan.Targets))
	for i, t := range plan.Targets {
		ids[i] = t.InstanceID
	}
	conflicts, err := l.Claim(ctx, spec.ID, ids)
	if err != nil {
		return res, err
	}
	if len(conflicts) > 0 {
		var b strings.Builder
		for i, c := range conflicts {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s is in active rollout %q", c.InstanceID, c.Rollout)
		}
		return res, fmt.Errorf("%w: %s: %s; finish or abort that rollout first", ErrRefused, plan.Spec.PlanFile, b.String())
	}
	created, err := l.Create(ctx, spec, plan.Targets, opts)
	if errors.Is(err, ledger.ErrApplying) || (err == nil && !created) {
		// Another apply of this plan (or a scheduled occurrence) got
		// there first and owns the rest; its claims are ours too.
		res.State, _, _ = l.State(ctx, spec.ID)
		return res, nil
	}
	if err != nil {
		_ = l.Unclaim(ctx, spec.ID, ids)
		return res, err
	}
	t, err := tasks.NewStartWave(tasks.QueuesFor(cfg.Namespace), tasks.WavePayload{Rollout: spec.ID, Wave: opts.Wave, Seq: opts.Seq}, spec.StartAt)
	if err != nil {
		return res, err
	}
	if _, err := cfg.Client.EnqueueContext(ctx, t); err != nil && !tasks.IsConflict(err) {
		return res, fmt.Errorf("planner: enqueue first wave of %s: %w", spec.ID, err)
	}
	if err := l.Activate(ctx, spec); errors.Is(err, ledger.ErrApplying) {
		res.State, _, _ = l.State(ctx, spec.ID)
		return res, nil
	} else if err != nil {
		return res, err
	}
	res.Created = true
	res.State, _, _ = l.State(ctx, spec.ID)
	return res, nil
}

// planChanged explains why plan cannot be applied over the stored rollout
// of the same name. The effective API and endpoint are part of the plan's
// hash, so an --api or --endpoint that contradicts the rollout lands here
// too; naming the field beats "a different version of the plan" when the
// YAML did not change at all.
func planChanged(stored rollout.Spec, plan *Plan) error {
	spec := plan.Spec
	// source says where the new value of key comes from.
	source := func(key string) string {
		if from := plan.Overrides[key]; from != "" {
			return "from " + from
		}
		return "the plan's"
	}
	endpoint := func(e string) string {
		if e == "" {
			return "the default endpoint"
		}
		return "endpoint " + e
	}
	var was, now []string
	if stored.API != spec.API {
		was = append(was, "api "+stored.API)
		now = append(now, fmt.Sprintf("api %s (%s)", spec.API, source("api")))
	}
	if stored.Endpoint != spec.Endpoint {
		was = append(was, endpoint(stored.Endpoint))
		now = append(now, fmt.Sprintf("%s (%s)", endpoint(spec.Endpoint), source("endpoint")))
	}
	if len(was) == 0 {
		return fmt.Errorf("%w: rollout %q exists from a different version of the plan; give the plan a new name", ledger.ErrPlanChanged, spec.ID)
	}
	return fmt.Errorf("%w: rollout %q was applied with %s, and this apply has %s; a rollout keeps the API and endpoint it was applied with: apply with the same ones, or give the plan a new name",
		ledger.ErrPlanChanged, spec.ID, strings.Join(was, " and "), strings.Join(now, " and "))
}

// PreflightResult is the pre-flight of a whole plan.
type PreflightResult struct {
	// Skipped and Refused map instance IDs to the reason.
	Skipped map[string]string
	Refused map[string]string
	// Awaited maps instances with an operation running (a reinstall from
	// an earlier rollout, say) to the reason: the workers wait for it and
	// judge it, and reset only what it did not do.
	Awaited map[string]string
	// Images maps every found instance to its current image.
	Images map[string]string
	// Zones maps found instances to their zone.
	Zones map[string]string
	// DescribeCalls counts the API calls made.
	DescribeCalls int
}

// RefusedSummary lists up to n refused instances, sorted.
func (p PreflightResult) RefusedSummary(n int) string {
	ids := make([]string, 0, len(p.Refused))
	for id := range p.Refused {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var parts []string
	for i, id := range ids {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(ids)-n))
			break
		}
		parts = append(parts, id+": "+p.Refused[id])
	}
	return fmt.Sprintf("%d instance(s) cannot be reset: %s", len(ids), strings.Join(parts, "; "))
}

// Preflight checks every target of a plan with DescribeInstances, 100 per
// call, and decides proceed, skip or refuse for each.
func Preflight(ctx context.Context, plan *Plan, describe DescribeFunc) (PreflightResult, error) {
	res := PreflightResult{Skipped: map[string]string{}, Refused: map[string]string{}, Awaited: map[string]string{}, Images: map[string]string{}, Zones: map[string]string{}}
	const batch = 100
	for start := 0; start < len(plan.Targets); start += batch {
		chunk := plan.Targets[start:min(start+batch, len(plan.Targets))]
		ids := make([]string, len(chunk))
		for i, t := range chunk {
			ids[i] = t.InstanceID
		}
		obs, err := describe(ctx, ids)
		res.DescribeCalls++
		if err != nil {
			return res, fmt.Errorf("planner: pre-flight: %w", err)
		}
		for _, t := range chunk {
			o := obs[t.InstanceID]
			if o.Found {
				res.Images[t.InstanceID] = o.ImageID
				res.Zones[t.InstanceID] = o.Zone
			}
			switch v, why := rollout.Preflight(plan.Spec.Groups[t.Group].ImageID, o, plan.Spec.ResetMatching); v {
			case rollout.Skip:
				res.Skipped[t.InstanceID] = why
			case rollout.Refuse:
				res.Refused[t.InstanceID] = why
			case rollout.Await:
				res.Awaited[t.InstanceID] = why
			}
		}
	}
	return res, nil
}

// Preview is what `fleetreset plan` prints: the waves, what pre-flight
// found, the API calls the rollout will make and its minimum wall time.
type Preview struct {
	Rollout string
	Waves   []PreviewWave
	// ZoneCounts counts targets per zone ("" when unknown).
	ZoneCounts map[string]int
	Preflight  *PreflightResult
	// ResetCalls and DescribeCalls are the API calls of a clean run:
	// one reset per instance to reset, and one describe per 100 instances
	// for the pre-flight of each wave plus one per 100 per verify poll.
	ResetCalls    int
	DescribeCalls int
	// MinWallTime is the sum over waves of the time the reset budget needs
	// for the wave, plus the soaks. The reinstall itself (minutes on the
	// real cloud) and verification add to it per wave.
	MinWallTime time.Duration
}

// PreviewWave is one wave of a preview.
type PreviewWave struct {
	Index    int
	Size     int
	ToReset  int
	Soak     time.Duration
	Approval bool
	Budget   rollout.Budget
}

// MakePreview computes a preview; pf may be nil when no pre-flight ran.
func MakePreview(plan *Plan, pf *PreflightResult) Preview {
	p := Preview{Rollout: plan.Spec.ID, ZoneCounts: map[string]int{}, Preflight: pf}
	for _, t := range plan.Targets {
		zone := t.Zone
		if pf != nil && zone == "" {
			zone = pf.Zones[t.InstanceID]
		}
		p.ZoneCounts[zone]++
	}
	rate := cmp.Or(plan.Spec.ResetRate, 10)
	for k, w := range plan.Spec.Waves {
		pw := PreviewWave{Index: k, Size: w.Size, Soak: w.Soak, Approval: w.Approval, Budget: w.Budget}
		for _, t := range plan.WaveTargets(k) {
			if pf == nil || (pf.Skipped[t.InstanceID] == "" && pf.Refused[t.InstanceID] == "") {
				pw.ToReset++
			}
		}
		p.ResetCalls += pw.ToReset
		p.DescribeCalls += 2 * ((w.Size + 99) / 100)
		p.MinWallTime += time.Duration(float64(pw.ToReset) / rate * float64(time.Second))
		if k < len(plan.Spec.Waves)-1 {
			p.MinWallTime += w.Soak
		}
		p.Waves = append(p.Waves, pw)
	}
	return p
}
