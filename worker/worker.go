// Package worker runs fleetreset's asynq handlers: it starts waves with a
// batched pre-flight, resets instances under the fleet-wide rate limit with
// an intent recorded before every call, reconciles redelivered tasks
// against the cloud instead of calling twice, verifies instances in batches
// of up to 100, and drives the wave gates through package engine.
package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/clock"
	"github.com/fleetreset/fleetreset/internal/redisfit"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/secretref"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
)

// Defaults of Config.
const (
	ConcurrencyDefault     = 20
	ReconcileGraceDefault  = 2 * time.Minute
	RetryBaseDefault       = 2 * time.Second
	RetryCapDefault        = time.Minute
	ShutdownTimeoutDefault = 45 * time.Second
	ReplayWindowDefault    = 5 * time.Minute
)

// Journal records reset intents and outcomes durably outside Redis (the
// embedded mode's miniredis forgets everything when the process dies).
// Intent must be on disk before the API call is made.
type Journal interface {
	Intent(ctx context.Context, rollout, instanceID string, token int64, oldImage, oldOp string) error
	Called(ctx context.Context, rollout, instanceID string, token int64, requestID string) error
	Outcome(ctx context.Context, rollout, instanceID string, state ledger.InstanceState, code, msg, newImage string) error
	WavePassed(ctx context.Context, rollout string, wave int) error
}

