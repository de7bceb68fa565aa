package web_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"testing"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

// TestRegionsShowTheirCounts: a rollout in two regions shows each region's
// progress and the region budget on its page and in its JSON.
func TestRegionsShowTheirCounts(t *testing.T) {
	b := setup(t, setupOpts{})
	ctx := t.Context()
	spec := rollout.Spec{ID: "regions", PlanHash: "h", API: "v3", Region: "ap-guangzhou",
		Budget: rollout.Budget{Max: 5, Percent: rollout.NoLimit}, RegionBudget: &rollout.Budget{Max: 1, Percent: rollout.NoLimit},
		Groups: []rollout.Group{{Name: "gz", ImageID: targetImage}, {Name: "sh", Region: "ap-shanghai", ImageID: targetImage}},
		Waves:  []rollout.Wave{{Size: 4}}}
	targets := []rollout.Target{{InstanceID: "ins-r0000001"}, {InstanceID: "ins-r0000002"},
		{InstanceID: "ins-r0000003", Group: 1}, {InstanceID: "ins-r0000004", Group: 1}}
	if _, err := b.l.Create(ctx, spec, targets, ledger.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.l.Activate(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// One failure in ap-shanghai.
	res, err := b.l.Begin(ctx, spec.ID, "ins-r0000003", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.l.Finish(ctx, spec.ID, "ins-r0000003", ledger.Outcome{From: []ledger.InstanceState{ledger.Calling}, Token: res.Token, To: ledger.Failed}); err != nil {
		t.Fatal(err)
	}

	code, page := b.get(t, "/rollouts/regions")
	if code != http.StatusOK {
		t.Fatalf("GET /rollouts/regions = %d", code)
	}
	for _, re := range []string{
		`failure budget of each: stop at more than 1 failed`,
		`(?s)<tr data-region="ap-guangzhou">.*?<td class="num">2</td>`,
		`(?s)<tr data-region="ap-shanghai">.*?<td class="num">2</td>.*?<td class="num bad">1</td>`,
	} {
		if !regexp.MustCompile(re).MatchString(page) {
			t.Errorf("the rollout page lacks %s", re)
		}
	}
	code, body := b.get(t, "/api/rollouts/regions")
	if code != http.StatusOK {
		t.Fatalf("GET /api/rollouts/regions = %d", code)
	}
	var v struct {
		Rollout struct {
			Regions []struct {
				Region   string
				Size     int
				Counters ledger.Counters
			}
			RegionBudget string `json:"region_failure_budget"`
		}
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	rs := v.Rollout.Regions
	if len(rs) != 2 || rs[1].Region != "ap-shanghai" || rs[1].Size != 2 || rs[1].Counters.Failed != 1 || v.Rollout.RegionBudget == "" {
		t.Errorf("JSON regions %+v, budget %q; want ap-shanghai with 1 failed of 2 and the budget", rs, v.Rollout.RegionBudget)
	}
}
