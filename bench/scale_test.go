package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/cvmsim"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/metrics"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/ratelimit"
	"github.com/fleetreset/fleetreset/rollout"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/fleetreset/fleetreset/web"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Scale benchmark shape: the fleet against a baseline of 1,000 in
// the same run, each read timed scaleReps times after a first read that
// fills the UI's caches.
const (
	scaleSmall = 1_000
	scaleLarge = 100_000
	scaleReps  = 21
	// scaleInFlight is how many instances are resetting (accepted by the
	// cloud, not verified yet) at both sizes: in-flight resets are bounded
	// by the reset rate times the reinstall time, not by the fleet.
	scaleInFlight = 100
)

// BenchmarkScale times what a human looking at a running rollout costs:
// one /metrics scrape (asynq queues and the ledger, as `fleetreset ui`
// serves it) and one refresh of the UI's rollout page (GET /rollouts/ID),
// at 1,000 and at 100,000 instances. Each rollout is written with
// ledger.Create directly (waves of 1 %, 10 %, 40 % and the rest; a third
// succeeded, every 1,000th failed, scaleInFlight resetting), is running,
// and has a namespace of its own. Reads of the two sizes alternate, so
// that both see the same load on a shared machine. Metrics, medians of
// scaleReps reads after one warm-up read:
//
//	scrape-1k-ms, scrape-100k-ms   one /metrics scrape
//	scrape-ratio                   100k ÷ 1k (goal ≤ 2, and ≤ 50 ms at 100k)
//	page-1k-ms, page-100k-ms       one rollout page
//	page-ratio                     100k ÷ 1k (goal ≤ 2, and ≤ 50 ms at 100k)
func BenchmarkScale(b *testing.B) {
	r := benchRedis(b)
	sizes := []int{scaleSmall, scaleLarge}
	ms := map[string][]float64{}
	for b.Loop() {
		b.StopTimer()
		type target struct {
			id      string
			scrape  http.Handler
			page    http.Handler
			cleanup func()
		}
		var ts []target
		for _, n := range sizes {
			ns := namespace(r, "scale")
			l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
			id := createRunning(b, l, n)
			insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: r.Addr})
			q := tasks.QueuesFor(ns)
			m := metrics.New(metrics.Config{Inspector: insp, Queues: []string{q.Reset, q.Control}, Ledger: l})
			ui, err := web.New(web.Config{Ledger: l})
			must(b, err)
			ts = append(ts, target{id: id, scrape: m.Handler(), page: ui, cleanup: func() {
				ui.Close()
				insp.Close()
				wipe(b, r.Client, ns)
			}})
		}
		b.StartTimer()

		times := map[string][][]float64{"scrape": make([][]float64, len(ts)), "page": make([][]float64, len(ts))}
		for rep := range scaleReps + 1 {
			for i, t := range ts {
				d := get(b, t.scrape, "/metrics", fmt.Sprintf(`fleetreset_instances{rollout=%q,state="resetting",wave="1"}`, t.id))
				if rep > 0 { // the first read warms up
					times["scrape"][i] = append(times["scrape"][i], d)
				}
				d = get(b, t.page, "/rollouts/"+t.id, t.id)
				if rep > 0 {
					times["page"][i] = append(times["page"][i], d)
				}
			}
		}
		for what, byTarget := range times {
			for i := range ts {
				ms[fmt.Sprintf("%s-%d", what, i)] = append(ms[fmt.Sprintf("%s-%d", what, i)], median(byTarget[i]))
			}
		}

		b.StopTimer()
		for _, t := range ts {
			t.cleanup()
		}
		b.StartTimer()
	}
	for _, what := range []string{"scrape", "page"} {
		small, large := median(ms[what+"-0"]), median(ms[what+"-1"])
		b.ReportMetric(small, what+"-1k-ms")
		b.ReportMetric(large, what+"-100k-ms")
		b.ReportMetric(large/small, what+"-ratio")
	}
}

