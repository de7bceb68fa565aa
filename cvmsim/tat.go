package cvmsim

import (
	"bufio"
	"encoding/base64"
	"slices"
	"strings"
	"time"
)

// This file simulates the TAT (TencentCloud Automation Tools) actions
// issue 11's hooks need, service tat, version 2020-10-28: RunCommand,
// DescribeInvocationTasks and DescribeAutomationAgentStatus. A command
// "runs" for Config.CommandDuration of the clock; its script decides how
// it ends (see RunCommand in doc.go). Functions on Server run with s.mu
// held.

// Script lines that steer a simulated command.
const (
	// CommandFailLine makes a command end FAILED with exit code 1.
	CommandFailLine = "# sim: fail"
	// CommandHangLine makes a command run until its Timeout, then TIMEOUT.
	CommandHangLine = "# sim: hang"
)

// TAT task statuses the simulator reports.
const (
	TaskRunning = "RUNNING"
	TaskSuccess = "SUCCESS"
	TaskFailed  = "FAILED"
	TaskTimeout = "TIMEOUT"
)

// Limits documented for RunCommand.
const (
	maxCommandContent  = 64 << 10 // base64 text of Content, bytes
	maxCommandTargets  = 200
	commandTimeoutDflt = 60 // seconds, the documented default
)

// Invocation is one command run on one instance, for tests
// (Server.Invocations).
type Invocation struct {
	InvocationID     string        `json:"invocation_id"`
	InvocationTaskID string        `json:"invocation_task_id"`
	CommandID        string        `json:"command_id"`
	InstanceID       string        `json:"instance_id"`
	Content          string        `json:"content"` // decoded script
	CommandType      string        `json:"command_type"`
	WorkingDirectory string        `json:"working_directory,omitempty"`
	Username         string        `json:"username,omitempty"`
	Timeout          time.Duration `json:"timeout"`
	StartedAt        time.Time     `json:"started_at"`
	// Status, ExitCode and EndedAt are as of the call that returned them.
	Status   string    `json:"status"`
	ExitCode int       `json:"exit_code"`
	EndedAt  time.Time `json:"ended_at,omitzero"`
}

// tatState holds every invocation. Guarded by Server.mu.
type tatState struct {
	n     int                   // IDs issued, for deterministic IDs
	tasks []*tatTask            // every task, in order of start
	byID  map[string][]*tatTask // instance ID -> its tasks
}

type tatTask struct {
	inv     Invocation
	fails   bool // CommandFailLine or Faults.CommandFailIDs
	hangs   bool // CommandHangLine
	runtime time.Duration
}

// nextID returns prefix and 8 base-36 digits counting up.
func (t *tatState) nextID(prefix string) string {
	t.n++
	return prefix + base36(uint64(t.n))
}

// state evaluates the task at now: status, exit code, output, end.
func (t *tatTask) state(now time.Time) (status string, exit int, output string, end time.Time) {
	start := t.inv.StartedAt
	switch {
	case t.hangs || t.inv.Timeout < t.runtime:
		end = start.Add(t.inv.Timeout)
		if now.Before(end) {
			return TaskRunning, 0, "", time.Time{}
		}
		// [U]: the exit code of a timed-out command is not documented.
		return TaskTimeout, -1, "", end
	}
	end = start.Add(t.runtime)
	switch {
	case now.Before(end):
		return TaskRunning, 0, "", time.Time{}
	case t.fails:
		return TaskFailed, 1, "simulated failure", end
	}
	return TaskSuccess, 0, "ok", end
}

// view is the task's Invocation as of now.
func (t *tatTask) view(now time.Time) Invocation {
	v := t.inv
	v.Status, v.ExitCode, _, v.EndedAt = t.state(now)
	return v
}

// Invocations returns every command run on instance id, oldest first, with
// its status now.
func (s *Server) Invocations(id string) []Invocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock.Now()
	var out []Invocation
	for _, t := range s.tat.byID[id] {
		out = append(out, t.view(now))
	}
	return out
}

// agentOnline reports whether in's TAT agent is online: the instance runs,
// is not reinstalling and is not in Faults.AgentOfflineIDs.
func (s *Server) agentOnline(in *instance) bool {
	return in.up() && !slices.Contains(s.faults.AgentOfflineIDs, in.ID)
}

// hasLine reports whether script has line (surrounding blanks ignored).
func hasLine(script, line string) bool {
	sc := bufio.NewScanner(strings.NewReader(script))
	sc.Buffer(nil, maxCommandContent)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == line {
			return true
		}
	}
	return false
}

