package cvmsim

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"
)

type invocationTasksAnswer struct {
	TotalCount        int
	InvocationTaskSet []struct {
		InvocationId, InvocationTaskId, CommandId, InstanceId, TaskStatus string
		TaskResult                                                        struct {
			ExitCode                   int
			Output                     string
			ExecStartTime, ExecEndTime string
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// runCmd runs script on ids and returns the InvocationId.
func runCmd(t *testing.T, b *testBundle, script string, timeout int, ids ...string) string {
	t.Helper()
	var r struct{ CommandId, InvocationId string }
	b.c.mustSvc("tat", "RunCommand", map[string]any{"Content": b64(script), "InstanceIds": ids, "CommandType": "SHELL", "Timeout": timeout, "Username": "root", "WorkingDirectory": "/root", "SaveCommand": false}, &r)
	if !strings.HasPrefix(r.CommandId, "cmd-") || !strings.HasPrefix(r.InvocationId, "inv-") {
		t.Fatalf("RunCommand = %+v", r)
	}
	return r.InvocationId
}

// tasks returns instance ID -> status, exit code and decoded output.
func tasks(t *testing.T, b *testBundle, inv string, hide *bool) map[string]string {
	t.Helper()
	params := map[string]any{"Filters": []map[string]any{{"Name": "invocation-id", "Values": []string{inv}}}}
	if hide != nil {
		params["HideOutput"] = *hide
	}
	var a invocationTasksAnswer
	b.c.mustSvc("tat", "DescribeInvocationTasks", params, &a)
	out := map[string]string{}
	for _, tk := range a.InvocationTaskSet {
		o, err := base64.StdEncoding.DecodeString(tk.TaskResult.Output)
		if err != nil || tk.InvocationId != inv || !strings.HasPrefix(tk.InvocationTaskId, "invt-") {
			t.Fatalf("task %+v", tk)
		}
		out[tk.InstanceId] = tk.TaskStatus + " " + strconv.Itoa(tk.TaskResult.ExitCode) + " " + string(o)
	}
	if a.TotalCount != len(out) {
		t.Fatalf("TotalCount %d, %d tasks", a.TotalCount, len(out))
	}
	return out
}

func TestRunCommand(t *testing.T) {
	b := setup(t, Config{Faults: Faults{CommandFailIDs: []string{linuxB.ID}}}, linuxA, linuxB)
	show := false
	ok := runCmd(t, b, "#!/bin/sh\necho hi\n", 60, linuxA.ID, linuxB.ID)
	fail := runCmd(t, b, "set -e\n  # sim: fail  \n", 60, linuxA.ID)
	hang := runCmd(t, b, "# sim: hang\nsleep 1000\n", 5, linuxA.ID)
	if got := tasks(t, b, ok, nil); got[linuxA.ID] != "RUNNING 0 " || got[linuxB.ID] != "RUNNING 0 " {
		t.Fatalf("at once: %v; want RUNNING", got)
	}
	b.clk.Advance(CommandDurationDefault)
	if got := tasks(t, b, ok, nil); got[linuxA.ID] != "SUCCESS 0 " || got[linuxB.ID] != "FAILED 1 " {
		t.Fatalf("hidden output: %v; want SUCCESS for A, FAILED for B (CommandFailIDs), no output", got)
	}
	if got := tasks(t, b, ok, &show); got[linuxA.ID] != "SUCCESS 0 ok" {
		t.Fatalf("HideOutput false: %v", got)
	}
	if got := tasks(t, b, fail, &show); got[linuxA.ID] != "FAILED 1 simulated failure" {
		t.Fatalf("# sim: fail: %v", got)
	}
	if got := tasks(t, b, hang, nil); got[linuxA.ID] != "RUNNING 0 " {
		t.Fatalf("# sim: hang before Timeout: %v", got)
	}
	b.clk.Advance(5 * time.Second)
	if got := tasks(t, b, hang, nil); !strings.HasPrefix(got[linuxA.ID], "TIMEOUT") {
		t.Fatalf("# sim: hang after Timeout: %v", got)
	}
	invs := b.srv.Invocations(linuxA.ID)
	if len(invs) != 3 || invs[0].Content != "#!/bin/sh\necho hi\n" || invs[0].Username != "root" || invs[0].WorkingDirectory != "/root" ||
		invs[0].Timeout != time.Minute || invs[0].Status != TaskSuccess || invs[2].Status != TaskTimeout || invs[0].InvocationID != ok {
		t.Fatalf("Invocations = %+v", invs)
	}
	// Filter by task ID, and the conflict rule.
	var a invocationTasksAnswer
	b.c.mustSvc("tat", "DescribeInvocationTasks", map[string]any{"InvocationTaskIds": []string{invs[1].InvocationTaskID}}, &a)
	if a.TotalCount != 1 || a.InvocationTaskSet[0].InvocationId != fail {
		t.Fatalf("by task ID: %+v", a)
	}
	if got := b.c.svc("tat", "DescribeInvocationTasks", map[string]any{"InvocationTaskIds": []string{"x"}, "Filters": []map[string]any{{"Name": "instance-id", "Values": []string{"x"}}}}, nil); got != "InvalidParameter.ParameterConflict" {
		t.Fatalf("conflict = %q", got)
	}
	if got := b.c.svc("tat", "DescribeInvocationTasks", map[string]any{"Filters": []map[string]any{{"Name": "nope", "Values": []string{"x"}}}}, nil); got != "InvalidFilter" {
		t.Fatalf("unknown filter = %q", got)
	}
}

func TestRunCommandErrors(t *testing.T) {
	b := setup(t, Config{ResetDuration: time.Minute, Faults: Faults{AgentOfflineIDs: []string{linuxB.ID}}}, linuxA, linuxB, stoppedC, windowsD)
	wantCode(t, b.c.reset(genTC3, windowsD.ID, nil), "")
	many := make([]string, 201)
	for i := range many {
		many[i] = linuxA.ID
	}
	run := func(content string, ids []string, extra map[string]any) map[string]any {
		p := map[string]any{"Content": content, "InstanceIds": ids}
		for k, v := range extra {
			p[k] = v
		}
		return p
	}
	ok := b64("echo")
	tests := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"no_content", run("", []string{linuxA.ID}, nil), "MissingParameter"},
		{"not_base64", run("!!", []string{linuxA.ID}, nil), "InvalidParameterValue.InvalidContent"},
		{"too_long", run(b64(strings.Repeat("x", 50<<10)), []string{linuxA.ID}, nil), "InvalidParameterValue.TooLong"},
		{"no_instances", run(ok, nil, nil), "MissingParameter"},
		{"over_200", run(ok, many, nil), "InvalidParameterValue.LimitExceeded"},
		{"malformed_id", run(ok, []string{"ins-BAD"}, nil), "InvalidParameterValue.InvalidInstanceId"},
		{"unknown_id", run(ok, []string{"ins-zzzzzzzz"}, nil), "ResourceNotFound.InstanceNotFound"},
		{"stopped", run(ok, []string{stoppedC.ID}, nil), "ResourceUnavailable.InstanceStateNotRunning"},
		{"agent_offline_fault", run(ok, []string{linuxA.ID, linuxB.ID}, nil), "ResourceUnavailable.AgentStatusNotOnline"},
		{"reinstalling", run(ok, []string{windowsD.ID}, map[string]any{"CommandType": "POWERSHELL"}), "ResourceUnavailable.AgentStatusNotOnline"},
		{"powershell_on_linux", run(ok, []string{linuxA.ID}, map[string]any{"CommandType": "POWERSHELL"}), "InvalidParameterValue.AgentUnsupportedCommandType"},
		{"bad_type", run(ok, []string{linuxA.ID}, map[string]any{"CommandType": "BASH"}), "InvalidParameterValue"},
		{"timeout_zero", run(ok, []string{linuxA.ID}, map[string]any{"Timeout": 0}), "InvalidParameterValue.Range"},
		{"timeout_over_a_day", run(ok, []string{linuxA.ID}, map[string]any{"Timeout": 86401}), "InvalidParameterValue.Range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *b.c
			c.t = t
			if got := c.svc("tat", "RunCommand", tt.params, nil); got != tt.want {
				t.Fatalf("RunCommand = %q; want %q", got, tt.want)
			}
		})
	}
	if n := len(b.srv.Invocations(linuxA.ID)); n != 0 {
		t.Fatalf("refused calls recorded %d invocations", n)
	}
}

