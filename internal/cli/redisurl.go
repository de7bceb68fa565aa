package cli

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Environment variables that carry Redis credentials, so that they need not
// be in REDIS_URL (which --redis puts on a command line, in ps).
const (
	// envRedisPassword is the data password (of the server, or of the
	// master found through Sentinel) when REDIS_URL holds none.
	envRedisPassword = "REDIS_PASSWORD"
	// envSentinelUsername and envSentinelPassword authenticate to the
	// sentinels themselves; a Sentinel URL's userinfo is the master's.
	envSentinelUsername = "REDIS_SENTINEL_USERNAME"
	envSentinelPassword = "REDIS_SENTINEL_PASSWORD"
)

// defaultSentinelPort is the port of a sentinel address given without one.
const defaultSentinelPort = "26379"

// redisURLShape is the hint every malformed REDIS_URL gets.
const redisURLShape = "REDIS_URL must look like redis://host:port/db (rediss:// for TLS, redis://:PASSWORD@host:port/db with a password, " +
	"redis+sentinel://host1:26379,host2:26379/MASTER/db through Sentinel, redis+cluster://host1:6379,host2:6379 for Redis Cluster)"

// redisTarget is where REDIS_URL points: one server (redis://, rediss://,
// a bare host:port), the master that sentinels name (redis+sentinel://,
// rediss+sentinel://) or a Redis Cluster (redis+cluster://,
// rediss+cluster://). Exactly one of the three is set.
type redisTarget struct {
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// parseRedisURL parses a REDIS_URL, taking a bare host:port as
// redis://host:port/0, and the Sentinel form
//
//	redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB]
//
// (rediss+sentinel:// with TLS to the sentinels and the master), whose
// userinfo is the master's credentials, and the Cluster form
//
//	redis+cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...][/0]
//
// (rediss+cluster:// with TLS), whose addresses are some of the cluster's
// nodes (the client learns the rest) and whose userinfo is every node's. getenv supplies REDIS_PASSWORD
// when the URL holds no password, and the sentinels' own credentials
// (REDIS_SENTINEL_USERNAME, REDIS_SENTINEL_PASSWORD). Its errors name the
// part that is wrong and never quote the URL, which may hold a password.
func parseRedisURL(s string, getenv func(string) string) (*redisTarget, error) {
	t := &redisTarget{}
	scheme, rest, ok := strings.Cut(s, "://")
	switch {
	case !ok:
		host, port, err := net.SplitHostPort(s)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n <= 0 || n > 65535 || strings.ContainsAny(host, "/@") {
			return nil, errors.New(redisURLShape)
		}
		t.single = &redis.Options{Addr: net.JoinHostPort(host, port)}
	case scheme == "redis+sentinel" || scheme == "rediss+sentinel":
		fo, err := parseSentinel(rest, scheme == "rediss+sentinel")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", redisURLShape, err)
		}
		fo.SentinelUsername, fo.SentinelPassword = getenv(envSentinelUsername), getenv(envSentinelPassword)
		t.failover = fo
	case scheme == "redis+cluster" || scheme == "rediss+cluster":
		co, err := parseCluster(rest, scheme == "rediss+cluster")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", redisURLShape, err)
		}
		t.cluster = co
	default:
		ropt, err := redis.ParseURL(s)
		if err != nil {
			// A *url.Error quotes the whole URL; keep only what went wrong.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("%s: %w", redisURLShape, err)
		}
		t.single = ropt
	}
	if pw := getenv(envRedisPassword); pw != "" {
		switch {
		case t.single != nil && t.single.Password == "":
			t.single.Password = pw
		case t.failover != nil && t.failover.Password == "":
			t.failover.Password = pw
		case t.cluster != nil && t.cluster.Password == "":
			t.cluster.Password = pw
		}
	}
	return t, nil
}