// ---- wire shapes ----

type tatRunParams struct {
	Content          *string
	InstanceIds      []string
	CommandType      *string
	WorkingDirectory *string
	Timeout          *int64
	Username         *string
	SaveCommand      *bool
	CommandName      *string
	Description      *string
}

type tatRunBody struct {
	CommandID    string `json:"CommandId"`
	InvocationID string `json:"InvocationId"`
	RequestID    string `json:"RequestId"`
}

type tatDescribeTasksParams struct {
	InvocationTaskIds []string
	Filters           []v3Filter
	Limit             *int64
	Offset            *int64
	HideOutput        *bool
}

type tatTaskResult struct {
	ExitCode      int    `json:"ExitCode"`
	Output        string `json:"Output"`
	ExecStartTime string `json:"ExecStartTime"`
	ExecEndTime   string `json:"ExecEndTime"`
	Dropped       int    `json:"Dropped"`
}

type tatInvocationTask struct {
	InvocationID     string        `json:"InvocationId"`
	InvocationTaskID string        `json:"InvocationTaskId"`
	CommandID        string        `json:"CommandId"`
	TaskStatus       string        `json:"TaskStatus"`
	InstanceID       string        `json:"InstanceId"`
	TaskResult       tatTaskResult `json:"TaskResult"`
	StartTime        string        `json:"StartTime"`
	EndTime          string        `json:"EndTime"`
	CreatedTime      string        `json:"CreatedTime"`
	UpdatedTime      string        `json:"UpdatedTime"`
	ErrorInfo        string        `json:"ErrorInfo"`
	InvocationSource string        `json:"InvocationSource"`
}

type tatDescribeTasksBody struct {
	TotalCount        int                 `json:"TotalCount"`
	InvocationTaskSet []tatInvocationTask `json:"InvocationTaskSet"`
	RequestID         string              `json:"RequestId"`
}

type tatAgentParams struct {
	InstanceIds []string
	Filters     []v3Filter
	Limit       *int64
	Offset      *int64
}

type tatAgent struct {
	InstanceID        string `json:"InstanceId"`
	Version           string `json:"Version"`
	LastHeartbeatTime string `json:"LastHeartbeatTime"`
	AgentStatus       string `json:"AgentStatus"`
	Environment       string `json:"Environment"`
}

type tatAgentBody struct {
	AutomationAgentSet []tatAgent `json:"AutomationAgentSet"`
	TotalCount         int        `json:"TotalCount"`
	RequestID          string     `json:"RequestId"`
}

// tatTime formats a time as TAT does, ISO 8601 in UTC; zero is "".
func tatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

// ---- actions ----

