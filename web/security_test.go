package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/web"
)

// TestReadOnlyByDefault: without AllowActions there are no buttons, their
// endpoints refuse, and asynqmon refuses everything but GET.
func TestReadOnlyByDefault(t *testing.T) {
	b := setup(t, setupOpts{})
	b.apply(t, "ro")
	_, page := b.get(t, "/rollouts/ro")
	if !strings.Contains(page, `id="readonly-note"`) || strings.Contains(page, `id="btn-pause"`) {
		t.Errorf("a read-only page shows buttons or lacks the read-only note")
	}
	if !strings.Contains(page, "fleetreset ui --allow-actions") {
		t.Errorf("the read-only page does not say how to enable actions")
	}
	code, _ := b.do(t, "POST", "/rollouts/ro/pause", strings.NewReader(""), nil)
	if code != http.StatusForbidden {
		t.Errorf("POST pause in read-only mode = %d; want 403", code)
	}
	if st, _, _ := b.l.State(t.Context(), "ro"); st != ledger.Running {
		t.Errorf("state %s after a refused pause; want running", st)
	}
	code, index := b.get(t, "/monitoring/")
	if code != http.StatusOK || !strings.Contains(index, `window.FLAG_READ_ONLY="true"`) || !strings.Contains(index, `FLAG_ROOT_PATH="\/monitoring"`) {
		t.Errorf("GET /monitoring/ = %d; want asynqmon's page in read-only mode:\n%.400s", code, index)
	}
	code, _ = b.do(t, "POST", "/monitoring/api/queues/"+b.ctl.Queues().Reset+":pause", strings.NewReader(""), nil)
	if code != http.StatusMethodNotAllowed {
		t.Errorf("asynqmon pause in read-only mode = %d; want 405", code)
	}
	if code, loc := b.get(t, "/monitoring"); code != http.StatusMovedPermanently || loc != "/monitoring/" {
		t.Errorf("GET /monitoring = %d %q; want a redirect to /monitoring/", code, loc)
	}
}

// TestCrossSitePostRefused: a form on another site cannot press a button
// through the operator's browser.
func TestCrossSitePostRefused(t *testing.T) {
	b := setup(t, setupOpts{allowActions: true})
	b.apply(t, "csrf")
	for _, h := range []http.Header{
		{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}},
		{"Origin": {"https://evil.example"}}, // an old browser without Sec-Fetch-Site
	} {
		code, _ := b.do(t, "POST", "/rollouts/csrf/abort", strings.NewReader("reason=x"), h)
		if code != http.StatusForbidden {
			t.Errorf("cross-site POST with %v = %d; want 403", h, code)
		}
	}
	if st, _, _ := b.l.State(t.Context(), "csrf"); st != ledger.Running {
		t.Errorf("state %s after cross-site posts; want running", st)
	}
	// The same request from the UI's own origin goes through.
	code, _ := b.do(t, "POST", "/rollouts/csrf/abort", strings.NewReader("reason=x"), http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {b.srv.URL}})
	if code != http.StatusSeeOther {
		t.Errorf("same-origin POST = %d; want 303", code)
	}
	if st, _, _ := b.l.State(t.Context(), "csrf"); st != ledger.Aborted {
		t.Errorf("state %s after abort; want aborted", st)
	}
	_, page := b.get(t, "/rollouts/csrf?done=abort&n=0")
	if !strings.Contains(page, "Aborted. 0 reset(s) already in flight") || !strings.Contains(page, `id="btn-abort" class="danger"`) {
		t.Errorf("the page after abort lacks the overshoot message or the abort button")
	}
}

// TestHostCheck: a page whose DNS name was rebound to 127.0.0.1 still sends
// its own name in Host and is refused.
func TestHostCheck(t *testing.T) {
	b := setup(t, setupOpts{})
	req, _ := http.NewRequestWithContext(t.Context(), "GET", b.srv.URL+"/api/rollouts", nil)
	req.Host = "rebound.evil.example"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("GET with Host rebound.evil.example = %d; want 421", res.StatusCode)
	}
	req.Host = "localhost"
	if res, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET with Host localhost = %d; want 200", res.StatusCode)
	}
}

func TestBasicAuth(t *testing.T) {
	b := setup(t, setupOpts{basicAuth: "ops:c0rrect-horse"})
	for _, path := range []string{"/", "/api/rollouts", "/metrics", "/monitoring/", "/monitoring/api/queues", "/static/style.css"} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", b.srv.URL+path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("GET %s without credentials = %d; want 401 with a Basic challenge", path, res.StatusCode)
		}
		for _, creds := range [][2]string{{"ops", "wrong"}, {"nobody", "c0rrect-horse"}} {
			req.SetBasicAuth(creds[0], creds[1])
			if res, err = http.DefaultClient.Do(req); err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s as %s:%s = %d; want 401", path, creds[0], creds[1], res.StatusCode)
			}
		}
		req.SetBasicAuth("ops", "c0rrect-horse")
		if res, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s with credentials = %d; want 200", path, res.StatusCode)
		}
	}
}

func TestNotFound(t *testing.T) {
	b := setup(t, setupOpts{allowActions: true})
	if code, body := b.get(t, "/rollouts/nope"); code != http.StatusNotFound || !strings.Contains(body, `There is no rollout &#34;nope&#34;.`) {
		t.Errorf("GET /rollouts/nope = %d\n%s", code, body)
	}
	if code, body := b.get(t, "/api/rollouts/nope"); code != http.StatusNotFound || !strings.Contains(body, `"error"`) {
		t.Errorf("GET /api/rollouts/nope = %d %s", code, body)
	}
	if code, _ := b.do(t, "POST", "/rollouts/nope/pause", strings.NewReader(""), nil); code != http.StatusNotFound {
		t.Errorf("POST pause of a missing rollout = %d; want 404", code)
	}
	if code, _ := b.get(t, "/nothing-here"); code != http.StatusNotFound {
		t.Errorf("GET /nothing-here = %d; want 404", code)
	}
	if code, body := b.get(t, "/"); code != http.StatusOK || !strings.Contains(body, "No rollouts yet") {
		t.Errorf("GET / with no rollouts = %d, lacks the empty state", code)
	}
	if code, body := b.get(t, "/healthz"); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("GET /healthz = %d %q", code, body)
	}
}

func TestNewValidates(t *testing.T) {
	b := setup(t, setupOpts{})
	for _, tc := range []struct {
		name string
		cfg  web.Config
		want string
	}{
		{"noLedger", web.Config{}, "Ledger is required"},
		{"actionsWithoutController", web.Config{Ledger: b.l, AllowActions: true}, "Engine is required"},
		{"basicAuthWithoutColon", web.Config{Ledger: b.l, BasicAuth: "justapassword"}, "user:password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := web.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v; want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "justapassword") {
				t.Errorf("the error echoes the basic-auth value: %v", err)
			}
		})
	}
}
