package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/internal/redisfit"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TestParseRedisURL: every accepted form, and every malformed one with an
// error that names the part that is wrong and never the password.
func TestParseRedisURL(t *testing.T) {
	const pw = "s3cr3t@Pw9"
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	type want struct {
		// single
		addr string
		// failover
		master, sentUser, sentPW string
		sentinels                []string
		// cluster
		nodes    []string
		user, pw string
		db       int
		tls      bool
	}
	for _, tt := range []struct {
		name string
		url  string
		env  func(string) string
		want want
	}{
		{"bare host:port", "127.0.0.1:6380", env(), want{addr: "127.0.0.1:6380"}},
		{"redis", "redis://10.0.0.1:6379/2", env(), want{addr: "10.0.0.1:6379", db: 2}},
		{"redis password", "redis://:" + pw + "@10.0.0.1:6379/0", env(), want{addr: "10.0.0.1:6379", pw: pw}},
		{"redis REDIS_PASSWORD", "redis://10.0.0.1:6379/0", env("REDIS_PASSWORD", pw), want{addr: "10.0.0.1:6379", pw: pw}},
		{"redis URL password wins", "redis://:inurl@10.0.0.1:6379/0", env("REDIS_PASSWORD", pw), want{addr: "10.0.0.1:6379", pw: "inurl"}},
		{"rediss", "rediss://h:6380/1", env(), want{addr: "h:6380", db: 1, tls: true}},
		{"sentinel", "redis+sentinel://s1:26379,s2:26380,s3:26381/mymaster/3", env(),
			want{master: "mymaster", sentinels: []string{"s1:26379", "s2:26380", "s3:26381"}, db: 3}},
		{"sentinel default port and db", "redis+sentinel://s1,10.0.0.2/mymaster", env(),
			want{master: "mymaster", sentinels: []string{"s1:26379", "10.0.0.2:26379"}}},
		{"sentinel trailing slash", "redis+sentinel://s1:26379/mymaster/", env(),
			want{master: "mymaster", sentinels: []string{"s1:26379"}}},
		{"sentinel ipv6", "redis+sentinel://[::1]:26379,[fe80::1]/m/0", env(),
			want{master: "m", sentinels: []string{"[::1]:26379", "[fe80::1]:26379"}}},
		{"sentinel data password in URL, sentinel password from env", "redis+sentinel://:" + pw + "@s1:26379/mymaster/0",
			env("REDIS_SENTINEL_PASSWORD", "sentpw", "REDIS_SENTINEL_USERNAME", "sentuser"),
			want{master: "mymaster", sentinels: []string{"s1:26379"}, pw: pw, sentUser: "sentuser", sentPW: "sentpw"}},
		{"sentinel ACL user, escaped password", "redis+sentinel://app:p%2Fw@s1:26379/mymaster/0", env(),
			want{master: "mymaster", sentinels: []string{"s1:26379"}, user: "app", pw: "p/w"}},
		{"sentinel REDIS_PASSWORD", "redis+sentinel://s1:26379/mymaster/0", env("REDIS_PASSWORD", pw),
			want{master: "mymaster", sentinels: []string{"s1:26379"}, pw: pw}},
		{"sentinel TLS", "rediss+sentinel://s1:26379,s2:26379/mymaster/0", env(),
			want{master: "mymaster", sentinels: []string{"s1:26379", "s2:26379"}, tls: true}},
		{"cluster", "redis+cluster://n1:7000,10.0.0.2:7001,[::1]:7002", env(),
			want{nodes: []string{"n1:7000", "10.0.0.2:7001", "[::1]:7002"}}},
		{"cluster ACL user and db 0", "redis+cluster://app:p%2Fw@n1:7000/0", env(),
			want{nodes: []string{"n1:7000"}, user: "app", pw: "p/w"}},
		{"cluster REDIS_PASSWORD, TLS", "rediss+cluster://n1:7000,n2:7000", env("REDIS_PASSWORD", pw),
			want{nodes: []string{"n1:7000", "n2:7000"}, pw: pw, tls: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRedisURL(tt.url, tt.env)
			if err != nil {
				t.Fatalf("parseRedisURL: %v", err)
			}
			var g want
			if o := got.single; o != nil {
				g = want{addr: o.Addr, user: o.Username, pw: o.Password, db: o.DB, tls: o.TLSConfig != nil}
				if _, ok := got.connOpt().(asynq.RedisClientOpt); !ok {
					t.Errorf("asynq options %T; want asynq.RedisClientOpt", got.connOpt())
				}
			} else if c := got.cluster; c != nil {
				g = want{nodes: c.Addrs, user: c.Username, pw: c.Password, tls: c.TLSConfig != nil}
				ao, ok := got.connOpt().(asynq.RedisClusterClientOpt)
				if !ok {
					t.Fatalf("asynq options %T; want asynq.RedisClusterClientOpt", got.connOpt())
				}
				if !cmp.Equal(ao.Addrs, c.Addrs) || ao.Password != c.Password || ao.Username != c.Username || (ao.TLSConfig != nil) != g.tls {
					t.Errorf("asynq options %+v differ from the ledger's %+v", ao, c)
				}
			} else {
				f := got.failover
				g = want{master: f.MasterName, sentinels: f.SentinelAddrs, sentUser: f.SentinelUsername, sentPW: f.SentinelPassword,
					user: f.Username, pw: f.Password, db: f.DB, tls: f.TLSConfig != nil}
				ao, ok := got.connOpt().(asynq.RedisFailoverClientOpt)
				if !ok {
					t.Fatalf("asynq options %T; want asynq.RedisFailoverClientOpt", got.connOpt())
				}
				if ao.MasterName != f.MasterName || !cmp.Equal(ao.SentinelAddrs, f.SentinelAddrs) || ao.Password != f.Password ||
					ao.Username != f.Username || ao.SentinelPassword != f.SentinelPassword || ao.DB != f.DB || ao.PoolSize != connPoolSize {
					t.Errorf("asynq options %+v differ from the ledger's %+v", ao, f)
				}
			}
			if diff := cmp.Diff(tt.want, g, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("parsed (-want +got):\n%s", diff)
			}
			if s := got.String(); strings.Contains(s, pw) {
				t.Errorf("String() = %q holds the password", s)
			}
		})
	}

	for _, tt := range []struct {
		name, url string
		// names is what the error must name (besides the hint).
		names string
	}{
		{"no port", "127.0.0.1", ""},
		{"typo in scheme", "redis//127.0.0.1:6379", ""},
		{"not redis", "http://127.0.0.1:6379", ""},
		{"bad port", "redis://:" + pw + "@127.0.0.1:port/0", ""},
		{"bad db", "redis://:" + pw + "@127.0.0.1:6379/x", ""},
		{"sentinel no master", "redis+sentinel://:" + pw + "@s1:26379", "no master name"},
		{"sentinel empty master", "redis+sentinel://:" + pw + "@s1:26379//0", "no master name"},
		{"sentinel no address", "redis+sentinel://:" + pw + "@/mymaster/0", "no sentinel address"},
		{"sentinel empty address", "redis+sentinel://:" + pw + "@s1:26379,,s2/mymaster/0", "sentinel address"},
		{"sentinel bad port", "redis+sentinel://:" + pw + "@s1:sentinel/mymaster/0", `sentinel address "s1:sentinel": port`},
		{"sentinel port range", "redis+sentinel://:" + pw + "@s1:70000/mymaster/0", "port must be a number"},
		{"sentinel bad db", "redis+sentinel://:" + pw + "@s1:26379/mymaster/zero", `db "zero"`},
		{"sentinel extra path", "redis+sentinel://:" + pw + "@s1:26379/mymaster/0/1", `db "0/1"`},
		{"sentinel query", "redis+sentinel://:" + pw + "@s1:26379/mymaster/0?password=" + pw, "query parameters"},
		{"sentinel bad escape", "redis+sentinel://:" + pw + "%zz@s1:26379/mymaster/0", "password is not valid URL encoding"},
		{"cluster no address", "redis+cluster://:" + pw + "@", "no cluster node address"},
		{"cluster no port", "redis+cluster://:" + pw + "@n1:7000,n2", `cluster node address "n2": want host:port`},
		{"cluster bad port", "redis+cluster://:" + pw + "@n1:x", `cluster node address "n1:x": port`},
		{"cluster db", "redis+cluster://:" + pw + "@n1:7000/3", "only database 0"},
		{"cluster query", "redis+cluster://:" + pw + "@n1:7000?password=" + pw, "query parameters"},
	} {
		t.Run("bad/"+tt.name, func(t *testing.T) {
			_, err := parseRedisURL(tt.url, env())
			if err == nil {
				t.Fatalf("parseRedisURL accepted it")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "REDIS_URL must look like redis://host:port/db") || !strings.Contains(msg, tt.names) {
				t.Errorf("error %q; want the hint and %q", msg, tt.names)
			}
			if strings.Contains(msg, pw) || strings.Contains(msg, "s3cr3t") {
				t.Errorf("error %q holds the password", msg)
			}
		})
	}
}