func (s *Server) runCommand(leaves map[string]leaf, now time.Time, reqID string) response {
	var p tatRunParams
	if e := decodeParams(leaves, &p); e != nil {
		return s.fail(genV3, reqID, e)
	}
	bad := func(k errKind, format string, args ...any) response {
		return s.fail(genV3, reqID, newErr(k, format, args...))
	}
	if p.Content == nil || *p.Content == "" {
		return bad(errMissingParameter, "missing Content")
	}
	if len(*p.Content) > maxCommandContent {
		return bad(errContentTooLong, "Content is %d bytes of base64, more than %d", len(*p.Content), maxCommandContent)
	}
	script, err := base64.StdEncoding.DecodeString(*p.Content)
	if err != nil {
		return bad(errInvalidContent, "Content is not base64")
	}
	switch n := len(p.InstanceIds); {
	case n == 0:
		return bad(errMissingParameter, "missing InstanceIds")
	case n > maxCommandTargets:
		return bad(errLimitExceeded, "at most %d InstanceIds per call, got %d", maxCommandTargets, n)
	}
	cmdType := "SHELL"
	if p.CommandType != nil {
		cmdType = *p.CommandType
	}
	if cmdType != "SHELL" && cmdType != "POWERSHELL" {
		return bad(errInvalidParamValue, "CommandType %q is not SHELL or POWERSHELL", cmdType)
	}
	timeout := int64(commandTimeoutDflt)
	if p.Timeout != nil {
		timeout = *p.Timeout
	}
	if timeout < 1 || timeout > 86400 {
		return bad(errRange, "Timeout %d is not in [1, 86400] seconds", timeout)
	}
	var ins []*instance
	for _, id := range p.InstanceIds {
		if !validInstanceID(id) {
			return bad(errTATInstanceMalform, "instance ID %q is malformed", id)
		}
		in := s.instances[id]
		if in == nil {
			return bad(errTATInstanceNotFound, "instance %s not found", id)
		}
		s.settle(in, now)
		switch {
		case in.State != StateRunning:
			return bad(errNotRunning, "instance %s is not RUNNING", id)
		case !s.agentOnline(in):
			return bad(errAgentNotOnline, "the TAT agent of instance %s is not online", id)
		case (in.OS == OSWindows) != (cmdType == "POWERSHELL"):
			return bad(errCommandType, "instance %s runs %s, which does not run %s", id, in.OS, cmdType)
		}
		ins = append(ins, in)
	}
	text := string(script)
	inv := Invocation{
		InvocationID: s.tat.nextID("inv-"), CommandID: s.tat.nextID("cmd-"),
		Content: text, CommandType: cmdType, Timeout: time.Duration(timeout) * time.Second, StartedAt: now,
	}
	if p.WorkingDirectory != nil {
		inv.WorkingDirectory = *p.WorkingDirectory
	}
	if p.Username != nil {
		inv.Username = *p.Username
	}
	fails, hangs := hasLine(text, CommandFailLine), hasLine(text, CommandHangLine)
	if s.tat.byID == nil {
		s.tat.byID = map[string][]*tatTask{}
	}
	for _, in := range ins {
		t := &tatTask{inv: inv, hangs: hangs, runtime: s.cfg.CommandDuration,
			fails: fails || slices.Contains(s.faults.CommandFailIDs, in.ID)}
		t.inv.InvocationTaskID = s.tat.nextID("invt-")
		t.inv.InstanceID = in.ID
		s.tat.tasks = append(s.tat.tasks, t)
		s.tat.byID[in.ID] = append(s.tat.byID[in.ID], t)
	}
	return jsonResponse("", v3Envelope{Response: tatRunBody{CommandID: inv.CommandID, InvocationID: inv.InvocationID, RequestID: reqID}})
}

// tatTaskFilters are the simulated DescribeInvocationTasks filters.
var tatTaskFilters = map[string]func(*tatTask) string{
	"invocation-id":      func(t *tatTask) string { return t.inv.InvocationID },
	"invocation-task-id": func(t *tatTask) string { return t.inv.InvocationTaskID },
	"instance-id":        func(t *tatTask) string { return t.inv.InstanceID },
	"command-id":         func(t *tatTask) string { return t.inv.CommandID },
}

// pageParams checks Limit (1-100, default 20) and Offset.
func pageParams(limit, offset *int64) (lim, off int, e *apiErr) {
	lim = 20
	if limit != nil {
		if *limit < 1 || *limit > 100 {
			return 0, 0, newErr(errInvalidParamValue, "Limit must be within [1, 100]")
		}
		lim = int(*limit)
	}
	if offset != nil {
		if *offset < 0 {
			return 0, 0, newErr(errInvalidParamValue, "Offset must not be negative")
		}
		off = int(*offset)
	}
	return lim, off, nil
}

// filterSet turns Filters into name -> accepted values, checking names
// against known.
func filterSet[T any](filters []v3Filter, known map[string]T) (map[string]map[string]bool, *apiErr) {
	out := map[string]map[string]bool{}
	for i, f := range filters {
		if f.Name == nil {
			return nil, newErr(errInvalidFilter, "Filters.%d.Name is missing", i)
		}
		if _, ok := known[*f.Name]; !ok {
			return nil, newErr(errInvalidFilter, "Filters.%d.Name is not one of %s", i, strings.Join(sortedKeys(known), ", "))
		}
		if len(f.Values) == 0 {
			return nil, newErr(errInvalidParamValue, "Filters.%d.Values is empty", i)
		}
		vals := map[string]bool{}
		for _, v := range f.Values {
			vals[v] = true
		}
		out[*f.Name] = vals
	}
	return out, nil
}

