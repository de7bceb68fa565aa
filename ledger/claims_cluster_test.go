package ledger_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/redis/go-redis/v9"
)

// slotOf is the Redis Cluster slot of key: CRC16 (XMODEM) of its hash tag
// (the part inside the first {...}, when not empty) or of the whole key,
// mod 16384.
func slotOf(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

func TestSlotOf(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	for key, want := range map[string]int{"123456789": 12739, "foo": 12182, "{user1000}.following": slotOf("user1000"), "foo{}{bar}": slotOf("foo{}{bar}")} {
		if got := slotOf(key); got != want {
			t.Errorf("slotOf(%q) = %d; want %d", key, got, want)
		}
	}
}

// slotCalls is a go-redis hook that records every script call and every
// MULTI/EXEC transaction whose keys span more than one cluster slot.
type slotCalls struct {
	mu    sync.Mutex
	bad   []string
	calls int
}

func (h *slotCalls) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *slotCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.see(cmd)
		return next(ctx, cmd)
	}
}
func (h *slotCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		tx := len(cmds) > 0 && strings.EqualFold(cmds[0].Name(), "multi")
		slots := map[int]bool{}
		for _, c := range cmds {
			h.see(c)
			if tx {
				for _, k := range cmdKeys(c) {
					slots[slotOf(k)] = true
				}
			}
		}
		if len(slots) > 1 {
			h.mu.Lock()
			h.bad = append(h.bad, fmt.Sprintf("a transaction over %d slots", len(slots)))
			h.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

func (h *slotCalls) see(cmd redis.Cmder) {
	name := strings.ToLower(cmd.Name())
	if name != "eval" && name != "evalsha" {
		return
	}
	keys := cmdKeys(cmd)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	for _, k := range keys {
		if slotOf(k) != slotOf(keys[0]) {
			h.bad = append(h.bad, fmt.Sprintf("script call on %q", keys))
			return
		}
	}
}

// cmdKeys returns the keys of a script call, or of the data commands a
// transaction holds (their first argument).
func cmdKeys(cmd redis.Cmder) []string {
	args := cmd.Args()
	switch strings.ToLower(cmd.Name()) {
	case "eval", "evalsha":
		n, _ := args[2].(int)
		keys := make([]string, 0, n)
		for _, k := range args[3 : 3+n] {
			keys = append(keys, fmt.Sprint(k))
		}
		return keys
	case "multi", "exec", "watch", "unwatch":
		return nil
	}
	if len(args) > 1 {
		return []string{fmt.Sprint(args[1])}
	}
	return nil
}

// TestNoScriptSpansSlots runs a rollout's life from claim to prune, with a
// clash between claims, and checks that no script call and no transaction
// touches keys of two Redis Cluster slots: the ledger runs on a cluster.
func TestNoScriptSpansSlots(t *testing.T) {
	x := newRetentionOn(t, true)
	h := &slotCalls{}
	x.r.Client.AddHook(h)
	ctx := t.Context()
	ids := x.rollout(t, "a", "", 0, 40, 60)
	if c, err := x.l.Claim(ctx, "b", ids[30:50]); err != nil || len(c) != 10 {
		t.Fatalf("clashing Claim = %v, %v; want ten conflicts", c, err)
	}
	x.finish(t, "a", ledger.Aborted)
	if c, err := x.l.Claim(ctx, "b", ids[30:50]); err != nil || len(c) != 0 {
		t.Fatalf("Claim after the owner aborted = %v, %v", c, err)
	}
	x.clk.Add(31 * day)
	if res, err := x.l.Prune(ctx, ledger.PruneOptions{Chunk: 16}); err != nil || len(res.Rollouts) != 1 {
		t.Fatalf("Prune = %+v, %v", res, err)
	}
	if h.calls < 100 {
		t.Errorf("%d script calls seen; the hook missed them", h.calls)
	}
	for _, b := range h.bad {
		t.Errorf("spans slots: %s", b)
	}
}

// TestConcurrentClaimsNeverBothWin: rollouts claiming overlapping
// instances at once never all succeed; each instance ends held by at most
// one of them, every refused rollout holds nothing, and the winner (if
// any) holds all of its instances.
func TestConcurrentClaimsNeverBothWin(t *testing.T) {
	r := redistest.New(t)
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	ctx := t.Context()
	const n = 8
	sets := make([][]string, n)
	for i := range n {
		// Each set overlaps its neighbours' by half, in another order.
		for j := range 300 {
			sets[i] = append(sets[i], fmt.Sprintf("ins-%05d", (i*150+j*7)%(n*150+150)))
		}
	}
	won := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := l.Claim(ctx, fmt.Sprintf("r%d", i), sets[i])
			if err != nil {
				t.Error(err)
			}
			won[i] = err == nil && len(c) == 0
		})
	}
	wg.Wait()
	for i := range n {
		want := ""
		if won[i] {
			want = fmt.Sprintf("r%d", i)
		}
		for _, id := range sets[i] {
			got := r.Client.Get(ctx, r.Prefix+"claim:"+id).Val()
			if won[i] && got != want {
				t.Fatalf("r%d won but %s is held by %q", i, id, got)
			}
			if !won[i] && got == fmt.Sprintf("r%d", i) {
				t.Fatalf("r%d was refused but still holds %s", i, id)
			}
		}
	}
	// The rollouts claim before they have records; while their claiming
	// marks last they are live, so an overlapping winner blocks the rest.
	for i := range n {
		for j := i + 1; j < n; j++ {
			if won[i] && won[j] && overlap(sets[i], sets[j]) {
				t.Errorf("r%d and r%d both claimed overlapping instances", i, j)
			}
		}
	}
}

func overlap(a, b []string) bool {
	in := map[string]bool{}
	for _, s := range a {
		in[s] = true
	}
	for _, s := range b {
		if in[s] {
			return true
		}
	}
	return false
}

// TestClaimTakesOverDeadOwnersOnly: a claim held by a finished rollout is
// taken over instance by instance, one held by a live one is not, and a
// refused Claim takes back what it took over.
func TestClaimTakesOverDeadOwnersOnly(t *testing.T) {
	x := newRetention(t)
	ctx := t.Context()
	old := x.rollout(t, "old", "", 0, 5)
	x.finish(t, "old", ledger.Completed)
	run := x.rollout(t, "run", "", 100, 1)
	want := append(append([]string{}, old...), run[0])
	c, err := x.l.Claim(ctx, "new", want)
	if err != nil || len(c) != 1 || c[0] != (ledger.Conflict{InstanceID: run[0], Rollout: "run"}) {
		t.Fatalf("Claim = %v, %v; want %s held by run", c, err, run[0])
	}
	for _, id := range old {
		if got := x.r.Client.Get(ctx, x.r.Prefix+"claim:"+id).Val(); got == "new" {
			t.Errorf("%s stayed with the refused rollout", id)
		}
	}
	if c, err := x.l.Claim(ctx, "new", old); err != nil || len(c) != 0 {
		t.Fatalf("Claim of a completed rollout's instances = %v, %v", c, err)
	}
	// Claiming again what one holds changes nothing, and unclaiming
	// releases only one's own.
	if c, err := x.l.Claim(ctx, "new", old); err != nil || len(c) != 0 {
		t.Fatalf("second Claim = %v, %v", c, err)
	}
	if err := x.l.Unclaim(ctx, "run", old); err != nil {
		t.Fatal(err)
	}
	if got := x.r.Client.Get(ctx, x.r.Prefix+"claim:"+old[0]).Val(); got != "new" {
		t.Errorf("another rollout's Unclaim released %s: held by %q", old[0], got)
	}
}
