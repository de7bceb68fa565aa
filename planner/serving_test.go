package planner

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetreset/fleetreset/rollout"
)

// servingBase is a plan whose group ends at line 8: servingPlan puts a
// group snippet (indented under the group) from line 9, then a top-level
// snippet.
const servingBase = `version: 1
name: serving
region: ap-guangzhou
password: {env: PW}
waves: [1, 100%]
groups:
  - name: web
    instances: [ins-aaaa0001, ins-aaaa0002]
`

// servingPlan returns servingBase with group appended to the group (each
// line indented by four spaces) and then top at the top level.
func servingPlan(group, top string) string {
	var b strings.Builder
	b.WriteString(servingBase)
	for _, l := range strings.Split(strings.TrimSuffix(group, "\n"), "\n") {
		if l != "" {
			b.WriteString("    " + l + "\n")
		}
	}
	b.WriteString(top)
	return b.String()
}

func TestParseServing(t *testing.T) {
	text := servingPlan("", `health:
  checks:
    - http: "https://{privateIp}:8443/healthz?probe={instanceId}"
      status: [200, 204]
      body: ok
      headers: {Host: web.example.com, X-Probe: fleetreset}
    - {tcp: "{publicIp}:22"}
    - {clb: {loadBalancer: lb-abcd1234, listener: lbl-abcd1234, location: loc-abcd1234, port: 80}}
    - {tat: online}
  initialDelay: 10s
  interval: 4s
  timeout: 1s
  healthyThreshold: 2
  deadline: 20m
hooks:
  before:
    - {name: stop-app, command: "systemctl stop app", workingDirectory: /opt/app, username: app, timeout: 2m}
    - {name: tell-cmdb, webhook: "https://cmdb.example.com/hook", timeout: 30m, onFailure: continue}
  after:
    - {name: start-app, command: "systemctl start app", type: shell}
loadBalancer:
  listeners:
    - {loadBalancer: lb-abcd1234, listener: lbl-abcd1234, port: 80}
    - {loadBalancer: lb-abcd1234, listener: lbl-efgh5678, location: loc-abcd1234, port: 8080}
  drainTime: 45s
stopWhen:
  prometheus:
    - {name: HighErrorRate, url: "http://prometheus:9090/", query: 'job:errors:ratio5m > 0.05'}
  monitorPolicies: [policy-4x8mrbzm, policy-abcd1234]
  interval: 1m
  onError: ignore
onBreach: rollback
`)
	plan := mustParse(t, text, Options{})
	lbl := rollout.Listener{LoadBalancerID: "lb-abcd1234", ListenerID: "lbl-abcd1234", LocationID: "loc-abcd1234", Port: 80}
	want := rollout.Group{
		Name: "web", OS: "linux", Password: &rollout.SecretRef{Env: "PW"},
		Health: &rollout.Health{
			Checks: []rollout.Check{
				{Kind: "http", URL: "https://{privateIp}:8443/healthz?probe={instanceId}", Status: []int{200, 204}, Body: "ok",
					Headers: map[string]string{"Host": "web.example.com", "X-Probe": "fleetreset"}},
				{Kind: "tcp", Address: "{publicIp}:22"},
				{Kind: "clb", Listener: &lbl},
				{Kind: "tat"},
			},
			InitialDelay: 10 * time.Second, Interval: 4 * time.Second, Timeout: time.Second,
			HealthyThreshold: 2, Deadline: 20 * time.Minute,
		},
		Hooks: rollout.Hooks{
			Before: []rollout.Hook{
				{Name: "stop-app", Command: &rollout.CommandHook{Content: "systemctl stop app", Type: "SHELL", WorkingDirectory: "/opt/app", Username: "app"},
					Timeout: 2 * time.Minute, OnFailure: "abandon"},
				{Name: "tell-cmdb", Webhook: &rollout.WebhookHook{URL: "https://cmdb.example.com/hook"}, Timeout: 30 * time.Minute, OnFailure: "continue"},
			},
			After: []rollout.Hook{
				{Name: "start-app", Command: &rollout.CommandHook{Content: "systemctl start app", Type: "SHELL"}, Timeout: 5 * time.Minute, OnFailure: "abandon"},
			},
		},
		LoadBalancer: &rollout.LoadBalancer{
			Listeners: []rollout.Listener{
				{LoadBalancerID: "lb-abcd1234", ListenerID: "lbl-abcd1234", Port: 80},
				{LoadBalancerID: "lb-abcd1234", ListenerID: "lbl-efgh5678", LocationID: "loc-abcd1234", Port: 8080},
			},
			DrainTime: 45 * time.Second,
		},
	}
	if diff := cmp.Diff(want, plan.Spec.Groups[0]); diff != "" {
		t.Errorf("Groups[0] mismatch (-want +got):\n%s", diff)
	}
	wantStop := &rollout.StopWhen{
		Prometheus:      []rollout.PromAlarm{{Name: "HighErrorRate", URL: "http://prometheus:9090", Query: "job:errors:ratio5m > 0.05"}},
		MonitorPolicies: []string{"policy-4x8mrbzm", "policy-abcd1234"},
		Interval:        time.Minute,
		OnError:         "ignore",
	}
	if diff := cmp.Diff(wantStop, plan.Spec.StopWhen); diff != "" {
		t.Errorf("StopWhen mismatch (-want +got):\n%s", diff)
	}
	if plan.Spec.OnBreach != "rollback" {
		t.Errorf("OnBreach = %q; want rollback", plan.Spec.OnBreach)
	}
}

