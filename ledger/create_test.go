package ledger_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/redis/go-redis/v9"
)

// TestConcurrentCreatesCreateOnce races twenty creations of one rollout
// (twenty applies of one plan, or an apply and a scheduled occurrence)
// while the winner activates it and a worker takes its first instance:
// exactly one creation wins, and nothing the worker wrote (the instance's
// intent, the fencing counter, the rollout's state) is rewritten by the
// losers (issue 10, bug 1).
func TestConcurrentCreatesCreateOnce(t *testing.T) {
	r := redistest.New(t)
	for round := range 30 {
		l := ledger.New(r.Client, ledger.Config{Prefix: fmt.Sprintf("%s%d:", r.Prefix, round)})
		spec := rollout.Spec{ID: "race", PlanHash: "h", Groups: []rollout.Group{{Name: "g"}}, Waves: []rollout.Wave{{Size: 50}}}
		var targets []rollout.Target
		for i := range 50 {
			targets = append(targets, rollout.Target{InstanceID: fmt.Sprintf("ins-%08d", i)})
		}
		var created atomic.Int32
		var begun atomic.Int64 // the token the winner's worker got
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 20 {
			wg.Go(func() {
				<-start
				// An apply that finds another one writing comes back
				// until the rollout is there, so applies keep arriving
				// through the winner's whole creation and activation.
				ok, err := l.Create(t.Context(), spec, targets, ledger.CreateOptions{})
				for errors.Is(err, ledger.ErrApplying) {
					ok, err = l.Create(t.Context(), spec, targets, ledger.CreateOptions{})
				}
				if err != nil {
					t.Errorf("Create: %v", err)
					return
				}
				if !ok {
					return
				}
				created.Add(1)
				// The winner starts the rollout and a worker takes an
				// instance while the others may still be checking.
				if err := l.Activate(t.Context(), spec); err != nil {
					t.Errorf("Activate: %v", err)
					return
				}
				res, err := l.Begin(t.Context(), spec.ID, "ins-00000000", 0)
				if err != nil || res.Action != ledger.ActProceed {
					t.Errorf("Begin = %+v, %v; want proceed", res, err)
					return
				}
				begun.Store(res.Token)
			})
		}
		close(start)
		wg.Wait()
		if n := created.Load(); n != 1 {
			t.Fatalf("round %d: %d of 20 concurrent Creates created the rollout; want exactly 1", round, n)
		}
		ro, err := l.Get(t.Context(), spec.ID)
		if err != nil {
			t.Fatal(err)
		}
		in, err := l.Instance(t.Context(), spec.ID, "ins-00000000")
		if err != nil {
			t.Fatal(err)
		}
		if ro.State != ledger.Running || ro.Total != 50 || in.State != ledger.Calling || in.Token != begun.Load() || in.Token == 0 {
			t.Fatalf("round %d: rollout %s with %d instances, instance %s under token %d (the worker got %d); want running, 50, calling under the worker's token",
				round, ro.State, ro.Total, in.State, in.Token, begun.Load())
		}
		ids, err := l.WaveInstances(t.Context(), spec.ID, 0)
		if err != nil || len(ids) != 50 {
			t.Fatalf("round %d: wave list of %d instances (%v); want 50", round, len(ids), err)
		}
		if tok, err := l.Retake(t.Context(), spec.ID, "ins-00000000", in.Token); err != nil || tok <= in.Token {
			t.Fatalf("round %d: next token %d after %d (%v): the fencing counter went back", round, tok, in.Token, err)
		}
	}
}