// get serves GET path once, fails unless the answer is 200 and contains
// want, and returns how long it took in milliseconds.
func get(b *testing.B, h http.Handler, path, want string) float64 {
	b.Helper()
	rec := httptest.NewRecorder()
	t0 := time.Now()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	d := float64(time.Since(t0).Microseconds()) / 1000
	if rec.Code != http.StatusOK {
		b.Fatalf("GET %s = %d\n%s", path, rec.Code, rec.Body)
	}
	if !strings.Contains(rec.Body.String(), want) {
		b.Fatalf("GET %s lacks %s", path, want)
	}
	return d
}

// createRunning writes a running rollout of n instances and returns its ID.
func createRunning(b *testing.B, l *ledger.Ledger, n int) string {
	b.Helper()
	spec := rollout.Spec{ID: fmt.Sprintf("scale-%d", n), PlanHash: "h", API: "v3",
		Groups: []rollout.Group{{Name: "g", ImageID: targetImage}}}
	sizes := []int{n / 100, n / 10, n * 4 / 10}
	sizes = append(sizes, n-sizes[0]-sizes[1]-sizes[2])
	targets := make([]rollout.Target, 0, n)
	seeds := map[string]ledger.Seed{}
	every := n / scaleInFlight
	i := 0
	for k, size := range sizes {
		spec.Waves = append(spec.Waves, rollout.Wave{Size: size})
		for range size {
			id := fmt.Sprintf("ins-%08x", i)
			targets = append(targets, rollout.Target{InstanceID: id, Wave: k})
			switch {
			case i%1000 == 999:
				seeds[id] = ledger.Seed{State: ledger.Failed, Code: "FailedOperation", Error: "boom"}
			case i%every == 1:
				seeds[id] = ledger.Seed{State: ledger.Resetting, RequestID: "req-" + id, CalledAt: time.Now()}
			case i%3 == 0:
				seeds[id] = ledger.Seed{State: ledger.Succeeded}
			}
			i++
		}
	}
	ctx := context.Background()
	created, err := l.Create(ctx, spec, targets, ledger.CreateOptions{Seeds: seeds})
	must(b, err)
	if !created {
		b.Fatalf("rollout %s not created", spec.ID)
	}
	must(b, l.Activate(ctx, spec))
	return spec.ID
}

// Commands benchmark shape: small enough to run in seconds, the dispatch
// benchmark's processes and handlers.
const (
	commandsN           = 1_000
	commandsProcs       = 2
	commandsConcurrency = 20
)

