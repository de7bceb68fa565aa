// Package metrics exposes fleetreset's Prometheus metrics.
//
// A Metrics value is three things at once:
//
//   - a worker.Observer: workers report every API call (by action and result
//     code), every rate-limit wait and every terminal outcome to it, and it
//     counts them in fleetreset_api_calls_total, fleetreset_rate_limit_wait_seconds,
//     fleetreset_resets_total and fleetreset_verify_latency_seconds;
//   - a collector of the asynq queues, read through asynq.Inspector at scrape
//     time under the metric names of asynq's own exporter (asynq_queue_size,
//     asynq_tasks_enqueued_total{state}, ...), so existing asynq dashboards and
//     asynqmon's charts work unchanged;
//   - a collector of the ledger, read at scrape time from the counters the
//     ledger's scripts keep (a few commands per rollout and wave, none per
//     instance): fleetreset_instances{rollout,wave,state},
//     fleetreset_instances_held{rollout} and fleetreset_rollout_state;
//   - when given a RedisErrors, fleetreset_redis_errors_total{kind}: the
//     Redis commands of this process that failed, counted by a go-redis
//     hook (internal/redisfit) from the moment the connection opened;
//   - when given a webhook sender, fleetreset_webhooks_sent_total and
//     fleetreset_webhooks_lost_total{reason}.
//
// Counters are per process (each worker counts its own calls; sum them).
// Queue and ledger gauges describe the shared Redis, so every process that
// serves /metrics reports the same values: aggregate them with max, not sum.
//
// No label ever carries a secret: labels are rollout IDs (plan names), wave
// numbers, states, API action names and API error codes, and action and code
// values are restricted to a safe alphabet before they become labels.
package metrics

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/fleetreset/fleetreset/internal/redisfit"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ScrapeTimeoutDefault bounds the Redis reads of one scrape.
const ScrapeTimeoutDefault = 10 * time.Second

// Config configures Metrics. The zero value is valid: it counts what an
// Observer is told and collects nothing from Redis.
type Config struct {
	// Inspector reads the asynq queues at scrape time.
	// Defaults to nil: no asynq_* metrics.
	Inspector *asynq.Inspector
	// Queues limits the asynq_* metrics to these queues (a fleetreset
	// namespace's reset and control queues). A queue that does not exist yet
	// is left out of the scrape rather than reported as an error.
	// Defaults to every queue in Redis.
	Queues []string
	// Ledger is read at scrape time for fleetreset_instances and
	// fleetreset_rollout_state.
	// Defaults to nil: no ledger metrics.
	Ledger *ledger.Ledger
	// ScrapeTimeout bounds the Redis reads of one scrape.
	// Defaults to ScrapeTimeoutDefault.
	ScrapeTimeout time.Duration
	// Logger logs failed scrape-time reads.
	// Defaults to a discarding logger.
	Logger *slog.Logger
	// RedisErrors is exported as fleetreset_redis_errors_total.
	// Defaults to nil: no such metric.
	RedisErrors *RedisErrors
	// Webhooks is read at scrape time for fleetreset_webhooks_sent_total
	// and fleetreset_webhooks_lost_total (a *notify.Sender).
	// Defaults to nil: no webhook metrics.
	Webhooks WebhookCounts
}

// WebhookCounts reports the webhook events a process delivered and lost;
// *notify.Sender implements it.
type WebhookCounts interface {
	SentCount() int64
	// LostCounts returns losses by reason, every reason present.
	LostCounts() map[string]int64
}

// RedisErrors counts failed Redis commands by kind (oom, timeout,
// connection, other) for fleetreset_redis_errors_total. It exists apart
// from Metrics because counting starts when the Redis connection opens,
// before a command decides whether to serve /metrics: pass Count to
// redisfit.NewErrorHook then, and the value to Config.RedisErrors later.
// Safe for concurrent use.
type RedisErrors struct {
	vec *prometheus.CounterVec
}

// NewRedisErrors returns a RedisErrors with every kind at zero, so that
// rate() and increase() work from the first scrape.
func NewRedisErrors() *RedisErrors {
	r := &RedisErrors{vec: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fleetreset_redis_errors_total",
		Help: "Redis commands of this process that failed, by kind: oom (maxmemory reached under noeviction: writes refused), timeout, connection, other. A pipeline or transaction counts once.",
	}, []string{"kind"})}
	for _, k := range redisfit.Kinds() {
		r.vec.WithLabelValues(string(k))
	}
	return r
}

// Count counts one failed command of kind k.
func (r *RedisErrors) Count(k redisfit.Kind) {
	r.vec.WithLabelValues(labelValue(string(k))).Inc()
}

