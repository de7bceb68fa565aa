package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/internal/redisfit"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/metrics"
	"github.com/fleetreset/fleetreset/notify"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/fleetreset/fleetreset/worker"
	"github.com/hibiken/asynq"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
)

// Workers hand a *Metrics to worker.Config.Observer.
var _ worker.Observer = (*metrics.Metrics)(nil)

// scrape serves m's handler once and parses the answer as Prometheus text.
func scrape(t *testing.T, m *metrics.Metrics) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics = %d; want 200\n%s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v\n%s", err, body)
	}
	return fams, body
}

// value returns the value of the sample of family name whose labels include
// want, and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func mustValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := value(fams, name, labels)
	if !ok {
		t.Errorf("%s%v: no such sample", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v; want %v", name, labels, got, want)
	}
}

func TestObserverCounts(t *testing.T) {
	m := metrics.New(metrics.Config{})
	m.APICall("ResetInstance", "Success", 20*time.Millisecond)
	m.APICall("ResetInstance", "Success", 30*time.Millisecond)
	m.APICall("ResetInstance", "RequestLimitExceeded", time.Millisecond)
	m.APICall("DescribeInstances", "TransportError", time.Second)
	m.RateWait("ResetInstance", 150*time.Millisecond)
	m.RateWait("DescribeInstances", 0)
	m.Outcome("r1", ledger.Succeeded, 90*time.Second)
	m.Outcome("r1", ledger.Failed, 0) // not decided by a poll: no latency sample
	m.Outcome("r1", ledger.Ambiguous, 0)

	fams, _ := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"fleetreset_api_calls_total", map[string]string{"action": "ResetInstance", "code": "Success"}, 2},
		{"fleetreset_api_calls_total", map[string]string{"action": "ResetInstance", "code": "RequestLimitExceeded"}, 1},
		{"fleetreset_api_calls_total", map[string]string{"action": "DescribeInstances", "code": "TransportError"}, 1},
		{"fleetreset_api_call_duration_seconds", map[string]string{"action": "ResetInstance"}, 3},
		{"fleetreset_rate_limit_wait_seconds", map[string]string{"action": "ResetInstance"}, 1},
		{"fleetreset_rate_limit_wait_seconds", map[string]string{"action": "DescribeInstances"}, 1},
		{"fleetreset_resets_total", map[string]string{"outcome": "succeeded"}, 1},
		{"fleetreset_resets_total", map[string]string{"outcome": "failed"}, 1},
		{"fleetreset_resets_total", map[string]string{"outcome": "ambiguous"}, 1},
		{"fleetreset_resets_total", map[string]string{"outcome": "cancelled"}, 0}, // present from the start
		{"fleetreset_verify_latency_seconds", nil, 1},
	} {
		mustValue(t, fams, c.name, c.labels, c.want)
	}
	if fams["go_goroutines"] == nil || fams["process_start_time_seconds"] == nil {
		t.Errorf("runtime and process collectors missing")
	}
}