func TestServingDefaults(t *testing.T) {
	text := servingPlan("", `health: {checks: [{tcp: "{privateIp}:22"}]}
hooks: {before: [{name: stop, command: "systemctl stop app"}]}
loadBalancer: {listeners: [{loadBalancer: lb-abcd1234, listener: lbl-abcd1234, port: 80}]}
stopWhen: {monitorPolicies: [policy-abcd1234]}
`)
	plan := mustParse(t, text, Options{})
	g := plan.Spec.Groups[0]
	wantHealth := &rollout.Health{
		Checks:       []rollout.Check{{Kind: "tcp", Address: "{privateIp}:22"}},
		InitialDelay: 0, Interval: 5 * time.Second, Timeout: 2 * time.Second, HealthyThreshold: 3, Deadline: 10 * time.Minute,
	}
	if diff := cmp.Diff(wantHealth, g.Health); diff != "" {
		t.Errorf("Health mismatch (-want +got):\n%s", diff)
	}
	wantHook := rollout.Hook{Name: "stop", Command: &rollout.CommandHook{Content: "systemctl stop app", Type: "SHELL"}, Timeout: 5 * time.Minute, OnFailure: "abandon"}
	if diff := cmp.Diff(rollout.Hooks{Before: []rollout.Hook{wantHook}}, g.Hooks); diff != "" {
		t.Errorf("Hooks mismatch (-want +got):\n%s", diff)
	}
	if g.LoadBalancer == nil || g.LoadBalancer.DrainTime != 30*time.Second {
		t.Errorf("LoadBalancer = %+v; want drainTime 30s", g.LoadBalancer)
	}
	wantStop := &rollout.StopWhen{MonitorPolicies: []string{"policy-abcd1234"}, Interval: 30 * time.Second, OnError: "pause"}
	if diff := cmp.Diff(wantStop, plan.Spec.StopWhen); diff != "" {
		t.Errorf("StopWhen mismatch (-want +got):\n%s", diff)
	}
	if plan.Spec.OnBreach != "pause" {
		t.Errorf("OnBreach = %q; want pause", plan.Spec.OnBreach)
	}
}

