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
	"github.com/fleetreset/fleetreset/notify"
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

// command is one fleetreset command, declared as data (see flags.go):
// its flags are its options type's flags().
type command struct {
	name string
	// summary is its line in `fleetreset -h`; usage the paragraph of its
	// own -h.
	summary, usage string
	args           []argDef
	bind           bindFunc
}

var (
	planArg    = []argDef{{name: "PLAN"}}
	rolloutArg = []argDef{{name: "ROLLOUT"}}
)

func commands() []command {
	return []command{
		{name: "run", args: planArg, bind: bind(runCmd),
			summary: "run a whole rollout in this process (embedded Redis unless REDIS_URL is set)",
			usage:   "Run a whole rollout in this process: an embedded Redis (unless REDIS_URL is set; with --simulate always), in-process workers and, with --simulate, an in-process simulator seeded with the plan's instances. Exit status: 0 when every instance was reset and verified, 1 when any failed or the rollout was aborted, 3 when it paused or was stopped by Ctrl-C or SIGTERM"},
		{name: "validate", args: []argDef{{name: "PLAN", variadic: true}}, bind: bind(validateCmd),
			summary: "check plans and print every mistake as file:line: field: reason",
			usage:   "Check plans without touching Redis or the API; every mistake is printed as file:line: field: reason"},
		{name: "plan", args: planArg, bind: bind(planCmd),
			summary: "dry run: pre-flight every target and preview waves, API calls and wall time",
			usage:   "Dry run: check every target against the API (exists, state allows a reset, not mid-operation, not already on the target image), then print the waves, per-zone counts, skipped instances, API calls per action and the minimum wall time. Enqueues nothing"},
		{name: "apply", args: planArg, bind: bind(applyCmd),
			summary: "validate a plan and enqueue its rollout into REDIS_URL",
			usage:   "Validate a plan, pre-flight its targets and enqueue its rollout into REDIS_URL; workers (fleetreset worker) do the rest. Applying the same plan again enqueues nothing"},
		{name: "worker", bind: bind(workerCmd),
			summary: "serve rollouts from REDIS_URL (run several, on several machines)",
			usage:   "Serve rollouts from REDIS_URL until SIGINT/SIGTERM. Run as many as you like on as many machines: they share one API rate budget through Redis. Credentials come from TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY (or the SDK's profile file or CVM role)"},
		{name: "sim", bind: bind(simCmd),
			summary: "serve the local CVM API simulator",
			usage:   "Serve the CVM API simulator: API 3.0 at / and the legacy v2 API at /v2/index.php, with admin JSON at /admin/stats and /admin/instances. Its credentials are -secret-id/-secret-key (export them as TENCENTCLOUD_SECRET_ID/KEY for apply and workers)"},
		{name: "list", bind: bind(listCmd),
			summary: "list rollouts",
			usage:   "List rollouts with their state and every outcome: succeeded, skipped, failed, ambiguous, cancelled and not finished"},
		{name: "status", args: []argDef{{name: "ROLLOUT", optional: true}}, bind: bind(statusCmd),
			summary: "show a rollout per wave and per instance",
			usage:   "Show a rollout per wave and per instance (the newest rollout when none is named)"},
		{name: "pause", args: rolloutArg, bind: bind(pauseCmd),
			summary: "stop starting new resets (calls in flight finish)",
			usage:   "Stop starting new resets; calls already in flight finish and are verified"},
		{name: "resume", args: rolloutArg, bind: bind(resumeCmd),
			summary: "resume a paused rollout",
			usage:   "Resume a paused rollout; parked instances are queued again and nothing that succeeded is called again"},
		{name: "approve", args: rolloutArg, bind: bind(approveCmd),
			summary: "let the next wave start after a manual gate",
			usage:   "Approve the manual gate so the next wave starts"},
		{name: "abort", args: rolloutArg, bind: bind(abortCmd),
			summary: "stop a rollout for good (calls in flight finish)",
			usage:   "Stop a rollout for good: nothing new starts, calls in flight finish (the overshoot is shown)"},
		{name: "rollback", args: rolloutArg, bind: bind(rollbackCmd),
			summary: "reinstall every instance a rollout reset with its earlier image",
			usage:   "Roll a rollout back: apply ROLLOUT-rollback, a rollout of its own that reinstalls every instance ROLLOUT reset with the image it ran before, in waves of the same sizes without soak or approval. A rollout not over yet is aborted first (only with --yes) and its resets in flight finish first. Running it again changes nothing. The system disk is wiped again: a rollback restores the image, not the data"},
		{name: "retry-failed", args: rolloutArg, bind: bind(retryFailedCmd),
			summary: "give failed instances a new attempt",
			usage:   "Give failed instances a new attempt; succeeded instances are never called again"},
		{name: "complete-hook", args: []argDef{{name: "ROLLOUT"}, {name: "TOKEN"}}, bind: bind(completeHookCmd),
			summary: "complete a webhook hook step that answered 202 (--result continue|abandon)",
			usage:   "Complete a webhook hook step that answered 202 Accepted, with the one-time TOKEN the webhook was sent: --result continue lets the instance go on, --result abandon fails the step (its hook's on_failure decides the rest). Completing again with the same result changes nothing"},
		{name: "wait", args: rolloutArg, bind: bind(waitCmd),
			summary: "block until a rollout ends or stops, with run's exit status",
			usage:   "Block until the rollout completes, is aborted, pauses or awaits approval, for CI pipelines and scripts. Exit status: 0 when every instance was reset and verified (or skipped), 1 when any failed or the rollout was aborted, 3 when it paused, awaits approval, or --timeout, Ctrl-C or SIGTERM came first (the rollout goes on)"},
		{name: "prune", bind: bind(pruneCmd),
			summary: "delete finished rollouts older than --older-than (workers do it hourly)",
			usage:   "Delete every key of rollouts that finished (completed or aborted) longer than --older-than ago, in bounded chunks; a scheduled series keeps its last --keep occurrences and always its latest. Workers do the same hourly (worker --retention)"},
		{name: "report", args: rolloutArg, bind: bind(reportCmd),
			summary: "every instance with images, request IDs, attempts, outcome (JSON or CSV)",
			usage:   "Print every instance of a rollout: old and new image, RequestId, attempts, outcome and times. Never a secret"},
		{name: "ui", bind: bind(uiCmd),
			summary: "serve the web UI: rollouts, waves, instances, the asynq queues and /metrics",
			usage: "Serve the web UI from REDIS_URL until SIGINT/SIGTERM: rollouts with their waves, progress bars, per-instance state and failures (/), " +
				"the same as JSON (/api/rollouts), the asynq queue UI (/monitoring/) and Prometheus metrics (/metrics). " +
				"Read-only unless --allow-actions; listens on 127.0.0.1 unless --listen says otherwise"},
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
	err = d.parse(env, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		d.help(env.Stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "fleetreset: %v\nUsage: fleetreset %s %s (fleetreset %s -h lists its flags)\n", err, c.name, d.synopsis(), c.name)
		return exitUsage
	}
	err = d.run(ctx, env)
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
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEnvironment: REDIS_URL (redis://host:6379/0, or redis+sentinel://host1:26379,host2:26379/MASTER/0),")
	fmt.Fprintln(w, "REDIS_PASSWORD, REDIS_SENTINEL_PASSWORD, TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY,")
	fmt.Fprintln(w, "TENCENTCLOUD_SESSION_TOKEN. Run 'fleetreset COMMAND -h' for a command's flags.")
}

// common holds the flags every command shares, and what Main tells every
// command about its own parse.
type common struct {
	redisURL  string
	namespace string
	logFormat string
	verbose   bool

	env *Env
	// name is the command's; fs its parsed flag set (which flags were
	// given); args its positional arguments, checked against its
	// declaration.
	name string
	fs   *flag.FlagSet
	args []string
	// routed says libraries' own logs already go to this command's logger.
	routed bool
}

func (c *common) base() *common { return c }

func (c *common) flags() []flagDef {
	return []flagDef{
		stringFlag(&c.redisURL, "redis", "", "Redis URL: redis://host:port/db, or redis+sentinel://host1:26379,host2:26379/MASTER/db through Sentinel").fromEnv("REDIS_URL"),
		stringFlag(&c.namespace, "namespace", tasks.DefaultNamespace, "queue and key namespace, to run separate fleets on one Redis").fromEnv("FLEETRESET_NAMESPACE"),
		stringFlag(&c.logFormat, "log-format", "auto", "log format: text, json, or auto (text on a terminal)"),
		boolFlag(&c.verbose, "v", false, "verbose logs"),
	}
}

// arg is the i-th positional argument, or "" when there is none (an
// optional argument left out).
func (c *common) arg(i int) string {
	if i < len(c.args) {
		return c.args[i]
	}
	return ""
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
	rdb    redis.UniversalClient
	client *asynq.Client
	ledger *ledger.Ledger
	prefix string
	// errs counts the failed commands of rdb and of every client asynq
	// makes from opt, for fleetreset_redis_errors_total.
	errs *metrics.RedisErrors
	// hooks posts the webhooks of the engines made from this connection;
	// Close drains it.
	hooks *notify.Sender
	// insp lets the engine's rescans find stranded reset tasks.
	insp *asynq.Inspector
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
	opt  asynq.RedisConnOpt // one server, a master through Sentinel, or a cluster
	hook redis.Hook
}

// MakeRedisClient implements asynq.RedisConnOpt.
func (o hookedConnOpt) MakeRedisClient() any {
	// asynq.RedisClientOpt and asynq.RedisFailoverClientOpt make a
	// *redis.Client, asynq.RedisClusterClientOpt a *redis.ClusterClient.
	c := o.opt.MakeRedisClient().(redis.UniversalClient)
	c.AddHook(o.hook)
	return c
}

func (c *conn) Close() {
	if c.insp != nil {
		c.insp.Close()
	}
	if c.hooks != nil {
		ctx, cancel := context.WithTimeout(context.Background(), webhookDrain)
		_ = c.hooks.Close(ctx) // what is left is logged and counted lost
		cancel()
	}
	c.client.Close()
	c.rdb.Close()
}

// webhookDrain bounds how long a command waits on exit for its webhooks.
const webhookDrain = 10 * time.Second

func (c *conn) controller(namespace string, log *slog.Logger) *engine.Engine {
	if c.insp == nil {
		c.insp = asynq.NewInspector(c.opt)
	}
	return engine.New(engine.Config{Ledger: c.ledger, Client: c.client, Namespace: namespace, Logger: log, Webhooks: c.webhooks(log), Inspector: c.insp})
}

// webhooks returns the connection's webhook sender, made on first use.
func (c *conn) webhooks(log *slog.Logger) *notify.Sender {
	if c.hooks == nil {
		c.hooks = notify.NewSender(notify.SenderConfig{Logger: log})
	}
	return c.hooks
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
