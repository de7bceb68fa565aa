package ledger_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

// BenchmarkCreate measures Claim and Create of a 100,000-instance rollout
// in four waves, the ledger's share of an apply (bench.BenchmarkApply
// measures the whole apply). Run it against a real Redis.
func BenchmarkCreate(b *testing.B) {
	r := redistest.New(b)
	const n = 100_000
	sizes := []int{1, 100, 9_900, 90_000}
	var targets []rollout.Target
	ids := make([]string, 0, n)
	for k, size := range sizes {
		for range size {
			id := fmt.Sprintf("ins-%08d", len(ids))
			ids = append(ids, id)
			targets = append(targets, rollout.Target{InstanceID: id, Wave: k, Zone: "ap-guangzhou-3"})
		}
	}
	var claim, create time.Duration
	i := 0
	for b.Loop() {
		i++
		l := ledger.New(r.Client, ledger.Config{Prefix: fmt.Sprintf("%sb%d:", r.Prefix, i)})
		spec := rollout.Spec{ID: "bench", PlanHash: "h", Groups: []rollout.Group{{Name: "g"}}}
		for _, s := range sizes {
			spec.Waves = append(spec.Waves, rollout.Wave{Size: s})
		}
		t0 := time.Now()
		if c, err := l.Claim(b.Context(), spec.ID, ids); err != nil || len(c) > 0 {
			b.Fatal(c, err)
		}
		t1 := time.Now()
		if ok, err := l.Create(b.Context(), spec, targets, ledger.CreateOptions{}); err != nil || !ok {
			b.Fatal(ok, err)
		}
		claim += t1.Sub(t0)
		create += time.Since(t1)
	}
	b.ReportMetric(claim.Seconds()/float64(i), "claim-s")
	b.ReportMetric(create.Seconds()/float64(i), "create-s")
}
