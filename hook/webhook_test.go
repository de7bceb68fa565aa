package hook_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/hook"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

// receiver is a webhook endpoint that records what it is sent.
type receiver struct {
	mu     sync.Mutex
	reqs   []hook.WebhookRequest
	ctypes []string
	// status is the answer; onRequest, when set, runs before it.
	status    int
	onRequest func(req hook.WebhookRequest)
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req hook.WebhookRequest
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, req)
	rc.ctypes = append(rc.ctypes, r.Header.Get("Content-Type"))
	status, on := rc.status, rc.onRequest
	rc.mu.Unlock()
	if on != nil {
		on(req)
	}
	if status == http.StatusFound {
		http.Redirect(w, r, "/elsewhere", status)
		return
	}
	w.WriteHeader(status)
}

func (rc *receiver) requests() []hook.WebhookRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hook.WebhookRequest(nil), rc.reqs...)
}

// lockedBuffer collects log lines from the test and the server goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testBundle is a Runner whose completions are a real ledger, and what the
// test looks at.
type testBundle struct {
	r    *hook.Runner
	l    *ledger.Ledger
	clk  *manualClock
	logs *lockedBuffer
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	rd := redistest.New(t)
	l := ledger.New(rd.Client, ledger.Config{Prefix: rd.Prefix})
	b := &testBundle{l: l, clk: newClock(), logs: &lockedBuffer{}}
	b.r = &hook.Runner{Completions: l, Clock: b.clk, Log: slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	return b
}

// serve starts rc and returns the hook posting to it; the URL's path holds
// a secret, as Slack's do.
func serve(t *testing.T, rc *receiver, timeout time.Duration) rollout.Hook {
	t.Helper()
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rollout.Hook{Name: "lb-ack", Webhook: &rollout.WebhookHook{URL: srv.URL + "/hooks/s3cr3t-path"}, Timeout: timeout}
}

// noLeak fails t when the token appears in a detail or the logs.
func (b *testBundle) noLeak(t *testing.T, token string, details ...string) {
	t.Helper()
	for _, d := range details {
		if strings.Contains(d, token) || strings.Contains(d, "s3cr3t-path") {
			t.Errorf("detail %q holds the token or the URL's path", d)
		}
	}
	if logs := b.logs.String(); strings.Contains(logs, token) || strings.Contains(logs, "s3cr3t-path") {
		t.Errorf("the logs hold the token or the URL's path:\n%s", logs)
	}
}

// roundTrip returns hd as a worker that crashed reads it back.
func roundTrip(t *testing.T, hd hook.Handle) hook.Handle {
	t.Helper()
	b, err := json.Marshal(hd)
	if err != nil {
		t.Fatal(err)
	}
	var out hook.Handle
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

// TestWebhookRequest: the POST carries the step, a fresh URL-safe 128-bit
// token per Start, the facts and the command that completes it.
func TestWebhookRequest(t *testing.T) {
	b := setup(t)
	rc := &receiver{status: http.StatusOK}
	h := serve(t, rc, time.Minute)
	for range 2 {
		if _, err := b.r.Start(t.Context(), "r1", hook.PhaseAfter, h, facts); err != nil {
			t.Fatal(err)
		}
	}
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests; want 2", len(reqs))
	}
	got := reqs[0]
	if got.Rollout != "r1" || got.Instance != facts.InstanceID || got.Phase != hook.PhaseAfter || got.Hook != "lb-ack" || got.Facts != facts {
		t.Errorf("request = %+v", got)
	}
	if !tokenRE.MatchString(got.Token) {
		t.Errorf("token %q is not 22 URL-safe characters (128 bits)", got.Token)
	}
	if reqs[1].Token == got.Token {
		t.Errorf("two Starts sent the same token")
	}
	if want := "fleetreset complete-hook r1 " + got.Token + " --result continue|abandon"; got.CompleteWith != want {
		t.Errorf("completeWith = %q; want %q", got.CompleteWith, want)
	}
	if rc.ctypes[0] != "application/json" {
		t.Errorf("Content-Type = %q; want application/json", rc.ctypes[0])
	}
	b.noLeak(t, got.Token)
}

// TestWebhookAnswered: an answer other than 202 is the verdict; Poll
// returns it from the Handle alone and never posts again.
func TestWebhookAnswered(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		wantOK     bool
		wantDetail string
	}{
		{name: "ok", status: http.StatusOK, wantOK: true, wantDetail: "webhook answered 200"},
		{name: "no-content", status: http.StatusNoContent, wantOK: true, wantDetail: "webhook answered 204"},
		{name: "server-error", status: http.StatusInternalServerError, wantDetail: "webhook answered 500"},
		{name: "forbidden", status: http.StatusForbidden, wantDetail: "webhook answered 403"},
		{name: "redirect-not-followed", status: http.StatusFound, wantDetail: "webhook answered 302"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t)
			rc := &receiver{status: tc.status}
			h := serve(t, rc, time.Minute)
			hd, err := b.r.Start(t.Context(), "r1", hook.PhaseBefore, h, facts)
			if err != nil {
				t.Fatal(err)
			}
			var details []string
			for _, poll := range []hook.Handle{hd, hd, roundTrip(t, hd)} {
				st, err := b.r.Poll(t.Context(), "r1", h, poll)
				if err != nil || !st.Done || st.OK != tc.wantOK || st.Detail != tc.wantDetail {
					t.Errorf("Poll = %+v, %v; want done, ok %v, %q", st, err, tc.wantOK, tc.wantDetail)
				}
				details = append(details, st.Detail)
			}
			if n := len(rc.requests()); n != 1 {
				t.Errorf("the webhook was called %d times; want once", n)
			}
			b.noLeak(t, hd.Token, details...)
		})
	}
}