// Config configures a Worker. The zero value of each field means its default.
type Config struct {
	// Redis is where asynq keeps its queues.
	Redis asynq.RedisConnOpt
	// Engine reaches the ledger and enqueues follow-up tasks. Required.
	Engine *engine.Engine
	// Reselect resolves the select of a scheduled series again for each
	// occurrence (engine.StartOccurrence). Without it, a series whose plan
	// selects its instances is not started here: its recur task is retried
	// for a worker that has it (every `fleetreset worker` does).
	Reselect engine.Reselect
	// Limiter is the API rate limiter (ratelimit.Redis across processes,
	// ratelimit.Local in one). Required.
	Limiter ratelimit.Limiter
	// APIFunc builds the CVM client for a rollout. Defaults to cvm.New with
	// Provider and the rollout's API, endpoint and region. A client is
	// built once per rollout and kept, so it must read credentials per
	// request (cvm.Config.Provider) rather than hold a snapshot.
	//
	// A rollout whose groups span regions or accounts gets one client per
	// location: APIFunc is called with spec.At(location), whose Region and
	// AccountName are the location's (see AccountProvider).
	APIFunc func(spec rollout.Spec) (cvm.API, error)
	// AccountProvider returns the credentials of a plan's named account
	// (rollout.AccountSource). Defaults to AccountProvider: an env prefix,
	// a profile section or a CVM role, resolved on this worker.
	AccountProvider func(ctx context.Context, src rollout.AccountSource) (cvm.CredentialProvider, error)
	// Endpoint and API, when set (from --endpoint and --api), limit the
	// worker to rollouts stored with that endpoint and API generation. A
	// rollout keeps the endpoint and API it was applied with (overrides
	// included), so that no two workers judge one ledger entry against
	// different APIs; a worker that does not match hands the task back.
	Endpoint string
	API      string
	// Provider supplies the credentials of the default APIFunc, and its
	// Identity keys the rate budgets (ratelimit.AccountKey). Defaults to
	// a static provider of Credentials when set, else cvm.EnvProvider.
	Provider cvm.CredentialProvider
	// Credentials is a static key, used when Provider is nil.
	Credentials *cvm.Credentials
	// Journal, when set, records every intent durably before the call.
	Journal Journal
	// Concurrency is the number of handlers run at once. Defaults to 20.
	Concurrency int
	// ReconcileGrace is how long after an intent a redelivered task waits
	// before it trusts DescribeInstances to show whether the call landed.
	// It must exceed CallTimeout, so that no call of an earlier delivery
	// can still be in flight. Defaults to 2m.
	ReconcileGrace time.Duration
	// CallTimeout bounds one API call; the default APIFunc uses it, and a
	// custom APIFunc must not allow longer. Defaults to cvm.TimeoutDefault
	// or half of ReconcileGrace, whichever is shorter.
	CallTimeout time.Duration
	// ReplayWindow is how long the API accepts a signed request after its
	// timestamp (Tencent Cloud: 5 minutes, then AuthFailure.SignatureExpire).
	// After a call whose outcome is unknown and that shows no trace at the
	// cloud, the reset is called again only once the first request can no
	// longer land. Defaults to ReplayWindowDefault; set it to a simulator's.
	ReplayWindow time.Duration
	// RetryBase and RetryCap shape the full-jitter exponential backoff of
	// retryable API errors. Default 2s and 1m.
	RetryBase, RetryCap time.Duration
	// ShutdownTimeout lets calls in flight finish on SIGTERM. Defaults to 45s.
	ShutdownTimeout time.Duration
	// LookupEnv and ReadFile resolve password references. Default to
	// os.LookupEnv and secretref.ReadFile.
	LookupEnv func(string) (string, bool)
	ReadFile  func(string) ([]byte, error)
	// Logger defaults to a discarding logger.
	Logger *slog.Logger
	// Clock defaults to the wall clock.
	Clock clock.Clock
	// Rand returns a float in [0,1) for jitter. Defaults to math/rand/v2.
	Rand func() float64
	// Observer, when set, is told about API calls and outcomes (metrics).
	Observer Observer
	// ServingFunc builds the client of the CLB, TAT and Cloud Monitor
	// calls that drains, hooks, health checks and alarms make for a
	// rollout. Defaults to cvm.NewServing with the rollout's endpoint and
	// region and Provider; those calls share the fleet-wide limiter with
	// their own budgets (ServingRate).
	ServingFunc func(spec rollout.Spec) (*cvm.Serving, error)
	// ServingRate is the per-second budget of each CLB, TAT and Cloud
	// Monitor action, fleet-wide. Defaults to 20, their documented limit.
	ServingRate float64
	// ProbeInFlight bounds the health-check sockets one sweep opens at
	// once. Defaults to health.MaxInFlightDefault.
	ProbeInFlight int
	// HTTP, when set, sends health checks, hook webhooks and Prometheus
	// queries (tests). By default health checks go straight to the
	// instances (no proxy from the environment, no redirects), while
	// webhooks and Prometheus, ordinary services, honour the proxy.
	HTTP *http.Client
	// Retention is how long finished rollouts are kept before the hourly
	// prune deletes them (see prune.go). Zero means ledger.DefaultRetention
	// (30 days); negative keeps them forever.
	Retention time.Duration
}

// Observer receives events for metrics. Implementations must be fast and
// safe for concurrent use.
type Observer interface {
	APICall(action, code string, d time.Duration)
	RateWait(action string, d time.Duration)
	Outcome(rollout string, state ledger.InstanceState, verifyLatency time.Duration)
	// NotServed counts a task handed back because its rollout is stored
	// for another API generation or endpoint (reason "api", "endpoint").
	NotServed(rollout, reason string)
}

// Worker serves fleetreset's tasks.
type Worker struct {
	cfg   Config
	ctl   *engine.Engine
	l     *ledger.Ledger
	q     tasks.Queues
	log   *slog.Logger
	clock clock.Clock
	creds cvm.CredentialProvider

	mu     sync.Mutex
	apis   map[string]cvm.API
	clouds map[string]*cloud
	// accounts caches the providers of named accounts, by source.
	accounts   map[rollout.AccountSource]cvm.CredentialProvider
	accountsMu sync.Mutex

	batches batches
	// gone holds rollouts found missing from Redis, said once each.
	gone sync.Map
	// oom holds rollouts whose task met a Redis OOM, to pause them.
	oom sync.Map
	// foreign holds rollouts this worker does not serve, said once each.
	foreign sync.Map
}

