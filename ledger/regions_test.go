package ledger_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

// TestRegionCounters follows the per-region counters of a two-region
// rollout through every script that counts outcomes: seeded outcomes at
// creation, finish, retry-failed (which takes failures back), an abort's
// cancellations, and the prune that deletes them.
func TestRegionCounters(t *testing.T) {
	x := newRetention(t)
	ctx := t.Context()
	spec := rollout.Spec{ID: "two", PlanHash: "h", API: "v3", Region: "ap-guangzhou",
		Groups: []rollout.Group{{Name: "gz", ImageID: "img-new00001"}, {Name: "sh", Region: "ap-shanghai", ImageID: "img-new00001"}},
		Waves:  []rollout.Wave{{Size: 8}}}
	var targets []rollout.Target
	for i := range 8 {
		targets = append(targets, rollout.Target{InstanceID: fmt.Sprintf("ins-%08d", i), Group: i % 2})
	}
	// ins-00000006 (gz) is already on the image: skipped at creation.
	seeds := map[string]ledger.Seed{"ins-00000006": {State: ledger.Skipped, Code: "AlreadyOnTarget"}}
	if created, err := x.l.Create(ctx, spec, targets, ledger.CreateOptions{Seeds: seeds}); err != nil || !created {
		t.Fatalf("Create = %v, %v", created, err)
	}
	if err := x.l.Activate(ctx, spec); err != nil {
		t.Fatal(err)
	}
	finish := func(id string, to ledger.InstanceState) ledger.FinishResult {
		t.Helper()
		res, err := x.l.Begin(ctx, spec.ID, id, 0)
		if err != nil || res.Action != ledger.ActProceed {
			t.Fatalf("Begin %s = %+v, %v", id, res, err)
		}
		if err := x.l.Called(ctx, spec.ID, id, res.Token, "req-"+id); err != nil {
			t.Fatal(err)
		}
		fr, err := x.l.Finish(ctx, spec.ID, id, ledger.Outcome{From: []ledger.InstanceState{ledger.Resetting}, To: to})
		if err != nil || !fr.Changed {
			t.Fatalf("Finish %s = %+v, %v", id, fr, err)
		}
		return fr
	}
	regions := func() map[string]ledger.Counters {
		t.Helper()
		r, err := x.l.Get(ctx, spec.ID)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]ledger.Counters{}
		for _, rs := range r.Regions {
			out[rs.Region] = rs.Counters
		}
		if len(r.Regions) != 2 || r.Regions[0].Region != "ap-guangzhou" || r.Regions[0].Size != 4 || r.Regions[1].Size != 4 {
			t.Errorf("Regions = %+v; want ap-guangzhou then ap-shanghai, 4 instances each", r.Regions)
		}
		return out
	}
	check := func(step string, want map[string]ledger.Counters) {
		t.Helper()
		if diff := cmp.Diff(want, regions()); diff != "" {
			t.Errorf("%s: region counters (-want +got):\n%s", step, diff)
		}
	}
	check("created", map[string]ledger.Counters{"ap-guangzhou": {Skipped: 1, Terminal: 1}, "ap-shanghai": {}})

	finish("ins-00000000", ledger.Succeeded) // gz
	fr := finish("ins-00000001", ledger.Failed)
	if fr.Region != "ap-shanghai" || fr.RegionCounters != (ledger.Counters{Failed: 1, Terminal: 1}) {
		t.Errorf("Finish in shanghai = region %q %+v; want ap-shanghai with 1 failed", fr.Region, fr.RegionCounters)
	}
	fr = finish("ins-00000003", ledger.Ambiguous)
	if fr.RegionCounters != (ledger.Counters{Failed: 1, Ambiguous: 1, Terminal: 2}) || fr.Overall.Failures() != 2 {
		t.Errorf("second shanghai failure: %+v overall %+v", fr.RegionCounters, fr.Overall)
	}
	check("finished", map[string]ledger.Counters{
		"ap-guangzhou": {Succeeded: 1, Skipped: 1, Terminal: 2},
		"ap-shanghai":  {Failed: 1, Ambiguous: 1, Terminal: 2}})

	// retry-failed takes shanghai's failure back (not the ambiguous one).
	if _, err := x.l.RetryFailed(ctx, spec.ID, false); err != nil {
		t.Fatal(err)
	}
	check("retried", map[string]ledger.Counters{
		"ap-guangzhou": {Succeeded: 1, Skipped: 1, Terminal: 2},
		"ap-shanghai":  {Ambiguous: 1, Terminal: 1}})

	// The abort cancels the rest: 2 of gz (2, 4), 3 of sh (1, 5, 7).
	x.finish(t, spec.ID, ledger.Aborted)
	check("aborted", map[string]ledger.Counters{
		"ap-guangzhou": {Succeeded: 1, Skipped: 1, Cancelled: 2, Terminal: 4},
		"ap-shanghai":  {Ambiguous: 1, Cancelled: 3, Terminal: 4}})
	r, _ := x.l.Get(ctx, spec.ID)
	var sum ledger.Counters
	for _, rs := range r.Regions {
		c := rs.Counters
		sum = ledger.Counters{Succeeded: sum.Succeeded + c.Succeeded, Skipped: sum.Skipped + c.Skipped,
			Failed: sum.Failed + c.Failed, Ambiguous: sum.Ambiguous + c.Ambiguous,
			Cancelled: sum.Cancelled + c.Cancelled, Terminal: sum.Terminal + c.Terminal}
	}
	if sum != r.Counters {
		t.Errorf("the regions add up to %+v; the rollout counts %+v", sum, r.Counters)
	}

	x.clk.Add(40 * day)
	if _, err := x.l.Prune(ctx, ledger.PruneOptions{}); err != nil {
		t.Fatal(err)
	}
	for k := range x.keys(t) {
		if strings.Contains(k, "rc:") {
			t.Errorf("%s survived the prune", k)
		}
	}
}

// TestOneRegionCountsNoRegion: a rollout in one region without a region
// budget keeps no region counters and no region per instance.
func TestOneRegionCountsNoRegion(t *testing.T) {
	l, spec, _ := setup(t, 2)
	ctx := t.Context()
	res, _ := l.Begin(ctx, spec.ID, "ins-00000000", 0)
	if err := l.Called(ctx, spec.ID, "ins-00000000", res.Token, "req"); err != nil {
		t.Fatal(err)
	}
	fr, err := l.Finish(ctx, spec.ID, "ins-00000000", ledger.Outcome{From: []ledger.InstanceState{ledger.Resetting}, To: ledger.Failed})
	if err != nil || fr.Region != "" || fr.RegionCounters != (ledger.Counters{}) {
		t.Errorf("Finish = region %q %+v, %v; want none", fr.Region, fr.RegionCounters, err)
	}
	r, err := l.Get(ctx, spec.ID)
	if err != nil || r.Regions != nil {
		t.Errorf("Get = %+v, %v; want no regions", r.Regions, err)
	}
}