// TestServingInheritance: each of health, hooks and loadBalancer comes
// from the top level as a whole unless the group sets it; `none` drops
// it; a command hook's type defaults by the group's OS.
func TestServingInheritance(t *testing.T) {
	text := `version: 1
name: inherit
region: ap-guangzhou
password: {env: PW}
health: {checks: [{tcp: "{privateIp}:80"}], interval: 10s, deadline: 5m}
hooks: {before: [{name: stop, command: "stop-app"}]}
loadBalancer: {listeners: [{loadBalancer: lb-abcd1234, listener: lbl-abcd1234, port: 80}], drainTime: 10s}
groups:
  - name: web
    instances: [ins-aaaa0001]
  - name: api
    instances: [ins-aaaa0002]
    health: {checks: [{http: "http://{privateIp}:8080/healthz"}]}
  - name: win
    os: windows
    instances: [ins-aaaa0003]
    loadBalancer: none
  - name: batch
    instances: [ins-aaaa0004]
    health: none
    hooks: none
  - name: quiet
    instances: [ins-aaaa0005]
    hooks: {}
waves: [100%]
`
	plan := mustParse(t, text, Options{})
	gs := plan.Spec.Groups
	tests := []struct {
		group       int
		healthKind  string // "" for none
		interval    time.Duration
		hookType    string // "" for no hooks
		drainTime   time.Duration
		drainListed bool
	}{
		{0, "tcp", 10 * time.Second, "SHELL", 10 * time.Second, true},
		// The group's health replaces the top level's whole: interval
		// and deadline are the defaults again, not the top level's.
		{1, "http", 5 * time.Second, "SHELL", 10 * time.Second, true},
		{2, "tcp", 10 * time.Second, "POWERSHELL", 0, false},
		{3, "", 0, "", 10 * time.Second, true},
		{4, "tcp", 10 * time.Second, "", 10 * time.Second, true},
	}
	for _, tt := range tests {
		g := gs[tt.group]
		t.Run(g.Name, func(t *testing.T) {
			switch {
			case tt.healthKind == "" && g.Health != nil:
				t.Errorf("Health = %+v; want none", g.Health)
			case tt.healthKind != "" && (g.Health == nil || g.Health.Checks[0].Kind != tt.healthKind || g.Health.Interval != tt.interval):
				t.Errorf("Health = %+v; want a %s check every %v", g.Health, tt.healthKind, tt.interval)
			}
			switch {
			case tt.hookType == "" && len(g.Hooks.Before) > 0:
				t.Errorf("Hooks = %+v; want none", g.Hooks)
			case tt.hookType != "" && (len(g.Hooks.Before) != 1 || g.Hooks.Before[0].Command.Type != tt.hookType):
				t.Errorf("Hooks = %+v; want one %s command", g.Hooks, tt.hookType)
			}
			if got := g.LoadBalancer != nil; got != tt.drainListed || (got && g.LoadBalancer.DrainTime != tt.drainTime) {
				t.Errorf("LoadBalancer = %+v; want drained %v for %v", g.LoadBalancer, tt.drainListed, tt.drainTime)
			}
		})
	}
	// Groups inheriting one value get their own copies.
	gs[0].Health.Checks[0].Address = "changed"
	gs[0].LoadBalancer.Listeners[0].Port = 1
	gs[0].Hooks.Before[0].Command.Content = "changed"
	if gs[2].Health.Checks[0].Address == "changed" || gs[1].LoadBalancer.Listeners[0].Port == 1 || gs[1].Hooks.Before[0].Command.Content == "changed" {
		t.Error("groups that inherit the same top-level value share memory")
	}
}