// parseSentinel parses what follows redis+sentinel://. Its errors quote
// only the parts after the userinfo (addresses, master name, db).
func parseSentinel(rest string, useTLS bool) (*redis.FailoverOptions, error) {
	fo := &redis.FailoverOptions{}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		return nil, errors.New("query parameters and fragments are not read in a Sentinel URL")
	}
	hosts, path, _ := strings.Cut(rest, "/")
	// The userinfo ends at the last @ before the path: a password may hold @.
	if i := strings.LastIndex(hosts, "@"); i >= 0 {
		user, pw, hasPW := strings.Cut(hosts[:i], ":")
		var err error
		if fo.Username, err = url.PathUnescape(user); err != nil {
			return nil, errors.New("the user name is not valid URL encoding")
		}
		if hasPW {
			if fo.Password, err = url.PathUnescape(pw); err != nil {
				return nil, errors.New("the password is not valid URL encoding")
			}
		}
		hosts = hosts[i+1:]
	}
	if hosts == "" {
		return nil, errors.New("no sentinel address")
	}
	for _, a := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			// No port: the sentinels' default. A bracketed IPv6 address
			// without a port is accepted too.
			host, port = strings.TrimSuffix(strings.TrimPrefix(a, "["), "]"), defaultSentinelPort
		}
		if n, perr := strconv.Atoi(port); perr != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("sentinel address %q: port must be a number from 1 to 65535", a)
		}
		if host == "" || strings.ContainsAny(host, ":[]/@ ") && net.ParseIP(host) == nil {
			return nil, fmt.Errorf("sentinel address %q: want host:port", a)
		}
		fo.SentinelAddrs = append(fo.SentinelAddrs, net.JoinHostPort(host, port))
	}
	master, db, hasDB := strings.Cut(path, "/")
	if master == "" {
		return nil, errors.New("no master name: the path is /MASTER or /MASTER/DB (the name in the sentinels' `sentinel monitor`)")
	}
	if m, err := url.PathUnescape(master); err != nil || strings.ContainsAny(m, " \t") {
		return nil, fmt.Errorf("master name %q: not a name", master)
	} else {
		fo.MasterName = m
	}
	if hasDB && db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 || strings.Contains(db, "/") {
			return nil, fmt.Errorf("db %q: want a database number (0-15 on a default Redis)", db)
		}
		fo.DB = n
	}
	if useTLS {
		// No ServerName: each connection checks the name it dialed.
		fo.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return fo, nil
}

// parseCluster parses what follows redis+cluster://. Its errors quote only
// the parts after the userinfo.
func parseCluster(rest string, useTLS bool) (*redis.ClusterOptions, error) {
	if strings.ContainsAny(rest, "?#") {
		return nil, errors.New("query parameters and fragments are not read in a Cluster URL")
	}
	hosts, path, _ := strings.Cut(rest, "/")
	if path != "" && path != "0" {
		return nil, fmt.Errorf("db %q: Redis Cluster has only database 0", path)
	}
	co := &redis.ClusterOptions{}
	if i := strings.LastIndex(hosts, "@"); i >= 0 {
		user, pw, hasPW := strings.Cut(hosts[:i], ":")
		var err error
		if co.Username, err = url.PathUnescape(user); err != nil {
			return nil, errors.New("the user name is not valid URL encoding")
		}
		if hasPW {
			if co.Password, err = url.PathUnescape(pw); err != nil {
				return nil, errors.New("the password is not valid URL encoding")
			}
		}
		hosts = hosts[i+1:]
	}
	if hosts == "" {
		return nil, errors.New("no cluster node address")
	}
	for _, a := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return nil, fmt.Errorf("cluster node address %q: want host:port", a)
		}
		if n, perr := strconv.Atoi(port); perr != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("cluster node address %q: port must be a number from 1 to 65535", a)
		}
		co.Addrs = append(co.Addrs, net.JoinHostPort(host, port))
	}
	if useTLS {
		co.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return co, nil
}

// String names the target for messages: the server's address, or the
// master and its sentinels. Never a password.
func (t *redisTarget) String() string {
	if t.failover != nil {
		return fmt.Sprintf("master %s (sentinels %s)", t.failover.MasterName, strings.Join(t.failover.SentinelAddrs, ","))
	}
	if t.cluster != nil {
		return "cluster " + strings.Join(t.cluster.Addrs, ",")
	}
	return t.single.Addr
}

// probe dials the target's server, or its sentinels until one answers.
func (t *redisTarget) probe(ctx context.Context) error {
	d := net.Dialer{Timeout: probeTimeout}
	network, addrs := t.probeAddrs()
	var errs []error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, network, a)
		if err == nil {
			c.Close()
			return nil
		}
		errs = append(errs, err)
	}
	if t.failover != nil {
		return fmt.Errorf("redis at %s does not answer: no sentinel answers: %w", t, errors.Join(errs...))
	}
	if t.cluster != nil {
		return fmt.Errorf("redis at %s does not answer: no node answers: %w", t, errors.Join(errs...))
	}
	return fmt.Errorf("redis at %s does not answer: %w", t, errors.Join(errs...))
}