// TestCreateTakesOverADeadCreation: a creation whose creator died (its
// lease ran out before Activate) is redone by the next Create, once, and
// the dead creator can no longer activate it.
func TestCreateTakesOverADeadCreation(t *testing.T) {
	r := redistest.New(t)
	dead := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	next := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	spec := rollout.Spec{ID: "r1", PlanHash: "h1", Groups: []rollout.Group{{Name: "g"}}, Waves: []rollout.Wave{{Size: 2500}}}
	var targets []rollout.Target
	for i := range 2500 {
		targets = append(targets, rollout.Target{InstanceID: fmt.Sprintf("ins-%08d", i)})
	}
	ctx := t.Context()
	if ok, err := dead.Create(ctx, spec, targets, ledger.CreateOptions{}); err != nil || !ok {
		t.Fatalf("first Create = %v, %v", ok, err)
	}
	if _, err := next.Create(ctx, spec, targets, ledger.CreateOptions{}); !errors.Is(err, ledger.ErrApplying) {
		t.Fatalf("Create while the first creator holds its lease = %v; want ErrApplying", err)
	}
	// The first creator dies: its lease expires.
	if err := r.Client.Del(ctx, r.Prefix+"{r1}:applying").Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := next.Create(ctx, spec, targets, ledger.CreateOptions{}); err != nil || !ok {
		t.Fatalf("Create after the lease ran out = %v, %v; want true, nil", ok, err)
	}
	if err := dead.Activate(ctx, spec); !errors.Is(err, ledger.ErrApplying) {
		t.Errorf("Activate by the creator that lost its creation = %v; want ErrApplying", err)
	}
	if err := next.Activate(ctx, spec); err != nil {
		t.Fatalf("Activate = %v", err)
	}
	if ids, err := next.WaveInstances(ctx, spec.ID, 0); err != nil || len(ids) != 2500 {
		t.Errorf("wave list of %d instances (%v); want 2500, each once", len(ids), err)
	}
	if ok, err := dead.Create(ctx, spec, targets, ledger.CreateOptions{}); err != nil || ok {
		t.Errorf("Create after activation = %v, %v; want false, nil", ok, err)
	}
}

// TestClientSettings: the ledger requires a client that does not retry
// commands by itself, and the tests run with that production setting.
func TestClientSettings(t *testing.T) {
	r := redistest.New(t)
	if err := ledger.CheckClient(r.Client); err != nil {
		t.Errorf("the test Redis client: %v; tests must use the production setting", err)
	}
	retrying := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer retrying.Close()
	if err := ledger.CheckClient(retrying); !errors.Is(err, ledger.ErrClientRetries) {
		t.Errorf("CheckClient of a go-redis default client = %v; want ErrClientRetries", err)
	}
	fixed := redis.NewClient(ledger.RedisOptions(&redis.Options{Addr: r.Addr}))
	defer fixed.Close()
	if err := ledger.CheckClient(fixed); err != nil {
		t.Errorf("CheckClient of a client made with RedisOptions = %v", err)
	}
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{r.Addr}})
	defer cluster.Close()
	if err := ledger.CheckClient(cluster); !errors.Is(err, ledger.ErrClientRetries) {
		t.Errorf("CheckClient of a default cluster client = %v; want ErrClientRetries", err)
	}
}

// TestConcurrentResolvesRecordOne: resolutions of one occurrence racing
// (two workers, each listing at its own moment) record one, the first,
// and every racer gets that one back.
func TestConcurrentResolvesRecordOne(t *testing.T) {
	r := redistest.New(t)
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	if _, ok, err := l.Resolution(t.Context(), "weekly-1"); err != nil || ok {
		t.Fatalf("Resolution before any = %v, %v; want none", ok, err)
	}
	got := make([]string, 10)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			res, err := l.Resolve(t.Context(), "weekly-1", ledger.Resolved{
				Spec:    rollout.Spec{ID: "weekly-1", PlanHash: fmt.Sprintf("h-%d", i)},
				Targets: []rollout.Target{{InstanceID: fmt.Sprintf("ins-%08d", i)}}})
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = res.Spec.PlanHash + "/" + res.Targets[0].InstanceID
		})
	}
	wg.Wait()
	for i, g := range got {
		if g != got[0] || g[len("h-"):len("h-")+1] != g[len(g)-1:] {
			t.Errorf("racer %d got %s; racer 0 got %s: want one resolution, whole", i, g, got[0])
		}
	}
	if ttl := r.Client.TTL(t.Context(), r.Prefix+"{weekly-1}:sel").Val(); ttl <= 0 {
		t.Errorf("resolution TTL %v; want it to expire", ttl)
	}
}
