package web_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/web"
	"github.com/google/go-cmp/cmp"
)

// hostileID and hostileError are the last instance of the big rollout: an
// ID and an error message that would inject HTML if a page did not escape
// them. The planner refuses such an ID; the ledger does not, and the UI
// must not rely on the planner.
const (
	hostileID    = `ins-<script>alert("id")</script>&x`
	hostileCode  = `<b>Code</b>`
	hostileError = `<img src=x onerror=alert(1)> & "quoted"`
)

// bigWaves are the wave sizes of the big rollout: the first 1,000
// instances (the old page's cap) end inside wave 2.
var bigWaves = []int{10, 990, 2000}

// bigInstance is what the test knows of one instance of the big rollout.
type bigInstance struct {
	id    string
	wave  int // 1-based, as the UI and the API show it
	state ledger.InstanceState
	code  string
}

// bigSeed is the starting state of instance i: a deterministic mix of
// every state, two failure codes, and the hostile instance last.
func bigSeed(i, n int) (string, ledger.Seed) {
	id := fmt.Sprintf("ins-%08d", i)
	s := ledger.Seed{OldImage: "img-old00001"}
	switch {
	case i == n-1:
		return hostileID, ledger.Seed{State: ledger.Failed, Code: hostileCode, Error: hostileError}
	case i%10 == 3 && i%20 == 3:
		s.State, s.Code, s.Error = ledger.Failed, "FailedOperation", "the reinstall ended FAILED"
	case i%10 == 3:
		s.State, s.Code, s.Error = ledger.Failed, "InvalidInstance.NotSupported", "not supported"
	case i%97 == 0:
		s.State, s.Code, s.Error = ledger.Ambiguous, "ResultUnknown", "no answer"
	case i%50 == 7:
		s.State, s.Code = ledger.Skipped, "AlreadyOnTarget"
	case i%10 == 1 || i%10 == 2:
		s.State, s.NewImage = ledger.Succeeded, "img-new00001"
	case i%200 == 9:
		s.State, s.RequestID, s.CalledAt = ledger.Resetting, fmt.Sprintf("req-%d", i), time.UnixMilli(1_700_000_000_000)
	}
	return id, s
}

// bigBundle is a UI over a rollout of a few thousand instances written
// straight into the ledger (no workers, no simulator).
type bigBundle struct {
	l     *ledger.Ledger
	srv   *httptest.Server
	fleet []bigInstance
}