// probeAddrs are the addresses to try before connecting: the server, or
// the sentinels (not the master, which only they know).
func (t *redisTarget) probeAddrs() (network string, addrs []string) {
	if t.failover != nil {
		return "tcp", t.failover.SentinelAddrs
	}
	if t.cluster != nil {
		return "tcp", t.cluster.Addrs
	}
	return cmp.Or(t.single.Network, "tcp"), []string{t.single.Addr}
}

// connPoolSize is the least connection pool of every client fleetreset
// makes: workers run many handlers at once.
const connPoolSize = 64

// client returns the go-redis client of the ledger, the limiter and the
// checks, with fleetreset's production settings.
//
// No automatic retries: go-redis re-sends a command whose reply timed out,
// and a fenced ledger script run twice could misreport its own first run
// as someone else's. An error is safe (the task comes back and
// reconciles); a silent replay is not. The same holds after a failover:
// a script cut off by the old master's end is reported, not re-sent. On a
// cluster this means no redirects either (go-redis counts MOVED and ASK
// among its retries): a command sent to a node that no longer serves its
// slot fails once, and the client reloads the slot map for the next.
func (t *redisTarget) client() redis.UniversalClient {
	if t.cluster != nil {
		co := *t.cluster
		co.PoolSize = max(co.PoolSize, connPoolSize)
		co.MaxRetries = -1
		co.MaxRedirects = -1
		return redis.NewClusterClient(&co)
	}
	if t.failover != nil {
		fo := *t.failover
		fo.PoolSize = max(fo.PoolSize, connPoolSize)
		fo.MaxRetries = -1
		return redis.NewFailoverClient(&fo)
	}
	o := *t.single
	o.PoolSize = max(o.PoolSize, connPoolSize)
	o.MaxRetries = -1
	return redis.NewClient(&o)
}

// connOpt returns asynq's options for the same server or master, from the
// same parse, so that asynq logs in as the same ACL user (asynq's own URI
// parser drops the user name) and finds the same master.
func (t *redisTarget) connOpt() asynq.RedisConnOpt {
	if co := t.cluster; co != nil {
		// asynq's own retries and redirects stay: its queues are not the
		// truth, the ledger is (see docs/operations.md, "Cluster").
		return asynq.RedisClusterClientOpt{Addrs: co.Addrs, Username: co.Username, Password: co.Password, TLSConfig: co.TLSConfig}
	}
	if fo := t.failover; fo != nil {
		return asynq.RedisFailoverClientOpt{MasterName: fo.MasterName, SentinelAddrs: fo.SentinelAddrs,
			SentinelUsername: fo.SentinelUsername, SentinelPassword: fo.SentinelPassword,
			Username: fo.Username, Password: fo.Password, DB: fo.DB, TLSConfig: fo.TLSConfig, PoolSize: connPoolSize}
	}
	o := t.single
	return asynq.RedisClientOpt{Network: o.Network, Addr: o.Addr, Username: o.Username,
		Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig, PoolSize: connPoolSize}
}

// pingError explains why the first PING failed. Through Sentinel, go-redis
// says only that no sentinel was usable; the sentinels are asked why: they
// do not know the master's name, or refuse this client's credentials.
func (t *redisTarget) pingError(ctx context.Context, err error) error {
	if fo := t.failover; fo != nil {
		for _, a := range fo.SentinelAddrs {
			sc := redis.NewSentinelClient(&redis.Options{Addr: a, Username: fo.SentinelUsername, Password: fo.SentinelPassword,
				TLSConfig: fo.TLSConfig, MaxRetries: -1, DialTimeout: probeTimeout})
			_, serr := sc.GetMasterAddrByName(ctx, fo.MasterName).Result()
			sc.Close()
			switch {
			case errors.Is(serr, redis.Nil):
				return fmt.Errorf("redis at %s does not answer: the sentinel at %s knows no master named %s (the name in its `sentinel monitor` line)", t, a, fo.MasterName)
			case redis.HasErrorPrefix(serr, "NOAUTH") || redis.HasErrorPrefix(serr, "WRONGPASS"):
				return fmt.Errorf("redis at %s does not answer: the sentinel at %s refuses this client (set %s, and %s for an ACL user): %w", t, a, envSentinelPassword, envSentinelUsername, serr)
			}
		}
	}
	return fmt.Errorf("redis at %s does not answer: %w", t, err)
}
