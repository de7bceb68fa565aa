package cvm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// roleClock is a clock moved by hand.
type roleClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *roleClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *roleClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeMetadata issues new credentials on every fetch, valid for lifetime
// from the clock's now. Its secrets are long enough for leak checks.
type fakeMetadata struct {
	clk      *roleClock
	lifetime time.Duration

	mu      sync.Mutex
	fetches int
	status  int    // when not 0 and not 200, answer this status to fetches
	code    string // Code to answer; "" means Success
	// entered and release, when set, hold a fetch until release is closed.
	entered chan struct{}
	release chan struct{}
}

func (f *fakeMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const base = "/latest/meta-data/cam/security-credentials/"
	rest, ok := strings.CutPrefix(r.URL.Path, base)
	switch {
	case !ok:
		http.NotFound(w, r)
		return
	case rest == "":
		fmt.Fprint(w, "deployer\n")
		return
	case rest != "deployer":
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	entered, release := f.entered, f.release
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
		<-release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status != 0 && f.status != http.StatusOK {
		w.WriteHeader(f.status)
		return
	}
	f.fetches++
	_ = json.NewEncoder(w).Encode(map[string]any{
		"TmpSecretId":  fmt.Sprintf("AKIDtmp%d", f.fetches),
		"TmpSecretKey": fmt.Sprintf("tmp-secret-key-%d-0123456789", f.fetches),
		"Token":        fmt.Sprintf("tmp-session-token-%d-0123456789", f.fetches),
		"ExpiredTime":  f.clk.Now().Add(f.lifetime).Unix(),
		"Expiration":   f.clk.Now().Add(f.lifetime).UTC().Format(time.RFC3339),
		"Code":         cmpOr(f.code, "Success"),
	})
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (f *fakeMetadata) count() int { f.mu.Lock(); defer f.mu.Unlock(); return f.fetches }

// newRoleTest starts a fake metadata service and a provider on it.
func newRoleTest(t *testing.T, lifetime time.Duration, cfg RoleConfig) (*RoleProvider, *fakeMetadata, *roleClock, *httptest.Server) {
	t.Helper()
	clk := &roleClock{now: time.Unix(1_700_000_000, 0)}
	md := &fakeMetadata{clk: clk, lifetime: lifetime}
	srv := httptest.NewServer(md)
	t.Cleanup(srv.Close)
	cfg.MetadataURL, cfg.Clock = srv.URL+"/latest/meta-data/", clk
	p, err := NewRoleProvider(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, md, clk, srv
}

func TestRoleProviderRefreshAhead(t *testing.T) {
	for _, tc := range []struct {
		name         string
		lifetime     time.Duration
		refreshAhead time.Duration
		advance      time.Duration
		wantFetch    bool
	}{
		// Hours-long credentials: fetched again 5 minutes before expiry.
		{name: "long_lived_fresh", lifetime: 6 * time.Hour, advance: 6*time.Hour - 5*time.Minute - time.Second},
		{name: "long_lived_due", lifetime: 6 * time.Hour, advance: 6*time.Hour - 5*time.Minute, wantFetch: true},
		// Short-lived credentials: a fifth of the lifetime, not 5 minutes,
		// or every request would fetch.
		{name: "short_lived_fresh", lifetime: 10 * time.Second, advance: 8*time.Second - time.Millisecond},
		{name: "short_lived_due", lifetime: 10 * time.Second, advance: 8 * time.Second, wantFetch: true},
		{name: "refresh_ahead_set_fresh", lifetime: time.Hour, refreshAhead: time.Minute, advance: 58 * time.Minute},
		{name: "refresh_ahead_set_due", lifetime: time.Hour, refreshAhead: time.Minute, advance: 59 * time.Minute, wantFetch: true},
		{name: "expired", lifetime: time.Minute, advance: 2 * time.Minute, wantFetch: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, md, clk, _ := newRoleTest(t, tc.lifetime, RoleConfig{RefreshAhead: tc.refreshAhead})
			first, err := p.Credentials(t.Context())
			if err != nil || first.SecretID != "AKIDtmp1" || first.Token == "" || md.count() != 1 {
				t.Fatalf("first Credentials = %s, %v after %d fetches; want AKIDtmp1 from one fetch", first.SecretID, err, md.count())
			}
			clk.Advance(tc.advance)
			got, err := p.Credentials(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if fetched := md.count() == 2; fetched != tc.wantFetch || (got != first) != tc.wantFetch {
				t.Errorf("after %s: %s with %d fetches; want fetched again = %v", tc.advance, got.SecretID, md.count(), tc.wantFetch)
			}
			if p.Identity() != "role:deployer" {
				t.Errorf("Identity = %q; want role:deployer (unchanged by rotation)", p.Identity())
			}
		})
	}
}

// TestRoleProviderConcurrentRefresh: callers that find the credentials due
// while a fetch is in flight wait for it; one fetch serves them all.
func TestRoleProviderConcurrentRefresh(t *testing.T) {
	const callers = 20
	p, md, clk, _ := newRoleTest(t, time.Hour, RoleConfig{})
	joined := make(chan struct{}, callers)
	p.mu.Lock()
	p.onJoin = func() { joined <- struct{}{} }
	p.mu.Unlock()
	md.mu.Lock()
	md.entered, md.release = make(chan struct{}, 1), make(chan struct{})
	md.mu.Unlock()
	clk.Advance(time.Hour - time.Minute) // due

	var wg sync.WaitGroup
	got := make([]Credentials, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { got[i], errs[i] = p.Credentials(t.Context()) })
	}
	<-md.entered
	for i := range callers - 1 {
		select {
		case <-joined:
		case <-time.After(10 * time.Second):
			close(md.release)
			wg.Wait()
			t.Fatalf("%d of %d callers joined the fetch in flight; the others fetched on their own (%d fetches)", i, callers-1, md.count())
		}
	}
	close(md.release)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || got[i].SecretID != "AKIDtmp2" {
			t.Errorf("caller %d: %s, %v; want AKIDtmp2", i, got[i].SecretID, errs[i])
		}
	}
	if n := md.count(); n != 2 {
		t.Errorf("%d fetches; want 2 (the first, then one shared refresh)", n)
	}
}

// TestRoleProviderRefresh: Refresh after the cloud refused credentials
// fetches new ones, unless another caller already has.
func TestRoleProviderRefresh(t *testing.T) {
	p, md, _, _ := newRoleTest(t, time.Hour, RoleConfig{})
	first, _ := p.Credentials(t.Context())
	second, err := p.Refresh(t.Context(), first)
	if err != nil || second == first || md.count() != 2 {
		t.Fatalf("Refresh(current) = %s, %v after %d fetches; want new credentials from a fetch", second.SecretID, err, md.count())
	}
	again, err := p.Refresh(t.Context(), first)
	if err != nil || again != second || md.count() != 2 {
		t.Errorf("Refresh(older) = %s, %v after %d fetches; want the current credentials without a fetch", again.SecretID, err, md.count())
	}
}

// TestRoleProviderMetadataDown: no metadata service at construction, or
// none when cached credentials run out, is an error that names the URL and
// never a secret; cached credentials that have not expired keep working.
func TestRoleProviderMetadataDown(t *testing.T) {
	t.Run("at_start", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL + "/latest/meta-data/"
		srv.Close()
		_, err := NewRoleProvider(t.Context(), RoleConfig{MetadataURL: url, Timeout: 2 * time.Second})
		if !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), url+"cam/security-credentials/") {
			t.Errorf("NewRoleProvider without a metadata service = %v; want ErrNoCredentials naming %s", err, url)
		}
	})
	t.Run("no_role", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(srv.Close)
		_, err := NewRoleProvider(t.Context(), RoleConfig{MetadataURL: srv.URL + "/latest/meta-data/"})
		if !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), "role bound") {
			t.Errorf("NewRoleProvider without a role = %v; want ErrNoCredentials saying no role is bound", err)
		}
	})
	t.Run("later", func(t *testing.T) {
		p, _, clk, srv := newRoleTest(t, time.Hour, RoleConfig{})
		cached, _ := p.Credentials(t.Context())
		srv.Close()
		clk.Advance(time.Hour - time.Minute) // due, not expired
		if got, err := p.Credentials(t.Context()); err != nil || got != cached {
			t.Errorf("Credentials with the service down before expiry = %s, %v; want the cached ones", got.SecretID, err)
		}
		clk.Advance(time.Minute) // expired
		_, err := p.Credentials(t.Context())
		want := srv.URL + "/latest/meta-data/cam/security-credentials/deployer"
		if !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Credentials with the service down after expiry = %v; want ErrNoCredentials naming %s", err, want)
		}
		for _, s := range []string{cached.SecretKey.Reveal(), cached.Token.Reveal()} {
			if strings.Contains(err.Error(), s[:8]) {
				t.Errorf("error %q shows a secret", err)
			}
		}
	})
	t.Run("bad_answers", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			status int
			code   string
			want   string
		}{
			{name: "status", status: http.StatusInternalServerError, want: "HTTP status 500"},
			{name: "code", code: "Failure", want: `Code "Failure"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p, md, clk, _ := newRoleTest(t, time.Minute, RoleConfig{})
				md.mu.Lock()
				md.status, md.code = tc.status, tc.code
				md.mu.Unlock()
				clk.Advance(time.Hour)
				_, err := p.Credentials(context.Background())
				if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "tmp-secret-key") || strings.Contains(err.Error(), "tmp-session-token") {
					t.Errorf("Credentials = %v; want an error with %q and no secret", err, tc.want)
				}
			})
		}
	})
}