// Metrics holds fleetreset's metrics in its own registry. It implements
// worker.Observer and is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	apiCalls      *prometheus.CounterVec
	apiDuration   *prometheus.HistogramVec
	rateWait      *prometheus.HistogramVec
	resets        *prometheus.CounterVec
	verifyLatency prometheus.Histogram
	notServed     *prometheus.CounterVec
}

// New returns Metrics with a registry holding fleetreset's metrics, the
// collectors cfg asks for, and the Go runtime and process collectors.
func New(cfg Config) *Metrics {
	cfg.ScrapeTimeout = cmp.Or(cfg.ScrapeTimeout, ScrapeTimeoutDefault)
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetreset_api_calls_total",
			Help: "CVM API calls made by this process, by action and result code (Success, the API's error code, or TransportError).",
		}, []string{"action", "code"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fleetreset_api_call_duration_seconds",
			Help:    "Duration of CVM API calls made by this process, by action.",
			Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"action"}),
		rateWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fleetreset_rate_limit_wait_seconds",
			Help: "Time spent waiting for the fleet-wide API rate limiter before a call, by action.",
			// Waits grow with queue depth: at 10 resets/s, 20 handlers per
			// worker and three workers, a reset waits about 6 s for its slot.
			Buckets: []float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"action"}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetreset_resets_total",
			Help: "Terminal instance outcomes recorded by this process: succeeded, skipped, failed, ambiguous, cancelled.",
		}, []string{"outcome"}),
		verifyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "fleetreset_verify_latency_seconds",
			Help: "Time from the accepted reset call to its verified outcome (the reinstall's duration as the workers saw it).",
			// Real reinstalls take minutes; the simulator takes seconds.
			Buckets: []float64{.5, 1, 2, 5, 10, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600},
		}),
		notServed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetreset_tasks_not_served_total",
			Help: "Tasks this worker handed back because their rollout is stored for another API generation or endpoint than the worker's --api/--endpoint, by reason (api, endpoint).",
		}, []string{"reason"}),
	}
	// Outcomes start at zero so that rate() and increase() work from the
	// first scrape, before the first instance finishes.
	for _, s := range terminalStates {
		m.resets.WithLabelValues(string(s))
	}
	m.reg.MustRegister(m.apiCalls, m.apiDuration, m.rateWait, m.resets, m.verifyLatency, m.notServed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.RedisErrors != nil {
		m.reg.MustRegister(cfg.RedisErrors.vec)
	}
	if cfg.Webhooks != nil {
		m.reg.MustRegister(webhookCollector{cfg.Webhooks})
	}
	if cfg.Inspector != nil || cfg.Ledger != nil {
		rc := &redisCollector{}
		if cfg.Inspector != nil {
			rc.queues = &queueCollector{insp: cfg.Inspector, queues: cfg.Queues, log: cfg.Logger}
		}
		if cfg.Ledger != nil {
			rc.ledger = &ledgerCollector{l: cfg.Ledger, timeout: cfg.ScrapeTimeout, log: cfg.Logger}
		}
		m.reg.MustRegister(rc)
	}
	return m
}

var terminalStates = []ledger.InstanceState{ledger.Succeeded, ledger.Skipped, ledger.Failed, ledger.Ambiguous, ledger.Cancelled}

// Registry returns the registry, to add collectors or gather in tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format. A collector
// that fails is logged and left out; the rest of the scrape still answers.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// APICall counts one API call; code is "Success", an API error code, or
// "TransportError" (see worker.ErrorCode).
func (m *Metrics) APICall(action, code string, d time.Duration) {
	action = labelValue(action)
	m.apiCalls.WithLabelValues(action, labelValue(code)).Inc()
	m.apiDuration.WithLabelValues(action).Observe(d.Seconds())
}

// RateWait records how long a call waited for the rate limiter.
func (m *Metrics) RateWait(action string, d time.Duration) {
	m.rateWait.WithLabelValues(labelValue(action)).Observe(max(d, 0).Seconds())
}

// Outcome counts a terminal outcome. verifyLatency is zero for outcomes
// that were not decided by a verification poll, and is then not observed.
func (m *Metrics) Outcome(rollout string, state ledger.InstanceState, verifyLatency time.Duration) {
	m.resets.WithLabelValues(labelValue(string(state))).Inc()
	if verifyLatency > 0 {
		m.verifyLatency.Observe(verifyLatency.Seconds())
	}
}

// NotServed counts a task handed back because its rollout is stored for
// another API generation or endpoint than this worker's (reason "api" or
// "endpoint").
func (m *Metrics) NotServed(rollout, reason string) {
	m.notServed.WithLabelValues(labelValue(reason)).Inc()
}

