package redisfit_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/internal/redisfit"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
)

// counter counts kinds like fleetreset_redis_errors_total does.
type counter struct {
	mu sync.Mutex
	n  map[redisfit.Kind]int
}

func (c *counter) count(k redisfit.Kind) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[redisfit.Kind]int{}
	}
	c.n[k]++
}

func (c *counter) get() map[redisfit.Kind]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[redisfit.Kind]int{}
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// TestErrorHookOOM fills a real redis-server (maxmemory 2mb, noeviction)
// until it refuses writes, and checks that every refused command, script
// and transaction is an OOM to IsOOM and is counted once as oom, while
// reads still work and count nothing.
func TestErrorHookOOM(t *testing.T) {
	r := redistest.Server(t, "--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
	var cnt counter
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1})
	defer c.Close()
	c.AddHook(redisfit.NewErrorHook(cnt.count))
	ctx := t.Context()

	big := strings.Repeat("x", 64<<10)
	var oomErr error
	for i := 0; i < 200 && oomErr == nil; i++ {
		oomErr = c.Set(ctx, fmt.Sprintf("fill:%d", i), big, 0).Err()
	}
	if !redisfit.IsOOM(oomErr) {
		t.Fatalf("filling a 2mb Redis ended with %v; want an OOM error", oomErr)
	}
	if got := cnt.get(); got[redisfit.KindOOM] != 1 || len(got) != 1 {
		t.Fatalf("after the first refused SET, counts = %v; want only oom 1", got)
	}

	// A script that writes is refused too (Redis 7: "OOM ... script: ...").
	err := c.Eval(ctx, "return redis.call('SET', KEYS[1], ARGV[1])", []string{"fill:script"}, big).Err()
	if !redisfit.IsOOM(err) {
		t.Errorf("script write under OOM = %v; want IsOOM", err)
	}
	// A transaction counts once, as oom.
	_, err = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "fill:tx1", big, 0)
		p.Set(ctx, "fill:tx2", big, 0)
		return nil
	})
	if err == nil {
		t.Errorf("transaction under OOM succeeded")
	}
	// Reads work, and a missing key (redis.Nil) is not a failure.
	if err := c.Get(ctx, "fill:0").Err(); err != nil {
		t.Errorf("GET under OOM = %v; want it to work", err)
	}
	if err := c.Get(ctx, "no-such-key").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET missing = %v; want redis.Nil", err)
	}
	// A script that is not cached yet goes EVALSHA (NOSCRIPT), then EVAL:
	// the NOSCRIPT is not a failure.
	if err := redis.NewScript("return 7").Run(ctx, c, nil).Err(); err != nil {
		t.Errorf("read-only script under OOM = %v", err)
	}
	want := map[redisfit.Kind]int{redisfit.KindOOM: 3}
	if diff := cmp.Diff(want, cnt.get()); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}

	// Once memory is freed, writes work again.
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "after", big, 0).Err(); err != nil {
		t.Errorf("SET after FLUSHALL = %v", err)
	}
}

// TestClassify checks each kind against errors produced by real
// connections where one can be had.
func TestClassify(t *testing.T) {
	ctx := t.Context()
	down := redis.NewClient(&redis.Options{Addr: closedAddr(t), MaxRetries: -1, DialerRetries: 1})
	defer down.Close()
	refused := down.Ping(ctx).Err()

	silent := silentAddr(t)
	slow := redis.NewClient(&redis.Options{Addr: silent, MaxRetries: -1, DialerRetries: 1, ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond, Protocol: 2})
	defer slow.Close()
	timedOut := slow.Ping(ctx).Err()

	r := redistest.Server(t)
	wrongType := r.Client.Do(ctx, "LPUSH", "k", "v").Err()
	if wrongType == nil {
		wrongType = r.Client.Do(ctx, "GET", "k").Err()
	}
	unknown := r.Client.Do(ctx, "NO-SUCH-COMMAND").Err()

	tests := []struct {
		name  string
		err   error
		want  redisfit.Kind
		count bool
	}{
		{"nil", nil, "", false},
		{"redis-nil", redis.Nil, "", false},
		{"tx-failed", redis.TxFailedErr, "", false},
		{"noscript", redis.ErrNoScript, "", false},
		{"canceled", fmt.Errorf("ledger: %w", context.Canceled), "", false}, // our own shutdown
		{"oom", redisOOM(t), redisfit.KindOOM, true},
		{"wrong-type", wrongType, redisfit.KindOther, true},
		{"unknown-command", unknown, redisfit.KindOther, true},
		{"refused", refused, redisfit.KindConnection, true},
		{"closed-client", redis.ErrClosed, redisfit.KindConnection, true},
		{"read-timeout", timedOut, redisfit.KindTimeout, true},
		{"deadline", context.DeadlineExceeded, redisfit.KindTimeout, true},
		{"pool-timeout", redis.ErrPoolTimeout, redisfit.KindTimeout, true},
		{"unknown", errors.New("something else"), redisfit.KindOther, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.count && tt.err == nil {
				t.Fatalf("no error to classify")
			}
			k, ok := redisfit.Classify(tt.err)
			if k != tt.want || ok != tt.count {
				t.Errorf("Classify(%v) = %q, %v; want %q, %v", tt.err, k, ok, tt.want, tt.count)
			}
		})
	}
}

// TestErrorHookConnection: a command to a Redis that is down counts once
// as connection, its failed dial included.
func TestErrorHookConnection(t *testing.T) {
	var cnt counter
	c := redis.NewClient(&redis.Options{Addr: closedAddr(t), MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	c.AddHook(redisfit.NewErrorHook(cnt.count))
	if err := c.Set(t.Context(), "k", "v", 0).Err(); err == nil {
		t.Fatal("SET to a closed port succeeded")
	}
	if _, err := c.Pipelined(t.Context(), func(p redis.Pipeliner) error {
		p.Set(t.Context(), "a", "1", 0)
		p.Set(t.Context(), "b", "2", 0)
		return nil
	}); err == nil {
		t.Fatal("pipeline to a closed port succeeded")
	}
	if diff := cmp.Diff(map[redisfit.Kind]int{redisfit.KindConnection: 2}, cnt.get()); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}

// redisOOM returns the error of a write to a full real Redis.
func redisOOM(t *testing.T) error {
	t.Helper()
	r := redistest.Server(t, "--maxmemory", "1mb", "--maxmemory-policy", "noeviction")
	big := strings.Repeat("x", 64<<10)
	for i := range 100 {
		if err := r.Client.Set(t.Context(), fmt.Sprint(i), big, 0).Err(); err != nil {
			return err
		}
	}
	t.Fatal("a 1mb Redis took 6 MB")
	return nil
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentAddr returns a loopback address that accepts connections and
// never answers.
func silentAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
