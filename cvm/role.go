package cvm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/fleetreset/fleetreset/internal/clock"
)

const (
	// MetadataURLDefault is the CVM metadata service as seen from an
	// instance (https://cloud.tencent.com/document/product/213/4934).
	MetadataURLDefault = "http://metadata.tencentyun.com/latest/meta-data/"
	// RoleRefreshAheadDefault bounds how long before expiry role
	// credentials are fetched again; see RoleConfig.RefreshAhead.
	RoleRefreshAheadDefault = 5 * time.Minute
	// RoleFetchTimeoutDefault bounds one request to the metadata service.
	RoleFetchTimeoutDefault = 5 * time.Second
	// rolePath is where the role name and its credentials live.
	rolePath = "cam/security-credentials/"
	// maxMetadataBody bounds a metadata answer; credentials are ~1 KB.
	maxMetadataBody = 64 << 10
)

// RoleConfig configures a RoleProvider. Zero values mean the defaults.
type RoleConfig struct {
	// Role is the CAM role bound to the instance; empty asks the metadata
	// service (GET <MetadataURL>cam/security-credentials/).
	Role string
	// MetadataURL is the metadata service's base URL, ending in "/".
	// Defaults to MetadataURLDefault; tests point it at a local server.
	MetadataURL string
	// Client sends the metadata requests. Defaults to an http.Client of its
	// own (no proxy: the service is link-local).
	Client *http.Client
	// Timeout bounds one metadata request. Defaults to
	// RoleFetchTimeoutDefault.
	Timeout time.Duration
	// RefreshAhead: credentials are fetched again once less than
	// min(RefreshAhead, a fifth of their lifetime) remains, so a request is
	// never signed with credentials about to expire, and short-lived
	// credentials are not fetched on every request. Defaults to
	// RoleRefreshAheadDefault.
	RefreshAhead time.Duration
	// Clock defaults to the wall clock.
	Clock clock.Clock
}

// RoleProvider supplies the temporary credentials of the CVM role bound to
// the instance, read from the metadata service. It caches them, fetches
// new ones ahead of expiry (one fetch shared by all concurrent callers),
// and keeps using cached credentials that have not expired while the
// metadata service does not answer. Its Identity, "role:<name>", does not
// change when the credentials rotate.
type RoleProvider struct {
	cfg  RoleConfig
	role string
	base string // MetadataURL + rolePath

	mu       sync.Mutex
	cur      Credentials
	fetched  time.Time // when cur was fetched
	expires  time.Time // cur's ExpiredTime
	inflight *roleFetch
	// onJoin, a test seam, is called when a caller joins a fetch in flight.
	onJoin func()
}

// roleFetch is one metadata fetch that concurrent callers wait on.
type roleFetch struct {
	done    chan struct{}
	creds   Credentials
	expires time.Time
	err     error
}

