package cvm

import (
	"cmp"
	"context"
	"encoding/base64"
	"time"
	"unicode/utf8"
)

// Limits of the TAT calls.
const (
	// MaxCommandInstances is the most instances one RunCommand takes.
	MaxCommandInstances = 200
	// MaxCommandContent is the longest base64-encoded command content
	// RunCommand takes, in bytes.
	MaxCommandContent = 64 << 10
	// MaxCommandTimeout is the longest command timeout TAT accepts.
	MaxCommandTimeout = 86400 * time.Second
	// CommandTimeoutDefault is TAT's own default command timeout, sent
	// when CommandRequest.Timeout is zero.
	CommandTimeoutDefault = 60 * time.Second
	// MaxAgentInstances is the most instances one AgentStatus call takes.
	MaxAgentInstances = 100
	// MaxOutput is the most command output an InvocationTask keeps.
	MaxOutput = 4 << 10
)

// Command types.
const (
	CommandShell      = "SHELL"
	CommandPowerShell = "POWERSHELL"
)

// Agent states reported by AgentStatus.
const (
	AgentOnline  = "Online"
	AgentOffline = "Offline"
)

// CommandRequest is one command to run on instances through TAT.
type CommandRequest struct {
	// InstanceIDs are the instances to run on: 1..MaxCommandInstances.
	InstanceIDs []string
	// Content is the script as plain text; RunCommand base64-encodes it.
	// Encoded, it may be at most MaxCommandContent bytes. It is stored by
	// the cloud with the invocation: never put a secret in it.
	Content string
	// Type is CommandShell or CommandPowerShell. Defaults to CommandShell.
	Type string
	// WorkingDirectory defaults to the cloud's (/root for SHELL).
	WorkingDirectory string
	// Username to run as; defaults to the cloud's (root, or System).
	Username string
	// Timeout of the command on each instance, rounded up to a whole
	// second, at most MaxCommandTimeout. Defaults to CommandTimeoutDefault.
	Timeout time.Duration
}

// InvocationTask is the run of one command on one instance
// (DescribeInvocationTasks).
type InvocationTask struct {
	InstanceID string
	// Status is the TaskStatus: PENDING, DELIVERING, DELIVER_DELAYED,
	// DELIVER_FAILED, START_FAILED, RUNNING, SUCCESS, FAILED, TIMEOUT,
	// TASK_TIMEOUT, CANCELLING, CANCELLED or TERMINATED.
	Status string
	// ExitCode of the command; meaningful once it ran.
	ExitCode int
	// Output is the end of the command's output, decoded, at most
	// MaxOutput bytes (the end says most about a failure);
	// MessageWithheld if it shows a secret of the call.
	Output string
	// Error is the cloud's ErrorInfo on one line of at most 200 bytes.
	Error string
}

// Done reports whether the task reached a final status.
func (t InvocationTask) Done() bool {
	switch t.Status {
	case "SUCCESS", "FAILED", "TIMEOUT", "TASK_TIMEOUT", "CANCELLED", "TERMINATED", "DELIVER_FAILED", "START_FAILED":
		return true
	}
	return false
}

// Succeeded reports whether the command ran to completion with exit code 0.
func (t InvocationTask) Succeeded() bool { return t.Status == "SUCCESS" && t.ExitCode == 0 }

// RunCommand runs req.Content on req.InstanceIDs (RunCommand, without
// saving the command) and returns the invocation ID to follow with
// InvocationTasks. The agent must be online and the instance RUNNING,
// otherwise the cloud refuses the whole call
// (ResourceUnavailable.AgentStatusNotOnline or InstanceStateNotRunning,
// both Retryable: they clear as a reinstalled instance boots).
//
// Doc: https://cloud.tencent.com/document/api/1340/52676
func (s *Serving) RunCommand(ctx context.Context, req CommandRequest) (invocationID string, err error) {
	const action = "RunCommand"
	params, err := runCommandParams(req)
	if err != nil {
		return "", err
	}
	var out struct {
		Response struct {
			InvocationID string `json:"InvocationId"`
		} `json:"Response"`
	}
	if _, err := s.do(ctx, serviceTAT, action, params, &out); err != nil {
		return "", err
	}
	if out.Response.InvocationID == "" {
		return "", malformed(action, "no InvocationId in the answer")
	}
	return out.Response.InvocationID, nil
}

