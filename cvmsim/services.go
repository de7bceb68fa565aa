package cvmsim

import (
	"net/http"
	"strings"
	"time"
)

// The simulator answers every service at one base URL, as a client with a
// custom endpoint calls it; it routes TC3 requests by X-TC-Action, and
// each request must be signed with its action's service in the credential
// scope (the real hosts differ per service, so a signature for another
// service fails there). Only TC3 reaches services other than cvm.

// serviceVersions is the only API version of each simulated service.
var serviceVersions = map[string]string{
	"cvm":     apiVersion,
	"clb":     "2018-03-17",
	"tat":     "2020-10-28",
	"monitor": "2018-07-24",
}

// actionServices maps every simulated action outside cvm to its service.
var actionServices = map[string]string{
	"DescribeTargets":               "clb",
	"DescribeTargetHealth":          "clb",
	"ModifyTargetWeight":            "clb",
	"BatchModifyTargetWeight":       "clb",
	"DescribeTaskStatus":            "clb",
	"RunCommand":                    "tat",
	"DescribeInvocationTasks":       "tat",
	"DescribeAutomationAgentStatus": "tat",
	"DescribeAlarmHistories":        "monitor",
}

// tc3ServiceOf is the service a TC3 request must be signed for: its
// action's, or for an action the simulator does not know, the scope's
// when that names a simulated service (that service then answers
// InvalidAction), else cvm.
func tc3ServiceOf(r *http.Request) string {
	if svc, ok := actionServices[r.Header.Get("X-TC-Action")]; ok {
		return svc
	}
	_, rest, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	scope := strings.Split(strings.TrimSpace(strings.SplitN(rest, ",", 2)[0]), "/")
	if len(scope) == 4 && serviceVersions[scope[2]] != "" {
		return scope[2]
	}
	return "cvm"
}

// dispatchService runs an authenticated action of clb, tat or monitor.
func (s *Server) dispatchService(service, action, region string, leaves map[string]leaf, arrival, now time.Time, reqID string) response {
	if actionServices[action] != service {
		return s.fail(genV3, reqID, newErr(errInvalidAction, "action %q does not exist in %s or is not simulated", action, service))
	}
	if limit := s.faults.ServiceRateLimit; !s.allow(action, limit, arrival) {
		return s.fail(genV3, reqID, newErr(errRateLimited, "%s is limited to %d requests per second", action, limit))
	}
	switch {
	case region == "" && service != "clb":
		// CLB documents Region as optional; TAT and Cloud Monitor require it.
		return s.fail(genV3, reqID, newErr(errMissingParameter, "missing Region"))
	case region != "" && !s.regionOK(genV3, region):
		return s.fail(genV3, reqID, newErr(errUnsupportedRegion, "region %q is not %s", region, s.cfg.Region))
	}
	s.callRegion = s.canonRegion(genV3, region)
	switch action {
	case "DescribeTargets":
		return s.describeTargets(leaves, now, reqID)
	case "DescribeTargetHealth":
		return s.describeTargetHealth(leaves, now, reqID)
	case "ModifyTargetWeight":
		return s.modifyTargetWeight(leaves, arrival, now, reqID)
	case "BatchModifyTargetWeight":
		return s.batchModifyTargetWeight(leaves, arrival, now, reqID)
	case "DescribeTaskStatus":
		return s.describeTaskStatus(leaves, now, reqID)
	case "RunCommand":
		return s.runCommand(leaves, now, reqID)
	case "DescribeInvocationTasks":
		return s.describeInvocationTasks(leaves, now, reqID)
	case "DescribeAutomationAgentStatus":
		return s.describeAgentStatus(leaves, now, reqID)
	default: // DescribeAlarmHistories
		return s.describeAlarmHistories(leaves, now, reqID)
	}
}