// New checks cfg and returns a Worker.
func New(cfg Config) (*Worker, error) {
	if cfg.Engine == nil || cfg.Limiter == nil {
		return nil, errors.New("worker: Engine and Limiter are required")
	}
	cfg.Concurrency = cmp.Or(cfg.Concurrency, ConcurrencyDefault)
	cfg.ReconcileGrace = cmp.Or(cfg.ReconcileGrace, ReconcileGraceDefault)
	cfg.CallTimeout = CallTimeout(cfg.CallTimeout, cfg.ReconcileGrace)
	if cfg.ReconcileGrace <= cfg.CallTimeout {
		return nil, fmt.Errorf("worker: ReconcileGrace (%s) must exceed CallTimeout (%s): a reconcile must never race a call still in flight", cfg.ReconcileGrace, cfg.CallTimeout)
	}
	cfg.ReplayWindow = cmp.Or(cfg.ReplayWindow, ReplayWindowDefault)
	cfg.RetryBase = cmp.Or(cfg.RetryBase, RetryBaseDefault)
	cfg.RetryCap = cmp.Or(cfg.RetryCap, RetryCapDefault)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, ShutdownTimeoutDefault)
	if cfg.LookupEnv == nil {
		cfg.LookupEnv = os.LookupEnv
	}
	if cfg.ReadFile == nil {
		cfg.ReadFile = secretref.ReadFile
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	switch {
	case cfg.Provider != nil:
	case cfg.Credentials != nil:
		cfg.Provider = cvm.StaticProvider(*cfg.Credentials)
	default:
		cfg.Provider = cvm.EnvProvider{}
	}
	w := &Worker{
		cfg: cfg, ctl: cfg.Engine, l: cfg.Engine.Ledger(), q: cfg.Engine.Queues(),
		log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)), clock: clock.Or(cfg.Clock),
		creds: cfg.Provider, apis: map[string]cvm.API{}, clouds: map[string]*cloud{},
		accounts: map[rollout.AccountSource]cvm.CredentialProvider{},
	}
	if cfg.AccountProvider == nil {
		w.cfg.AccountProvider = AccountProvider
	}
	if cfg.APIFunc == nil {
		w.cfg.APIFunc = w.defaultAPI
	}
	return w, nil
}

func (w *Worker) defaultAPI(spec rollout.Spec) (cvm.API, error) {
	creds, err := w.provider(context.Background(), spec)
	if err != nil {
		return nil, err
	}
	return cvm.New(cvm.Config{
		Generation: cvm.Generation(spec.API),
		Endpoint:   spec.Endpoint,
		Region:     spec.Region,
		Provider:   creds,
		Timeout:    w.cfg.CallTimeout,
	})
}

// clientKey names the client of one location of a rollout.
func clientKey(spec rollout.Spec) string {
	return spec.ID + "@" + rollout.Location{Region: spec.Region, Account: spec.AccountName}.String()
}

// api returns the (cached) client of a rollout's location (spec.At): one
// per rollout, region and account.
func (w *Worker) api(spec rollout.Spec) (cvm.API, error) {
	k := clientKey(spec)
	w.mu.Lock()
	defer w.mu.Unlock()
	if a, ok := w.apis[k]; ok {
		return a, nil
	}
	a, err := w.cfg.APIFunc(spec)
	if err != nil {
		return nil, fmt.Errorf("worker: client for %s in %s: %w", spec.ID, spec.Region, err)
	}
	w.apis[k] = a
	return a, nil
}