func runCommandParams(req CommandRequest) (map[string]any, error) {
	const action = "RunCommand"
	if err := checkList(action, "instance IDs", req.InstanceIDs, MaxCommandInstances); err != nil {
		return nil, err
	}
	typ := cmp.Or(req.Type, CommandShell)
	content := base64.StdEncoding.EncodeToString([]byte(req.Content))
	timeout := cmp.Or(req.Timeout, CommandTimeoutDefault)
	switch {
	case req.Content == "":
		return nil, invalid(V3, action, "Content is empty")
	case len(content) > MaxCommandContent:
		return nil, invalid(V3, action, "Content is %d bytes base64-encoded, at most %d", len(content), MaxCommandContent)
	case typ != CommandShell && typ != CommandPowerShell:
		return nil, invalid(V3, action, "Type %q: want %s or %s", req.Type, CommandShell, CommandPowerShell)
	case timeout < 0 || timeout > MaxCommandTimeout:
		return nil, invalid(V3, action, "Timeout %v out of 1s..%v", req.Timeout, MaxCommandTimeout)
	}
	p := map[string]any{
		"Content":     content,
		"InstanceIds": req.InstanceIDs,
		"CommandType": typ,
		// Whole seconds, rounded up so a short timeout never becomes 0.
		"Timeout":     int64((timeout + time.Second - 1) / time.Second),
		"SaveCommand": false,
	}
	if req.WorkingDirectory != "" {
		p["WorkingDirectory"] = req.WorkingDirectory
	}
	if req.Username != "" {
		p["Username"] = req.Username
	}
	return p, nil
}

// InvocationTasks reads the per-instance tasks of an invocation
// (DescribeInvocationTasks filtered by invocation-id, with output), all
// pages of them.
//
// Doc: TAT API 2020-10-28, DescribeInvocationTasks.
func (s *Serving) InvocationTasks(ctx context.Context, invocationID string) ([]InvocationTask, error) {
	const action = "DescribeInvocationTasks"
	const limit = 100 // the API's maximum page
	if invocationID == "" {
		return nil, invalid(V3, action, "invocation ID is empty")
	}
	var res []InvocationTask
	for offset := 0; ; offset += limit {
		var out struct {
			Response struct {
				TotalCount        int `json:"TotalCount"`
				InvocationTaskSet []struct {
					InstanceID string `json:"InstanceId"`
					TaskStatus string `json:"TaskStatus"`
					ErrorInfo  string `json:"ErrorInfo"`
					TaskResult *struct {
						ExitCode int    `json:"ExitCode"`
						Output   string `json:"Output"`
					} `json:"TaskResult"`
				} `json:"InvocationTaskSet"`
			} `json:"Response"`
		}
		params := map[string]any{
			"Filters":    []map[string]any{{"Name": "invocation-id", "Values": []string{invocationID}}},
			"HideOutput": false,
			"Limit":      limit,
			"Offset":     offset,
		}
		cred, err := s.do(ctx, serviceTAT, action, params, &out)
		if err != nil {
			return nil, err
		}
		r := newRedactor(cred)
		for _, t := range out.Response.InvocationTaskSet {
			task := InvocationTask{InstanceID: t.InstanceID, Status: t.TaskStatus, Error: r.clean(t.ErrorInfo)}
			if t.TaskResult != nil {
				task.ExitCode = t.TaskResult.ExitCode
				task.Output = r.output(t.TaskResult.Output)
			}
			res = append(res, task)
		}
		if len(out.Response.InvocationTaskSet) < limit || len(res) >= out.Response.TotalCount {
			return res, nil
		}
	}
}

// output decodes base64 command output and keeps its last MaxOutput bytes,
// starting on a character boundary, unless it shows a secret of the call.
func (r redactor) output(b64 string) string {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "(output is not base64)"
	}
	if len(raw) > MaxOutput {
		raw = raw[len(raw)-MaxOutput:]
		for i := 0; i < utf8.UTFMax && len(raw) > 0 && !utf8.RuneStart(raw[0]); i++ {
			raw = raw[1:]
		}
	}
	out := string(raw)
	if r.leaks(out) {
		return MessageWithheld
	}
	return out
}

// AgentStatus reads the TAT agent state of up to MaxAgentInstances
// instances (DescribeAutomationAgentStatus): AgentOnline or AgentOffline
// by instance ID; no IDs, no call and an empty map. An instance without an agent the cloud knows of is
// absent from the map.
//
// Doc: https://www.tencentcloud.com/document/api/1147/46698
func (s *Serving) AgentStatus(ctx context.Context, instanceIDs []string) (map[string]string, error) {
	const action = "DescribeAutomationAgentStatus"
	if len(instanceIDs) == 0 {
		// No IDs would list the agents of the whole region.
		return map[string]string{}, nil
	}
	if err := checkList(action, "instance IDs", instanceIDs, MaxAgentInstances); err != nil {
		return nil, err
	}
	var out struct {
		Response struct {
			AutomationAgentSet []struct {
				InstanceID  string `json:"InstanceId"`
				AgentStatus string `json:"AgentStatus"`
			} `json:"AutomationAgentSet"`
		} `json:"Response"`
	}
	params := map[string]any{"InstanceIds": instanceIDs, "Limit": MaxAgentInstances}
	if _, err := s.do(ctx, serviceTAT, action, params, &out); err != nil {
		return nil, err
	}
	res := make(map[string]string, len(out.Response.AutomationAgentSet))
	for _, a := range out.Response.AutomationAgentSet {
		res[a.InstanceID] = a.AgentStatus
	}
	return res, nil
}