func (s *Server) describeInvocationTasks(leaves map[string]leaf, now time.Time, reqID string) response {
	var p tatDescribeTasksParams
	if e := decodeParams(leaves, &p); e != nil {
		return s.fail(genV3, reqID, e)
	}
	if len(p.InvocationTaskIds) > 0 && len(p.Filters) > 0 {
		return s.fail(genV3, reqID, newErr(errParameterConflict, "InvocationTaskIds and Filters cannot be combined"))
	}
	lim, off, e := pageParams(p.Limit, p.Offset)
	if e != nil {
		return s.fail(genV3, reqID, e)
	}
	filters, e := filterSet(p.Filters, tatTaskFilters)
	if e != nil {
		return s.fail(genV3, reqID, e)
	}
	var all []*tatTask
	for _, t := range s.tat.tasks {
		if len(p.InvocationTaskIds) > 0 && !slices.Contains(p.InvocationTaskIds, t.inv.InvocationTaskID) {
			continue
		}
		keep := true
		for name, vals := range filters {
			keep = keep && vals[tatTaskFilters[name](t)]
		}
		if keep {
			all = append(all, t)
		}
	}
	// The documented default hides output: a client must ask for it.
	hide := p.HideOutput == nil || *p.HideOutput
	body := tatDescribeTasksBody{TotalCount: len(all), InvocationTaskSet: []tatInvocationTask{}, RequestID: reqID}
	for _, t := range page(all, off, lim) {
		status, exit, output, end := t.state(now)
		updated := now
		if !end.IsZero() {
			updated = end
		}
		if hide {
			output = ""
		}
		body.InvocationTaskSet = append(body.InvocationTaskSet, tatInvocationTask{
			InvocationID: t.inv.InvocationID, InvocationTaskID: t.inv.InvocationTaskID, CommandID: t.inv.CommandID,
			TaskStatus: status, InstanceID: t.inv.InstanceID,
			TaskResult: tatTaskResult{ExitCode: exit, Output: base64.StdEncoding.EncodeToString([]byte(output)),
				ExecStartTime: tatTime(t.inv.StartedAt), ExecEndTime: tatTime(end)},
			StartTime: tatTime(t.inv.StartedAt), EndTime: tatTime(end),
			CreatedTime: tatTime(t.inv.StartedAt), UpdatedTime: tatTime(updated),
			InvocationSource: "USER",
		})
	}
	return jsonResponse("", v3Envelope{Response: body})
}

// tatAgentFilters are the simulated DescribeAutomationAgentStatus filters.
var tatAgentFilters = map[string]bool{"agent-status": true, "environment": true, "instance-id": true}

func (s *Server) describeAgentStatus(leaves map[string]leaf, now time.Time, reqID string) response {
	var p tatAgentParams
	if e := decodeParams(leaves, &p); e != nil {
		return s.fail(genV3, reqID, e)
	}
	switch {
	case len(p.InstanceIds) > 0 && len(p.Filters) > 0:
		return s.fail(genV3, reqID, newErr(errParameterConflict, "InstanceIds and Filters cannot be combined"))
	case len(p.InstanceIds) > 100:
		return s.fail(genV3, reqID, newErr(errLimitExceeded, "at most 100 InstanceIds per call"))
	}
	lim, off, e := pageParams(p.Limit, p.Offset)
	if e != nil {
		return s.fail(genV3, reqID, e)
	}
	filters, e := filterSet(p.Filters, tatAgentFilters)
	if e != nil {
		return s.fail(genV3, reqID, e)
	}
	for _, id := range p.InstanceIds {
		if !validInstanceID(id) {
			return s.fail(genV3, reqID, newErr(errTATInstanceMalform, "instance ID %q is malformed", id))
		}
	}
	var all []tatAgent
	for _, in := range s.listInstances(now, func(in *instance) bool {
		return len(p.InstanceIds) == 0 || slices.Contains(p.InstanceIds, in.ID)
	}) {
		a := tatAgent{InstanceID: in.ID, Version: "1.1.8", AgentStatus: "Offline", Environment: "Linux"}
		if in.OS == OSWindows {
			a.Environment = "Windows"
		}
		if s.agentOnline(in) {
			a.AgentStatus = "Online"
			a.LastHeartbeatTime = tatTime(now)
		}
		fields := map[string]string{"agent-status": a.AgentStatus, "environment": a.Environment, "instance-id": a.InstanceID}
		keep := true
		for name, vals := range filters {
			keep = keep && vals[fields[name]]
		}
		if keep {
			all = append(all, a)
		}
	}
	body := tatAgentBody{AutomationAgentSet: []tatAgent{}, TotalCount: len(all), RequestID: reqID}
	body.AutomationAgentSet = append(body.AutomationAgentSet, page(all, off, lim)...)
	return jsonResponse("", v3Envelope{Response: body})
}
