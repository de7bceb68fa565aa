package rollout

import "time"

// This file holds what makes an instance "serving again" rather than
// "reinstalled": health checks, hooks around the reset, load-balancer
// drain, alarms that stop the rollout, and rollback. Each is optional; a
// group without them succeeds as soon as its image is verified.
//
// The order around one instance is fixed:
//
//	drain (weight 0, wait DrainTime) → before hooks → reset → image verified
//	→ after hooks → health (HealthyThreshold passes in a row) → weight restored
//	→ succeeded
//
// A before hook that fails with OnFailure "abandon" fails the instance
// without a reset, and its weight is restored. An instance unhealthy at
// Deadline fails and keeps weight 0: traffic never returns to a machine
// that did not prove itself.

// Check kinds.
const (
	// CheckHTTP is an HTTP or HTTPS GET of Check.URL.
	CheckHTTP = "http"
	// CheckTCP is a TCP connect to Check.Address.
	CheckTCP = "tcp"
	// CheckCLB is the CLB's own target health of the instance on
	// Check.Listener (DescribeTargetHealth).
	CheckCLB = "clb"
	// CheckAgent is the TAT agent reporting Online
	// (DescribeAutomationAgentStatus).
	CheckAgent = "tat"
)

// Health is how an instance proves it serves again after its reinstall.
// An instance is healthy when every check passes HealthyThreshold times in
// a row; it fails when it is not healthy Deadline after its image was
// verified.
type Health struct {
	Checks []Check `json:"checks"`
	// InitialDelay is the wait after the image is verified (and after
	// hooks) before the first probe.
	InitialDelay time.Duration `json:"initial_delay,omitempty"`
	// Interval between probes of one instance.
	Interval time.Duration `json:"interval"`
	// Timeout bounds one probe of one check.
	Timeout time.Duration `json:"timeout"`
	// HealthyThreshold is the number of consecutive passing probes needed.
	HealthyThreshold int `json:"healthy_threshold"`
	// Deadline is counted from the image's verification.
	Deadline time.Duration `json:"deadline"`
}

// Check is one health check. Addresses are templates over the instance's
// facts: {instanceId}, {privateIp}, {publicIp}, {zone}, {name}.
type Check struct {
	// Kind is one of CheckHTTP, CheckTCP, CheckCLB, CheckAgent.
	Kind string `json:"kind"`
	// URL (http) is an http:// or https:// template.
	URL string `json:"url,omitempty"`
	// Status lists the accepted HTTP status codes; empty accepts 200-399.
	Status []int `json:"status,omitempty"`
	// Body, when set, must occur in the response body (first 64 KiB).
	Body string `json:"body,omitempty"`
	// Headers are sent with the request. They are stored with the
	// rollout: never put a secret here.
	Headers map[string]string `json:"headers,omitempty"`
	// Address (tcp) is a host:port template.
	Address string `json:"address,omitempty"`
	// Listener (clb) is the listener whose target health is read.
	Listener *Listener `json:"listener,omitempty"`
}

// Listener is a CLB listener and the instance's port on it.
type Listener struct {
	LoadBalancerID string `json:"load_balancer_id"`
	ListenerID     string `json:"listener_id"`
	// LocationID names the forwarding rule of a layer-7 listener; empty
	// for layer 4.
	LocationID string `json:"location_id,omitempty"`
	// Port is the instance's backend port on the listener.
	Port int `json:"port"`
}

// LoadBalancer drains an instance on its listeners before the reset: the
// weight is recorded, set to 0, and DrainTime passes before anything else
// happens. The recorded weight is restored once the instance is healthy,
// or at once when its reset was never called.
type LoadBalancer struct {
	Listeners []Listener    `json:"listeners"`
	DrainTime time.Duration `json:"drain_time"`
}

// Hook failure policies.
const (
	// HookAbandon fails the instance. A failing before hook means no reset.
	HookAbandon = "abandon"
	// HookContinue records the failure and goes on.
	HookContinue = "continue"
)

// Hooks run before and after each reset of a group's instances.
type Hooks struct {
	Before []Hook `json:"before,omitempty"`
	After  []Hook `json:"after,omitempty"`
}

// Hook is one step: a TAT command on the instance, or a webhook that an
// external system completes. Exactly one of Command and Webhook is set.
type Hook struct {
	Name    string       `json:"name"`
	Command *CommandHook `json:"command,omitempty"`
	Webhook *WebhookHook `json:"webhook,omitempty"`
	// Timeout bounds the whole step, waiting included.
	Timeout time.Duration `json:"timeout"`
	// OnFailure is HookAbandon (the default) or HookContinue.
	OnFailure string `json:"on_failure"`
}

// CommandHook runs a command on the instance through TAT (RunCommand).
type CommandHook struct {
	// Content is the script, sent base64-encoded; at most 64 KiB.
	Content string `json:"content"`
	// Type is SHELL (the default) or POWERSHELL.
	Type             string `json:"type,omitempty"`
	WorkingDirectory string `json:"working_directory,omitempty"`
	Username         string `json:"username,omitempty"`
}

// WebhookHook POSTs the instance's facts and a one-time token to URL. A
// 2xx answer completes the step, unless it is 202 Accepted: then the step
// waits, up to the hook's Timeout, for the external system to complete it
// with the token (`fleetreset complete-hook`, or the UI's API).
type WebhookHook struct {
	URL string `json:"url"`
}

// Alarm error policies.
const (
	AlarmErrorPause  = "pause"
	AlarmErrorIgnore = "ignore"
)

// StopWhen lists alarms checked before each wave and every Interval while
// a wave soaks. Any alarm firing stops the rollout as OnBreach says; an
// alarm that cannot be read follows OnError.
type StopWhen struct {
	Prometheus []PromAlarm `json:"prometheus,omitempty"`
	// MonitorPolicies are Tencent Cloud Monitor alarm policy IDs; one in
	// alarm state fires.
	MonitorPolicies []string      `json:"monitor_policies,omitempty"`
	Interval        time.Duration `json:"interval"`
	// OnError is AlarmErrorPause (the default) or AlarmErrorIgnore.
	OnError string `json:"on_error"`
}

// PromAlarm is a Prometheus instant query: any sample in its result fires.
type PromAlarm struct {
	Name string `json:"name"`
	// URL is the server's base URL (http://prometheus:9090); the query
	// goes to URL/api/v1/query.
	URL   string `json:"url"`
	Query string `json:"query"`
}

// Serving reports whether g has anything beyond image verification: a
// drain, hooks or health checks.
func (g Group) Serving() bool {
	return g.Health != nil || g.LoadBalancer != nil || len(g.Hooks.Before) > 0 || len(g.Hooks.After) > 0
}
