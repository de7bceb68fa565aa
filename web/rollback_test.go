package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/web"
)

// TestRollbackLinks: a rollback's page says what it rolls back, the
// original's page links to its rollback, and the list and the JSON API
// say both; a rollout merely named like a rollback is not taken for one.
func TestRollbackLinks(t *testing.T) {
	r := redistest.New(t)
	ctx := t.Context()
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	no := rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit}
	create := func(id, of string) {
		t.Helper()
		spec := rollout.Spec{ID: id, PlanHash: "h-" + id, API: "v3", RollbackOf: of, Budget: no,
			Groups: []rollout.Group{{Name: "g", ImageID: "img-00000001"}}, Waves: []rollout.Wave{{Size: 1, Budget: no}}}
		if _, err := l.Create(ctx, spec, []rollout.Target{{InstanceID: "ins-" + id}}, ledger.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := l.Activate(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	create("web", "")
	create("web-rollback", "web")
	create("other", "")
	create("other-rollback", "") // a plan of that name, not a rollback
	ui, err := web.New(web.Config{Ledger: l})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ui)
	defer srv.Close()
	get := func(path string) string {
		t.Helper()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s\n%s", path, res.Status, b)
		}
		return string(b)
	}
	pages := []struct {
		path        string
		want, never []string
	}{
		{"/rollouts/web", []string{`Rolled back by <a href="/rollouts/web-rollback">web-rollback</a>`}, []string{"Rollback of"}},
		{"/rollouts/web-rollback", []string{`Rollback of <a href="/rollouts/web">web</a>`}, []string{"Rolled back by"}},
		{"/rollouts/other", nil, []string{"Rolled back by", "Rollback of"}},
		{"/", []string{"rollback of web", `rolled back by <a href="/rollouts/web-rollback">`}, []string{"rolled back by <a href=\"/rollouts/other-rollback\">"}},
	}
	for _, p := range pages {
		body := get(p.path)
		for _, w := range p.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %q", p.path, w)
			}
		}
		for _, n := range p.never {
			if strings.Contains(body, n) {
				t.Errorf("%s shows %q", p.path, n)
			}
		}
	}
	var list struct {
		Rollouts []web.RolloutView `json:"rollouts"`
	}
	if err := json.Unmarshal([]byte(get("/api/rollouts")), &list); err != nil {
		t.Fatal(err)
	}
	got := map[string][2]string{}
	for _, v := range list.Rollouts {
		got[v.ID] = [2]string{v.RollbackOf, v.RolledBackBy}
	}
	want := map[string][2]string{"web": {"", "web-rollback"}, "web-rollback": {"web", ""}, "other": {}, "other-rollback": {}}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("/api/rollouts %s: rollback of, rolled back by = %q; want %q", id, got[id], w)
		}
	}
}
