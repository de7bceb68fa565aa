package ledger_test

import (
	"fmt"
	"testing"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/google/go-cmp/cmp"
)

// setupPaged creates rollout "p" of waves 5, 3000 and 2000 (IDs
// ins-00000000 on, in plan order) with seeds: every 10th instance carries
// code "Every10th" (pending), every 100th of wave 3 failed, every 500th of
// waves 2 and 3 is resetting.
func setupPaged(t *testing.T) (*ledger.Ledger, *ledger.Rollout) {
	t.Helper()
	r := redistest.New(t)
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	spec := rollout.Spec{ID: "p", PlanHash: "h", API: "v3", Groups: []rollout.Group{{Name: "g", ImageID: "img-new00001"}}}
	var targets []rollout.Target
	seeds := map[string]ledger.Seed{}
	i := 0
	for k, size := range []int{5, 3000, 2000} {
		spec.Waves = append(spec.Waves, rollout.Wave{Size: size})
		for range size {
			id := fmt.Sprintf("ins-%08d", i)
			targets = append(targets, rollout.Target{InstanceID: id, Wave: k})
			switch {
			case k == 2 && i%100 == 0:
				seeds[id] = ledger.Seed{State: ledger.Failed, Code: "Boom"}
			case k > 0 && i%500 == 1:
				seeds[id] = ledger.Seed{State: ledger.Resetting, RequestID: "req"}
			case i%10 == 0:
				seeds[id] = ledger.Seed{Code: "Every10th"}
			}
			i++
		}
	}
	if created, err := l.Create(t.Context(), spec, targets, ledger.CreateOptions{Seeds: seeds}); err != nil || !created {
		t.Fatalf("Create = %v, %v", created, err)
	}
	ro, err := l.Get(t.Context(), "p")
	if err != nil {
		t.Fatal(err)
	}
	return l, ro
}

func pageIDs(p ledger.Page) []string {
	var out []string
	for _, in := range p.Instances {
		out = append(out, in.ID)
	}
	return out
}

func seq(from, n, step int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("ins-%08d", from+i*step))
	}
	return out
}

// TestPageCost: what a page reads follows the page, and totals are exact
// when the counters know them or the scan reached the end.
func TestPageCost(t *testing.T) {
	l, ro := setupPaged(t)
	for _, tc := range []struct {
		name        string
		q           ledger.Query
		want        []string
		wantTotal   int
		wantExact   bool
		wantMore    bool
		wantPartial bool
		maxScanned  int // positions the read may examine
	}{
		{"firstPage", ledger.Query{}, seq(0, 100, 1), 5005, true, true, false, 0},
		{"acrossWaves", ledger.Query{Offset: 3000, Limit: 10}, seq(3000, 10, 1), 5005, true, true, false, 0},
		{"deepInLastWave", ledger.Query{Offset: 5000, Limit: 10}, seq(5000, 5, 1), 5005, true, false, false, 0},
		{"waveOnly", ledger.Query{Waves: []int{2}, Offset: 1990}, seq(4995, 10, 1), 2000, true, false, false, 0},
		{"waveOutOfRange", ledger.Query{Waves: []int{7}}, nil, 0, true, false, false, 0},
		// Failures are all in wave 3: waves 1 and 2 are not read, and the
		// scan stops with the page full.
		{"failedFirstPage", ledger.Query{States: []ledger.InstanceState{ledger.Failed}, Limit: 5}, seq(3100, 5, 100), 20, true, true, false, 1000},
		// Page 3 of 5: the matches before it are skipped by scanning, but
		// the scan still stops at the page's last match.
		{"failedThirdPage", ledger.Query{States: []ledger.InstanceState{ledger.Failed}, Limit: 5, Offset: 10}, seq(4100, 5, 100), 20, true, true, false, 2000},
		{"noneCancelled", ledger.Query{States: []ledger.InstanceState{ledger.Cancelled}}, nil, 0, true, false, false, 0},
		// A code filter counts within its budget: the total is a lower bound.
		{"codeBudget", ledger.Query{Code: "every10th", Limit: 10, CountBudget: 1000}, seq(0, 10, 10), 201, false, true, false, 2005},
		{"codeNoBudget", ledger.Query{Code: "Every10th", Limit: 10, CountBudget: -1}, seq(0, 10, 10), 101, false, true, false, 1005}, // the chunk that filled the page
		{"codeWholeScan", ledger.Query{Code: "Boom", Limit: 30}, seq(3100, 20, 100), 20, true, false, false, 5005},
		// MaxScan stops a fruitless scan.
		{"maxScan", ledger.Query{Code: "NoSuchCode", MaxScan: 1500}, nil, 0, false, false, true, 2005},
		{"maxScanCounted", ledger.Query{States: []ledger.InstanceState{ledger.Failed}, Limit: 50, MaxScan: 1000}, seq(3100, 10, 100), 20, true, false, true, 1000},
		{"resettingWave2", ledger.Query{States: []ledger.InstanceState{ledger.Resetting}, Waves: []int{1}}, seq(501, 6, 500), 6, true, false, false, 3000},
		{"idSubstring", ledger.Query{IDContains: "INS-0000499", Limit: 3}, seq(4990, 3, 1), 10, true, true, false, 5005},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := l.Page(t.Context(), ro, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, pageIDs(p)); diff != "" {
				t.Errorf("Page(%+v) instances (-want +got):\n%s", tc.q, diff)
			}
			if p.Total != tc.wantTotal || p.Exact != tc.wantExact || p.More != tc.wantMore || p.Partial != tc.wantPartial {
				t.Errorf("Page(%+v) = total %d exact %v more %v partial %v; want %d %v %v %v", tc.q, p.Total, p.Exact, p.More, p.Partial,
					tc.wantTotal, tc.wantExact, tc.wantMore, tc.wantPartial)
			}
			if p.Scanned > tc.maxScanned {
				t.Errorf("Page(%+v) scanned %d positions; want at most %d", tc.q, p.Scanned, tc.maxScanned)
			}
		})
	}
}

func TestActivity(t *testing.T) {
	l, ro := setupPaged(t)
	a, err := l.Activity(t.Context(), ro)
	if err != nil {
		t.Fatal(err)
	}
	// Resetting: 501 to 3001 in wave 2 (IDs 5 to 3004), 3501 to 5001 in
	// wave 3; ins-00000001 is in wave 1, which has none.
	want := ledger.Activity{Resetting: 10, ResettingByWave: []int{0, 6, 4}}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("Activity (-want +got):\n%s", diff)
	}
}