// setupBig creates rollout "big" of bigWaves through the ledger's public
// Create (its seeds set states, codes and counters as a journal would), and
// serves the UI on it.
func setupBig(t *testing.T) *bigBundle {
	t.Helper()
	r := redistest.New(t)
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	spec := rollout.Spec{ID: "big", PlanHash: "h-big", Region: "ap-guangzhou", API: "v3",
		Groups: []rollout.Group{{Name: "web", OS: "linux", ImageID: "img-new00001"}, {Name: "db", OS: "linux", ImageID: "img-new00002"}}}
	n := 0
	for _, size := range bigWaves {
		spec.Waves = append(spec.Waves, rollout.Wave{Size: size})
		n += size
	}
	b := &bigBundle{l: l}
	var targets []rollout.Target
	seeds := map[string]ledger.Seed{}
	i := 0
	for k, size := range bigWaves {
		for range size {
			id, s := bigSeed(i, n)
			targets = append(targets, rollout.Target{InstanceID: id, Wave: k, Group: i % 2, Zone: "ap-guangzhou-3"})
			seeds[id] = s
			st := s.State
			if st == "" {
				st = ledger.Pending
			}
			b.fleet = append(b.fleet, bigInstance{id: id, wave: k + 1, state: st, code: s.Code})
			i++
		}
	}
	if created, err := l.Create(t.Context(), spec, targets, ledger.CreateOptions{Seeds: seeds}); err != nil || !created {
		t.Fatalf("Create = %v, %v", created, err)
	}
	if err := l.Activate(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	ui, err := web.New(web.Config{Ledger: l, Refresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b.srv = httptest.NewServer(ui)
	t.Cleanup(func() {
		b.srv.Close()
		ui.Close()
	})
	return b
}

func (b *bigBundle) get(t *testing.T, path string) (int, string) {
	t.Helper()
	res, err := http.Get(b.srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(body)
}

// ids returns the IDs of the fleet that keep returns true for, in plan order.
func (b *bigBundle) ids(keep func(bigInstance) bool) []string {
	var out []string
	for _, in := range b.fleet {
		if keep(in) {
			out = append(out, in.id)
		}
	}
	return out
}

// apiPage is the part of /api/rollouts/NAME this test reads.
type apiPage struct {
	Instances []web.InstanceView `json:"instances"`
	Page      struct {
		Page       int  `json:"page"`
		Limit      int  `json:"limit"`
		Total      int  `json:"total"`
		TotalExact bool `json:"total_exact"`
		More       bool `json:"more"`
	} `json:"page"`
}

// instancesSection is the instance table of a rollout page.
func instancesSection(page string) string {
	i := strings.Index(page, `id="instances"`)
	if i < 0 {
		return ""
	}
	return page[i:]
}

// TestInstanceSearch is the server-side search and paging of a rollout's
// instances, through the JSON API and the page, over a rollout of 3,000.
func TestInstanceSearch(t *testing.T) {
	b := setupBig(t)
	all := func(bigInstance) bool { return true }
	failed := b.ids(func(in bigInstance) bool { return in.state == ledger.Failed })
	for _, tc := range []struct {
		name      string
		query     string
		want      []string // the page, in plan order
		wantTotal int
		wantMore  bool
	}{
		{"idBeyondFirstThousand", "id=ins-00002500", []string{"ins-00002500"}, 1, false},
		{"idSubstringAnyCase", "id=INS-0000250&limit=3", []string{"ins-00002500", "ins-00002501", "ins-00002502"}, 10, true},
		{"idPrefixSecondPage", "id=ins-000025&limit=40&page=2", b.ids(func(in bigInstance) bool { return strings.HasPrefix(in.id, "ins-000025") })[40:80], 100, true},
		{"idNoMatch", "id=ins-nothing", nil, 0, false},
		{"firstPage", "", b.ids(all)[:100], 3000, true},
		{"pageEleven", "page=11&limit=100", b.ids(all)[1000:1100], 3000, true},
		{"limitIsCapped", "limit=5000", b.ids(all)[:1000], 3000, true},
		{"lastPartialPage", "page=4&limit=900", b.ids(all)[2700:], 3000, false},
		{"pastTheEnd", "page=40&limit=100", nil, 3000, false},
		{"wave", "wave=2&limit=1000", b.ids(func(in bigInstance) bool { return in.wave == 2 }), 990, false},
		{"waveSecondPage", "wave=3&page=2&limit=500", b.ids(func(in bigInstance) bool { return in.wave == 3 })[500:1000], 2000, true},
		{"stateFailed", "state=failed&limit=50", failed[:50], len(failed), true},
		{"stateFailedThirdPage", "state=failed&limit=50&page=3", failed[100:150], len(failed), true},
		{"stateFailedLastPage", "state=failed&limit=200&page=2", failed[200:], len(failed), false},
		{"stateAndWave", "state=succeeded&wave=3&limit=1000", b.ids(func(in bigInstance) bool { return in.state == ledger.Succeeded && in.wave == 3 }),
			len(b.ids(func(in bigInstance) bool { return in.state == ledger.Succeeded && in.wave == 3 })), false},
		{"statePending", "state=pending&limit=20&page=2", b.ids(func(in bigInstance) bool { return in.state == ledger.Pending })[20:40],
			len(b.ids(func(in bigInstance) bool { return in.state == ledger.Pending })), true},
		{"stateResetting", "state=resetting&limit=1000", b.ids(func(in bigInstance) bool { return in.state == ledger.Resetting }),
			len(b.ids(func(in bigInstance) bool { return in.state == ledger.Resetting })), false},
		{"stateNoneAtAll", "state=cancelled", nil, 0, false},
		{"code", "code=FailedOperation&limit=1000", b.ids(func(in bigInstance) bool { return in.code == "FailedOperation" }), 150, false},
		{"codeAnyCase", "code=alreadyontarget&limit=10", b.ids(func(in bigInstance) bool { return in.code == "AlreadyOnTarget" })[:10],
			len(b.ids(func(in bigInstance) bool { return in.code == "AlreadyOnTarget" })), true},
		{"codeStateWaveID", "code=InvalidInstance.NotSupported&state=failed&wave=3&id=ins-00002", b.ids(func(in bigInstance) bool {
			return in.code == "InvalidInstance.NotSupported" && in.wave == 3 && strings.HasPrefix(in.id, "ins-00002")
		}), 50, false},
		{"hostileByID", "id=script", []string{hostileID}, 1, false},
		{"hostileByCode", "code=" + url.QueryEscape(hostileCode), []string{hostileID}, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := b.get(t, "/api/rollouts/big?"+tc.query)
			if code != http.StatusOK {
				t.Fatalf("GET /api/rollouts/big?%s = %d\n%s", tc.query, code, body)
			}
			var got apiPage
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			var gotIDs []string
			for _, in := range got.Instances {
				gotIDs = append(gotIDs, in.ID)
			}
			if diff := cmp.Diff(tc.want, gotIDs); diff != "" {
				t.Errorf("instances of ?%s (-want +got):\n%s", tc.query, diff)
			}
			if got.Page.Total != tc.wantTotal || !got.Page.TotalExact || got.Page.More != tc.wantMore {
				t.Errorf("?%s: total %d (exact %v), more %v; want %d (exact), more %v", tc.query, got.Page.Total, got.Page.TotalExact, got.Page.More, tc.wantTotal, tc.wantMore)
			}

			// The page shows the same rows and the same total.
			code, page := b.get(t, "/rollouts/big?"+tc.query)
			if code != http.StatusOK {
				t.Fatalf("GET /rollouts/big?%s = %d", tc.query, code)
			}
			sec := instancesSection(page)
			rows := regexp.MustCompile(`<tr data-id="([^"]*)"`).FindAllStringSubmatch(sec, -1)
			var pageIDs []string
			for _, m := range rows {
				pageIDs = append(pageIDs, htmlUnescape(m[1]))
			}
			if diff := cmp.Diff(tc.want, pageIDs); diff != "" {
				t.Errorf("rows of the page ?%s (-want +got):\n%s", tc.query, diff)
			}
			if !strings.Contains(sec, fmt.Sprintf(`data-total="%d"`, tc.wantTotal)) {
				t.Errorf("the page of ?%s does not say %d matched", tc.query, tc.wantTotal)
			}
		})
	}
}

var htmlEntities = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&#34;", `"`, "&quot;", `"`, "&#39;", "'", "&amp;", "&")

func htmlUnescape(s string) string { return htmlEntities.Replace(s) }

// TestInstanceSearchPageLinks: the page of a search links to the next and
// previous pages with every filter kept, and says how many matched.
func TestInstanceSearchPageLinks(t *testing.T) {
	b := setupBig(t)
	_, page := b.get(t, "/rollouts/big?state=failed&wave=3&limit=50&page=2")
	sec := instancesSection(page)
	for _, want := range []string{
		`href="?limit=50&amp;page=3&amp;state=failed&amp;wave=3" id="page-next"`,
		`href="?limit=50&amp;state=failed&amp;wave=3" id="page-prev"`, // page 1 is the default
		"51–100 of 201",
	} {
		if !strings.Contains(sec, want) {
			t.Errorf("page 2 of failed in wave 3 lacks %q:\n%.3000s", want, sec)
		}
	}
	// The search form keeps what was asked.
	for _, want := range []string{`<option value="failed" selected>`, `<option value="3" selected>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the search form lacks %q", want)
		}
	}
}

// TestInstancePage: /rollouts/NAME/instances/ID shows what the ledger knows
// of one instance, times with their zone; the JSON twin says the same.
func TestInstancePage(t *testing.T) {
	b := setupBig(t)
	ctx := t.Context()
	const id = "ins-00000004" // wave 1, pending, group web
	res, err := b.l.Begin(ctx, "big", id, 0)
	if err != nil || res.Action != ledger.ActProceed {
		t.Fatalf("Begin = %+v, %v", res, err)
	}
	if err := b.l.Adopt(ctx, "big", id, res.Token, "req-adopted-1", "a reinstall since pre-flight"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.l.Finish(ctx, "big", id, ledger.Outcome{From: []ledger.InstanceState{ledger.Resetting}, To: ledger.Succeeded, NewImage: "img-new00001"}); err != nil {
		t.Fatal(err)
	}
	in, err := b.l.Instance(ctx, "big", id)
	if err != nil {
		t.Fatal(err)
	}

	code, page := b.get(t, "/rollouts/big/instances/"+id)
	if code != http.StatusOK {
		t.Fatalf("GET the instance page = %d\n%s", code, page)
	}
	for _, want := range []string{
		`id="instance-id">` + id + `<`, "st-succeeded", ">web<", "ap-guangzhou-3", "req-adopted-1",
		"img-old00001", "img-new00001", "a reinstall since pre-flight", `href="/rollouts/big"`,
		`<dd id="tries">1</dd>`, `<dd id="resets">0</dd>`, `<dd id="wave">1</dd>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the instance page lacks %q", want)
		}
	}
	// Every time is shown in the server's zone with its offset, and its
	// instant in UTC for machines.
	for name, at := range map[string]time.Time{"first try": in.FirstTryAt, "intent": in.IntentAt, "called": in.CalledAt, "done": in.DoneAt} {
		want := fmt.Sprintf(`<time datetime="%s">%s</time>`, at.UTC().Format(time.RFC3339Nano), at.Local().Format("2006-01-02 15:04:05.000 -07:00 MST"))
		if at.IsZero() || !strings.Contains(page, want) {
			t.Errorf("the %s time (%v) is not shown as %s", name, at, want)
		}
	}

	code, body := b.get(t, "/api/rollouts/big/instances/"+id)
	var api struct {
		Rollout  string           `json:"rollout"`
		Instance web.InstanceView `json:"instance"`
	}
	if err := json.Unmarshal([]byte(body), &api); code != http.StatusOK || err != nil {
		t.Fatalf("GET the instance's JSON = %d, %v\n%s", code, err, body)
	}
	want := web.InstanceView{ID: id, Wave: 1, Group: "web", Zone: "ap-guangzhou-3", State: "succeeded", Tries: 1, RequestID: "req-adopted-1",
		OldImage: "img-old00001", NewImage: "img-new00001", TargetImage: "img-new00001", Adopted: "a reinstall since pre-flight",
		FirstTryAt: in.FirstTryAt, IntentAt: in.IntentAt, CalledAt: in.CalledAt, DoneAt: in.DoneAt}
	if diff := cmp.Diff(want, api.Instance, cmpTimes); diff != "" || api.Rollout != "big" {
		t.Errorf("instance JSON of rollout %q (-want +got):\n%s", api.Rollout, diff)
	}

	for _, path := range []string{"/rollouts/big/instances/ins-nope", "/rollouts/nope/instances/" + id} {
		if code, body := b.get(t, path); code != http.StatusNotFound || !strings.Contains(body, "nope") {
			t.Errorf("GET %s = %d; want 404 naming what is missing", path, code)
		}
	}
	if code, _ := b.get(t, "/api/rollouts/big/instances/ins-nope"); code != http.StatusNotFound {
		t.Errorf("GET the JSON of a missing instance = %d; want 404", code)
	}
}

var cmpTimes = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

// TestHostileInstanceIsEscaped: an instance ID, code and error made of
// HTML are shown as text in the search results, the failures, the instance
// page and its link, never as markup.
func TestHostileInstanceIsEscaped(t *testing.T) {
	b := setupBig(t)
	var pages []string
	for _, path := range []string{
		"/rollouts/big?id=script",
		"/rollouts/big?code=" + url.QueryEscape(hostileCode),
		"/rollouts/big?id=" + url.QueryEscape(hostileID) + "&code=" + url.QueryEscape(hostileError),
		"/rollouts/big/instances/" + url.PathEscape(hostileID),
	} {
		code, page := b.get(t, path)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d\n%s", path, code, page)
		}
		pages = append(pages, page)
		for _, bad := range []string{"<script>alert", "<img src=x", "<b>Code</b>"} {
			if strings.Contains(page, bad) {
				t.Errorf("GET %s contains the raw markup %q", path, bad)
			}
		}
	}
	if !strings.Contains(pages[0], "&lt;script&gt;alert(&#34;id&#34;)&lt;/script&gt;&amp;x") {
		t.Errorf("the search result does not show the hostile ID as text")
	}
	// The row links to the instance page with the ID percent-encoded, and
	// that link leads to the instance.
	link := `href="/rollouts/big/instances/` + strings.ReplaceAll(url.PathEscape(hostileID), "&", "&amp;") + `"`
	if !strings.Contains(pages[0], link) {
		t.Errorf("the result row does not link to %s", link)
	}
	for _, want := range []string{"&lt;img src=x onerror=alert(1)&gt; &amp; &#34;quoted&#34;", "&lt;b&gt;Code&lt;/b&gt;"} {
		if !strings.Contains(pages[3], want) {
			t.Errorf("the instance page does not show %q", want)
		}
	}
	// The JSON API carries the strings as data.
	_, body := b.get(t, "/api/rollouts/big/instances/"+url.PathEscape(hostileID))
	var api struct {
		Instance web.InstanceView `json:"instance"`
	}
	if err := json.Unmarshal([]byte(body), &api); err != nil || api.Instance.ID != hostileID || api.Instance.Error != hostileError {
		t.Errorf("the instance JSON = %+v, %v", api.Instance, err)
	}
	if slices.ContainsFunc(pages, func(p string) bool { return strings.Contains(p, `javascript:`) }) {
		t.Errorf("a page holds a javascript: URL")
	}
}

// TestFailuresFollowTheLedger: the Failures section, cached between
// refreshes, shows a new failure at once, and after retry-failed shows
// the instances of the new attempt even when the counts match an earlier
// refresh's.
func TestFailuresFollowTheLedger(t *testing.T) {
	r := redistest.New(t)
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	ctx := t.Context()
	spec := rollout.Spec{ID: "f", PlanHash: "h", API: "v3", Groups: []rollout.Group{{Name: "g", ImageID: "img-new00001"}}, Waves: []rollout.Wave{{Size: 3}}}
	targets := []rollout.Target{{InstanceID: "ins-f0000001"}, {InstanceID: "ins-f0000002"}, {InstanceID: "ins-f0000003"}}
	seeds := map[string]ledger.Seed{"ins-f0000001": {State: ledger.Failed, Code: "EarlyFail"}}
	if _, err := l.Create(ctx, spec, targets, ledger.CreateOptions{Seeds: seeds}); err != nil {
		t.Fatal(err)
	}
	if err := l.Activate(ctx, spec); err != nil {
		t.Fatal(err)
	}
	ui, err := web.New(web.Config{Ledger: l})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ui)
	t.Cleanup(srv.Close)
	b := &bigBundle{l: l, srv: srv}
	failures := func() string {
		t.Helper()
		_, page := b.get(t, "/rollouts/f")
		i, j := strings.Index(page, `id="failures"`), strings.Index(page, `id="instances-title"`)
		return page[i:j]
	}
	fail := func(id string, gen int, code string) {
		t.Helper()
		res, err := l.Begin(ctx, "f", id, gen)
		if err == nil && res.Action == ledger.ActProceed {
			_, err = l.Finish(ctx, "f", id, ledger.Outcome{From: []ledger.InstanceState{ledger.Calling}, Token: res.Token, To: ledger.Failed, Code: code})
		}
		if err != nil || res.Action != ledger.ActProceed {
			t.Fatalf("fail %s: %+v, %v", id, res, err)
		}
	}
	if f := failures(); !strings.Contains(f, "ins-f0000001") || strings.Contains(f, "ins-f0000002") {
		t.Fatalf("first refresh: failures section:\n%s", f)
	}
	fail("ins-f0000002", 0, "LateFail")
	if f := failures(); !strings.Contains(f, "ins-f0000001") || !strings.Contains(f, "LateFail") {
		t.Errorf("a new failure is not shown:\n%s", f)
	}
	if _, err := l.RetryFailed(ctx, "f", false); err != nil {
		t.Fatal(err)
	}
	// Two failures in wave 1 again, as on the last refresh, but not the
	// same two: no refresh in between, so only the attempt tells them apart.
	fail("ins-f0000003", 0, "ThirdFail")
	fail("ins-f0000002", 1, "AgainFail")
	if f := failures(); strings.Contains(f, "ins-f0000001") || !strings.Contains(f, "ins-f0000003") || !strings.Contains(f, "AgainFail") {
		t.Errorf("after retry-failed and new failures, the section shows:\n%s", f)
	}
	if _, err := l.RetryFailed(ctx, "f", false); err != nil {
		t.Fatal(err)
	}
	if f := failures(); strings.Contains(f, "<tr>") {
		t.Errorf("retried failures still shown:\n%s", f)
	}
}