// labelValue keeps a label to a short, safe alphabet: API action names and
// error codes ("InvalidParameterValue.Malformed") pass unchanged; anything
// else, which could be free text from a response body, becomes "Other".
func labelValue(s string) string {
	const maxLen = 80
	if s == "" || len(s) > maxLen {
		return "Other"
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return "Other"
		}
	}
	return s
}

var (
	descWebhooksSent = prometheus.NewDesc("fleetreset_webhooks_sent_total",
		"Webhook events this process delivered (a 2xx answer, after retries if any).", nil, nil)
	descWebhooksLost = prometheus.NewDesc("fleetreset_webhooks_lost_total",
		"Webhook events this process dropped, by reason: queue_full (the send queue was full), rejected (a 4xx other than 429), retries_exhausted (network errors, 5xx or 429 on every attempt), closed (still undelivered when the process stopped).", []string{"reason"}, nil)
)

// webhookCollector reads a webhook sender's counters at scrape time.
type webhookCollector struct{ w WebhookCounts }

func (c webhookCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descWebhooksSent
	ch <- descWebhooksLost
}

func (c webhookCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descWebhooksSent, prometheus.CounterValue, float64(c.w.SentCount()))
	for reason, n := range c.w.LostCounts() {
		ch <- prometheus.MustNewConstMetric(descWebhooksLost, prometheus.CounterValue, float64(n), labelValue(reason))
	}
}

// redisCollector reads the queues and the ledger at scrape time; one
// collector, since both report fleetreset_redis_up.
type redisCollector struct {
	queues *queueCollector
	ledger *ledgerCollector
}

func (c *redisCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.queues != nil {
		c.queues.describe(ch)
	}
	if c.ledger != nil {
		c.ledger.describe(ch)
	}
	ch <- descRedisUp
}

func (c *redisCollector) Collect(ch chan<- prometheus.Metric) {
	if c.queues != nil {
		c.queues.collect(ch)
	}
	if c.ledger != nil {
		c.ledger.collect(ch)
	}
}

// queueCollector reports asynq's queues with the names and labels of asynq's
// own exporter (github.com/hibiken/asynq/x/metrics), which we do not import:
// it pulls go-redis v8 into the build.
type queueCollector struct {
	insp   *asynq.Inspector
	queues []string
	log    *slog.Logger
}

var (
	descTasksEnqueued = prometheus.NewDesc("asynq_tasks_enqueued_total",
		"Number of tasks in a queue by state (a gauge despite the name, kept for compatibility with asynq's exporter).", []string{"queue", "state"}, nil)
	descQueueSize = prometheus.NewDesc("asynq_queue_size",
		"Number of tasks in a queue: pending, active, scheduled, retry, aggregating and archived.", []string{"queue"}, nil)
	descQueueLatency = prometheus.NewDesc("asynq_queue_latency_seconds",
		"Age of the oldest pending task in a queue.", []string{"queue"}, nil)
	descQueueMemory = prometheus.NewDesc("asynq_queue_memory_usage_approx_bytes",
		"Approximate Redis memory used by a queue and its tasks (sampled).", []string{"queue"}, nil)
	descProcessed = prometheus.NewDesc("asynq_tasks_processed_total",
		"Tasks processed from a queue, succeeded or failed, since the queue was created.", []string{"queue"}, nil)
	descFailed = prometheus.NewDesc("asynq_tasks_failed_total",
		"Tasks whose handler failed, since the queue was created.", []string{"queue"}, nil)
	descPaused = prometheus.NewDesc("asynq_queue_paused_total",
		"1 when the queue is paused in asynq, else 0.", []string{"queue"}, nil)
	descRedisUp = prometheus.NewDesc("fleetreset_redis_up",
		"1 when the scrape-time reads from Redis succeeded, else 0.", []string{"source"}, nil)
)

func (c *queueCollector) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTasksEnqueued, descQueueSize, descQueueLatency, descQueueMemory, descProcessed, descFailed, descPaused} {
		ch <- d
	}
}

