// Package cli implements the fleetreset command line. cmd/fleetreset only
// calls Main, so tests drive the very same code path in process.
package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redisfit"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/metrics"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Env is what a command reads from its surroundings; tests replace it.
type Env struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	// Getenv reads environment variables. Defaults to os.Getenv.
	Getenv func(string) string
	// LookupEnv resolves password references. Defaults to os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Interactive says stdin and stderr are a terminal (prompts, live progress).
	Interactive bool
	// Hooks let tests observe a run; nil in production.
	Hooks *Hooks

	// declaring, when set, receives the flag set newFlags builds: Main
	// reads a command's flags from it without running the command.
	declaring *declaration
}

func (e *Env) getenv(k string) string {
	if e != nil && e.Getenv != nil {
		return e.Getenv(k)
	}
	return os.Getenv(k)
}

func (e *Env) lookupEnv() func(string) (string, bool) {
	if e.LookupEnv != nil {
		return e.LookupEnv
	}
	return os.LookupEnv
}

type command struct {
	name, args, short string
	run               func(ctx context.Context, env *Env, args []string) error
}

func commands() []command {
	return []command{
		{"run", "[flags] PLAN", "run a whole rollout in this process (embedded Redis unless REDIS_URL is set)", runCmd},
		{"validate", "PLAN...", "check plans and print every mistake as file:line: field: reason", validateCmd},
		{"plan", "[flags] PLAN", "dry run: pre-flight every target and preview waves, API calls and wall time", planCmd},
		{"apply", "[flags] PLAN", "validate a plan and enqueue its rollout into REDIS_URL", applyCmd},
		{"worker", "[flags]", "serve rollouts from REDIS_URL (run several, on several machines)", workerCmd},
		{"sim", "[flags]", "serve the local CVM API simulator", simCmd},
		{"list", "[flags]", "list rollouts", listCmd},
		{"status", "[flags] [ROLLOUT]", "show a rollout per wave and per instance", statusCmd},
		{"pause", "[flags] ROLLOUT", "stop starting new resets (calls in flight finish)", pauseCmd},
		{"resume", "[flags] ROLLOUT", "resume a paused rollout", resumeCmd},
		{"approve", "[flags] ROLLOUT", "let the next wave start after a manual gate", approveCmd},
		{"abort", "[flags] ROLLOUT", "stop a rollout for good (calls in flight finish)", abortCmd},
		{"retry-failed", "[flags] ROLLOUT", "give failed instances a new attempt", retryFailedCmd},
		{"report", "[flags] ROLLOUT", "every instance with images, request IDs, attempts, outcome (JSON or CSV)", reportCmd},
		{"ui", "[flags]", "serve the web UI: rollouts, waves, instances, the asynq queues and /metrics", uiCmd},
	}
}

// ExitError carries a process exit code.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Main runs the command line args (without the program name) and returns
// the process exit code: 0, the command's own code, 1 for an error, or 2
// for every usage error (an unknown command or flag, a bad flag value, a
// missing or extra argument). Help (-h, --help, help [COMMAND]) goes to
// stdout with status 0. Flags may come before or after the arguments.
func Main(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 {
		usage(env.Stderr)
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			if _, ok := lookupCommand(args[1]); ok {
				return Main(ctx, env, []string{args[1], "-h"})
			}
		}
		usage(env.Stdout)
		return 0
	}
	c, ok := lookupCommand(args[0])
	if !ok {
		fmt.Fprintf(env.Stderr, "fleetreset: unknown command %q\n\n", args[0])
		usage(env.Stderr)
		return exitUsage
	}
	d, err := declare(c)
	if err != nil {
		fmt.Fprintln(env.Stderr, "fleetreset:", err)
		return exitFailed
	}
	argv, err := d.arrange(args[1:])
	if errors.Is(err, flag.ErrHelp) {
		d.help(env.Stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "fleetreset: %v\nUsage: fleetreset %s %s (fleetreset %s -h lists its flags)\n", err, c.name, c.args, c.name)
		return exitUsage
	}
	err = c.run(ctx, env, argv)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintln(env.Stderr, "fleetreset:", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintln(env.Stderr, "fleetreset:", err)
	return exitFailed
}

func lookupCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "fleetreset reinstalls the OS of Tencent Cloud CVM fleets in staged waves.")
	fmt.Fprintln(w, "\nUsage: fleetreset COMMAND [flags] [args]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.short)
	}
	fmt.Fprintln(w, "\nEnvironment: REDIS_URL (redis://host:6379/0, or redis+sentinel://host1:26379,host2:26379/MASTER/0),")
	fmt.Fprintln(w, "REDIS_PASSWORD, REDIS_SENTINEL_PASSWORD, TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY,")
	fmt.Fprintln(w, "TENCENTCLOUD_SESSION_TOKEN. Run 'fleetreset COMMAND -h' for a command's flags.")
}

// common holds the flags most commands share.
type common struct {
	redisURL  string
	namespace string
	logFormat string
	verbose   bool

	env *Env
	// routed says libraries' own logs already go to this command's logger.
	routed bool
}

func newFlags(env *Env, name, args, short string) (*flag.FlagSet, *common) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	c := &common{env: env}
	fs.StringVar(&c.redisURL, "redis", env.getenv("REDIS_URL"), "Redis URL: redis://host:port/db, or redis+sentinel://host1:26379,host2:26379/MASTER/db through Sentinel (default $REDIS_URL)")
	fs.StringVar(&c.namespace, "namespace", cmp.Or(env.getenv("FLEETRESET_NAMESPACE"), tasks.DefaultNamespace), "queue and key namespace, to run separate fleets on one Redis")
	fs.StringVar(&c.logFormat, "log-format", "auto", "log format: text, json, or auto (text on a terminal)")
	fs.BoolVar(&c.verbose, "v", false, "verbose logs")
	fs.Usage = func() {
		// To fs.Output(), not env.Stderr: Main prints -h to stdout.
		fmt.Fprintf(fs.Output(), "Usage: fleetreset %s %s\n\n%s.\n\nFlags (before or after the arguments):\n", name, args, short)
		fs.PrintDefaults()
	}
	if d := env.declaring; d != nil {
		d.fs, d.synopsis = fs, args
	}
	return fs, c
}

func (c *common) logger(env *Env, quiet bool) *slog.Logger {
	level := slog.LevelInfo
	if quiet {
		level = slog.LevelWarn
	}
	if c.verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	var l *slog.Logger
	if c.logFormat == "json" || (c.logFormat == "auto" && !env.Interactive) {
		l = slog.New(slog.NewJSONHandler(env.Stderr, opts))
	} else {
		l = slog.New(slog.NewTextHandler(env.Stderr, opts))
	}
	routeLibraryLogs(l)
	c.routed = true
	return l
}

// routeLibraryLogs sends what libraries print on their own through l, so
// that --log-format json stays JSON: go-redis's logger (failed dials, pool
// trouble) at warn with component=redis, and the standard log package,
// which asynqmon uses for failed bulk actions in the UI, at warn with
// component=stdlog. Both are process-wide: the latest command's logger wins.
func routeLibraryLogs(l *slog.Logger) {
	redisfit.SetLogger(l)
	stdlog.SetFlags(0)
	stdlog.SetOutput(stdlogWriter{l.With("component", "stdlog")})
}

// stdlogWriter turns each line of the standard logger into a warning.
type stdlogWriter struct{ l *slog.Logger }

