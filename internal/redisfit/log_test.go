package redisfit_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/fleetreset/fleetreset/internal/redisfit"
	"github.com/redis/go-redis/v9"
)

// lockedBuffer is a bytes.Buffer safe for go-redis's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) snapshot() *bytes.Buffer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.NewBuffer(bytes.Clone(l.b.Bytes()))
}

// TestSetLoggerJSON: with a JSON handler, go-redis's own line about a dial
// to a closed port comes out as one JSON warning with component=redis, and
// nothing else is written.
func TestSetLoggerJSON(t *testing.T) {
	var out lockedBuffer
	redisfit.SetLogger(slog.New(slog.NewJSONHandler(&out, nil)))
	t.Cleanup(func() { redisfit.SetLogger(nil) })

	c := redis.NewClient(&redis.Options{Addr: closedAddr(t), MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	if err := c.Ping(t.Context()).Err(); err == nil {
		t.Fatal("PING to a closed port succeeded")
	}
	lines := jsonLines(t, out.snapshot())
	if len(lines) == 0 {
		t.Fatal("go-redis logged nothing through the slog logger")
	}
	for _, l := range lines {
		msg, _ := l["msg"].(string)
		if l["level"] != "WARN" || l["component"] != "redis" || strings.HasPrefix(msg, "redis: ") {
			t.Errorf("line %v; want level WARN, component redis, no \"redis: \" prefix", l)
		}
	}
	if msg, _ := lines[0]["msg"].(string); !strings.Contains(msg, "failed to dial") {
		t.Errorf("first line %q does not say the dial failed", msg)
	}
}