// TestRedisTargetProductionSettings: the ledger's client never retries a
// command by itself, on one server, through Sentinel and on a cluster
// alike, and has the pool workers need.
func TestRedisTargetProductionSettings(t *testing.T) {
	for _, u := range []string{"redis://127.0.0.1:6379/0", "redis+sentinel://127.0.0.1:26379/mymaster/0", "redis+cluster://127.0.0.1:7000"} {
		tg, err := parseRedisURL(u, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		c := tg.client()
		// go-redis stores the -1 it was given as 0 retries (and a 0 it was
		// given as its default of 3).
		var retries, pool int
		switch c := c.(type) {
		case *redis.Client:
			retries, pool = c.Options().MaxRetries, c.Options().PoolSize
		case *redis.ClusterClient:
			retries, pool = max(c.Options().MaxRetries, c.Options().MaxRedirects), c.Options().PoolSize
		}
		if retries != 0 || pool < connPoolSize {
			t.Errorf("%s: retries %d, PoolSize %d; want 0 (set as -1) and >= %d", u, retries, pool, connPoolSize)
		}
		if err := ledger.CheckClient(c); err != nil {
			t.Errorf("%s: %v", u, err)
		}
		c.Close()
	}
}

// sentinel starts a redis-server in Sentinel mode on a free loopback port,
// watching the primary at primary as master, and returns its address;
// password is the sentinel's own (its requirepass line, among extra).
func sentinel(t *testing.T, master, primary, password string, extra ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	host, pport, _ := net.SplitHostPort(primary)
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 1000\n%s\n",
		port, dir, master, host, pport, master, strings.Join(extra, "\n"))
	path := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", path, "--sentinel")
	logf, err := os.Create(filepath.Join(dir, "sentinel.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sentinel: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr, Password: password})
	defer sc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := sc.GetMasterAddrByName(ctx, master).Result()
		cancel()
		if err == nil {
			return addr
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("sentinel on %s does not know %s: %v\n%s", addr, master, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOpenThroughSentinel opens a Sentinel REDIS_URL the way every command
// does: the ledger and every asynq client reach the master the sentinel
// names, with the sentinel's password from REDIS_SENTINEL_PASSWORD and the
// master's from REDIS_PASSWORD; unreachable sentinels, a wrong master name
// and an evicting master are reported without the password.
func TestOpenThroughSentinel(t *testing.T) {
	const pw, spw = "data-Pw-71", "sentinel-Pw-72"
	r := redistest.Server(t)
	if err := r.Client.ConfigSet(t.Context(), "requirepass", pw).Err(); err != nil {
		t.Fatal(err)
	}
	s := sentinel(t, "mymaster", r.Addr, spw, "sentinel auth-pass mymaster "+pw, "requirepass "+spw)
	getenv := func(k string) string {
		return map[string]string{"REDIS_PASSWORD": pw, "REDIS_SENTINEL_PASSWORD": spw}[k]
	}
	url := "redis+sentinel://" + closedAddr(t) + "," + s + "/mymaster/2"
	cn, err := openWith(t.Context(), url, "sent", false, getenv)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	defer cn.Close()
	if o := cn.rdb.(*redis.Client).Options(); o.MaxRetries != 0 || o.DB != 2 {
		t.Errorf("ledger client: MaxRetries %d, DB %d; want 0 (no retries) and 2", o.MaxRetries, o.DB)
	}
	if err := cn.rdb.Set(t.Context(), "sent:probe", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	direct := redis.NewClient(&redis.Options{Addr: r.Addr, Password: pw, DB: 2})
	defer direct.Close()
	if v, err := direct.Get(t.Context(), "sent:probe").Result(); err != nil || v != "1" {
		t.Errorf("the key written through Sentinel is not on the master: %q, %v", v, err)
	}
	// asynq's clients (client, server, inspector, asynqmon) come from
	// cn.opt: they find the same master and count their failures.
	if _, ok := cn.opt.(hookedConnOpt).opt.(asynq.RedisFailoverClientOpt); !ok {
		t.Errorf("asynq options %T; want asynq.RedisFailoverClientOpt", cn.opt.(hookedConnOpt).opt)
	}
	if _, err := cn.client.Enqueue(asynq.NewTask("probe", nil), asynq.Queue("sent-q")); err != nil {
		t.Fatalf("enqueue through Sentinel: %v", err)
	}
	if n, err := direct.LLen(t.Context(), "asynq:{sent-q}:pending").Result(); err != nil || n != 1 {
		t.Errorf("pending tasks on the master: %d, %v; want 1", n, err)
	}
	insp := asynq.NewInspector(cn.opt)
	defer insp.Close()
	if qs, err := insp.Queues(); err != nil || len(qs) != 1 || qs[0] != "sent-q" {
		t.Errorf("the inspector through Sentinel sees queues %v (%v); want [sent-q]", qs, err)
	}

	for _, tt := range []struct {
		name, url string
		getenv    func(string) string
		want      string
	}{
		{"no sentinel answers", "redis+sentinel://:" + pw + "@" + closedAddr(t) + "/mymaster/0", getenv, "does not answer: no sentinel answers"},
		{"unknown master", "redis+sentinel://:" + pw + "@" + s + "/othermaster/0", getenv, "knows no master named othermaster"},
		{"wrong sentinel password", "redis+sentinel://:" + pw + "@" + s + "/mymaster/0", func(string) string { return "" }, "refuses this client (set REDIS_SENTINEL_PASSWORD"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cn, err := openWith(t.Context(), tt.url, "sent", false, tt.getenv)
			if err == nil {
				cn.Close()
				t.Fatalf("opened")
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q; want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), spw) {
				t.Errorf("error %q holds a password", err)
			}
		})
	}

	t.Run("evicting master", func(t *testing.T) {
		if err := direct.ConfigSet(t.Context(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
			t.Fatal(err)
		}
		defer direct.ConfigSet(context.Background(), "maxmemory-policy", "noeviction")
		cn, err := openWith(t.Context(), url, "sent", false, getenv)
		if err == nil {
			cn.Close()
		}
		if !errors.As(err, new(*redisfit.EvictionError)) || !strings.Contains(err.Error(), "master mymaster") {
			t.Errorf("open of an evicting master through Sentinel: %v; want the eviction refusal", err)
		}
	})
}
