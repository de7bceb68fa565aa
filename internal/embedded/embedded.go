// Package embedded runs an in-process Redis (miniredis) for the
// single-process mode, so a demo or a small fleet needs nothing installed.
// It keeps nothing on disk: the journal package provides crash safety.
package embedded

import (
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
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
