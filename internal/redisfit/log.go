package redisfit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

var (
	logTo      atomic.Pointer[slog.Logger]
	installLog sync.Once
)

// SetLogger routes go-redis's own log lines (a failed dial, a connection
// pool in trouble) through l at warn level with component=redis, instead of
// go-redis's plain-text lines on stderr. go-redis has one logger per
// process, so this affects every client in it, and the last call wins. A
// nil l discards the lines. Safe for concurrent use.
func SetLogger(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	logTo.Store(l.With("component", "redis"))
	installLog.Do(func() { redis.SetLogger(bridge{}) })
}

// Logger returns the logger SetLogger installed, with component=redis, for
// messages about the Redis connection itself; a discarding logger before
// the first SetLogger.
func Logger() *slog.Logger {
	if l := logTo.Load(); l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// bridge is go-redis's internal.Logging on top of slog.
type bridge struct{}

func (bridge) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	// go-redis prefixes some of its lines with its own name; component=redis
	// says it already.
	msg = strings.TrimPrefix(msg, "redis: ")
	Logger().Log(ctx, slog.LevelWarn, msg)
}