// BenchmarkCommands counts the Redis commands a whole rollout costs per
// instance, against what asynq itself costs per task, from the server's
// INFO commandstats (commands run inside Lua scripts included, as Redis
// counts them). It runs on a redis-server of its own
// (redistest.Server), since the counts are server-wide and a shared test
// Redis counts everybody's commands.
//
// fleetreset side: CONFIG RESETSTAT, apply a plan of commandsN instances
// (waves of 10 % and the rest, rates at ratelimit.MaxRate, verify every
// second) against a simulator without limits and with an instant
// reinstall, run commandsProcs workers of commandsConcurrency handlers
// until the rollout is completed (every instance verified), read the
// stats. The benchmark's own polling of the ledger is counted on its
// client and subtracted.
//
// bare side: CONFIG RESETSTAT, enqueue commandsN no-op tasks, process them
// with as many asynq servers and handlers, read the stats.
//
// Metrics (medians over iterations):
//
//	cmds/inst   fleetreset's commands per instance
//	asynq/task  bare asynq's commands per task
//	ratio       cmds/inst ÷ asynq/task (goal ≤ 3)
//	tasks/inst  asynq tasks fleetreset ran per instance
//
// The most called commands of each side are logged, per instance or task.
func BenchmarkCommands(b *testing.B) {
	r := redistest.Server(b)
	ctx := context.Background()
	f := writePlan(b, b.TempDir(), commandsN, 31, planOpts{name: "bench-commands", waves: "[10%, 100%]",
		reset: ratelimit.MaxRate, describe: ratelimit.MaxRate})
	plan, err := planner.Load(f.path, planner.Options{ResolveSecrets: true})
	must(b, err)
	opt := asynq.RedisClientOpt{Addr: r.Addr, PoolSize: 64}
	client := asynq.NewClient(opt)
	defer client.Close()
	// The benchmark's own reads go through a client that counts them.
	var own ownCommands
	poll := redis.NewClient(ledger.RedisOptions(&redis.Options{Addr: r.Addr}))
	defer poll.Close()
	poll.AddHook(&own)
	var perInst, perTask, tasksPer []float64
	for b.Loop() {
		ns := namespace(r, "commands")
		bareQ := ns + "-bare"
		sim, url := startSim(b, cvmsim.Config{ResetDuration: time.Nanosecond,
			Faults: cvmsim.Faults{ResetRateLimit: -1, DescribeRateLimit: -1}}, f.ids)
		plan.Spec.Endpoint = url

		must(b, r.Client.ConfigResetStat(ctx).Err())
		own.n.Store(0)
		_, err := engine.New(engine.Config{Ledger: ledger.New(r.Client, ledger.Config{Prefix: ns + ":"}), Client: client, Namespace: ns}).Apply(ctx, engine.ApplyRequest{Spec: plan.Spec, Targets: plan.Targets})
		must(b, err)
		stop := runProcs(b, commandsProcs, r.Addr, ns, url, commandsConcurrency, nil)
		res := awaitRollout(b, ledger.New(poll, ledger.Config{Prefix: ns + ":"}), plan.Spec.ID, 5*time.Minute)
		fleetStats := commandStats(b, r.Client)
		stop()
		requireCompleted(b, res)
		requireExactlyOnce(b, sim.Stats(), f.ids)
		fleet := fleetStats.total() - own.n.Load()

		must(b, r.Client.ConfigResetStat(ctx).Err())
		done, stopBare := bareServers(b, commandsProcs, r.Addr, bareQ, commandsConcurrency, commandsN)
		enqueueBare(b, client, bareQ, commandsN, 32)
		<-done
		bareStats := commandStats(b, r.Client)
		stopBare()
		bare := bareStats.total()

		b.Logf("fleetreset: %d commands (%d of the benchmark's polling left out); per instance: %s", fleet, own.n.Load(), fleetStats.top(16, commandsN))
		b.Logf("bare asynq: %d commands; per task: %s", bare, bareStats.top(16, commandsN))
		perInst = append(perInst, float64(fleet)/commandsN)
		perTask = append(perTask, float64(bare)/commandsN)
		tasksPer = append(tasksPer, float64(processed(b, opt, ns))/commandsN)
		wipe(b, r.Client, ns, bareQ)
	}
	ci, at := median(perInst), median(perTask)
	b.ReportMetric(ci, "cmds/inst")
	b.ReportMetric(at, "asynq/task")
	b.ReportMetric(ci/at, "ratio")
	b.ReportMetric(median(tasksPer), "tasks/inst")
}

// ownCommands counts the commands of one client, pipelines included, as
// INFO commandstats counts them.
type ownCommands struct{ n atomic.Int64 }

func (c *ownCommands) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *ownCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *ownCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// cmdStats are calls per command from INFO commandstats.
type cmdStats map[string]int64

// commandStats reads INFO commandstats, leaving out the benchmark's own
// INFO and CONFIG RESETSTAT.
func commandStats(b *testing.B, rdb *redis.Client) cmdStats {
	b.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	must(b, err)
	out := cmdStats{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		// cmdstat_hget:calls=12,usec=34,usec_per_call=2.83,...
		name, rest, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		must(b, err)
		if name == "info" || name == "config|resetstat" {
			continue
		}
		out[name] = n
	}
	return out
}

func (s cmdStats) total() int64 {
	var t int64
	for _, n := range s {
		t += n
	}
	return t
}

// top names the k most called commands with their counts per unit.
func (s cmdStats) top(k, per int) string {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return s[names[i]] > s[names[j]] })
	var parts []string
	for _, n := range names[:min(k, len(names))] {
		parts = append(parts, fmt.Sprintf("%s %.2f", n, float64(s[n])/float64(per)))
	}
	return strings.Join(parts, ", ")
}
