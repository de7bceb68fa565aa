package redisfit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/fleetreset/fleetreset/internal/embedded"
	"github.com/fleetreset/fleetreset/internal/redisfit"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// TestCheckEviction runs the check against real redis-servers with each
// kind of policy, with CONFIG available and with CONFIG renamed away as
// managed Redis services do.
func TestCheckEviction(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantPolicy string // "" when the check must pass
	}{
		{"noeviction", []string{"--maxmemory-policy", "noeviction"}, ""},
		{"allkeys-lru", []string{"--maxmemory-policy", "allkeys-lru"}, "allkeys-lru"},
		{"volatile-ttl", []string{"--maxmemory-policy", "volatile-ttl"}, "volatile-ttl"},
		{"allkeys-lru-without-maxmemory", []string{"--maxmemory", "0", "--maxmemory-policy", "allkeys-lru"}, "allkeys-lru"},           // no limit today, but one CONFIG SET away from evicting
		{"config-renamed-evicting", []string{"--maxmemory-policy", "volatile-lru", "--rename-command", "CONFIG", ""}, "volatile-lru"}, // read from INFO memory
		{"config-renamed-noeviction", []string{"--maxmemory-policy", "noeviction", "--rename-command", "CONFIG", "CONFIG-b8f3"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := redistest.Server(t, tt.args...)
			log, logs := jsonLogger()
			err := redisfit.CheckEviction(t.Context(), r.Client, r.Addr, log)
			if tt.wantPolicy == "" {
				if err != nil {
					t.Fatalf("CheckEviction = %v; want nil", err)
				}
			} else {
				var ee *redisfit.EvictionError
				if !errors.As(err, &ee) || ee.Policy != tt.wantPolicy || ee.Addr != r.Addr {
					t.Fatalf("CheckEviction = %v; want *EvictionError{%s, %s}", err, r.Addr, tt.wantPolicy)
				}
				for _, want := range []string{r.Addr, tt.wantPolicy, "CONFIG SET maxmemory-policy noeviction", "redis.conf"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("message %q does not name %q", err, want)
					}
				}
			}
			if logs.Len() != 0 {
				t.Errorf("a policy that could be read was warned about:\n%s", logs)
			}
		})
	}
}

// TestCheckEvictionMiniredis: miniredis never evicts. The embedded Redis of
// `fleetreset run` says noeviction and passes silently; a bare miniredis,
// which answers neither CONFIG nor INFO memory, passes with one warning.
func TestCheckEvictionMiniredis(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		er, err := embedded.Start("")
		if err != nil {
			t.Fatal(err)
		}
		defer er.Close()
		c := redis.NewClient(&redis.Options{Addr: er.Addr()})
		defer c.Close()
		if p, err := redisfit.EvictionPolicy(t.Context(), c); p != redisfit.NoEviction || err != nil {
			t.Errorf("EvictionPolicy(embedded) = %q, %v; want noeviction", p, err)
		}
		log, logs := jsonLogger()
		if err := redisfit.CheckEviction(t.Context(), c, er.Addr(), log); err != nil {
			t.Errorf("CheckEviction(embedded) = %v; want nil", err)
		}
		if logs.Len() != 0 {
			t.Errorf("the embedded Redis was warned about:\n%s", logs)
		}
	})
	t.Run("bare", func(t *testing.T) {
		mr := miniredis.RunT(t)
		c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		defer c.Close()
		if _, err := redisfit.EvictionPolicy(t.Context(), c); !errors.Is(err, redisfit.ErrPolicyUnknown) {
			t.Errorf("EvictionPolicy(miniredis) error = %v; want ErrPolicyUnknown", err)
		}
		log, logs := jsonLogger()
		if err := redisfit.CheckEviction(t.Context(), c, mr.Addr(), log); err != nil {
			t.Errorf("CheckEviction(miniredis) = %v; want nil", err)
		}
		lines := jsonLines(t, logs)
		if len(lines) != 1 || lines[0]["level"] != "WARN" || !strings.Contains(lines[0]["msg"].(string), "noeviction") {
			t.Errorf("want one warning naming noeviction; got %v", lines)
		}
	})
}

// TestCheckEvictionRedisDown: an unreachable server is an error, not an
// unknown policy to warn about and ignore.
func TestCheckEvictionRedisDown(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: closedAddr(t), MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	err := redisfit.CheckEviction(t.Context(), c, "x", slog.New(slog.DiscardHandler))
	if err == nil || errors.Is(err, redisfit.ErrPolicyUnknown) {
		t.Errorf("CheckEviction(down) = %v; want a connection error", err)
	}
}

func jsonLogger() (*slog.Logger, *bytes.Buffer) {
	var b bytes.Buffer
	return slog.New(slog.NewJSONHandler(&b, nil)), &b
}

// jsonLines parses every line of b as a JSON object, failing t on any
// other line.
func jsonLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not a JSON line: %q", line)
			continue
		}
		out = append(out, m)
	}
	return out
}