// NewRoleProvider resolves the role name (unless cfg.Role is set) and
// fetches the first credentials, so that a host without a role or without
// the metadata service fails here, with an error naming the URL.
func NewRoleProvider(ctx context.Context, cfg RoleConfig) (*RoleProvider, error) {
	cfg.MetadataURL = cmp.Or(cfg.MetadataURL, MetadataURLDefault)
	if !strings.HasSuffix(cfg.MetadataURL, "/") {
		cfg.MetadataURL += "/"
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, RoleFetchTimeoutDefault)
	cfg.RefreshAhead = cmp.Or(cfg.RefreshAhead, RoleRefreshAheadDefault)
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{Proxy: nil}}
	}
	p := &RoleProvider{cfg: cfg, role: cfg.Role, base: cfg.MetadataURL + rolePath}
	if p.role == "" {
		body, err := p.get(ctx, p.base)
		if err != nil {
			return nil, fmt.Errorf("%w: CVM role name: %w", ErrNoCredentials, err)
		}
		// One role per instance; take the first line should there be more.
		name, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
		if name = strings.TrimSpace(name); name == "" || strings.ContainsAny(name, "/?#") {
			return nil, fmt.Errorf("%w: CVM role name from %s: no usable role name", ErrNoCredentials, p.base)
		}
		p.role = name
	}
	if _, err := p.Credentials(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Identity returns "role:<name>".
func (p *RoleProvider) Identity() string { return "role:" + p.role }

// Role returns the role name.
func (p *RoleProvider) Role() string { return p.role }

// Credentials returns the cached credentials, or fetches new ones when
// none are cached or they are due for refresh (see RoleConfig.RefreshAhead).
// If the fetch fails while the cached credentials have not expired, it
// returns them; the next call tries again.
func (p *RoleProvider) Credentials(ctx context.Context) (Credentials, error) {
	p.mu.Lock()
	now := p.cfg.Clock.Now()
	if p.cur.SecretID != "" && now.Before(p.refreshAt()) {
		c := p.cur
		p.mu.Unlock()
		return c, nil
	}
	f := p.fetchLocked(ctx)
	p.mu.Unlock()
	return p.await(ctx, f)
}

// Refresh returns credentials newer than stale: the cached ones when they
// already differ from stale and have not expired, else freshly fetched
// ones (which may equal stale if the metadata service has not rotated yet).
func (p *RoleProvider) Refresh(ctx context.Context, stale Credentials) (Credentials, error) {
	p.mu.Lock()
	if p.cur.SecretID != "" && p.cur != stale && p.cfg.Clock.Now().Before(p.expires) {
		c := p.cur
		p.mu.Unlock()
		return c, nil
	}
	f := p.fetchLocked(ctx)
	p.mu.Unlock()
	return p.await(ctx, f)
}

// refreshAt is when the cached credentials are due for refresh. Guarded by mu.
func (p *RoleProvider) refreshAt() time.Time {
	ahead := min(p.cfg.RefreshAhead, p.expires.Sub(p.fetched)/5)
	return p.expires.Add(-ahead)
}

// fetchLocked joins the fetch in flight or starts one. The fetch runs on
// its own goroutine with a context that outlives the caller's, so that one
// caller giving up does not fail the others. Guarded by mu.
func (p *RoleProvider) fetchLocked(ctx context.Context) *roleFetch {
	if f := p.inflight; f != nil {
		if p.onJoin != nil {
			p.onJoin()
		}
		return f
	}
	f := &roleFetch{done: make(chan struct{})}
	p.inflight = f
	fctx := context.WithoutCancel(ctx)
	go func() {
		f.creds, f.expires, f.err = p.fetch(fctx)
		p.mu.Lock()
		if f.err == nil {
			p.cur, p.fetched, p.expires = f.creds, p.cfg.Clock.Now(), f.expires
		}
		p.inflight = nil
		p.mu.Unlock()
		close(f.done)
	}()
	return f
}

// await waits for f and falls back to unexpired cached credentials when it failed.
func (p *RoleProvider) await(ctx context.Context, f *roleFetch) (Credentials, error) {
	select {
	case <-f.done:
	case <-ctx.Done():
		return Credentials{}, fmt.Errorf("%w: CVM role %s: waiting for %s%s: %w", ErrNoCredentials, p.role, p.base, p.role, context.Cause(ctx))
	}
	if f.err == nil {
		return f.creds, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur.SecretID != "" && p.cfg.Clock.Now().Before(p.expires) {
		return p.cur, nil
	}
	return Credentials{}, fmt.Errorf("%w: CVM role %s: %w", ErrNoCredentials, p.role, f.err)
}

// roleCredentials is the metadata service's answer for a role (the shape
// of the SDK's cvm_role_provider.go).
type roleCredentials struct {
	TmpSecretID  string `json:"TmpSecretId"`
	TmpSecretKey string `json:"TmpSecretKey"`
	Token        string `json:"Token"`
	ExpiredTime  int64  `json:"ExpiredTime"`
	Expiration   string `json:"Expiration"`
	Code         string `json:"Code"`
}

// fetch reads the role's credentials once. Errors name the URL and what was
// wrong, never the body: it holds the key.
func (p *RoleProvider) fetch(ctx context.Context) (Credentials, time.Time, error) {
	u := p.base + p.role
	body, err := p.get(ctx, u)
	if err != nil {
		return Credentials{}, time.Time{}, err
	}
	var rc roleCredentials
	if err := json.Unmarshal(body, &rc); err != nil {
		// Not err itself: json errors may quote the input.
		return Credentials{}, time.Time{}, fmt.Errorf("%s: answer is not the credentials JSON", u)
	}
	if rc.Code != "Success" {
		return Credentials{}, time.Time{}, fmt.Errorf("%s: Code %q, want \"Success\"", u, clip(rc.Code))
	}
	expires := time.Unix(rc.ExpiredTime, 0)
	if rc.ExpiredTime == 0 {
		// Older answers may carry only the RFC 3339 Expiration.
		expires, _ = time.Parse(time.RFC3339, rc.Expiration)
	}
	switch {
	case rc.TmpSecretID == "" || rc.TmpSecretKey == "" || rc.Token == "":
		return Credentials{}, time.Time{}, fmt.Errorf("%s: TmpSecretId, TmpSecretKey or Token is empty", u)
	case expires.IsZero() || expires.Unix() <= 0:
		return Credentials{}, time.Time{}, fmt.Errorf("%s: no ExpiredTime", u)
	}
	return Credentials{SecretID: rc.TmpSecretID, SecretKey: Secret(rc.TmpSecretKey), Token: Secret(rc.Token)}, expires, nil
}

// errRoleNotBound is a 404 from the metadata service.
var errRoleNotBound = errors.New("not found (is a CAM role bound to this instance?)")

// get reads one metadata URL.
func (p *RoleProvider) get(ctx context.Context, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("metadata service %s: %v", u, sanitize(err))
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // it repeats the URL
		}
		return nil, fmt.Errorf("metadata service %s did not answer (not on a CVM instance?): %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBody))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("metadata service %s: %w", u, errRoleNotBound)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("metadata service %s: HTTP status %d", u, resp.StatusCode)
	case err != nil:
		return nil, fmt.Errorf("metadata service %s: reading the answer: %v", u, sanitize(err))
	}
	return body, nil
}