// TestServingErrors: every validation of the new fields, with the file,
// line and field it names.
func TestServingErrors(t *testing.T) {
	big := strings.Repeat("a", 49153) // 65540 bytes base64-encoded
	tests := []struct {
		name       string
		group, top string
		want       string // a line of the errors
	}{
		// Health checks.
		{"httpScheme", "", "health: {checks: [{http: \"ftp://{privateIp}/x\"}]}\n",
			`plans/test.yaml:9: health.checks[0].http: "ftp://{privateIp}/x" is not an http:// or https:// URL with a host`},
		{"httpNoHost", "", "health: {checks: [{http: \"http:///healthz\"}]}\n",
			`:9: health.checks[0].http: "http:///healthz" is not an http:// or https:// URL with a host`},
		{"httpCredentials", "", "health: {checks: [{http: \"http://u:p@{privateIp}/\"}]}\n",
			`:9: health.checks[0].http: must not contain credentials`},
		{"httpSecretQuery", "", "health: {checks: [{http: \"http://{privateIp}/h?access_token=x\"}]}\n",
			`:9: health.checks[0].http: query parameter "access_token" looks like a secret`},
		{"placeholderCase", "", "health: {checks: [{http: \"http://{privateIP}:8080/\"}]}\n",
			`:9: health.checks[0].http: unknown placeholder {privateIP} (did you mean {privateIp}?)`},
		{"placeholderUnknown", "", "health: {checks: [{http: \"http://{hostname}:8080/\"}]}\n",
			`:9: health.checks[0].http: unknown placeholder {hostname}: known are {instanceId}, {name}, {privateIp}, {publicIp}, {zone}`},
		{"placeholderUnclosed", "", "health: {checks: [{tcp: \"{privateIp:22\"}]}\n",
			`:9: health.checks[0].tcp: has a { without a }`},
		{"placeholderStrayClose", "", "health: {checks: [{tcp: \"privateIp}:22\"}]}\n",
			`:9: health.checks[0].tcp: has a } without a {`},
		{"tcpNoPort", "", "health: {checks: [{tcp: \"{privateIp}\"}]}\n",
			`:9: health.checks[0].tcp: "{privateIp}" is not HOST:PORT`},
		{"tcpNoHost", "", "health: {checks: [{tcp: \":22\"}]}\n",
			`:9: health.checks[0].tcp: ":22" is not HOST:PORT`},
		{"tcpPortZero", "", "health: {checks: [{tcp: \"{privateIp}:0\"}]}\n",
			`:9: health.checks[0].tcp: "{privateIp}:0": port "0" is not 1-65535`},
		{"tcpPortHigh", "", "health: {checks: [{tcp: \"{zone}:65536\"}]}\n",
			`:9: health.checks[0].tcp: "{zone}:65536": port "65536" is not 1-65535`},
		{"clbPort", "", "health: {checks: [{clb: {loadBalancer: lb-abcd1234, listener: lbl-abcd1234, port: 0}}]}\n",
			`:9: health.checks[0].clb.port: port 0 is not 1-65535`},
		{"clbPortMissing", "", "health: {checks: [{clb: {loadBalancer: lb-abcd1234, listener: lbl-abcd1234}}]}\n",
			`:9: health.checks[0].clb.port: is required`},
		{"clbIDs", "", "health: {checks: [{clb: {loadBalancer: lb-ABCD1234, listener: lb-abcd1234, location: loc-abc, port: 80}}]}\n",
			`:9: health.checks[0].clb.loadBalancer: "lb-ABCD1234" is not a load balancer id: want lb- and 8 lower-case letters or digits`},
		{"clbListenerID", "", "health: {checks: [{clb: {loadBalancer: lb-abcd1234, listener: lb-abcd1234, port: 80}}]}\n",
			`:9: health.checks[0].clb.listener: "lb-abcd1234" is not a listener id: want lbl- and 8`},
		{"clbLocationID", "", "health: {checks: [{clb: {loadBalancer: lb-abcd1234, listener: lbl-abcd1234, location: loc-abc, port: 80}}]}\n",
			`:9: health.checks[0].clb.location: "loc-abc" is not a forwarding rule id: want loc- and 8`},
		{"tatValue", "", "health: {checks: [{tat: running}]}\n",
			`:9: health.checks[0].tat: "running": want online`},
		{"noKind", "", "health: {checks: [{status: [200]}]}\n",
			`:9: health.checks[0]: give the check's kind: http, tcp, clb or tat`},
		{"twoKinds", "", "health: {checks: [{http: \"http://{privateIp}/\", tcp: \"{privateIp}:22\"}]}\n",
			`:9: health.checks[0]: give one kind per check, not http and tcp`},
		{"statusOnTCP", "", "health: {checks: [{tcp: \"{privateIp}:22\", status: [200]}]}\n",
			`:9: health.checks[0].status: applies to http checks only, and this is a tcp check`},
		{"statusRange", "", "health: {checks: [{http: \"http://{privateIp}/\", status: [200, 99, 600]}]}\n",
			`:9: health.checks[0].status[1]: 99 is not an HTTP status code (100-599)`},
		{"statusEmpty", "", "health: {checks: [{http: \"http://{privateIp}/\", status: []}]}\n",
			`:9: health.checks[0].status: is empty`},
		{"statusTwice", "", "health: {checks: [{http: \"http://{privateIp}/\", status: [200, 200]}]}\n",
			`:9: health.checks[0].status[1]: 200 is listed twice`},
		{"bodyEmpty", "", "health: {checks: [{http: \"http://{privateIp}/\", body: \"\"}]}\n",
			`:9: health.checks[0].body: is empty`},
		{"headerAuthorization", "", "health: {checks: [{http: \"http://{privateIp}/\", headers: {Authorization: Bearer-Sup3r-Secret-Value}}]}\n",
			`:9: health.checks[0].headers.Authorization: header Authorization looks like it carries a secret, and the plan is stored with the rollout in Redis`},
		{"headerCookie", "", "health: {checks: [{http: \"http://{privateIp}/\", headers: {cookie: Sup3r-Secret-Value}}]}\n",
			`:9: health.checks[0].headers.cookie: header cookie looks like it carries a secret`},
		{"headerToken", "", "health: {checks: [{http: \"http://{privateIp}/\", headers: {X-Auth-Token: Sup3r-Secret-Value}}]}\n",
			`:9: health.checks[0].headers.X-Auth-Token: header X-Auth-Token looks like it carries a secret`},
		{"headerSecret", "", "health: {checks: [{http: \"http://{privateIp}/\", headers: {X-Client-Secret: Sup3r-Secret-Value}}]}\n",
			`:9: health.checks[0].headers.X-Client-Secret: header X-Client-Secret looks like`},
		{"headerPassword", "", "health: {checks: [{http: \"http://{privateIp}/\", headers: {X-Password: Sup3r-Secret-Value}}]}\n",
			`:9: health.checks[0].headers.X-Password: header X-Password looks like`},
		{"headerName", "", "health: {checks: [{http: \"http://{privateIp}/\", headers: {\"Bad Header\": x}}]}\n",
			`:9: health.checks[0].headers.Bad Header: "Bad Header" is not an HTTP header name`},
		{"headerTwice", "", "health: {checks: [{http: \"http://{privateIp}/\", headers: {Host: a, host: b}}]}\n",
			`:9: health.checks[0].headers.host: header host is given twice (first at line 9; names ignore case)`},
		{"checksMissing", "", "health: {interval: 5s}\n",
			`:9: health.checks: is required`},
		{"checksEmpty", "", "health: {checks: []}\n",
			`:9: health.checks: is empty`},
		{"healthUnknownKey", "", "health: {check: [{tat: online}]}\n",
			`:9: health.check: unknown field (did you mean "checks"?)`},
		{"threshold", "", "health:\n  checks: [{tat: online}]\n  healthyThreshold: 0\n",
			`:11: health.healthyThreshold: must be at least 1`},
		{"timeoutNotBelowInterval", "", "health:\n  checks: [{tat: online}]\n  interval: 2s\n  timeout: 2s\n",
			`:12: health.timeout: health timeout 2s must be less than its interval 2s`},
		{"defaultTimeoutAboveInterval", "", "health:\n  checks: [{tat: online}]\n  interval: 1s\n",
			`:11: health.interval: health timeout 2s must be less than its interval 1s`},
		{"deadlineNotAfterDelay", "", "health:\n  checks: [{tat: online}]\n  initialDelay: 10m\n",
			`:11: health.initialDelay: health deadline 10m0s must be more than initialDelay 10m0s`},
		{"deadlineTooShort", "", "health:\n  checks: [{tat: online}]\n  healthyThreshold: 10\n  deadline: 30s\n",
			`:12: health.deadline: health deadline 30s is too short: 10 passing probes 5s apart after initialDelay 0s take 45s`},
		{"durationUnit", "", "health:\n  checks: [{tat: online}]\n  interval: 5\n",
			`:11: health.interval: "5" has no unit`},
		{"topLevelNone", "", "health: none\n",
			`:9: health: none is for a group that must not inherit the top level's health; at the top level, leave health out`},

		// Hooks.
		{"hookEmptyCommand", "", "hooks: {before: [{name: stop, command: \"  \"}]}\n",
			`:9: hooks.before[0].command: is empty`},
		{"hookBigCommand", "", "hooks: {before: [{name: stop, command: " + big + "}]}\n",
			`:9: hooks.before[0].command: is 49153 bytes, 65540 base64-encoded; TAT takes at most 65536 (64 KiB) encoded`},
		{"hookTimeoutShort", "", "hooks: {before: [{name: stop, command: x, timeout: 500ms}]}\n",
			`:9: hooks.before[0].timeout: 500ms is not between 1s and 24h`},
		{"hookTimeoutLong", "", "hooks: {after: [{name: tell, webhook: \"https://x.example.com/\", timeout: 25h}]}\n",
			`:9: hooks.after[0].timeout: 25h0m0s is not between 1s and 24h`},
		{"hookTimeoutFraction", "", "hooks: {before: [{name: stop, command: x, timeout: 1500ms}]}\n",
			`:9: hooks.before[0].timeout: 1.5s is not whole seconds, which TAT needs`},
		{"hookNamesBefore", "", "hooks:\n  before:\n    - {name: stop, command: x}\n    - {name: stop, command: y}\n",
			`:12: hooks.before[1].name: hook "stop" is defined twice (first at line 11)`},
		{"hookNamesAcross", "", "hooks:\n  before: [{name: stop, command: x}]\n  after: [{name: stop, command: y}]\n",
			`:11: hooks.after[0].name: hook "stop" is defined twice (first at line 10); names are unique across before and after`},
		{"hookNameMissing", "", "hooks: {before: [{command: x}]}\n",
			`:9: hooks.before[0].name: is required`},
		{"hookNameFormat", "", "hooks: {before: [{name: Stop_App, command: x}]}\n",
			`:9: hooks.before[0].name: "Stop_App" is not a valid hook name`},
		{"hookBoth", "", "hooks: {before: [{name: x, command: x, webhook: \"https://x.example.com/\"}]}\n",
			`:9: hooks.before[0]: give command or webhook, not both`},
		{"hookNeither", "", "hooks: {before: [{name: x}]}\n",
			`:9: hooks.before[0]: give command (run on the instance through TAT) or webhook`},
		{"hookTypeOnWebhook", "", "hooks: {before: [{name: x, webhook: \"https://x.example.com/\", type: shell}]}\n",
			`:9: hooks.before[0].type: applies to command hooks only`},
		{"hookType", "", "hooks: {before: [{name: x, command: x, type: bat}]}\n",
			`:9: hooks.before[0].type: "bat": want shell (Linux) or powershell (Windows)`},
		{"hookOnFailure", "", "hooks: {before: [{name: x, command: x, onFailure: ignore}]}\n",
			`:9: hooks.before[0].onFailure: "ignore": want abandon`},
		{"hookWebhookScheme", "", "hooks: {after: [{name: x, webhook: \"ftp://x.example.com/\"}]}\n",
			`:9: hooks.after[0].webhook: "ftp://x.example.com/" is not an http:// or https:// URL with a host`},
		{"hookWebhookCredentials", "", "hooks: {after: [{name: x, webhook: \"https://u:p@x.example.com/\"}]}\n",
			`:9: hooks.after[0].webhook: must not contain credentials`},
		{"hookEmptyList", "", "hooks: {before: []}\n",
			`:9: hooks.before: is empty`},
		{"hookUnknownKey", "", "hooks: {befor: []}\n",
			`:9: hooks.befor: unknown field (did you mean "before"?)`},
		{"shellOnWindows", "os: windows\nhooks: {before: [{name: x, command: x, type: shell}]}\n", "",
			`:10: groups[0].hooks.before[0].type: hook x is a shell command, and group web runs windows: use powershell`},
		{"powershellOnLinux", "", "hooks: {before: [{name: x, command: x, type: powershell}]}\n",
			`:9: hooks.before[0].type: hook x is a powershell command, and group web runs linux: use shell`},
		{"workingDirectoryEmpty", "", "hooks: {before: [{name: x, command: x, workingDirectory: \"\"}]}\n",
			`:9: hooks.before[0].workingDirectory: must be one non-empty line`},

		// Load balancer.
		{"listenersMissing", "", "loadBalancer: {drainTime: 30s}\n",
			`:9: loadBalancer.listeners: is required`},
		{"listenersEmpty", "", "loadBalancer: {listeners: []}\n",
			`:9: loadBalancer.listeners: is empty`},
		{"listenerTwice", "", "loadBalancer:\n  listeners:\n    - {loadBalancer: lb-abcd1234, listener: lbl-abcd1234, port: 80}\n    - {loadBalancer: lb-abcd1234, listener: lbl-abcd1234, port: 80}\n",
			`:12: loadBalancer.listeners[1]: listener lb-abcd1234/lbl-abcd1234 port 80 is listed twice (first at line 11)`},
		{"listenerPort", "loadBalancer: {listeners: [{loadBalancer: lb-abcd1234, listener: lbl-abcd1234, port: 65536}]}\n", "",
			`:9: groups[0].loadBalancer.listeners[0].port: port 65536 is not 1-65535`},
		{"drainTimeNegative", "", "loadBalancer: {listeners: [{loadBalancer: lb-abcd1234, listener: lbl-abcd1234, port: 80}], drainTime: -1s}\n",
			`:9: loadBalancer.drainTime: must not be negative`},

		// API v2: TAT and CLB are API 3.0 services.
		{"v2Tat", "", "api: v2\nhealth: {checks: [{tat: online}]}\n",
			`:10: health.checks[0].tat: a tat check needs TAT (the automation agent), an API 3.0 service, and this plan uses api v2; use api: v3`},
		{"v2Clb", "", "api: v2\nhealth: {checks: [{clb: {loadBalancer: lb-abcd1234, listener: lbl-abcd1234, port: 80}}]}\n",
			`:10: health.checks[0].clb: a clb check needs CLB, an API 3.0 service, and this plan uses api v2`},
		{"v2Command", "", "api: v2\nhooks: {before: [{name: x, command: x}]}\n",
			`:10: hooks.before[0].command: a command hook needs TAT (the automation agent), an API 3.0 service, and this plan uses api v2`},
		{"v2LoadBalancer", "", "api: v2\nloadBalancer: {listeners: [{loadBalancer: lb-abcd1234, listener: lbl-abcd1234, port: 80}]}\n",
			`:10: loadBalancer: draining (loadBalancer) needs CLB, an API 3.0 service, and this plan uses api v2`},

		// stopWhen and onBreach.
		{"stopWhenEmpty", "", "stopWhen: {interval: 30s}\n",
			`:9: stopWhen: is empty: give prometheus, monitorPolicies or both`},
		{"promURL", "", "stopWhen: {prometheus: [{name: A, url: \"ftp://prom:9090\", query: up == 0}]}\n",
			`:9: stopWhen.prometheus[0].url: "ftp://prom:9090" is not an http:// or https:// URL with a host`},
		{"promURLQuery", "", "stopWhen: {prometheus: [{name: A, url: \"http://prom:9090/api/v1/query?query=up\", query: up == 0}]}\n",
			`:9: stopWhen.prometheus[0].url: must not have a query or fragment`},
		{"promURLPath", "", "stopWhen: {prometheus: [{name: A, url: \"http://prom:9090/api/v1/query\", query: up == 0}]}\n",
			`:9: stopWhen.prometheus[0].url: give the base URL, without /api/v1/query`},
		{"promQueryEmpty", "", "stopWhen: {prometheus: [{name: A, url: \"http://prom:9090\", query: \" \"}]}\n",
			`:9: stopWhen.prometheus[0].query: is empty`},
		{"promQueryMissing", "", "stopWhen: {prometheus: [{name: A, url: \"http://prom:9090\"}]}\n",
			`:9: stopWhen.prometheus[0].query: is required`},
		{"promNameTwice", "", "stopWhen:\n  prometheus:\n    - {name: A, url: \"http://prom:9090\", query: x}\n    - {name: A, url: \"http://prom:9090\", query: y}\n",
			`:12: stopWhen.prometheus[1].name: alarm A is defined twice (first at line 11)`},
		{"policyID", "", "stopWhen: {monitorPolicies: [policy-abcd1234, pol-abcd1234]}\n",
			`:9: stopWhen.monitorPolicies[1]: "pol-abcd1234" is not an alarm policy id`},
		{"policyTwice", "", "stopWhen: {monitorPolicies: [policy-abcd1234, policy-abcd1234]}\n",
			`:9: stopWhen.monitorPolicies[1]: policy policy-abcd1234 is listed twice`},
		{"alarmInterval", "", "stopWhen: {monitorPolicies: [policy-abcd1234], interval: 500ms}\n",
			`:9: stopWhen.interval: 500ms is less than 1s`},
		{"alarmOnError", "", "stopWhen: {monitorPolicies: [policy-abcd1234], onError: abort}\n",
			`:9: stopWhen.onError: "abort": want pause`},
		{"stopWhenInGroup", "stopWhen: {monitorPolicies: [policy-abcd1234]}\n", "",
			`:9: groups[0].stopWhen: unknown field`},
		{"onBreach", "", "onBreach: revert\n",
			`:9: onBreach: "revert": want pause (the default: stop starting instances, wait for a human), abort, or rollback`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("plans/test.yaml", []byte(servingPlan(tt.group, tt.top)), Options{})
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse = %v; want Errors", err)
			}
			found := false
			for _, e := range es {
				if line := e.Error(); strings.Contains(line, tt.want) && strings.HasPrefix(line, "plans/test.yaml:") {
					found = true
				}
			}
			if !found {
				t.Errorf("errors do not contain %q:\n%v", tt.want, err)
			}
			if strings.Contains(err.Error(), "Sup3r-Secret-Value") {
				t.Errorf("errors echo a header value:\n%v", err)
			}
		})
	}
}