// TestRedisErrors: failed commands of a client hooked with
// redisfit.NewErrorHook(RedisErrors.Count) show in
// fleetreset_redis_errors_total by kind, every kind from zero; here a real
// redis-server at maxmemory refusing writes.
func TestRedisErrors(t *testing.T) {
	if fams, _ := scrape(t, metrics.New(metrics.Config{})); fams["fleetreset_redis_errors_total"] != nil {
		t.Errorf("fleetreset_redis_errors_total exported without Config.RedisErrors")
	}
	errs := metrics.NewRedisErrors()
	m := metrics.New(metrics.Config{RedisErrors: errs})
	r := redistest.Server(t, "--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1})
	defer c.Close()
	c.AddHook(redisfit.NewErrorHook(errs.Count))
	big := strings.Repeat("x", 64<<10)
	refused := 0
	for i := 0; refused < 3; i++ {
		if i == 300 {
			t.Fatalf("a 2mb Redis took %d writes of 64 KB", i)
		}
		if err := c.Set(t.Context(), fmt.Sprintf("%sfill:%d", r.Prefix, i), big, 0).Err(); redisfit.IsOOM(err) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	fams, _ := scrape(t, m)
	mustValue(t, fams, "fleetreset_redis_errors_total", map[string]string{"kind": "oom"}, 3)
	for _, k := range []string{"timeout", "connection", "other"} {
		mustValue(t, fams, "fleetreset_redis_errors_total", map[string]string{"kind": k}, 0)
	}
}

// TestLabelsNeverCarryFreeText checks that a label value that is not an
// action name or an error code (it could be text from a response body) is
// replaced, so nothing secret can reach a label.
func TestLabelsNeverCarryFreeText(t *testing.T) {
	const secret = "Pl4nted#Secret9Zq"
	m := metrics.New(metrics.Config{})
	m.APICall("ResetInstance", "password="+secret, time.Millisecond)
	m.APICall("ResetInstance", strings.Repeat("A", 200), time.Millisecond)
	m.RateWait("Reset Instance "+secret, time.Millisecond)
	fams, body := scrape(t, m)
	if strings.Contains(body, secret) {
		t.Fatalf("the planted secret reached /metrics:\n%s", body)
	}
	mustValue(t, fams, "fleetreset_api_calls_total", map[string]string{"action": "ResetInstance", "code": "Other"}, 2)
	mustValue(t, fams, "fleetreset_rate_limit_wait_seconds", map[string]string{"action": "Other"}, 1)
}

func TestQueueCollector(t *testing.T) {
	r := redistest.New(t)
	ns := strings.TrimSuffix(r.Prefix, ":")
	q := tasks.QueuesFor(ns)
	client := asynq.NewClient(r.ConnOpt())
	defer client.Close()
	insp := asynq.NewInspector(r.ConnOpt())
	defer insp.Close()
	for i := range 3 {
		task, err := tasks.NewReset(q, tasks.ResetPayload{Rollout: "r", InstanceID: fmt.Sprintf("ins-%08d", i)}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.EnqueueContext(t.Context(), task); err != nil {
			t.Fatal(err)
		}
	}
	task, err := tasks.NewAdvance(q, tasks.WavePayload{Rollout: "r", Wave: 0}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.EnqueueContext(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	if err := insp.PauseQueue(q.Control); err != nil {
		t.Fatal(err)
	}

	// The control queue exists, the reset queue exists; a third queue
	// configured but never used is left out without an error.
	m := metrics.New(metrics.Config{Inspector: insp, Queues: []string{q.Reset, q.Control, ns + "-unused"}})
	fams, _ := scrape(t, m)
	mustValue(t, fams, "asynq_tasks_enqueued_total", map[string]string{"queue": q.Reset, "state": "pending"}, 3)
	mustValue(t, fams, "asynq_tasks_enqueued_total", map[string]string{"queue": q.Control, "state": "scheduled"}, 1)
	mustValue(t, fams, "asynq_queue_size", map[string]string{"queue": q.Reset}, 3)
	mustValue(t, fams, "asynq_queue_paused_total", map[string]string{"queue": q.Control}, 1)
	mustValue(t, fams, "asynq_queue_paused_total", map[string]string{"queue": q.Reset}, 0)
	mustValue(t, fams, "fleetreset_redis_up", map[string]string{"source": "queues"}, 1)
	if _, ok := value(fams, "asynq_queue_size", map[string]string{"queue": ns + "-unused"}); ok {
		t.Errorf("a queue that does not exist was reported")
	}
	if lat, _ := value(fams, "asynq_queue_latency_seconds", map[string]string{"queue": q.Reset}); lat < 0 {
		t.Errorf("latency %v < 0", lat)
	}
}

func TestLedgerCollector(t *testing.T) {
	r := redistest.New(t)
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	spec := rollout.Spec{ID: "web-1", PlanHash: "h", Groups: []rollout.Group{{Name: "g", ImageID: "img-new00001"}},
		Waves: []rollout.Wave{{Size: 1}, {Size: 2}}}
	targets := []rollout.Target{{InstanceID: "ins-00000001", Wave: 0}, {InstanceID: "ins-00000002", Wave: 1}, {InstanceID: "ins-00000003", Wave: 1}}
	if _, err := l.Create(t.Context(), spec, targets, ledger.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Activate(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Finish(t.Context(), spec.ID, "ins-00000001", ledger.Outcome{From: []ledger.InstanceState{ledger.Pending}, To: ledger.Succeeded}); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Config{Ledger: l})
	fams, _ := scrape(t, m)
	mustValue(t, fams, "fleetreset_instances", map[string]string{"rollout": "web-1", "wave": "1", "state": "succeeded"}, 1)
	mustValue(t, fams, "fleetreset_instances", map[string]string{"rollout": "web-1", "wave": "1", "state": "pending"}, 0)
	mustValue(t, fams, "fleetreset_instances", map[string]string{"rollout": "web-1", "wave": "2", "state": "pending"}, 2)
	mustValue(t, fams, "fleetreset_rollout_state", map[string]string{"rollout": "web-1", "state": "running"}, 1)
	mustValue(t, fams, "fleetreset_redis_up", map[string]string{"source": "ledger"}, 1)

	// A finished rollout is counted from its counters; an abort cancels
	// what it never started.
	if _, err := l.Abort(t.Context(), spec.ID, "test"); err != nil {
		t.Fatal(err)
	}
	fams, _ = scrape(t, m)
	mustValue(t, fams, "fleetreset_rollout_state", map[string]string{"rollout": "web-1", "state": "aborted"}, 1)
	mustValue(t, fams, "fleetreset_instances", map[string]string{"rollout": "web-1", "wave": "1", "state": "succeeded"}, 1)
	mustValue(t, fams, "fleetreset_instances", map[string]string{"rollout": "web-1", "wave": "2", "state": "cancelled"}, 2)
	mustValue(t, fams, "fleetreset_instances", map[string]string{"rollout": "web-1", "wave": "2", "state": "pending"}, 0)
}

// TestRedisDown checks that a scrape still answers, with fleetreset_redis_up
// at 0, when Redis is gone.
func TestRedisDown(t *testing.T) {
	opt := asynq.RedisClientOpt{Addr: "127.0.0.1:1"} // nothing listens on port 1
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	rdb := redis.NewClient(&redis.Options{Addr: opt.Addr, MaxRetries: -1})
	defer rdb.Close()
	l := ledger.New(rdb, ledger.Config{})
	m := metrics.New(metrics.Config{Inspector: insp, Ledger: l, ScrapeTimeout: 2 * time.Second})
	fams, body := scrape(t, m)
	mustValue(t, fams, "fleetreset_redis_up", map[string]string{"source": "queues"}, 0)
	mustValue(t, fams, "fleetreset_redis_up", map[string]string{"source": "ledger"}, 0)
	if !bytes.Contains([]byte(body), []byte("fleetreset_resets_total")) {
		t.Errorf("the process's own counters are missing when Redis is down")
	}
}

// TestLedgerCollectorInFlight: a live rollout reports instances resetting
// in their wave from the in-flight set, pending as what is neither
// terminal nor resetting, and held instances per rollout.
func TestLedgerCollectorInFlight(t *testing.T) {
	r := redistest.New(t)
	ctx := t.Context()
	l := ledger.New(r.Client, ledger.Config{Prefix: r.Prefix})
	spec := rollout.Spec{ID: "web-2", PlanHash: "h", Groups: []rollout.Group{{Name: "g", ImageID: "img-new00001"}},
		Waves: []rollout.Wave{{Size: 3}, {Size: 2}}}
	var targets []rollout.Target
	for i := range 5 {
		targets = append(targets, rollout.Target{InstanceID: fmt.Sprintf("ins-0000000%d", i), Wave: min(i/3, 1)})
	}
	if _, err := l.Create(ctx, spec, targets, ledger.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Activate(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// ins-0: accepted by the cloud (resetting); ins-1: succeeded.
	res, err := l.Begin(ctx, spec.ID, "ins-00000000", 0)
	if err != nil || res.Action != ledger.ActProceed {
		t.Fatalf("Begin = %+v, %v", res, err)
	}
	if err := l.Called(ctx, spec.ID, "ins-00000000", res.Token, "req-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Finish(ctx, spec.ID, "ins-00000001", ledger.Outcome{From: []ledger.InstanceState{ledger.Pending}, To: ledger.Succeeded}); err != nil {
		t.Fatal(err)
	}
	// ins-2's turn comes while the rollout is paused: held.
	if ok, err := l.SetState(ctx, spec.ID, []ledger.RolloutState{ledger.Running}, ledger.Paused, "test"); err != nil || !ok {
		t.Fatalf("pause = %v, %v", ok, err)
	}
	if res, err := l.Begin(ctx, spec.ID, "ins-00000002", 0); err != nil || res.Action != ledger.ActHeld {
		t.Fatalf("Begin = %+v, %v; want held", res, err)
	}
	fams, _ := scrape(t, metrics.New(metrics.Config{Ledger: l}))
	for _, c := range []struct {
		wave, state string
		want        float64
	}{
		{"1", "resetting", 1}, {"1", "succeeded", 1}, {"1", "pending", 1},
		{"2", "resetting", 0}, {"2", "pending", 2}, {"2", "succeeded", 0},
	} {
		mustValue(t, fams, "fleetreset_instances", map[string]string{"rollout": "web-2", "wave": c.wave, "state": c.state}, c.want)
	}
	mustValue(t, fams, "fleetreset_instances_held", map[string]string{"rollout": "web-2"}, 1)
	mustValue(t, fams, "fleetreset_rollout_state", map[string]string{"rollout": "web-2", "state": "paused"}, 1)
}

// commandCounter counts the commands a Redis client sends, pipelines
// included.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}

// TestScrapeCostIndependentOfFleet: a scrape of a live rollout sends as
// many Redis commands at 5,000 instances as at 10 (it used to read every
// instance).
func TestScrapeCostIndependentOfFleet(t *testing.T) {
	cmds := map[int]int64{}
	for _, n := range []int{10, 5000} {
		r := redistest.New(t)
		var counter commandCounter
		rdb := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1})
		defer rdb.Close()
		rdb.AddHook(&counter)
		l := ledger.New(rdb, ledger.Config{Prefix: r.Prefix})
		spec := rollout.Spec{ID: "big", PlanHash: "h", Groups: []rollout.Group{{Name: "g", ImageID: "img-new00001"}},
			Waves: []rollout.Wave{{Size: n / 10}, {Size: n - n/10}}}
		targets := make([]rollout.Target, n)
		for i := range targets {
			targets[i] = rollout.Target{InstanceID: fmt.Sprintf("ins-%08d", i), Wave: min(i/(n/10), 1)}
		}
		if _, err := l.Create(t.Context(), spec, targets, ledger.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := l.Activate(t.Context(), spec); err != nil {
			t.Fatal(err)
		}
		m := metrics.New(metrics.Config{Ledger: l})
		before := counter.n.Load()
		fams, _ := scrape(t, m)
		cmds[n] = counter.n.Load() - before
		mustValue(t, fams, "fleetreset_instances", map[string]string{"rollout": "big", "wave": "2", "state": "pending"}, float64(n-n/10))
	}
	if cmds[5000] != cmds[10] {
		t.Errorf("a scrape sent %d commands at 10 instances and %d at 5,000; want the same", cmds[10], cmds[5000])
	}
}

type fakeWebhooks struct{}

func (fakeWebhooks) SentCount() int64 { return 7 }
func (fakeWebhooks) LostCounts() map[string]int64 {
	return map[string]int64{"queue_full": 2, "rejected": 0, "retries_exhausted": 1, "closed": 0}
}

// TestWebhookMetrics: the sender's counters are exported, zero reasons
// included, so that increase() works from the first loss.
func TestWebhookMetrics(t *testing.T) {
	fams, _ := scrape(t, metrics.New(metrics.Config{Webhooks: fakeWebhooks{}}))
	mustValue(t, fams, "fleetreset_webhooks_sent_total", nil, 7)
	mustValue(t, fams, "fleetreset_webhooks_lost_total", map[string]string{"reason": "queue_full"}, 2)
	mustValue(t, fams, "fleetreset_webhooks_lost_total", map[string]string{"reason": "retries_exhausted"}, 1)
	mustValue(t, fams, "fleetreset_webhooks_lost_total", map[string]string{"reason": "rejected"}, 0)
	if _, ok := fams["fleetreset_webhooks_sent_total"]; !ok {
		t.Error("no fleetreset_webhooks_sent_total")
	}
}

// A notify.Sender is what the CLI hands to Config.Webhooks.
var _ metrics.WebhookCounts = (*notify.Sender)(nil)
