package cvm_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
)

// listProvider returns creds[0] until told otherwise: a Refresh (when
// refresher) or, for a plain provider, every call after the first moves on
// to the next credentials.
type listProvider struct {
	mu        sync.Mutex
	creds     []cvm.Credentials
	i         int
	calls     int
	refreshes int
	err       error
}

func (p *listProvider) Credentials(context.Context) (cvm.Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	return p.creds[p.i], p.err
}

func (p *listProvider) Identity() string { return "role:test" }

// rotatingProvider has rotated by the time it is asked again.
type rotatingProvider struct{ *listProvider }

func (p rotatingProvider) Credentials(ctx context.Context) (cvm.Credentials, error) {
	c, err := p.listProvider.Credentials(ctx)
	p.mu.Lock()
	p.i = min(p.i+1, len(p.creds)-1)
	p.mu.Unlock()
	return c, err
}

// refreshingProvider fetches the next credentials on Refresh.
type refreshingProvider struct{ *listProvider }

func (p refreshingProvider) Refresh(context.Context, cvm.Credentials) (cvm.Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshes++
	p.i = min(p.i+1, len(p.creds)-1)
	return p.creds[p.i], nil
}

// TestRotationRetry: a call refused for credentials that have rotated is
// sent once more with the new ones; a refusal rotation cannot explain, or
// no newer credentials, is returned after one call.
func TestRotationRetry(t *testing.T) {
	temp := func(n string) cvm.Credentials {
		return cvm.Credentials{SecretID: "AKIDtemp" + n, SecretKey: cvm.Secret("temp-key-" + n), Token: cvm.Secret("temp-token-" + n)}
	}
	a, b, c := temp("a"), temp("b"), temp("c")
	wrongKey := cvm.Credentials{SecretID: cvmsim.SecretIDDefault, SecretKey: "not-the-key"}
	for _, tc := range []struct {
		name      string
		provider  func(*listProvider) cvm.CredentialProvider
		creds     []cvm.Credentials
		err       error
		revoke    []cvm.Credentials // refused as expired
		wantCode  string            // "" for success
		wantCalls int               // requests the simulator received
	}{
		{name: "refresher_after_revocation", provider: refresher, creds: []cvm.Credentials{a, b}, revoke: []cvm.Credentials{a}, wantCalls: 2},
		{name: "rotated_meanwhile", provider: rotating, creds: []cvm.Credentials{a, b}, revoke: []cvm.Credentials{a}, wantCalls: 2},
		{name: "retried_once_only", provider: refresher, creds: []cvm.Credentials{a, b}, revoke: []cvm.Credentials{a, b}, wantCode: "AuthFailure.TokenFailure", wantCalls: 2},
		{name: "nothing_newer", provider: refresher, creds: []cvm.Credentials{a}, revoke: []cvm.Credentials{a}, wantCode: "AuthFailure.TokenFailure", wantCalls: 1},
		{name: "static_wrong_key", provider: static, creds: []cvm.Credentials{wrongKey}, wantCode: "AuthFailure.SignatureFailure", wantCalls: 1},
		{name: "valid_first_time", provider: refresher, creds: []cvm.Credentials{a, c}, wantCalls: 1},
		{name: "provider_fails", provider: refresher, creds: []cvm.Credentials{{}}, err: errors.New("metadata service http://169.254.0.23/ did not answer"), wantCode: cvm.CodeCredentialError},
	} {
		for _, gen := range []cvm.Generation{cvm.V2, cvm.V3} {
			t.Run(tc.name+"_"+string(gen), func(t *testing.T) {
				sim := cvmsim.New(cvmsim.Config{})
				sim.AddInstances(cvmsim.Instance{ID: "ins-key00001", Zone: "ap-guangzhou-3", ImageID: cvmsim.ImageLinuxOld, OS: cvmsim.OSLinux, State: cvmsim.StateRunning})
				srv := httptest.NewServer(sim)
				t.Cleanup(srv.Close)
				for _, cr := range []cvm.Credentials{a, b, c} {
					sim.AcceptCredentials(cr.SecretID, cr.SecretKey.Reveal(), cr.Token.Reveal(), time.Now().Add(time.Hour))
				}
				for _, cr := range tc.revoke {
					sim.AcceptCredentials(cr.SecretID, cr.SecretKey.Reveal(), cr.Token.Reveal(), time.Now())
				}
				lp := &listProvider{creds: tc.creds, err: tc.err}
				api, err := cvm.New(cvm.Config{Generation: gen, Endpoint: srv.URL, Region: cvmsim.RegionDefault, Provider: tc.provider(lp)})
				if err != nil {
					t.Fatal(err)
				}
				_, err = api.DescribeInstances(t.Context(), []string{"ins-key00001"})
				code := ""
				if ae, ok := errors.AsType[*cvm.APIError](err); ok {
					code = ae.Code
				} else if err != nil {
					t.Fatalf("DescribeInstances = %v; want nil or an APIError", err)
				}
				if code != tc.wantCode {
					t.Errorf("DescribeInstances = %v; want code %q", err, tc.wantCode)
				}
				if got := sim.Stats().TotalCalls; got != tc.wantCalls {
					t.Errorf("simulator received %d requests; want %d", got, tc.wantCalls)
				}
				if tc.err != nil {
					if cvm.Classify(err) != cvm.Fatal || cvm.MayHaveLanded(err) || !strings.Contains(err.Error(), "did not answer") {
						t.Errorf("provider failure = %v (%s, may have landed %v); want Fatal, not landed, with the provider's reason", err, cvm.Classify(err), cvm.MayHaveLanded(err))
					}
				}
			})
		}
	}
}

