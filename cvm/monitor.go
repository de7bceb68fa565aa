package cvm

import (
	"context"
	"slices"
	"time"
)

// MaxAlarmPolicies is the most policy IDs one AlarmingPolicies call takes.
const MaxAlarmPolicies = 100

// AlarmingPolicies returns, sorted, those of policyIDs that have an alarm
// history in state ALARM between since and until (DescribeAlarmHistories,
// Module monitor, all pages): the Cloud Monitor alarm policies that fire.
// No policy IDs means no call and no result: without the filter the call
// would report every policy of the account.
//
// Doc: Cloud Monitor API 2018-07-24, DescribeAlarmHistories.
func (s *Serving) AlarmingPolicies(ctx context.Context, policyIDs []string, since, until time.Time) ([]string, error) {
	const action = "DescribeAlarmHistories"
	const pageSize = 100 // the API's maximum page
	if len(policyIDs) == 0 {
		return nil, nil
	}
	if err := checkList(action, "policy IDs", policyIDs, MaxAlarmPolicies); err != nil {
		return nil, err
	}
	if since.IsZero() || until.IsZero() || !since.Before(until) {
		return nil, invalid(V3, action, "time range %s..%s: want a non-zero since before until",
			since.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
	}
	asked := make(map[string]bool, len(policyIDs))
	for _, id := range policyIDs {
		asked[id] = true
	}
	firing := map[string]bool{}
	seen := 0
	for page := 1; ; page++ {
		var out struct {
			Response struct {
				TotalCount int `json:"TotalCount"`
				Histories  []struct {
					PolicyID    string `json:"PolicyId"`
					AlarmStatus string `json:"AlarmStatus"`
				} `json:"Histories"`
			} `json:"Response"`
		}
		params := map[string]any{
			"Module":      "monitor",
			"PageNumber":  page,
			"PageSize":    pageSize,
			"StartTime":   since.Unix(),
			"EndTime":     until.Unix(),
			"PolicyIds":   policyIDs,
			"AlarmStatus": []string{"ALARM"},
		}
		if _, err := s.do(ctx, serviceMonitor, action, params, &out); err != nil {
			return nil, err
		}
		for _, h := range out.Response.Histories {
			// The filter asked for ALARM histories of these policies;
			// check anyway, so a server that ignores it cannot stop a
			// rollout for another policy's alarm or a resolved one.
			if h.AlarmStatus == "ALARM" && asked[h.PolicyID] {
				firing[h.PolicyID] = true
			}
		}
		seen += len(out.Response.Histories)
		if len(firing) == len(asked) || len(out.Response.Histories) < pageSize || seen >= out.Response.TotalCount {
			break
		}
	}
	res := make([]string, 0, len(firing))
	for id := range firing {
		res = append(res, id)
	}
	slices.Sort(res)
	return res, nil
}
