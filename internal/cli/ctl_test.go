package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/internal/redistest"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

const (
	fixtureOld    = "img-old00001"
	fixtureTarget = "img-new00001"
)

// fixture is a rollout written to a test Redis through the ledger's own
// protocol, so the CLI reads exactly what workers would have left.
type fixture struct {
	id    string
	waves [][]ledger.InstanceState // the state each instance ends in, per wave
	state ledger.RolloutState      // the rollout's final state
	// reason goes with state; "" leaves the ledger's own.
	reason string
}

// buildFixture writes f under the namespace ns of r. Every budget is
// unlimited (the ledger's -1) so JSON tests can look for the sentinel.
func buildFixture(t *testing.T, r *redistest.Redis, ns string, f fixture) {
	t.Helper()
	ctx := t.Context()
	l := ledger.New(r.Client, ledger.Config{Prefix: ns + ":"})
	unlimited := rollout.Budget{Max: rollout.NoLimit, Percent: rollout.NoLimit}
	spec := rollout.Spec{ID: f.id, PlanHash: "h-" + f.id, Region: "ap-guangzhou", API: "v3",
		Groups: []rollout.Group{{Name: "web", OS: "linux", ImageID: fixtureTarget}}, Budget: unlimited, OnBreach: "pause",
		VerifyInterval: 10 * time.Second, VerifyTimeout: 20 * time.Minute, RetryAttempts: 5, RetryDeadline: 10 * time.Minute}
	var targets []rollout.Target
	for k, states := range f.waves {
		spec.Waves = append(spec.Waves, rollout.Wave{Size: len(states), Soak: 5 * time.Minute, Budget: unlimited})
		for i := range states {
			targets = append(targets, rollout.Target{InstanceID: fmt.Sprintf("ins-%s%d%03d", f.id, k, i), Wave: k})
		}
	}
	if ok, err := l.Create(ctx, spec, targets, ledger.CreateOptions{}); err != nil || !ok {
		t.Fatalf("Create(%s) = %v, %v", f.id, ok, err)
	}
	if err := l.Activate(ctx, spec); err != nil {
		t.Fatal(err)
	}
	n := 0
	for k, states := range f.waves {
		for i, st := range states {
			id := targets[n].InstanceID
			n++
			if err := l.Preflight(ctx, f.id, id, fixtureOld, ""); err != nil {
				t.Fatal(err)
			}
			finish := func(from ledger.InstanceState, o ledger.Outcome) {
				t.Helper()
				o.From = []ledger.InstanceState{from}
				if res, err := l.Finish(ctx, f.id, id, o); err != nil || !res.Changed {
					t.Fatalf("Finish(%s → %s) = %+v, %v", id, o.To, res, err)
				}
			}
			switch st {
			case ledger.Pending:
				continue
			case ledger.Skipped:
				finish(ledger.Pending, ledger.Outcome{To: st, Code: "AlreadyOnTarget", NewImage: fixtureTarget})
				continue
			case ledger.Cancelled, ledger.Ambiguous:
				finish(ledger.Pending, ledger.Outcome{To: st})
				continue
			}
			b, err := l.Begin(ctx, f.id, id, 0)
			if err != nil || b.Action != ledger.ActProceed {
				t.Fatalf("Begin(%s) = %+v, %v", id, b, err)
			}
			if st == ledger.Calling {
				continue
			}
			if err := l.Called(ctx, f.id, id, b.Token, fmt.Sprintf("req-%d-%d", k, i)); err != nil {
				t.Fatal(err)
			}
			switch st {
			case ledger.Succeeded:
				finish(ledger.Resetting, ledger.Outcome{To: st, NewImage: fixtureTarget})
			case ledger.Failed:
				// What verification records: the image the cloud still shows.
				finish(ledger.Resetting, ledger.Outcome{To: st, Code: "ResetFailed", Message: "the reinstall ended FAILED", NewImage: fixtureOld})
			}
		}
		// The gate: a complete wave (not the last) lets the next start.
		if k < len(f.waves)-1 {
			if out, _, err := l.Advance(ctx, f.id, k, false, true, false); err != nil || (out != ledger.AdvStarted && out != ledger.AdvIncomplete) {
				t.Fatalf("Advance(%d) = %s, %v", k, out, err)
			}
		}
	}
	switch f.state {
	case ledger.Running:
	case ledger.Aborted:
		if ok, err := l.Abort(ctx, f.id, cmp.Or(f.reason, "aborted by operator")); err != nil || !ok {
			t.Fatalf("Abort = %v, %v", ok, err)
		}
	default:
		if ok, err := l.SetState(ctx, f.id, nil, f.state, f.reason); err != nil || !ok {
			t.Fatalf("SetState(%s) = %v, %v", f.state, ok, err)
		}
	}
}