func (w stdlogWriter) Write(p []byte) (int, error) {
	w.l.Warn(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// conn is an open Redis for asynq and the ledger.
type conn struct {
	opt    asynq.RedisConnOpt
	rdb    *redis.Client
	client *asynq.Client
	ledger *ledger.Ledger
	prefix string
	// errs counts the failed commands of rdb and of every client asynq
	// makes from opt, for fleetreset_redis_errors_total.
	errs *metrics.RedisErrors
}

// open opens REDIS_URL for a command that may write: it refuses a Redis
// that may evict keys.
func (c *common) open(ctx context.Context) (*conn, error) {
	return c.openMode(ctx, false)
}

// openReadOnly opens REDIS_URL for a command that only reads (list,
// status, report): an evicting Redis is reported, not refused, so that an
// operator can still see what is in it.
func (c *common) openReadOnly(ctx context.Context) (*conn, error) {
	return c.openMode(ctx, true)
}

func (c *common) openMode(ctx context.Context, readOnly bool) (*conn, error) {
	if c.redisURL == "" {
		return nil, errors.New("no Redis: set REDIS_URL or --redis (redis://host:6379/0)")
	}
	if !c.routed && c.env != nil {
		// Commands that log nothing themselves still must not let go-redis
		// print plain text among their output.
		c.logger(c.env, true)
	}
	return openWith(ctx, c.redisURL, c.namespace, readOnly, c.env.getenv)
}

// openURL opens url for a command that may write (see openWith); getenv
// supplies the Redis passwords that are not in the URL.
func openURL(ctx context.Context, getenv func(string) string, url, namespace string) (*conn, error) {
	return openWith(ctx, url, namespace, false, getenv)
}

// probeTimeout bounds the first connection to Redis.
const probeTimeout = 5 * time.Second

// openWith connects to the Redis at rawURL (one server, or a master through
// Sentinel; see parseRedisURL), checks that it is fit to hold
// rollouts (answers, and does not evict keys: refused unless readOnly, when
// it is only reported), and counts its failed commands from then on.
func openWith(ctx context.Context, rawURL, namespace string, readOnly bool, getenv func(string) string) (*conn, error) {
	target, err := parseRedisURL(rawURL, getenv)
	if err != nil {
		return nil, err
	}
	// Try the address before go-redis's pool does: an unreachable Redis is
	// then reported once, by the error below, and not first by a pool line
	// (go-redis logs a failed dial from a goroutine of its own). Through
	// Sentinel, the sentinels are dialed: only they know the master.
	if err := target.probe(ctx); err != nil {
		return nil, err
	}
	rdb := target.client()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, target.pingError(ctx, err)
	}
	if err := redisfit.CheckEviction(ctx, rdb, target.String(), redisfit.Logger()); err != nil {
		var ee *redisfit.EvictionError
		if !readOnly || !errors.As(err, &ee) {
			rdb.Close()
			return nil, err
		}
		redisfit.Logger().Warn(err.Error())
	}
	// The hook goes on after the checks, so that a CONFIG refused by a
	// managed Redis is not counted as a failure.
	errs := metrics.NewRedisErrors()
	hook := redisfit.NewErrorHook(errs.Count)
	rdb.AddHook(hook)
	aopt := hookedConnOpt{opt: target.connOpt(), hook: hook}
	prefix := cmp.Or(namespace, tasks.DefaultNamespace) + ":"
	return &conn{opt: aopt, rdb: rdb, client: asynq.NewClient(aopt), prefix: prefix, errs: errs,
		ledger: ledger.New(rdb, ledger.Config{Prefix: prefix})}, nil
}

// hookedConnOpt is asynq's connection options with hook installed on every
// client asynq makes from them (client, server, inspector, asynqmon), so
// that their failed commands are counted too. The clients are otherwise
// exactly asynq's own.
type hookedConnOpt struct {
	opt  asynq.RedisConnOpt // one server, or a master through Sentinel
	hook redis.Hook
}

// MakeRedisClient implements asynq.RedisConnOpt.
func (o hookedConnOpt) MakeRedisClient() any {
	// Both asynq.RedisClientOpt and asynq.RedisFailoverClientOpt make a
	// *redis.Client.
	c := o.opt.MakeRedisClient().(*redis.Client)
	c.AddHook(o.hook)
	return c
}

func (c *conn) Close() {
	c.client.Close()
	c.rdb.Close()
}

func (c *conn) controller(namespace string, log *slog.Logger) *engine.Engine {
	return engine.New(engine.Config{Ledger: c.ledger, Client: c.client, Namespace: namespace, Logger: log})
}

// oneArg returns the only positional argument.
func oneArg(fs *flag.FlagSet, what string) (string, error) {
	if fs.NArg() != 1 {
		fs.Usage()
		return "", &ExitError{Code: 2, Err: fmt.Errorf("%s: need exactly one %s", fs.Name(), what)}
	}
	return fs.Arg(0), nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, strings.TrimSuffix(word, "s"))
}
