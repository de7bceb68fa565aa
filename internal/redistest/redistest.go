// Package redistest gives tests a Redis: the one named by FLEETRESET_TEST_REDIS
// (an address, failing the test when it does not answer), or else an
// in-process miniredis, so that `go test ./...` passes with only Go installed.
// Only _test.go files import it.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/fleetreset/fleetreset/internal/embedded"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// EnvVar names the environment variable that points tests at a real Redis.
const EnvVar = "FLEETRESET_TEST_REDIS"

var seq atomic.Int64

// Redis is one test's Redis: a client, the asynq connection options for the
// same server, and a key prefix no other test uses.
type Redis struct {
	Addr   string
	Client *redis.Client
	// Prefix is unique to the test; every key and queue the test creates
	// should start with it, so tests can share one real Redis in parallel.
	Prefix string
	// Mini is the in-process server when FLEETRESET_TEST_REDIS is unset.
	Mini *miniredis.Miniredis
}

// ConnOpt returns asynq connection options for the same server.
func (r *Redis) ConnOpt() asynq.RedisConnOpt {
	return asynq.RedisClientOpt{Addr: r.Addr}
}

// Real reports whether the test runs against a real redis-server.
func (r *Redis) Real() bool { return r.Mini == nil }

// New returns a Redis for t. It fails t when FLEETRESET_TEST_REDIS is set
// and that server does not answer PING.
func New(t testing.TB) *Redis {
	t.Helper()
	prefix := fmt.Sprintf("t%d%d:", time.Now().UnixNano()%1e9, seq.Add(1))
	if addr := strings.TrimSpace(os.Getenv(EnvVar)); addr != "" {
		c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64, MaxRetries: -1})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("redistest: %s=%s does not answer: %v", EnvVar, addr, err)
		}
		t.Cleanup(func() {
			defer c.Close()
			if err := drop(c, prefix); err != nil {
				t.Errorf("redistest: delete the keys of %s: %v", prefix, err)
			}
		})
		return &Redis{Addr: addr, Client: c, Prefix: prefix}
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		t.Fatalf("redistest: start miniredis: %v", err)
	}
	if err := embedded.AnswerConfig(mr); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	// miniredis TTLs only move with FastForward; asynq relies on TTLs for
	// heartbeats and unique locks, so keep them moving with the wall clock.
	stop := make(chan struct{})
	go func() {
		last := time.Now()
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tk.C:
				mr.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), PoolSize: 64, MaxRetries: -1})
	t.Cleanup(func() {
		c.Close()
		close(stop)
		mr.Close()
	})
	return &Redis{Addr: mr.Addr(), Client: c, Prefix: prefix, Mini: mr}
}

// drop deletes what a test left in a shared Redis: every key under its
// prefix, and asynq's keys and queue registrations of the namespaces the
// prefix starts (tests name their asynq namespace after the prefix).
func drop(c *redis.Client, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := strings.TrimSuffix(prefix, ":")
	for _, pattern := range []string{prefix + "*", "asynq:{" + ns + "*"} {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			if batch = append(batch, iter.Val()); len(batch) == 500 {
				if err := c.Unlink(ctx, batch...).Err(); err != nil {
					return err
				}
				batch = batch[:0]
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		if len(batch) > 0 {
			if err := c.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
		}
	}
	queues, err := c.SMembers(ctx, "asynq:queues").Result()
	if err != nil {
		return err
	}
	for _, q := range queues {
		if strings.HasPrefix(q, ns) {
			if err := c.SRem(ctx, "asynq:queues", q).Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Server starts a redis-server of the test's own on a free loopback port,
// with no persistence and the extra config args (e.g. "--maxmemory",
// "2mb"), and returns a Redis for it. The server is stopped in Cleanup. It
// fails t when redis-server is not on PATH or does not start: a test that
// needs a special configuration cannot run on miniredis or a shared Redis.
func Server(t testing.TB, args ...string) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: redis-server is not on PATH (apt-get install redis-server): %v", err)
	}
	// Pick a free port; another process may take it before redis-server
	// binds it, and then the start fails loudly below.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: find a free port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dir := t.TempDir()
	logf, err := os.Create(dir + "/redis.log")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	out := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	if err := cmd.Start(); err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() {
		c.Close()
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("redistest: redis-server %v exited:\n%s", args, out())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: redis-server on %s does not answer: %v\n%s", addr, err, out())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Redis{Addr: addr, Client: c, Prefix: fmt.Sprintf("t%d%d:", time.Now().UnixNano()%1e9, seq.Add(1))}
}