func refresher(p *listProvider) cvm.CredentialProvider { return refreshingProvider{p} }
func rotating(p *listProvider) cvm.CredentialProvider  { return rotatingProvider{p} }
func static(p *listProvider) cvm.CredentialProvider    { return cvm.StaticProvider(p.creds[0]) }

// TestResetRetriedAfterRotationOnce: a reset refused for a revoked token is
// sent again with new credentials and reinstalls the instance once.
func TestResetRetriedAfterRotationOnce(t *testing.T) {
	sim := cvmsim.New(cvmsim.Config{})
	sim.AddInstances(cvmsim.Instance{ID: "ins-key00001", Zone: "ap-guangzhou-3", ImageID: cvmsim.ImageLinuxOld, OS: cvmsim.OSLinux, State: cvmsim.StateRunning})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	old := cvm.Credentials{SecretID: "AKIDold", SecretKey: "old-key", Token: "old-token"}
	cur := cvm.Credentials{SecretID: "AKIDnew", SecretKey: "new-key", Token: "new-token"}
	sim.AcceptCredentials(old.SecretID, old.SecretKey.Reveal(), old.Token.Reveal(), time.Now())
	sim.AcceptCredentials(cur.SecretID, cur.SecretKey.Reveal(), cur.Token.Reveal(), time.Now().Add(time.Hour))
	api, err := cvm.New(cvm.Config{Endpoint: srv.URL, Region: cvmsim.RegionDefault,
		Provider: refreshingProvider{&listProvider{creds: []cvm.Credentials{old, cur}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.ResetInstance(t.Context(), cvm.ResetRequest{InstanceID: "ins-key00001", KeepImageLogin: true}); err != nil {
		t.Fatalf("ResetInstance = %v; want success after one refresh", err)
	}
	st := sim.Stats()
	if st.AcceptedResets["ins-key00001"] != 1 || st.TokenRejected != 1 {
		t.Errorf("accepted resets %d, token refusals %d; want 1 and 1", st.AcceptedResets["ins-key00001"], st.TokenRejected)
	}
}

// TestProviderIdentities: the identity of a static key is its SecretID,
// of the environment the SecretID set there; DefaultProvider takes the
// environment first; a client with a Provider needs no Credentials.
func TestProviderIdentities(t *testing.T) {
	key := cvm.Credentials{SecretID: "AKIDstatic", SecretKey: "static-key"}
	if got := cvm.StaticProvider(key).Identity(); got != "AKIDstatic" {
		t.Errorf("StaticProvider.Identity = %q; want AKIDstatic", got)
	}
	t.Setenv(cvm.EnvSecretID, "AKIDenv")
	t.Setenv(cvm.EnvSecretKey, "env-key")
	t.Setenv(cvm.EnvSessionToken, "")
	p, err := cvm.DefaultProvider(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Credentials(t.Context())
	if err != nil || got.SecretID != "AKIDenv" || got.SecretKey != "env-key" || p.Identity() != "AKIDenv" {
		t.Errorf("DefaultProvider with the environment set = %+v (%v), identity %q; want the environment's key", got, err, p.Identity())
	}
	if _, err := cvm.New(cvm.Config{Region: cvmsim.RegionDefault, Provider: p}); err != nil {
		t.Errorf("New with a Provider and no Credentials = %v; want a client", err)
	}
	t.Setenv(cvm.EnvSecretKey, "")
	if _, err := (cvm.EnvProvider{}).Credentials(t.Context()); !errors.Is(err, cvm.ErrNoCredentials) {
		t.Errorf("EnvProvider without a key = %v; want ErrNoCredentials", err)
	}
}