// provider returns the credentials of spec's account: the worker's own for
// the default account, else the named account's source (cached).
func (w *Worker) provider(ctx context.Context, spec rollout.Spec) (cvm.CredentialProvider, error) {
	if spec.AccountName == "" {
		return w.creds, nil
	}
	src, ok := spec.AccountSource()
	if !ok {
		return nil, fmt.Errorf("worker: rollout %s: account %q is not in its accounts", spec.ID, spec.AccountName)
	}
	w.accountsMu.Lock()
	defer w.accountsMu.Unlock()
	if p, ok := w.accounts[src]; ok {
		return p, nil
	}
	p, err := w.cfg.AccountProvider(ctx, src)
	if err != nil {
		// As a call without usable credentials fails: Fatal, so the
		// rollout pauses (cvm.Classify) until the worker has the source.
		return nil, fmt.Errorf("worker: account %s: %w", spec.AccountName,
			&cvm.APIError{Code: cvm.CodeCredentialError, Message: err.Error()})
	}
	w.accounts[src] = p
	return p, nil
}

// AccountProvider resolves a named account's credential source in this
// process: cvm.EnvProvider with the prefix (read at each call, so a call
// without the variables fails as ClientError.CredentialError), the profile
// file's section, or the CVM role. Errors name the source, never a secret.
func AccountProvider(ctx context.Context, src rollout.AccountSource) (cvm.CredentialProvider, error) {
	switch {
	case src.Env != "":
		return cvm.EnvProvider{Prefix: src.Env}, nil
	case src.Profile != "":
		return cvm.NamedProfileProvider(src.Profile)
	case src.Role != "":
		return cvm.NewRoleProvider(ctx, cvm.RoleConfig{Role: src.Role})
	}
	return nil, errors.New("empty credential source")
}

// limiterKey names the rate budget of one action for a rollout's endpoint
// and region and the credential identity: rollouts sharing an account
// share the budget, and rotating role credentials keep it. For a named
// account (spec.At a location) the region and identity are the location's,
// so every account × region × action has its own budget.
func (w *Worker) limiterKey(spec rollout.Spec, action string) string {
	if spec.AccountName != "" {
		id := "account:" + spec.AccountName
		if p, err := w.provider(context.Background(), spec); err == nil && p.Identity() != "" {
			id = p.Identity()
		}
		return ratelimit.AccountKey(action, spec.Endpoint, spec.Region, id)
	}
	return ratelimit.AccountKey(action, spec.Endpoint, spec.Region, spec.Account().LimiterIdentity(w.creds.Identity()))
}

// Handler returns the task mux.
func (w *Worker) Handler() asynq.Handler {
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeStartWave, w.handleStartWave)
	mux.HandleFunc(tasks.TypeAdvance, w.handleAdvance)
	mux.HandleFunc(tasks.TypeReset, w.handleReset)
	mux.HandleFunc(tasks.TypeRecur, w.handleRecur)
	mux.HandleFunc(tasks.TypePrune, w.handlePrune)
	mux.HandleFunc(tasks.TypeVerify, w.handleVerify)
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		var p struct {
			Rollout string `json:"rollout"`
		}
		_ = json.Unmarshal(t.Payload(), &p)
		if err := w.pauseAfterOOM(ctx, p.Rollout); err != nil {
			return err
		}
		err := mux.ProcessTask(ctx, t)
		if redisfit.IsOOM(err) && p.Rollout != "" {
			// Redis refused a write (maxmemory reached): the rollout's
			// state may be half written. Do not spin through retries;
			// pause it, with the reason, as soon as Redis takes writes.
			if _, seen := w.oom.LoadOrStore(p.Rollout, true); !seen {
				w.log.Error("Redis refused a write (out of memory); the rollout pauses once Redis accepts writes again",
					"rollout", p.Rollout, "task_type", t.Type(), "err", err)
			}
			return &retryLater{In: 5 * time.Second, Cause: "Redis out of memory"}
		}
		return err
	})
}

