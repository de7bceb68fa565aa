// Package embedded runs an in-process Redis (miniredis) for the
// single-process mode, so a demo or a small fleet needs nothing installed.
// It keeps nothing on disk: the journal package provides crash safety.
package embedded

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
)

// Redis is a running in-process Redis on a loopback TCP port, so that other
// fleetreset commands (status, pause, ui) can reach it while it runs.
type Redis struct {
	mr   *miniredis.Miniredis
	stop chan struct{}
	once sync.Once
}

// Start starts an embedded Redis on 127.0.0.1 (addr "" picks a free port).
func Start(addr string) (*Redis, error) {
	mr := miniredis.NewMiniRedis()
	var err error
	if addr == "" {
		err = mr.Start()
	} else {
		err = mr.StartAddr(addr)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded: start redis: %w", err)
	}
	if err := AnswerConfig(mr); err != nil {
		mr.Close()
		return nil, fmt.Errorf("embedded: start redis: %w", err)
	}
	r := &Redis{mr: mr, stop: make(chan struct{})}
	// miniredis only ages key TTLs when told to; asynq relies on TTLs
	// (server heartbeats, unique locks), so age them with the wall clock.
	go func() {
		last := time.Now()
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-r.stop:
				return
			case now := <-tk.C:
				mr.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return r, nil
}

// config is what the embedded Redis answers to CONFIG GET. miniredis has no
// memory limit and never evicts a key, which is what noeviction promises;
// saying so lets the CLI's eviction check pass without a special case.
var config = map[string]string{"maxmemory-policy": "noeviction", "maxmemory": "0"}

// AnswerConfig teaches mr to answer CONFIG GET as a Redis that never
// evicts (see config). The test Redis of internal/redistest uses it too, so
// that tests see what users of the embedded Redis see.
func AnswerConfig(mr *miniredis.Miniredis) error {
	return mr.Server().Register("CONFIG", configCmd)
}

// configCmd serves CONFIG GET pattern... (miniredis has no CONFIG at all).
func configCmd(c *server.Peer, _ string, args []string) {
	if len(args) < 2 || !strings.EqualFold(args[0], "GET") {
		c.WriteError("ERR the embedded Redis answers only CONFIG GET")
		return
	}
	found := map[string]bool{}
	for _, pat := range args[1:] {
		for k := range config {
			if ok, _ := path.Match(strings.ToLower(pat), k); ok {
				found[k] = true
			}
		}
	}
	keys := make([]string, 0, len(found))
	for k := range found {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	c.WriteMapLen(len(keys))
	for _, k := range keys {
		c.WriteBulk(k)
		c.WriteBulk(config[k])
	}
}

// Addr is the host:port the server listens on.
func (r *Redis) Addr() string { return r.mr.Addr() }

// URL is a redis:// URL for REDIS_URL.
func (r *Redis) URL() string { return "redis://" + r.mr.Addr() }

// Close stops the server; everything in it is gone.
func (r *Redis) Close() {
	r.once.Do(func() {
		close(r.stop)
		r.mr.Close()
	})
}