// TestWebhookAccepted: a 202 keeps the step pending until it is completed
// through the ledger, or its Timeout passes.
func TestWebhookAccepted(t *testing.T) {
	tests := []struct {
		name string
		// complete is the result the external system completes with; ""
		// for none.
		complete string
		// early completes while the POST is still being answered.
		early      bool
		wantDone   bool
		wantOK     bool
		wantDetail string
	}{
		{name: "continue", complete: "continue", wantDone: true, wantOK: true, wantDetail: "completed with continue"},
		{name: "abandon", complete: "abandon", wantDone: true, wantDetail: "completed with abandon"},
		{name: "completed-before-answering", complete: "continue", early: true, wantDone: true, wantOK: true, wantDetail: "completed with continue"},
		{name: "never-completed", wantDone: true, wantDetail: "timed out after 2m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t)
			rc := &receiver{status: http.StatusAccepted}
			if tc.early {
				rc.onRequest = func(req hook.WebhookRequest) {
					if err := b.l.CompleteHook(context.Background(), req.Rollout, req.Token, tc.complete); err != nil {
						t.Errorf("CompleteHook during the POST = %v; want the token registered before it", err)
					}
				}
			}
			h := serve(t, rc, 2*time.Minute)
			hd, err := b.r.Start(t.Context(), "r1", hook.PhaseBefore, h, facts)
			if err != nil {
				t.Fatal(err)
			}
			if hd.Kind != hook.KindWebhook || hd.Token != rc.requests()[0].Token || hd.Verdict != nil {
				t.Fatalf("Start = %+v; want a pending webhook handle with the token sent", hd)
			}
			if !tc.early {
				st, err := b.r.Poll(t.Context(), "r1", h, hd)
				if err != nil || st.Done {
					t.Fatalf("Poll before completion = %+v, %v; want pending", st, err)
				}
				if tc.complete != "" {
					if err := b.l.CompleteHook(t.Context(), "r1", hd.Token, tc.complete); err != nil {
						t.Fatal(err)
					}
				}
			}
			b.clk.Add(time.Minute)
			st, err := b.r.Poll(t.Context(), "r1", h, roundTrip(t, hd))
			if err != nil {
				t.Fatal(err)
			}
			if tc.complete == "" {
				if st.Done {
					t.Fatalf("Poll after 1m of 2m = %+v; want pending", st)
				}
				b.clk.Add(time.Minute)
				if st, err = b.r.Poll(t.Context(), "r1", h, hd); err != nil {
					t.Fatal(err)
				}
			}
			if st.Done != tc.wantDone || st.OK != tc.wantOK || st.Detail != tc.wantDetail {
				t.Errorf("Poll = %+v; want done %v, ok %v, %q", st, tc.wantDone, tc.wantOK, tc.wantDetail)
			}
			if n := len(rc.requests()); n != 1 {
				t.Errorf("the webhook was called %d times; want once", n)
			}
			b.noLeak(t, hd.Token, st.Detail)
		})
	}
}

// TestWebhookUnreachable: a webhook nobody answers fails the step, naming
// only its host.
func TestWebhookUnreachable(t *testing.T) {
	b := setup(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	h := rollout.Hook{Name: "gone", Webhook: &rollout.WebhookHook{URL: url + "/hooks/s3cr3t-path"}, Timeout: time.Minute}
	hd, err := b.r.Start(t.Context(), "r1", hook.PhaseBefore, h, facts)
	if err != nil {
		t.Fatalf("Start = %v; want a failed verdict, not an error to retry", err)
	}
	st, err := b.r.Poll(t.Context(), "r1", h, hd)
	if err != nil || !st.Done || st.OK || !strings.HasPrefix(st.Detail, "webhook at "+url+" unreachable") {
		t.Errorf("Poll = %+v, %v; want failed: webhook at %s unreachable…", st, err, url)
	}
	b.noLeak(t, hd.Token, st.Detail)
}

// TestWebhookCallerGivesUp: when the caller's own context ends during the
// POST (a worker shutting down), Start returns an error to retry rather
// than failing the step.
func TestWebhookCallerGivesUp(t *testing.T) {
	b := setup(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		close(arrived)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	h := rollout.Hook{Name: "slow", Webhook: &rollout.WebhookHook{URL: srv.URL}, Timeout: time.Minute}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()
	hd, err := b.r.Start(ctx, "r1", hook.PhaseBefore, h, facts)
	if err == nil {
		t.Errorf("Start = %+v, nil; want an error", hd)
	}
}