func repeat(st ledger.InstanceState, n int) []ledger.InstanceState {
	out := make([]ledger.InstanceState, n)
	for i := range out {
		out[i] = st
	}
	return out
}

func concat(parts ...[]ledger.InstanceState) []ledger.InstanceState {
	var out []ledger.InstanceState
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// The rollouts of issue 15: one completed with failures; one aborted in
// its second wave, whose third wave and a queued instance of the second
// the abort cancelled, with two instances still in flight; and one running.
var (
	completedWithFailures = fixture{id: "demo2", state: ledger.Completed, waves: [][]ledger.InstanceState{
		{ledger.Succeeded},
		concat(repeat(ledger.Succeeded, 3), []ledger.InstanceState{ledger.Failed}),
		concat(repeat(ledger.Succeeded, 3), []ledger.InstanceState{ledger.Skipped, ledger.Failed}),
	}}
	abortedMidway = fixture{id: "demo3", state: ledger.Aborted, reason: "wrong image", waves: [][]ledger.InstanceState{
		{ledger.Succeeded},
		{ledger.Succeeded, ledger.Failed, ledger.Ambiguous, ledger.Resetting, ledger.Calling, ledger.Pending},
		repeat(ledger.Pending, 5),
	}}
	runningMidway = fixture{id: "demo4", state: ledger.Running, waves: [][]ledger.InstanceState{
		{ledger.Succeeded},
		{ledger.Succeeded, ledger.Resetting, ledger.Calling, ledger.Pending, ledger.Pending},
		repeat(ledger.Pending, 3),
	}}
)

// ctlEnv returns a command environment on r's Redis and the namespace.
func ctlEnv(r *redistest.Redis) (vars map[string]string, ns string) {
	return map[string]string{"REDIS_URL": "redis://" + r.Addr}, strings.TrimSuffix(r.Prefix, ":")
}

// table reads the rows of the table whose header line starts with
// firstHeader: each row as header → value. A row's leading "▶" mark is
// dropped; a row ends the table when it has fewer fields than the header.
func table(t *testing.T, out, firstHeader string) []map[string]string {
	t.Helper()
	var header []string
	var rows []map[string]string
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(strings.ReplaceAll(line, "▶", " "))
		if header == nil {
			if len(fields) > 0 && fields[0] == firstHeader {
				header = fields
			}
			continue
		}
		if len(fields) < len(header) {
			break
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = fields[i]
		}
		rows = append(rows, row)
	}
	if header == nil {
		t.Fatalf("no table with a header starting %q in:\n%s", firstHeader, out)
	}
	return rows
}

// TestListShowsEveryOutcome: `list` gives failed, ambiguous, cancelled and
// unfinished counts next to succeeded (issue 15: "demo2 completed 40/40"
// with 2 failed).
func TestListShowsEveryOutcome(t *testing.T) {
	r := redistest.New(t)
	vars, ns := ctlEnv(r)
	buildFixture(t, r, ns, completedWithFailures)
	buildFixture(t, r, ns, abortedMidway)
	env, out, errb := testEnv(vars)
	if code := Main(t.Context(), env, []string{"list", "--namespace", ns}); code != 0 {
		t.Fatalf("list exited %d: %s", code, errb)
	}
	rows := table(t, out.String(), "ROLLOUT")
	want := []map[string]string{
		{"ROLLOUT": "demo2", "STATE": "completed", "TOTAL": "10", "OK": "7", "SKIPPED": "1", "FAILED": "2", "AMBIGUOUS": "0", "CANCELLED": "0", "UNFINISHED": "0"},
		{"ROLLOUT": "demo3", "STATE": "aborted", "TOTAL": "12", "OK": "2", "SKIPPED": "0", "FAILED": "1", "AMBIGUOUS": "1", "CANCELLED": "6", "UNFINISHED": "2"},
	}
	if len(rows) != len(want) {
		t.Fatalf("list printed %d rows; want %d:\n%s", len(rows), len(want), out)
	}
	for i, w := range want {
		for k, v := range w {
			if rows[i][k] != v {
				t.Errorf("list row %d %s = %q; want %q\n%s", i, k, rows[i][k], v, out)
			}
		}
	}
	// Times say their zone: "2006-01-02 15:04:05 -07:00".
	if !regexp.MustCompile(`\d\d:\d\d:\d\d [+-]\d\d:\d\d`).MatchString(out.String()) {
		t.Errorf("list times carry no zone:\n%s", out)
	}
}