// pauseAfterOOM pauses a rollout whose task met a Redis OOM, now that a
// task of it runs again.
func (w *Worker) pauseAfterOOM(ctx context.Context, rollout string) error {
	if _, hit := w.oom.Load(rollout); !hit {
		return nil
	}
	spec, _, err := w.l.Spec(ctx, rollout)
	if err != nil {
		return err
	}
	_, wave, err := w.l.State(ctx, rollout)
	if err != nil {
		return err
	}
	if err := w.ctl.PauseFatal(ctx, spec, wave, "Redis refused writes (out of memory, OOM): free memory or raise maxmemory (policy noeviction), check the rollout, then resume"); err != nil {
		return err
	}
	w.oom.Delete(rollout)
	return nil
}

// ServerConfig returns the asynq server configuration the handlers rely on.
func (w *Worker) ServerConfig() asynq.Config {
	return asynq.Config{
		Concurrency:     w.cfg.Concurrency,
		Queues:          w.q.Priorities(),
		ShutdownTimeout: w.cfg.ShutdownTimeout,
		// Retry delays are seconds here, not asynq's default minutes-scale
		// curve: waits that are not failures (throttling, reconcile grace)
		// carry their own delay.
		RetryDelayFunc: w.retryDelay,
		IsFailure:      func(err error) bool { var rl *retryLater; return !errors.As(err, &rl) },
		// Scheduled and retry tasks move every second instead of every 5.
		DelayedTaskCheckInterval: time.Second,
		TaskCheckInterval:        200 * time.Millisecond,
		Logger:                   asynqLogger{w.log},
		LogLevel:                 asynq.WarnLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			var rl *retryLater
			if errors.As(err, &rl) {
				return
			}
			w.log.Warn("task failed", "task_type", t.Type(), "task", tasks.Describe(t.Type(), t.Payload()), "err", err)
		}),
	}
}

// Run serves tasks until ctx is done, then shuts down gracefully: calls in
// flight get ShutdownTimeout to finish.
func (w *Worker) Run(ctx context.Context) error {
	srv := asynq.NewServer(w.cfg.Redis, w.ServerConfig())
	if err := srv.Start(w.Handler()); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	w.startPrune(ctx)
	<-ctx.Done()
	srv.Shutdown()
	return nil
}

// CallTimeout is the API call timeout for a reconcile grace (zero: the
// default grace): the one asked for, or cvm.TimeoutDefault or half the
// grace, whichever is shorter, so that a reconcile never races a call
// still in flight.
func CallTimeout(asked, grace time.Duration) time.Duration {
	if asked > 0 {
		return asked
	}
	return min(cvm.TimeoutDefault, cmp.Or(grace, ReconcileGraceDefault)/2)
}

// callWindow is how long after its intent a reset call may still be
// signed: a call signed later could outlast ReconcileGrace, when a
// redelivered task trusts that no earlier call is still in flight.
func (w *Worker) callWindow() time.Duration { return w.cfg.ReconcileGrace - w.cfg.CallTimeout }

// recallAfter is how long after an intent whose call left no trace the
// reset may be called again: the latest moment the first request could be
// signed (callWindow), plus the API's replay window, plus a tenth of it
// for clock skew between the worker and the API.
func (w *Worker) recallAfter() time.Duration {
	return w.callWindow() + w.cfg.ReplayWindow + w.cfg.ReplayWindow/10
}

// retryLater is a handler error that is not a failure: the task comes back
// after In without using up a retry.
type retryLater struct {
	In    time.Duration
	Cause string
}

func (e *retryLater) Error() string { return "retry in " + e.In.String() + ": " + e.Cause }

func (w *Worker) retryDelay(n int, err error, t *asynq.Task) time.Duration {
	var rl *retryLater
	if errors.As(err, &rl) {
		return max(rl.In, time.Second)
	}
	return w.backoff(n)
}

// backoff is capped exponential backoff with full jitter.
func (w *Worker) backoff(n int) time.Duration {
	d := w.cfg.RetryBase << min(n, 20)
	if d > w.cfg.RetryCap || d <= 0 {
		d = w.cfg.RetryCap
	}
	return time.Duration(w.cfg.Rand() * float64(d))
}

// detached returns a context for ledger writes that must happen even when
// the handler's context ends (the API call already happened).
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
