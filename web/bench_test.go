package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/web"
)

// BenchmarkRolloutRefresh measures one refresh of a rollout page (GET
// /rollouts/NAME, as the page's script does every few seconds) at 1,000
// and 100,000 instances, in waves of 1%, 10%, 40% and the rest, with
// failures every 1,000th instance (spread over every wave: the Failures
// section's worst case). redis_cmds/op counts the Redis commands one
// refresh sends (in-process Redis only), after a first refresh has filled
// the Failures section's cache. allInstances is what the page read
// before it was paged: every instance, kept as the baseline.
//
//	go test -run '^$' -bench RolloutRefresh -benchtime 20x ./web/
func BenchmarkRolloutRefresh(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		r := redistest.New(b)
		l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
		spec := rollout.Spec{ID: "bench", PlanHash: "h", API: "v3", Groups: []rollout.Group{{Name: "g", ImageID: "img-new00001"}}}
		sizes := []int{n / 100, n / 10, n * 4 / 10}
		sizes = append(sizes, n-sizes[0]-sizes[1]-sizes[2])
		var targets []rollout.Target
		seeds := map[string]ledger.Seed{}
		i := 0
		for k, size := range sizes {
			spec.Waves = append(spec.Waves, rollout.Wave{Size: size})
			for range size {
				id := fmt.Sprintf("ins-%08d", i)
				targets = append(targets, rollout.Target{InstanceID: id, Wave: k})
				switch {
				case i%1000 == 999:
					seeds[id] = ledger.Seed{State: ledger.Failed, Code: "FailedOperation", Error: "boom"}
				case i%3 == 0:
					seeds[id] = ledger.Seed{State: ledger.Succeeded}
				}
				i++
			}
		}
		if _, err := l.Create(b.Context(), spec, targets, ledger.CreateOptions{Seeds: seeds}); err != nil {
			b.Fatal(err)
		}
		ui, err := web.New(web.Config{Ledger: l})
		if err != nil {
			b.Fatal(err)
		}
		get := func(b *testing.B, path string) {
			rec := httptest.NewRecorder()
			ui.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
			if rec.Code != http.StatusOK {
				b.Fatalf("GET %s = %d", path, rec.Code)
			}
		}
		for _, c := range []struct{ name, path string }{
			{"page", "/rollouts/bench"},
			{"pageWave4Page3", "/rollouts/bench?wave=4&page=3"},
			{"pageStateFailed", "/rollouts/bench?state=failed"},
			{"pageSearchID", "/rollouts/bench?id=ins-0000012"},
			{"api", "/api/rollouts/bench"},
		} {
			b.Run(fmt.Sprintf("%s/n=%d", c.name, n), func(b *testing.B) {
				get(b, c.path) // the first refresh fills the Failures section's cache
				cmds := 0
				for b.Loop() {
					before := commands(r)
					get(b, c.path)
					cmds += commands(r) - before
				}
				b.ReportMetric(float64(cmds)/float64(b.N), "redis_cmds/op")
			})
		}
		b.Run(fmt.Sprintf("allInstances/n=%d", n), func(b *testing.B) {
			cmds := 0
			for b.Loop() {
				before := commands(r)
				ro, err := l.Get(b.Context(), "bench")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := l.AllInstances(b.Context(), ro); err != nil {
					b.Fatal(err)
				}
				cmds += commands(r) - before
			}
			b.ReportMetric(float64(cmds)/float64(b.N), "redis_cmds/op")
		})
		ui.Close()
	}
}

func commands(r *redistest.Redis) int {
	if r.Mini == nil {
		return 0
	}
	return r.Mini.CommandCount()
}
