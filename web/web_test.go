package web_test

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/web"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestRolloutDuringSimulatedRun drives a real rollout against the simulator
// and checks the pages, the JSON API, the buttons, /metrics against the
// simulator's own counts, and that the planted password shows nowhere.
func TestRolloutDuringSimulatedRun(t *testing.T) {
	b := setup(t, setupOpts{allowActions: true})
	b.apply(t, "webtest")
	b.startWorkers(t, 2)
	var seen []string // every answer, scanned for the password at the end
	grab := func(path string, wantStatus int) string {
		t.Helper()
		code, body := b.get(t, path)
		if code != wantStatus {
			t.Fatalf("GET %s = %d; want %d\n%s", path, code, wantStatus, body)
		}
		seen = append(seen, path+"\n"+body)
		return body
	}

	// Wave 1 ends at its manual gate: one instance skipped (already on the
	// target image), one failed (the cloud does not know it).
	r := b.await(t, time.Minute, ledger.AwaitingApproval)
	if r.Counters.Skipped != 1 || r.Counters.Failed != 1 || r.Counters.Succeeded != 2 {
		t.Fatalf("after wave 1: %+v; want 2 succeeded, 1 skipped, 1 failed", r.Counters)
	}
	seen = append(seen, scanMonitoring(t, b)...) // tasks are queued now

	list := grab("/", http.StatusOK)
	for _, want := range []string{`href="/rollouts/webtest"`, "st-awaiting_approval", "awaiting approval", ">1/2<", `class="bar"`} {
		if !strings.Contains(list, want) {
			t.Errorf("the rollout list lacks %q", want)
		}
	}
	page := grab("/rollouts/webtest", http.StatusOK)
	for _, want := range []string{
		`id="rollout-id">webtest<`, `data-wave="1"`, `data-wave="2"`, "awaiting approval",
		missingID, "PreflightRefused", onTargetID, "AlreadyOnTarget", // failures with codes, skips
		`id="btn-approve" class="primary" formaction="/rollouts/webtest/approve">`, // enabled
		"env " + passwordEnv, // the password by reference
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the rollout page lacks %q", want)
		}
	}
	if hookHost := b.hookURL[:strings.Index(b.hookURL, "/services")]; !strings.Contains(page, hookHost+" <span") {
		t.Errorf("the rollout page does not show the webhook's host %s", hookHost)
	}
	if strings.Contains(page, webhookToken) {
		t.Errorf("the rollout page shows the webhook's token")
	}
	if !strings.Contains(page, `id="btn-resume" class="primary" formaction="/rollouts/webtest/resume" disabled>`) {
		t.Errorf("resume is not disabled while the rollout awaits approval")
	}
	failed := grab("/rollouts/webtest?state=failed", http.StatusOK)
	inst := failed[strings.Index(failed, `id="instances"`):]
	if !strings.Contains(inst, missingID) || strings.Contains(inst, "ins-a0000009") {
		t.Errorf("?state=failed does not show exactly the failed instance:\n%s", inst)
	}
	grab("/rollouts/webtest?state=bogus", http.StatusOK) // unknown filters are ignored

	var api struct {
		Rollout   web.RolloutView    `json:"rollout"`
		Instances []web.InstanceView `json:"instances"`
	}
	if err := json.Unmarshal([]byte(grab("/api/rollouts/webtest", http.StatusOK)), &api); err != nil {
		t.Fatal(err)
	}
	if api.Rollout.ID != "webtest" || len(api.Instances) != len(fleetIDs) || strings.Contains(api.Rollout.Webhook, webhookToken) || api.Rollout.Webhook == "" ||
		len(api.Rollout.Waves) != 2 || api.Rollout.Waves[0].Size != 4 {
		t.Errorf("/api/rollouts/webtest = %+v with %d instances", api.Rollout, len(api.Instances))
	}
	var apiList struct {
		Rollouts []web.RolloutView `json:"rollouts"`
	}
	if err := json.Unmarshal([]byte(grab("/api/rollouts", http.StatusOK)), &apiList); err != nil || len(apiList.Rollouts) != 1 {
		t.Errorf("/api/rollouts = %+v, %v", apiList, err)
	}

	// The buttons: pause, a pause that does not apply, resume, approve.
	post := func(action string, form url.Values) string {
		t.Helper()
		code, loc := b.do(t, "POST", "/rollouts/webtest/"+action, strings.NewReader(form.Encode()),
			http.Header{"Origin": {b.srv.URL}, "Sec-Fetch-Site": {"same-origin"}})
		if code != http.StatusSeeOther {
			t.Fatalf("POST %s = %d; want 303\n%s", action, code, loc)
		}
		return loc
	}
	if loc := post("pause", url.Values{"reason": {"checking the canary"}}); loc != "/rollouts/webtest?done=pause&n=0" {
		t.Errorf("pause redirected to %q", loc)
	}
	if r := b.await(t, 5*time.Second, ledger.Paused); !strings.Contains(r.Reason, "checking the canary") {
		t.Errorf("paused with reason %q; want the operator's", r.Reason)
	}
	if page := grab("/rollouts/webtest?done=pause&n=0", http.StatusOK); !strings.Contains(page, "Paused. No new reset starts") {
		t.Errorf("no message after pause")
	}
	if loc := post("pause", nil); loc != "/rollouts/webtest?err=notchanged" {
		t.Errorf("second pause redirected to %q; want err=notchanged", loc)
	}
	if page := grab("/rollouts/webtest?err=notchanged", http.StatusOK); !strings.Contains(page, "does not apply to a rollout that is paused") {
		t.Errorf("no message for a command that does not apply")
	}
	post("resume", nil)
	b.await(t, 10*time.Second, ledger.AwaitingApproval) // the gate asks again
	if loc := post("approve", nil); loc != "/rollouts/webtest?done=approve&n=1" {
		t.Errorf("approve redirected to %q", loc)
	}
	r = b.await(t, time.Minute, ledger.Completed)
	if r.Counters.Succeeded != len(fleetIDs)-2 || r.Counters.Failed != 1 || r.Counters.Skipped != 1 {
		t.Fatalf("completed with %+v", r.Counters)
	}
	if code, _ := b.do(t, "POST", "/rollouts/webtest/explode", nil, nil); code != http.StatusNotFound {
		t.Errorf("POST of an unknown action = %d; want 404", code)
	}

	// /metrics parses, and its counters match what the simulator saw.
	body := grab("/metrics", http.StatusOK)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	st := b.sim.Stats()
	for _, action := range []string{"ResetInstance", "DescribeInstances"} {
		simCalls := 0
		for _, n := range st.Calls[action] {
			simCalls += n
		}
		if got := sum(fams["fleetreset_api_calls_total"], map[string]string{"action": action}); got != float64(simCalls) || simCalls == 0 {
			t.Errorf("fleetreset_api_calls_total{action=%q} = %v; the simulator counted %d", action, got, simCalls)
		}
	}
	accepted := 0
	for _, n := range st.AcceptedResets {
		accepted += n
	}
	if got := sum(fams["fleetreset_api_calls_total"], map[string]string{"action": "ResetInstance", "code": "Success"}); got != float64(accepted) {
		t.Errorf("successful ResetInstance calls = %v; the simulator accepted %d", got, accepted)
	}
	if got, want := sum(fams["fleetreset_api_calls_total"], map[string]string{"action": "ResetInstance", "code": "InternalError"}), st.Errors["InternalError"]; got != float64(want) || want == 0 {
		t.Errorf("SystemBusy answers counted %v; the simulator answered %d", got, want)
	}
	for outcome, want := range map[string]int{"succeeded": st.SucceededResets, "skipped": 1, "failed": 1, "ambiguous": 0} {
		if got := sum(fams["fleetreset_resets_total"], map[string]string{"outcome": outcome}); got != float64(want) {
			t.Errorf("fleetreset_resets_total{outcome=%q} = %v; want %d", outcome, got, want)
		}
	}
	if got := sum(fams["fleetreset_verify_latency_seconds"], nil); got != float64(st.SucceededResets) {
		t.Errorf("verify latency samples = %v; want one per verified reset (%d)", got, st.SucceededResets)
	}
	if got := sum(fams["fleetreset_instances"], map[string]string{"rollout": "webtest", "wave": "2", "state": "succeeded"}); got != 6 {
		t.Errorf("fleetreset_instances{wave=2,state=succeeded} = %v; want 6", got)
	}
	if got := sum(fams["fleetreset_rate_limit_wait_seconds"], map[string]string{"action": "ResetInstance"}); got < float64(accepted) {
		t.Errorf("rate-limit waits recorded %v times; want at least one per accepted reset (%d)", got, accepted)
	}
	if fams["asynq_queue_size"] == nil || fams["asynq_tasks_processed_total"] == nil {
		t.Errorf("asynq queue metrics missing")
	}

	// The planted password: resolved and used, and shown nowhere.
	if b.lookups.Load() < 2 {
		t.Fatalf("the password was looked up %d times; the test plants nothing", b.lookups.Load())
	}
	seen = append(seen, grab("/", http.StatusOK), grab("/rollouts/webtest", http.StatusOK))
	for _, st := range []string{"succeeded", "failed", "skipped"} {
		seen = append(seen, grab("/rollouts/webtest?state="+st, http.StatusOK))
	}
	// The search, its paging and the page of every instance, as HTML and JSON.
	for _, q := range []string{"?id=ins-a&wave=2&limit=3&page=2", "?code=PreflightRefused", "?state=succeeded&limit=2", "?id=a00000"} {
		seen = append(seen, grab("/rollouts/webtest"+q, http.StatusOK), grab("/api/rollouts/webtest"+q, http.StatusOK))
	}
	for _, id := range fleetIDs {
		seen = append(seen, grab("/rollouts/webtest/instances/"+id, http.StatusOK), grab("/api/rollouts/webtest/instances/"+id, http.StatusOK))
	}
	if page := grab("/rollouts/webtest/instances/"+missingID, http.StatusOK); !strings.Contains(page, "PreflightRefused") {
		t.Errorf("the page of %s does not show its error code", missingID)
	}
	seen = append(seen, scanMonitoring(t, b)...)
	for _, s := range seen {
		if strings.Contains(s, webhookToken) {
			name, _, _ := strings.Cut(s, "\n")
			t.Errorf("the webhook's token appears in %s", name)
		}
	}
	seen = append(seen, "logs\n"+b.logs.String())
	for _, s := range seen {
		if frag, ok := exposes(s, plantedPassword); ok {
			name, _, _ := strings.Cut(s, "\n")
			t.Errorf("a piece of the planted password (%q) appears in %s", frag, name)
		}
	}
}