// TestStatusShowsEveryOutcome: `status` shows a cancelled wave as
// cancelled, and failures, in-flight and pending instances per wave and
// overall (issue 15: "14/14 ok 0" for a cancelled wave, "40/40 ok 26
// failed 0 · aborted" overall).
func TestStatusShowsEveryOutcome(t *testing.T) {
	tests := []struct {
		name  string
		f     fixture
		waves []map[string]string
		line  []string // substrings of the progress line
	}{
		{"aborted", abortedMidway, []map[string]string{
			{"wave": "1", "size": "1", "succeeded": "1", "failed": "0", "ambiguous": "0", "cancelled": "0", "in-flight": "0", "pending": "0"},
			{"wave": "2", "size": "6", "succeeded": "1", "failed": "1", "ambiguous": "1", "cancelled": "1", "in-flight": "2", "pending": "0"},
			{"wave": "3", "size": "5", "succeeded": "0", "failed": "0", "ambiguous": "0", "cancelled": "5", "in-flight": "0", "pending": "0"},
		}, []string{"10/12 finished", "ok 2", "failed 1", "ambiguous 1", "cancelled 6", "in flight 2", "pending 0", "aborted"}},
		{"running", runningMidway, []map[string]string{
			{"wave": "1", "size": "1", "succeeded": "1", "cancelled": "0", "in-flight": "0", "pending": "0"},
			{"wave": "2", "size": "5", "succeeded": "1", "cancelled": "0", "in-flight": "2", "pending": "2"},
			{"wave": "3", "size": "3", "succeeded": "0", "cancelled": "0", "in-flight": "0", "pending": "3"},
		}, []string{"2/9 finished", "ok 2", "failed 0", "cancelled 0", "in flight 2", "pending 5", "running"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := redistest.New(t)
			vars, ns := ctlEnv(r)
			buildFixture(t, r, ns, tt.f)
			env, out, errb := testEnv(vars)
			if code := Main(t.Context(), env, []string{"status", "--namespace", ns, tt.f.id}); code != 0 {
				t.Fatalf("status exited %d: %s", code, errb)
			}
			rows := table(t, out.String(), "wave")
			if len(rows) < len(tt.waves) {
				t.Fatalf("status printed %d wave rows; want %d:\n%s", len(rows), len(tt.waves), out)
			}
			for i, w := range tt.waves {
				for k, v := range w {
					if rows[i][k] != v {
						t.Errorf("status wave row %d %s = %q; want %q\n%s", i, k, rows[i][k], v, out)
					}
				}
			}
			for _, want := range tt.line {
				if !strings.Contains(out.String(), want) {
					t.Errorf("status lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestListAndStatusJSON: the JSON views count every outcome and hold no
// internal sentinel (-1 for "no limit") and no nanosecond duration.
func TestListAndStatusJSON(t *testing.T) {
	r := redistest.New(t)
	vars, ns := ctlEnv(r)
	buildFixture(t, r, ns, abortedMidway)
	for _, args := range [][]string{{"list", "--json"}, {"status", "--json", "demo3"}} {
		t.Run(args[0], func(t *testing.T) {
			env, out, errb := testEnv(vars)
			if code := Main(t.Context(), env, append([]string{args[0], "--namespace", ns}, args[1:]...)); code != 0 {
				t.Fatalf("%s exited %d: %s", args, code, errb)
			}
			s := out.String()
			if m := regexp.MustCompile(`":\s*-1\b`).FindString(s); m != "" {
				t.Errorf("%s prints the sentinel -1:\n%s", args, s)
			}
			if strings.Contains(s, "10000000000") || strings.Contains(s, "300000000000") {
				t.Errorf("%s prints durations in nanoseconds:\n%s", args, s)
			}
			var v struct {
				Rollout struct {
					Counts map[string]int `json:"counts"`
				} `json:"rollout"`
			}
			var list []struct {
				Counts map[string]int `json:"counts"`
			}
			var counts map[string]int
			if args[0] == "list" {
				if err := json.Unmarshal([]byte(s), &list); err != nil || len(list) != 1 {
					t.Fatalf("list --json = %v, %d rollouts:\n%s", err, len(list), s)
				}
				counts = list[0].Counts
			} else {
				if err := json.Unmarshal([]byte(s), &v); err != nil {
					t.Fatalf("status --json: %v\n%s", err, s)
				}
				counts = v.Rollout.Counts
			}
			want := map[string]int{"total": 12, "succeeded": 2, "failed": 1, "ambiguous": 1, "cancelled": 6, "not_finished": 2}
			if args[0] == "status" {
				want["in_flight"], want["pending"] = 2, 0
			}
			for k, n := range want {
				if got, ok := counts[k]; !ok || got != n {
					t.Errorf("%s counts[%q] = %d (present %v); want %d\n%s", args, k, got, ok, n, s)
				}
			}
		})
	}
}

// TestReportFailedShowsNoNewImage: a failed instance's report row has no
// new image (none was installed); what the cloud showed is its own column.
func TestReportFailedShowsNoNewImage(t *testing.T) {
	r := redistest.New(t)
	vars, ns := ctlEnv(r)
	buildFixture(t, r, ns, completedWithFailures)
	env, out, errb := testEnv(vars)
	if code := Main(t.Context(), env, []string{"report", "--namespace", ns, "demo2"}); code != 0 {
		t.Fatalf("report exited %d: %s", code, errb)
	}
	var rows []ReportRow
	if err := json.Unmarshal([]byte(out.String()), &rows); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, row := range rows {
		switch row.Outcome {
		case "failed":
			failed++
			if row.NewImage != "" || row.Target != fixtureTarget || row.SeenImage != fixtureOld {
				t.Errorf("failed row: new_image %q, target %q, seen %q; want \"\", %q, %q", row.NewImage, row.Target, row.SeenImage, fixtureTarget, fixtureOld)
			}
		case "succeeded":
			if row.NewImage != fixtureTarget {
				t.Errorf("succeeded row: new_image %q; want %q", row.NewImage, fixtureTarget)
			}
		}
	}
	if failed != 2 {
		t.Errorf("%d failed rows; want 2", failed)
	}
}

// TestProgressText: the one-line progress names every outcome, zeros
// included, and says "not finished" where the instances were not read.
func TestProgressText(t *testing.T) {
	r := &ledger.Rollout{State: ledger.Aborted, Wave: 1, Total: 40, Waves: make([]ledger.WaveStatus, 4),
		Counters: ledger.Counters{Succeeded: 24, Failed: 2, Cancelled: 10, Terminal: 36}}
	want := "[wave 2/4] █████████████████████░░░ 36/40 finished: ok 24, skipped 0, failed 2, ambiguous 0, cancelled 10, not finished 4 · aborted"
	if got := progressText(r); got != want {
		t.Errorf("progressText = %q; want %q", got, want)
	}
	open := tally{Size: 40, Counters: r.Counters, Open: true, InFlight: 3, Pending: 1}
	if got, want := formatProgress(r, open), "in flight 3, pending 1 · aborted"; !strings.HasSuffix(got, want) {
		t.Errorf("formatProgress with open counts = %q; want it to end %q", got, want)
	}
}

// TestCommandsOnAnUnknownRollout: every command that acts on a rollout
// says the rollout is not found (resume, approve and retry-failed said
// "rollout nope is " and stopped there).
func TestCommandsOnAnUnknownRollout(t *testing.T) {
	r := redistest.New(t)
	vars := map[string]string{"REDIS_URL": "redis://" + r.Addr}
	ns := strings.TrimSuffix(r.Prefix, ":")
	for _, cmd := range []string{"pause", "resume", "approve", "abort", "retry-failed", "status"} {
		env, out, errb := testEnv(vars)
		code := Main(t.Context(), env, []string{cmd, "--namespace", ns, "nope"})
		if code != exitFailed || !strings.Contains(errb.String(), `not found: "nope"`) {
			t.Errorf("%s nope: exit %d\nstdout: %s\nstderr: %s\nwant exit %d saying not found", cmd, code, out, errb, exitFailed)
		}
	}
}

// TestTimingLines: plan and status say when a rollout may start and run.
func TestTimingLines(t *testing.T) {
	spec := rollout.Spec{StartAt: time.Date(2026, 12, 12, 1, 0, 0, 0, time.UTC), Schedule: "CRON_TZ=Asia/Shanghai 0 1 * * sat",
		Window: &rollout.Window{Start: 60, End: 300, Location: "Asia/Shanghai", Days: []int{6, 0}}}
	got := strings.Join(timingLines(spec), "\n")
	for _, want := range []string{"starts at " + humanTimeOf(spec.StartAt), "schedule: CRON_TZ=Asia/Shanghai 0 1 * * sat",
		"window: new waves start only 01:00–05:00 Asia/Shanghai, Sat, Sun"} {
		if !strings.Contains(got, want) {
			t.Errorf("timingLines = %q; want %q", got, want)
		}
	}
	if l := timingLines(rollout.Spec{}); len(l) != 0 {
		t.Errorf("timingLines of an unscheduled rollout = %q; want none", l)
	}
}
