package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/redis/go-redis/v9"
)

// manualClock is a clock the test moves by hand.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const day = 24 * time.Hour

// retention is a ledger on its own test Redis with a manual clock.
type retention struct {
	r   *redistest.Redis
	l   *ledger.Ledger
	clk *manualClock
}

func newRetention(t *testing.T) *retention { return newRetentionOn(t, false) }

// newRetentionOn is newRetention with the ledger's scripts as on a Redis
// Cluster when cluster is set.
func newRetentionOn(t *testing.T, cluster bool) *retention {
	t.Helper()
	r := redistest.New(t)
	clk := &manualClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	return &retention{r: r, clk: clk, l: ledger.New(r.Client, ledger.Config{Prefix: r.Prefix, Clock: clk, Cluster: cluster})}
}

// rollout creates a running rollout of instances first, first+1, ...
// (sizes per wave) in series (empty for none) and claims its instances.
func (x *retention) rollout(t *testing.T, id, series string, first int, sizes ...int) []string {
	t.Helper()
	spec := rollout.Spec{ID: id, PlanHash: "h-" + id, API: "v3", Series: series, Groups: []rollout.Group{{Name: "g", ImageID: "img-new00001"}}}
	var targets []rollout.Target
	var ids []string
	n := first
	for k, size := range sizes {
		spec.Waves = append(spec.Waves, rollout.Wave{Size: size})
		for range size {
			in := fmt.Sprintf("ins-%08d", n)
			targets = append(targets, rollout.Target{InstanceID: in, Wave: k})
			ids = append(ids, in)
			n++
		}
	}
	ctx := t.Context()
	// Every rollout keeps a plan source (B src), which a prune must delete too.
	src := &rollout.PlanSource{Path: id + ".yaml", Files: map[string][]byte{id + ".yaml": []byte("version: 1\n")}}
	if created, err := x.l.Create(ctx, spec, targets, ledger.CreateOptions{Source: src}); err != nil || !created {
		t.Fatalf("Create %s = %v, %v", id, created, err)
	}
	if got, err := x.l.Source(ctx, id); err != nil || got == nil || string(got.Files[src.Path]) != "version: 1\n" {
		t.Fatalf("Source(%s) = %+v, %v; want what Create kept", id, got, err)
	}
	if err := x.l.Activate(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if c, err := x.l.Claim(ctx, id, ids); err != nil || len(c) > 0 {
		t.Fatalf("Claim for %s = %v, %v", id, c, err)
	}
	return ids
}

// complete drives a one-wave rollout to completed through the protocol:
// every instance reset and verified, then the last gate.
func (x *retention) complete(t *testing.T, id string, ids []string) {
	t.Helper()
	ctx := t.Context()
	for _, in := range ids {
		res, err := x.l.Begin(ctx, id, in, 0)
		if err != nil || res.Action != ledger.ActProceed {
			t.Fatalf("Begin %s = %+v, %v", in, res, err)
		}
		if err := x.l.Called(ctx, id, in, res.Token, "req-"+in); err != nil {
			t.Fatal(err)
		}
		if _, err := x.l.Finish(ctx, id, in, ledger.Outcome{From: []ledger.InstanceState{ledger.Resetting}, To: ledger.Succeeded}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := x.l.Once(ctx, id, "completed"); err != nil {
		t.Fatal(err)
	}
	if out, _, err := x.l.Advance(ctx, id, 0, false, true, true); err != nil || out != ledger.AdvCompleted {
		t.Fatalf("Advance = %v, %v; want completed", out, err)
	}
}

// finish makes a rollout terminal without resetting anything.
func (x *retention) finish(t *testing.T, id string, to ledger.RolloutState) {
	t.Helper()
	var err error
	if to == ledger.Aborted {
		_, err = x.l.Abort(t.Context(), id, "test")
	} else {
		_, err = x.l.SetState(t.Context(), id, nil, to, "")
	}
	if err != nil {
		t.Fatal(err)
	}
}

// keys returns every key under the test's prefix with its value's digest
// (type and length), so a comparison sees deleted and changed keys alike.
func (x *retention) keys(t *testing.T) map[string]string {
	t.Helper()
	ctx := t.Context()
	out := map[string]string{}
	iter := x.r.Client.Scan(ctx, 0, x.r.Prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		out[iter.Val()] = ""
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	for k := range out {
		typ := x.r.Client.Type(ctx, k).Val()
		var n int64
		switch typ {
		case "hash":
			n = x.r.Client.HLen(ctx, k).Val()
		case "list":
			n = x.r.Client.LLen(ctx, k).Val()
		case "set":
			n = x.r.Client.SCard(ctx, k).Val()
		case "zset":
			n = x.r.Client.ZCard(ctx, k).Val()
		case "string":
			n = int64(len(x.r.Client.Get(ctx, k).Val()))
		}
		out[k] = typ + ":" + strconv.FormatInt(n, 10)
	}
	return out
}

// of returns the keys of rollout id: its own and the claims naming it.
func (x *retention) of(t *testing.T, keys map[string]string, id string) []string {
	t.Helper()
	var out []string
	for k := range keys {
		if strings.Contains(k, "{"+id+"}") {
			out = append(out, k)
		} else if (strings.HasPrefix(k, x.r.Prefix+"claim:") || strings.HasPrefix(k, x.r.Prefix+"drainer:")) && x.r.Client.Get(t.Context(), k).Val() == id {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func ids(res ledger.PruneResult) []string {
	var out []string
	for _, r := range res.Rollouts {
		out = append(out, r.ID)
	}
	slices.Sort(out)
	return out
}

// TestPruneDeletesEveryKeyOfOldFinishedRollouts: a completed and an
// aborted rollout (3,000 instances) older than the cutoff lose every key,
// their claims and index entries; a younger finished one, a running one
// on the same instances and its claims are untouched.
func TestPruneDeletesEveryKeyOfOldFinishedRollouts(t *testing.T) {
	x := newRetention(t)
	ctx := t.Context()
	done := x.rollout(t, "done", "", 0, 5)
	x.complete(t, "done", done)
	big := x.rollout(t, "big", "", 100, 1000, 2000)
	// Some of big's instances are half way through the protocol.
	for _, in := range big[:3] {
		res, err := x.l.Begin(ctx, "big", in, 0)
		if err != nil || res.Action != ledger.ActProceed {
			t.Fatalf("Begin = %+v, %v", res, err)
		}
		if err := x.l.Called(ctx, "big", in, res.Token, "req"); err != nil {
			t.Fatal(err)
		}
	}
	x.finish(t, "big", ledger.Aborted)
	// Half of big's instances move on to a rollout that is still running.
	live := x.rollout(t, "live", "", 100, 1500)
	// Drainer notes (Ledger.NoteDrainer) go with the rollout they name.
	for _, n := range []struct{ rollout, id string }{{"done", done[0]}, {"big", big[2000]}, {"live", live[0]}} {
		if err := x.l.NoteDrainer(ctx, n.rollout, n.id); err != nil {
			t.Fatal(err)
		}
	}
	x.clk.Add(20 * day)
	x.rollout(t, "young", "", 5000, 3)
	x.finish(t, "young", ledger.Completed)
	x.clk.Add(11 * day)

	if got, err := x.l.Finished(ctx, time.Time{}, x.clk.Now()); err != nil || len(got) != 3 {
		t.Fatalf("Finished = %v, %v; want done, big and young", got, err)
	}
	before := x.keys(t)
	doomed := append(x.of(t, before, "done"), x.of(t, before, "big")...)
	if len(doomed) < 3000+1500 {
		t.Fatalf("setup: %d keys of the old rollouts; want at least an entry per instance and big's unmoved claims", len(doomed))
	}
	res, err := x.l.Prune(ctx, ledger.PruneOptions{OlderThan: 30 * day})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(res); !slices.Equal(got, []string{"big", "done"}) {
		t.Errorf("pruned %v; want big and done", got)
	}
	if res.Keys != len(doomed) {
		t.Errorf("Prune says it deleted %d keys; the old rollouts had %d", res.Keys, len(doomed))
	}
	after := x.keys(t)
	for _, k := range doomed {
		if _, ok := after[k]; ok {
			t.Errorf("%s survived the prune", k)
		}
	}
	for k, v := range before {
		if slices.Contains(doomed, k) {
			continue
		}
		if strings.HasSuffix(k, ":finished") || strings.HasSuffix(k, ":rollouts") {
			continue
		}
		if after[k] != v {
			t.Errorf("%s changed: %s before, %q after", k, v, after[k])
		}
	}
	for _, in := range live {
		if got := x.r.Client.Get(ctx, x.r.Prefix+"claim:"+in).Val(); got != "live" {
			t.Errorf("claim of %s = %q; want live's untouched", in, got)
		}
	}
	for _, id := range []string{"big", "done"} {
		if _, err := x.l.Get(ctx, id); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("Get(%s) after prune = %v; want ErrNotFound", id, err)
		}
	}
	rs, err := x.l.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, r := range rs {
		listed = append(listed, r.ID)
	}
	if !slices.Equal(listed, []string{"live", "young"}) {
		t.Errorf("List after prune = %v; want live and young", listed)
	}
	if idx := x.r.Client.ZRange(ctx, x.r.Prefix+"rollouts", 0, -1).Val(); !slices.Equal(idx, []string{"live", "young"}) {
		t.Errorf("rollout index = %v; want live and young", idx)
	}
	if got, _ := x.l.Finished(ctx, time.Time{}, x.clk.Now()); len(got) != 1 || got[0].ID != "young" {
		t.Errorf("finished index = %v; want young only", got)
	}
	// The instances of the pruned rollouts are free for a new rollout.
	if c, err := x.l.Claim(ctx, "next", done); err != nil || len(c) > 0 {
		t.Errorf("Claim of done's instances = %v, %v; want them free", c, err)
	}
	// Nothing is left to prune.
	if again, err := x.l.Prune(ctx, ledger.PruneOptions{OlderThan: 30 * day}); err != nil || len(again.Rollouts) > 0 || again.Keys > 0 {
		t.Errorf("second Prune = %+v, %v; want nothing", again, err)
	}
}

// TestPruneNeverTouchesUnfinishedRollouts: whatever their age, rollouts
// that are not completed or aborted keep every key.
func TestPruneNeverTouchesUnfinishedRollouts(t *testing.T) {
	x := newRetention(t)
	ctx := t.Context()
	states := []ledger.RolloutState{ledger.Running, ledger.Paused, ledger.AwaitingApproval, ledger.Scheduled}
	for i, st := range states {
		id := string(st)
		x.rollout(t, id, "", 10*i, 2, 3)
		if st != ledger.Running {
			if ok, err := x.l.SetState(ctx, id, nil, st, ""); err != nil || !ok {
				t.Fatalf("SetState %s = %v, %v", st, ok, err)
			}
		}
	}
	// A rollout whose apply never finished.
	spec := rollout.Spec{ID: "applying", PlanHash: "h", API: "v3", Waves: []rollout.Wave{{Size: 1}}}
	if _, err := x.l.Create(ctx, spec, []rollout.Target{{InstanceID: "ins-applying"}}, ledger.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A completed rollout that retry-failed reopened.
	ids := x.rollout(t, "reopened", "", 100, 2)
	if _, err := x.l.Finish(ctx, "reopened", ids[0], ledger.Outcome{From: []ledger.InstanceState{ledger.Pending}, To: ledger.Failed}); err != nil {
		t.Fatal(err)
	}
	x.finish(t, "reopened", ledger.Completed)
	if rr, err := x.l.RetryFailed(ctx, "reopened", false); err != nil || !rr.Changed {
		t.Fatalf("RetryFailed = %+v, %v", rr, err)
	}
	if got, _ := x.l.Finished(ctx, time.Time{}, x.clk.Now().Add(time.Hour)); len(got) != 0 {
		t.Errorf("finished index after retry-failed = %v; want empty", got)
	}
	x.clk.Add(10 * 365 * day)
	before := x.keys(t)
	for _, dry := range []bool{true, false} {
		res, err := x.l.Prune(ctx, ledger.PruneOptions{OlderThan: time.Nanosecond, KeepPerSeries: -1, DryRun: dry})
		if err != nil || len(res.Rollouts) > 0 || res.Keys > 0 {
			t.Errorf("Prune (dry run %v) = %+v, %v; want nothing", dry, res, err)
		}
	}
	after := x.keys(t)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %s before, %q after", k, v, after[k])
		}
	}
}

// TestPruneKeepsTheLatestOfASeries: a scheduled series keeps its last N
// finished occurrences whatever their age, and its latest occurrence
// always, finished or not: the next one is created from it.
func TestPruneKeepsTheLatestOfASeries(t *testing.T) {
	occurrence := func(i int) string { return fmt.Sprintf("nightly-202503%02dt0300", i+1) }
	for _, tc := range []struct {
		name       string
		keep       int
		latestDone bool
		kept       []int // occurrences left, besides the latest
	}{
		{"keep 3, latest running", 3, false, []int{8, 9, 10}},
		{"keep 3, latest finished", 3, true, []int{9, 10}},
		{"default keeps 10", 0, true, []int{2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"keep none, latest running", -1, false, nil},
		{"keep none, latest finished", -1, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newRetention(t)
			ctx := t.Context()
			// The series' first rollout is named after the plan.
			x.rollout(t, "nightly", "nightly", 0, 2)
			x.finish(t, "nightly", ledger.Completed)
			for i := range 12 {
				x.clk.Add(day)
				id := occurrence(i)
				x.rollout(t, id, "nightly", 0, 2)
				if i < 11 || tc.latestDone {
					x.finish(t, id, []ledger.RolloutState{ledger.Completed, ledger.Aborted}[i%2])
				}
			}
			x.rollout(t, "other", "", 100, 1)
			x.finish(t, "other", ledger.Completed)
			x.clk.Add(100 * day)
			if _, err := x.l.Prune(ctx, ledger.PruneOptions{OlderThan: 30 * day, KeepPerSeries: tc.keep}); err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, i := range append(tc.kept, 11) {
				want = append(want, occurrence(i))
			}
			rs, err := x.l.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rs {
				got = append(got, r.ID)
			}
			if !slices.Equal(got, want) {
				t.Errorf("left %v; want %v", got, want)
			}
		})
	}
}

// TestPruneDryRunDeletesNothing: a dry run reports exactly what the real
// prune then deletes, and changes no key.
func TestPruneDryRunDeletesNothing(t *testing.T) {
	x := newRetention(t)
	ctx := t.Context()
	x.complete(t, "a", x.rollout(t, "a", "", 0, 4))
	x.rollout(t, "b", "", 10, 30, 20)
	x.finish(t, "b", ledger.Aborted)
	x.rollout(t, "c", "", 100, 3)
	x.clk.Add(40 * day)
	before := x.keys(t)
	dry, err := x.l.Prune(ctx, ledger.PruneOptions{DryRun: true, Chunk: 7})
	if err != nil {
		t.Fatal(err)
	}
	after := x.keys(t)
	if len(after) != len(before) {
		t.Errorf("dry run: %d keys before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("dry run changed %s: %s before, %q after", k, v, after[k])
		}
	}
	real, err := x.l.Prune(ctx, ledger.PruneOptions{Chunk: 7})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(dry), []string{"a", "b"}) || !slices.Equal(ids(dry), ids(real)) || dry.Keys != real.Keys {
		t.Errorf("dry run said %v, %d keys; the prune deleted %v, %d keys", ids(dry), dry.Keys, ids(real), real.Keys)
	}
}

// callCounter is a go-redis hook that records the keys of every command.
type callCounter struct {
	mu sync.Mutex
	// maxKeys is the most keys a deleting call named; calls counts them.
	maxKeys, calls int
	// failAfter, when positive, fails the prune-keys calls after that many.
	failAfter int
}

func (c *callCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *callCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.see(cmd)
		}
		return next(ctx, cmds)
	}
}
func (c *callCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := c.see(cmd); err != nil {
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

// see counts the keys a call may delete: the keys of a script (all but
// the two guards of the prune scripts), or the arguments of DEL/UNLINK.
func (c *callCounter) see(cmd redis.Cmder) error {
	args := cmd.Args()
	name := strings.ToLower(fmt.Sprint(args[0]))
	n := 0
	switch name {
	case "eval", "evalsha":
		nk, _ := strconv.Atoi(fmt.Sprint(args[2]))
		n = nk - 2
	case "del", "unlink":
		n = len(args) - 1
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.maxKeys = max(c.maxKeys, n)
	if c.failAfter > 0 && c.calls > c.failAfter {
		return errors.New("test: Redis went away")
	}
	return nil
}

// TestPruneIsChunked: no call of a prune deletes more than the chunk, and
// a prune cut off half way is finished by the next.
func TestPruneIsChunked(t *testing.T) {
	x := newRetention(t)
	ctx := t.Context()
	x.rollout(t, "big", "", 0, 600, 400)
	x.finish(t, "big", ledger.Aborted)
	x.clk.Add(31 * day)
	before := x.keys(t)
	all := len(x.of(t, before, "big"))

	counter := &callCounter{failAfter: 8}
	rdb := redis.NewClient(&redis.Options{Addr: x.r.Addr, MaxRetries: -1})
	defer rdb.Close()
	rdb.AddHook(counter)
	l := ledger.New(rdb, ledger.Config{Prefix: x.r.Prefix, Clock: x.clk})
	const chunk = 100
	first, err := l.Prune(ctx, ledger.PruneOptions{Chunk: chunk})
	if err == nil {
		t.Fatalf("Prune with Redis failing half way = %+v, nil; want the error", first)
	}
	if _, err := l.Get(ctx, "big"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Get of a rollout being pruned = %v; want ErrNotFound", err)
	}
	counter.failAfter = 0
	second, err := l.Prune(ctx, ledger.PruneOptions{Chunk: chunk})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(second), []string{"big"}) {
		t.Errorf("the second prune ended %v; want big", ids(second))
	}
	if got := first.Keys + second.Keys; got != all {
		t.Errorf("the prunes deleted %d + %d keys; big had %d", first.Keys, second.Keys, all)
	}
	if left := x.of(t, x.keys(t), "big"); len(left) > 0 {
		t.Errorf("%d keys of big left, e.g. %s", len(left), left[0])
	}
	if counter.maxKeys > chunk {
		t.Errorf("one call deleted up to %d keys; the chunk is %d", counter.maxKeys, chunk)
	}
	// 1,000 instance entries and 1,000 claims take 20 calls of 100.
	if counter.calls < 20 {
		t.Errorf("%d deleting calls; want at least 20 of %d keys", counter.calls, chunk)
	}
}

// TestConcurrentPrunes: prunes racing over the same rollouts all succeed,
// and together report each rollout once and each key once.
func TestConcurrentPrunes(t *testing.T) {
	x := newRetention(t)
	ctx := t.Context()
	want := []string{}
	for i := range 6 {
		id := fmt.Sprintf("r%d", i)
		x.rollout(t, id, "", 1000*i, 150, 150)
		x.finish(t, id, ledger.Aborted)
		want = append(want, id)
	}
	x.clk.Add(31 * day)
	all := 0
	keys := x.keys(t)
	for _, id := range want {
		all += len(x.of(t, keys, id))
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		got   []string
		total atomic.Int64
	)
	for range 4 {
		wg.Go(func() {
			res, err := x.l.Prune(ctx, ledger.PruneOptions{Chunk: 50})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got = append(got, ids(res)...)
			mu.Unlock()
			total.Add(int64(res.Keys))
		})
	}
	wg.Wait()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("the prunes reported %v; want each of %v once", got, want)
	}
	if total.Load() != int64(all) {
		t.Errorf("the prunes deleted %d keys together; there were %d", total.Load(), all)
	}
	if left := x.keys(t); len(left) > 0 {
		var some []string
		for k := range left {
			some = append(some, k)
		}
		t.Errorf("%d keys left: %v", len(left), some[:min(5, len(some))])
	}
}

// TestPruneFindsUnindexedFinishedRollouts: a rollout that became terminal
// without reaching the finished index (a process died in between) is
// still pruned, from the rollout index.
func TestPruneFindsUnindexedFinishedRollouts(t *testing.T) {
	x := newRetention(t)
	ctx := t.Context()
	x.rollout(t, "lost", "", 0, 3)
	x.finish(t, "lost", ledger.Completed)
	if err := x.r.Client.Del(ctx, x.r.Prefix+"finished").Err(); err != nil {
		t.Fatal(err)
	}
	x.clk.Add(31 * day)
	res, err := x.l.Prune(ctx, ledger.PruneOptions{})
	if err != nil || !slices.Equal(ids(res), []string{"lost"}) {
		t.Fatalf("Prune = %+v, %v; want lost", res, err)
	}
	if left := x.keys(t); len(left) > 0 {
		t.Errorf("keys left: %v", left)
	}
}
