package cli

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/internal/testfleet"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

// TestScheduledSelectResolvesEachOccurrence: a scheduled plan that selects
// by tag resolves its select again at each occurrence. Between the first
// occurrence and the second, one instance is tagged (it joins), one loses
// its tag (it leaves) and one is protected (it leaves); the second
// occurrence resets exactly what matches then, once each, while the first
// keeps the targets it was applied with. The plan's instances file is kept
// with the series: deleting it from disk after apply changes nothing.
func TestScheduledSelectResolvesEachOccurrence(t *testing.T) {
	r := redistest.New(t)
	fleet := cvmsim.Generate(30)
	for i := range fleet {
		fleet[i].Tags = map[string]string{"role": "db"}
		if i < 10 {
			fleet[i].Tags = map[string]string{"role": "web"}
		}
	}
	sim := cvmsim.New(cvmsim.Config{ResetDuration: 50 * time.Millisecond,
		Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}})
	sim.AddInstances(fleet...)
	hs := httptest.NewServer(sim)
	defer hs.Close()
	t.Setenv("TENCENTCLOUD_SECRET_ID", cvmsim.SecretIDDefault)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", cvmsim.SecretKeyDefault)

	dir := t.TempDir()
	listed := fleet[20].ID
	if err := os.WriteFile(filepath.Join(dir, "pinned.txt"), []byte(listed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plan := `version: 1
name: web-weekly
region: ap-guangzhou
image: {type: 1, id: img-new00001}
keepImageLogin: true
skipMatching: false
schedule: "0 3 * * *"
startAt: ` + time.Now().Add(-time.Second).UTC().Format(time.RFC3339) + `
rateLimit: {reset: 300, describe: 40, unsafeAboveApiLimit: true}
verify: {interval: 200ms, timeout: 1m}
waves: [1, 100%]
groups:
  - name: pinned
    instancesFile: pinned.txt
  - name: web
    select:
      tag:role: web
`
	path := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	ns := strings.TrimSuffix(r.Prefix, ":")
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr}
	common := []string{"--namespace", ns, "--endpoint", hs.URL}
	env, out, errb := testEnv(vars)
	if code := Main(t.Context(), env, append(append([]string{"plan"}, common...), path)); code != 0 {
		t.Fatalf("plan exited %d\n%s\n%s", code, out, errb)
	}
	if !strings.Contains(out.String(), "each occurrence of the schedule resolves the selects again") {
		t.Errorf("plan does not say the selects are resolved at each occurrence:\n%s", out)
	}
	env, out, errb = testEnv(vars)
	if code := Main(t.Context(), env, append(append([]string{"apply", "--no-preflight"}, common...), path)); code != 0 {
		t.Fatalf("apply exited %d\n%s\n%s", code, out, errb)
	}
	// The plan on disk is gone; the series keeps what apply read.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		env, out, errb := testEnv(vars)
		if code := Main(ctx, env, append([]string{"worker", "--concurrency", "20", "--reconcile-grace", "5s"}, common...)); code != 0 {
			t.Errorf("worker exited %d\n%s\n%s", code, out, errb)
		}
	})
	defer wg.Wait()
	defer cancel()

	l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
	first := awaitState(t, l, "web-weekly", time.Minute, ledger.Completed)
	firstIDs := instanceIDs(t, l, first)
	want1 := append([]string{listed}, idsOf(fleet[:10])...)
	if !slices.Equal(firstIDs, sorted(want1)) {
		t.Fatalf("first occurrence targets %v; want %v", firstIDs, sorted(want1))
	}

	// Between occurrences: fleet[12] joins, fleet[0] leaves, fleet[1] is
	// protected.
	sim.SetTags(fleet[12].ID, map[string]string{"role": "web"})
	sim.SetTags(fleet[0].ID, map[string]string{"role": "db"})
	sim.SetTags(fleet[1].ID, map[string]string{"role": "web", "fleetreset:protect": "true"})

	q := tasks.QueuesFor(ns).Control
	insp := asynq.NewInspector(r.ConnOpt())
	defer insp.Close()
	next := testfleet.AwaitRecur(t, insp, q, 30*time.Second)
	var p tasks.RecurPayload
	if err := json.Unmarshal(next.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if err := insp.RunTask(q, next.ID); err != nil {
		t.Fatal(err)
	}
	occ := engine.OccurrenceID("web-weekly", time.Unix(p.At, 0))
	second := awaitState(t, l, occ, time.Minute, ledger.Completed)
	want2 := append([]string{listed, fleet[12].ID}, idsOf(fleet[2:10])...)
	if got := instanceIDs(t, l, second); !slices.Equal(got, sorted(want2)) {
		t.Errorf("second occurrence targets %v; want %v", got, sorted(want2))
	}
	if second.Counters.Succeeded != len(want2) || second.Spec.Series != "web-weekly" || len(second.Spec.Waves) != 2 || second.Spec.Waves[0].Size != 1 {
		t.Errorf("second occurrence: %+v, series %q, waves %+v", second.Counters, second.Spec.Series, second.Spec.Waves)
	}
	if second.Spec.PlanHash == first.Spec.PlanHash {
		t.Errorf("second occurrence has the first's plan hash: its targets differ")
	}
	// The first keeps what it was applied with.
	if got := instanceIDs(t, l, first); !slices.Equal(got, firstIDs) {
		t.Errorf("first occurrence's targets changed to %v", got)
	}
	// Each instance was reset once per occurrence that held it.
	resets := map[string]int{}
	for _, id := range want1 {
		resets[id]++
	}
	for _, id := range want2 {
		resets[id]++
	}
	st := sim.Stats()
	for _, in := range fleet {
		if got := st.AcceptedResets[in.ID]; got != resets[in.ID] {
			t.Errorf("%s reset %d times; want %d", in.ID, got, resets[in.ID])
		}
	}
	// The series goes on with its source: the occurrence keeps it too.
	if src, err := l.Source(t.Context(), occ); err != nil || src == nil || len(src.Files) != 2 {
		t.Errorf("occurrence %s keeps source %v (%v); want the plan and its instances file", occ, src, err)
	}
}

// instanceIDs returns the sorted IDs of a rollout's instances.
func instanceIDs(t *testing.T, l *ledger.Ledger, r *ledger.Rollout) []string {
	t.Helper()
	is, err := l.AllInstances(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(is))
	for i, in := range is {
		ids[i] = in.ID
	}
	return sorted(ids)
}

func idsOf(ins []cvmsim.Instance) []string {
	ids := make([]string, len(ins))
	for i, in := range ins {
		ids[i] = in.ID
	}
	return ids
}

func sorted(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}