func TestAgentStatus(t *testing.T) {
	b := setup(t, Config{ResetDuration: time.Minute, Faults: Faults{AgentOfflineIDs: []string{linuxB.ID}}}, linuxA, linuxB, stoppedC, windowsD)
	wantCode(t, b.c.reset(genTC3, linuxA.ID, nil), "")
	status := func(params map[string]any) map[string]string {
		var a struct {
			TotalCount         int
			AutomationAgentSet []struct{ InstanceId, AgentStatus, Environment, Version, LastHeartbeatTime string }
		}
		b.c.mustSvc("tat", "DescribeAutomationAgentStatus", params, &a)
		out := map[string]string{}
		for _, ag := range a.AutomationAgentSet {
			out[ag.InstanceId] = ag.AgentStatus + " " + ag.Environment
		}
		return out
	}
	got := status(map[string]any{})
	want := map[string]string{linuxA.ID: "Offline Linux", linuxB.ID: "Offline Linux", stoppedC.ID: "Offline Linux", windowsD.ID: "Online Windows"}
	if !mapsEqual(got, want) {
		t.Fatalf("agents = %v; want %v", got, want)
	}
	b.clk.Advance(time.Minute)
	if got := status(map[string]any{"InstanceIds": []string{linuxA.ID}}); !mapsEqual(got, map[string]string{linuxA.ID: "Online Linux"}) {
		t.Fatalf("after the reinstall: %v", got)
	}
	if got := status(map[string]any{"Filters": []map[string]any{{"Name": "agent-status", "Values": []string{"Online"}}}}); len(got) != 2 {
		t.Fatalf("Online filter: %v", got)
	}
}