// exposes reports a piece of 4 or more bytes of secret in s, raw or in the
// escaped forms an echoing upstream, JSON or HTML give it.
func exposes(s, secret string) (string, bool) {
	forms := func(p string) []string {
		j, _ := json.Marshal(p)
		return []string{p, html.EscapeString(p), strings.Trim(string(j), `"`), url.QueryEscape(p)}
	}
	for i := 0; i+4 <= len(secret); i++ {
		for _, f := range forms(secret[i : i+4]) {
			if strings.Contains(s, f) {
				return f, true
			}
		}
	}
	return "", false
}

// scanMonitoring fetches every asynqmon API answer that lists tasks,
// servers or queues, returning them to be scanned.
func scanMonitoring(t *testing.T, b *testBundle) []string {
	t.Helper()
	var out []string
	get := func(path string) string {
		code, body := b.get(t, path)
		if code != http.StatusOK {
			t.Errorf("GET %s = %d\n%s", path, code, body)
		}
		out = append(out, path+"\n"+body)
		return body
	}
	get("/monitoring/")
	get("/monitoring/api/queues")
	get("/monitoring/api/servers")
	get("/monitoring/api/redis_info")
	get("/monitoring/api/queue_stats")
	get("/monitoring/api/scheduler_entries")
	q := b.ctl.Queues()
	for _, qn := range []string{q.Reset, q.Control} {
		get("/monitoring/api/queues/" + qn)
		for _, state := range []string{"active", "pending", "scheduled", "retry", "archived", "completed"} {
			body := get("/monitoring/api/queues/" + qn + "/" + state + "_tasks?page=1&page_size=100")
			// Every payload is rendered by tasks.Describe: a type name
			// followed by key=value pairs, never raw JSON.
			var res struct {
				Tasks []struct {
					Type    string `json:"type"`
					Payload string `json:"payload"`
				} `json:"tasks"`
			}
			if err := json.Unmarshal([]byte(body), &res); err != nil {
				t.Errorf("%s: %v", qn, err)
			}
			for _, task := range res.Tasks {
				if !strings.HasPrefix(task.Payload, task.Type) || strings.Contains(task.Payload, "{") {
					t.Errorf("asynqmon shows a raw payload for %s: %q", task.Type, task.Payload)
				}
			}
		}
		groups := get("/monitoring/api/queues/" + qn + "/groups")
		var gs struct {
			Groups []struct {
				Group string `json:"group"`
			} `json:"groups"`
		}
		_ = json.Unmarshal([]byte(groups), &gs)
		for _, g := range gs.Groups {
			get("/monitoring/api/queues/" + qn + "/groups/" + url.PathEscape(g.Group) + "/aggregating_tasks")
		}
	}
	return out
}

// sum adds up the samples of a family whose labels include want.
func sum(f *dto.MetricFamily, want map[string]string) float64 {
	total := 0.0
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
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}
