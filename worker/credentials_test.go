package worker_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/fleetreset/fleetreset/worker"
)

// keyRecorder is a Limiter that remembers every key it was asked for.
type keyRecorder struct {
	ratelimit.Limiter
	mu   sync.Mutex
	keys map[string]int
}

func (k *keyRecorder) Wait(ctx context.Context, key string, rate float64) (time.Duration, error) {
	k.mu.Lock()
	k.keys[key]++
	k.mu.Unlock()
	return k.Limiter.Wait(ctx, key, rate)
}

func (k *keyRecorder) seen() map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]int, len(k.keys))
	for key, n := range k.keys {
		out[key] = n
	}
	return out
}

// TestRoleCredentialsRotateMidRollout runs rollouts whose workers take
// their credentials from a CVM role: a local metadata service issues
// short-lived credentials (or revokes them mid-rollout) and the simulator
// refuses expired ones with AuthFailure.TokenFailure. Every instance must
// be reset exactly once, the rollout must complete without pausing, and
// every call must use one rate budget whatever the credentials of the
// moment. The "snapshot" case is what workers did before (credentials
// fetched once): it must pause, or the test would not be expiring anything.
func TestRoleCredentialsRotateMidRollout(t *testing.T) {
	const n = 30
	for _, tc := range []struct {
		name     string
		api      string
		lifetime time.Duration
		// revokeAfter, when set, revokes the current credentials once that
		// many resets were accepted.
		revokeAfter int
		snapshot    bool
	}{
		// Credentials live 1-2 s (ExpiredTime is whole seconds); resets at
		// 10/s take 3 s plus verification: several lifetimes.
		{name: "expiry_v3", api: "v3", lifetime: 2 * time.Second},
		// Long-lived credentials revoked early: the client's cached ones
		// are refused and the call is sent again with fresh ones.
		{name: "revoked_v3", api: "v3", lifetime: time.Hour, revokeAfter: n / 3},
		{name: "revoked_v2", api: "v2", lifetime: time.Hour, revokeAfter: n / 3},
		{name: "snapshot_pauses", api: "v3", lifetime: 2 * time.Second, snapshot: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t, cvmsim.Config{ResetDuration: 200 * time.Millisecond},
				planOpts{n: n, api: tc.api, extra: "rateLimit: {reset: 10, describe: 20}"})
			md := cvmsim.NewMetadata(b.sim, cvmsim.MetadataConfig{Role: "fleet-deployer", Lifetime: tc.lifetime})
			mds := httptest.NewServer(md)
			t.Cleanup(mds.Close)
			rec := &keyRecorder{Limiter: ratelimit.NewRedis(b.r.Client, ratelimit.Config{Prefix: b.ns + ":"}), keys: map[string]int{}}
			b.apply(t)
			var identity string
			b.startWorkers(t, 2, func(cfg *worker.Config) {
				// One provider per worker, as in separate processes.
				p, err := cvm.NewRoleProvider(t.Context(), cvm.RoleConfig{MetadataURL: mds.URL + cvmsim.MetadataPath})
				if err != nil {
					t.Fatal(err)
				}
				identity = p.Identity()
				cfg.Credentials, cfg.Provider, cfg.Limiter = nil, p, rec
				if tc.snapshot {
					c, err := p.Credentials(t.Context())
					if err != nil {
						t.Fatal(err)
					}
					cfg.Provider = cvm.StaticProvider(c)
				}
			})
			if tc.revokeAfter > 0 {
				if !eventually(30*time.Second, func() bool { return accepted(b.sim) >= tc.revokeAfter }) {
					t.Fatalf("%d resets accepted; want %d before revoking", accepted(b.sim), tc.revokeAfter)
				}
				md.Rotate(0)
			}
			r := b.await(t, time.Minute, ledger.Completed, ledger.Paused, ledger.Aborted)
			st := b.sim.Stats()

			if tc.snapshot {
				if r.State != ledger.Paused || !strings.Contains(r.Reason, "AuthFailure.TokenFailure") {
					t.Fatalf("rollout with credentials fetched once: %s (%s); want paused for AuthFailure.TokenFailure", r.State, r.Reason)
				}
				return
			}
			if r.State != ledger.Completed || r.Counters.Succeeded != n {
				t.Fatalf("rollout %s (%s) with %+v; want completed with %d succeeded", r.State, r.Reason, r.Counters, n)
			}
			b.exactlyOnce(t, nil)
			if tc.revokeAfter > 0 && st.TokenRejected == 0 {
				t.Errorf("no call was refused for a revoked token: the revocation did not reach a worker")
			}
			if tc.revokeAfter == 0 && md.Issued() < 3 {
				t.Errorf("the metadata service issued %d credentials; want the rollout to outlive several", md.Issued())
			}
			if identity != "role:fleet-deployer" {
				t.Errorf("Identity = %q; want role:fleet-deployer", identity)
			}
			want := map[string]bool{
				ratelimit.AccountKey("ResetInstance", b.url, "ap-guangzhou", identity):     true,
				ratelimit.AccountKey("DescribeInstances", b.url, "ap-guangzhou", identity): true,
			}
			seen := rec.seen()
			for key := range seen {
				if !want[key] {
					t.Errorf("limiter key %q used; want only the role's keys %v", key, want)
				}
			}
			for key := range want {
				if seen[key] == 0 {
					t.Errorf("limiter key %q never used; seen %v", key, seen)
				}
			}
			if strings.Contains(b.logs.String(), "AuthFailure") {
				t.Errorf("an AuthFailure reached the logs: %s", b.logs.String())
			}
		})
	}
}

// accepted sums the resets the simulator accepted.
func accepted(sim *cvmsim.Server) int {
	sum := 0
	for _, c := range sim.Stats().AcceptedResets {
		sum += c
	}
	return sum
}