// TestServingV2Allowed: webhooks and http/tcp checks need no API 3.0
// service, so a v2 plan may use them.
func TestServingV2Allowed(t *testing.T) {
	text := servingPlan("image: {type: 2, id: img-abcd1234}\n", `api: v2
health: {checks: [{http: "http://{privateIp}/healthz"}, {tcp: "{privateIp}:22"}]}
hooks: {after: [{name: tell, webhook: "https://cmdb.example.com/x"}]}
`)
	plan := mustParse(t, text, Options{})
	if g := plan.Spec.Groups[0]; g.Health == nil || len(g.Hooks.After) != 1 {
		t.Errorf("Groups[0] = %+v; want health and an after hook", g)
	}
}

// TestServingHash: the new fields are part of the plan's identity, and a
// plan without them hashes as it did before them (no new JSON keys).
func TestServingHash(t *testing.T) {
	plain := mustParse(t, minimal, Options{})
	data, err := json.Marshal(plain.Spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"health", "hooks", "load_balancer", "stop_when", "rollback_of"} {
		if strings.Contains(string(data), `"`+key+`"`) {
			t.Errorf("a plan without %s marshals it: %s", key, data)
		}
	}
	base := servingPlan("", "health: {checks: [{http: \"http://{privateIp}/\", headers: {A: '1', B: '2', C: '3', D: '4'}}]}\n")
	first := mustParse(t, base, Options{}).Spec.PlanHash
	for range 20 { // map order must not leak into the hash
		if h := mustParse(t, base, Options{}).Spec.PlanHash; h != first {
			t.Fatalf("the same plan hashes %s and %s", first, h)
		}
	}
	for _, changed := range []string{
		strings.Replace(base, "http://{privateIp}/", "http://{privateIp}:8080/", 1),
		strings.Replace(base, "D: '4'", "D: '5'", 1),
		base + "hooks: {before: [{name: x, command: x}]}\n",
		base + "loadBalancer: {listeners: [{loadBalancer: lb-abcd1234, listener: lbl-abcd1234, port: 80}]}\n",
		base + "stopWhen: {monitorPolicies: [policy-abcd1234]}\n",
		base + "onBreach: rollback\n",
	} {
		if h := mustParse(t, changed, Options{}).Spec.PlanHash; h == first {
			t.Errorf("a changed plan hashes the same:\n%s", changed)
		}
	}
}

func TestExpandSample(t *testing.T) {
	tests := []struct {
		in, want, problem string
	}{
		{"http://{privateIp}:8080/{instanceId}", "http://10.0.0.1:8080/ins-00000000", ""},
		{"{publicIp}:{zone}{name}", "203.0.113.1:ap-guangzhou-3web-1", ""},
		{"no placeholders", "no placeholders", ""},
		{"{}", "", "unknown placeholder {}: known are {instanceId}, {name}, {privateIp}, {publicIp}, {zone}"},
		{"{zone", "", "has a { without a }"},
		{"zone}", "", "has a } without a {"},
		{"{instanceID}", "", "unknown placeholder {instanceID} (did you mean {instanceId}?)"},
	}
	for _, tt := range tests {
		got, problem := expandSample(tt.in)
		if got != tt.want || problem != tt.problem {
			t.Errorf("expandSample(%q) = %q, %q; want %q, %q", tt.in, got, problem, tt.want, tt.problem)
		}
	}
}