func (c *queueCollector) collect(ch chan<- prometheus.Metric) {
	queues := c.queues
	if len(queues) == 0 {
		var err error
		if queues, err = c.insp.Queues(); err != nil {
			c.log.Warn("metrics: list asynq queues", "err", err)
			ch <- prometheus.MustNewConstMetric(descRedisUp, prometheus.GaugeValue, 0, "queues")
			return
		}
	}
	up := 1.0
	for _, q := range queues {
		info, err := c.insp.GetQueueInfo(q)
		if err != nil {
			// A configured queue that never had a task does not exist yet.
			if existing, lerr := c.insp.Queues(); lerr == nil && !contains(existing, q) {
				continue
			}
			c.log.Warn("metrics: read asynq queue", "queue", q, "err", err)
			up = 0
			continue
		}
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
		}
		for state, n := range map[string]int{
			"active": info.Active, "pending": info.Pending, "aggregating": info.Aggregating, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived, "completed": info.Completed,
		} {
			gauge(descTasksEnqueued, float64(n), q, state)
		}
		gauge(descQueueSize, float64(info.Size), q)
		gauge(descQueueLatency, info.Latency.Seconds(), q)
		gauge(descQueueMemory, float64(info.MemoryUsage), q)
		ch <- prometheus.MustNewConstMetric(descProcessed, prometheus.CounterValue, float64(info.ProcessedTotal), q)
		ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(info.FailedTotal), q)
		paused := 0.0
		if info.Paused {
			paused = 1
		}
		gauge(descPaused, paused, q)
	}
	ch <- prometheus.MustNewConstMetric(descRedisUp, prometheus.GaugeValue, up, "queues")
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// ledgerCollector reports instances per rollout, wave and state. A scrape
// costs a few commands per rollout and wave, whatever the fleet's size: it
// reads the counters the ledger's scripts keep and the sets of instances
// in flight, never the instances themselves.
type ledgerCollector struct {
	l       *ledger.Ledger
	timeout time.Duration
	log     *slog.Logger
}

var (
	descInstances = prometheus.NewDesc("fleetreset_instances",
		"Instances of a rollout by wave (1-based, as in the CLI and UI) and state: the terminal states (succeeded, skipped, failed, ambiguous, cancelled), resetting (the cloud accepted the reset, not verified yet) and pending (everything else not finished: waiting, held, or in a call).", []string{"rollout", "wave", "state"}, nil)
	descHeld = prometheus.NewDesc("fleetreset_instances_held",
		"Instances of a rollout parked because it was not running when their turn came (part of fleetreset_instances{state=\"pending\"}); they go on when it resumes.", []string{"rollout"}, nil)
	descRolloutState = prometheus.NewDesc("fleetreset_rollout_state",
		"1 for a rollout's current state (applying, scheduled, running, paused, awaiting_approval, completed, aborted).", []string{"rollout", "state"}, nil)
)

// waveStates are the states fleetreset_instances reports per wave.
var waveStates = []ledger.InstanceState{ledger.Pending, ledger.Resetting,
	ledger.Succeeded, ledger.Skipped, ledger.Failed, ledger.Ambiguous, ledger.Cancelled}

func (c *ledgerCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- descInstances
	ch <- descHeld
	ch <- descRolloutState
}

func (c *ledgerCollector) collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	up := 1.0
	defer func() { ch <- prometheus.MustNewConstMetric(descRedisUp, prometheus.GaugeValue, up, "ledger") }()
	rs, err := c.l.List(ctx)
	if err != nil {
		c.log.Warn("metrics: list rollouts", "err", err)
		up = 0
		return
	}
	for _, r := range rs {
		ch <- prometheus.MustNewConstMetric(descRolloutState, prometheus.GaugeValue, 1, r.ID, string(r.State))
		var act ledger.Activity
		if !r.State.Terminal() {
			if act, err = c.l.Activity(ctx, r); err != nil {
				c.log.Warn("metrics: read rollout activity", "rollout", r.ID, "err", err)
				up = 0
				continue
			}
		}
		for k, byState := range counts(r, act) {
			for _, s := range waveStates {
				ch <- prometheus.MustNewConstMetric(descInstances, prometheus.GaugeValue, float64(byState[s]), r.ID, strconv.Itoa(k+1), string(s))
			}
		}
		ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(act.Held), r.ID)
	}
}

// counts returns instance counts per wave and state from the wave counters
// (terminal states) and act (instances resetting; zero for a finished
// rollout, whose in-flight sets are not read). Everything else not yet
// terminal counts as pending: waiting, held, or calling, states only a
// per-instance read could tell apart.
func counts(r *ledger.Rollout, act ledger.Activity) []map[ledger.InstanceState]int {
	out := make([]map[ledger.InstanceState]int, len(r.Waves))
	for k, w := range r.Waves {
		m := map[ledger.InstanceState]int{}
		m[ledger.Succeeded], m[ledger.Skipped], m[ledger.Failed] = w.Counters.Succeeded, w.Counters.Skipped, w.Counters.Failed
		m[ledger.Ambiguous], m[ledger.Cancelled] = w.Counters.Ambiguous, w.Counters.Cancelled
		if k < len(act.ResettingByWave) {
			m[ledger.Resetting] = act.ResettingByWave[k]
		}
		m[ledger.Pending] = max(0, w.Size-w.Counters.Terminal-m[ledger.Resetting])
		out[k] = m
	}
	return out
}
