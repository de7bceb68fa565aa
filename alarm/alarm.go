// Package alarm reads the alarms a rollout stops on (rollout.StopWhen):
// Prometheus instant queries, where any sample in the result fires, and
// Tencent Cloud Monitor alarm policies, where a policy with an alarm in
// the last MonitorWindow fires. Check reads them all and reports what
// fires and what could not be read; Decide turns that into stop or go.
//
// The package holds no state and does no scheduling: the caller checks
// before each wave and every StopWhen.Interval during a soak.
package alarm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/fleetreset/fleetreset/internal/textcut"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleetreset/fleetreset/internal/clock"
	"github.com/fleetreset/fleetreset/rollout"
)

const (
	// TimeoutDefault bounds one query (one Prometheus request, or the
	// monitor reader's call) when Checker.Timeout is zero.
	TimeoutDefault = 5 * time.Second
	// MonitorWindow is how far back an alarm history counts as firing.
	MonitorWindow = 5 * time.Minute
	// responseLimit caps the Prometheus answer read; an alarm query that
	// returns more than this is a query mistake, reported as an error.
	responseLimit = 4 << 20
)

// MonitorReader reads Tencent Cloud Monitor alarm policies
// (DescribeAlarmHistories). It returns the IDs among policyIDs that were
// in alarm between since and until.
type MonitorReader interface {
	AlarmingPolicies(ctx context.Context, policyIDs []string, since, until time.Time) ([]string, error)
}

// Checker reads a rollout's stop-when alarms. The zero value reads
// Prometheus alarms; monitor policies need Monitor. Safe for concurrent
// use if Monitor is.
type Checker struct {
	// HTTP queries Prometheus. Defaults to a client with the default
	// transport, proxy settings from the environment included: unlike a
	// health probe, Prometheus is an ordinary service that may sit behind
	// the operator's proxy.
	HTTP *http.Client
	// Monitor reads Cloud Monitor policies. Without it, each configured
	// policy is an error.
	Monitor MonitorReader
	// Clock gives the end of the monitor window. Defaults to the wall clock.
	Clock clock.Clock
	// Timeout bounds each query. Defaults to TimeoutDefault.
	Timeout time.Duration
}

// Status is what one Check saw.
type Status struct {
	// Firing names the firing alarms in sw's order: "prometheus NAME",
	// "monitor POLICY".
	Firing []string `json:"firing,omitempty"`
	// Errors says, one line each, which alarms could not be read and why.
	// They never hold a URL, which may carry credentials.
	Errors []string `json:"errors,omitempty"`
}

// Check reads every alarm of sw at once and waits for all, each bounded by
// the Checker's Timeout. When ctx ends first, the unread alarms are errors
// ("check cancelled"); a caller shutting down should not act on them.
func (c *Checker) Check(ctx context.Context, sw rollout.StopWhen) Status {
	timeout := cmp.Or(c.Timeout, TimeoutDefault)
	client := c.HTTP
	if client == nil {
		client = &http.Client{}
	}
	type outcome struct {
		firing []string
		err    string
	}
	// One slot per Prometheus alarm, then one for all monitor policies, so
	// that the status keeps sw's order whatever answers first.
	outs := make([]outcome, len(sw.Prometheus)+1)
	var wg sync.WaitGroup
	for i, a := range sw.Prometheus {
		wg.Go(func() {
			name := "prometheus " + a.Name
			firing, err := queryPrometheus(ctx, client, timeout, a)
			switch {
			case err != nil:
				outs[i].err = name + ": " + err.Error()
			case firing:
				outs[i].firing = []string{name}
			}
		})
	}
	if len(sw.MonitorPolicies) > 0 {
		wg.Go(func() {
			firing, err := c.readMonitor(ctx, timeout, sw.MonitorPolicies)
			if err != nil {
				outs[len(sw.Prometheus)].err = "monitor: " + oneLine(err.Error())
			}
			outs[len(sw.Prometheus)].firing = firing
		})
	}
	wg.Wait()
	var st Status
	for _, o := range outs {
		st.Firing = append(st.Firing, o.firing...)
		if o.err != "" {
			st.Errors = append(st.Errors, o.err)
		}
	}
	return st
}

// Decide says whether st stops the rollout and why. Firing alarms stop it;
// the caller then applies sw's OnBreach. Alarms that could not be read,
// with none firing, stop it only when OnError is pause (or unset); the
// caller then pauses, whatever OnBreach says, since nothing is proven
// broken.
func Decide(st Status, sw rollout.StopWhen) (stop bool, reason string) {
	if len(st.Firing) > 0 {
		reason = "alarm firing: " + strings.Join(st.Firing, ", ")
		if len(st.Errors) > 0 {
			reason += fmt.Sprintf(" (and %d could not be read)", len(st.Errors))
		}
		return true, reason
	}
	if len(st.Errors) > 0 && cmp.Or(sw.OnError, rollout.AlarmErrorPause) == rollout.AlarmErrorPause {
		return true, "alarm could not be read: " + strings.Join(st.Errors, "; ")
	}
	return false, ""
}

// readMonitor asks the reader about the policies over the last
// MonitorWindow and names the firing ones in sw's order.
func (c *Checker) readMonitor(ctx context.Context, timeout time.Duration, policies []string) ([]string, error) {
	if c.Monitor == nil {
		return nil, errors.New("no Cloud Monitor reader configured")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	until := clock.Or(c.Clock).Now()
	ids, err := c.Monitor.AlarmingPolicies(ctx, policies, until.Add(-MonitorWindow), until)
	if err != nil {
		return nil, err
	}
	var firing []string
	for _, p := range policies {
		if slices.Contains(ids, p) && !slices.Contains(firing, "monitor "+p) {
			firing = append(firing, "monitor "+p)
		}
	}
	return firing, nil
}

// promResponse is the part of a Prometheus API answer an alarm needs.
type promResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	} `json:"data"`
}

// queryPrometheus runs a's instant query and reports whether it returned
// any sample. Errors hold no URL: the server's address may carry
// credentials.
func queryPrometheus(ctx context.Context, client *http.Client, timeout time.Duration, a rollout.PromAlarm) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := strings.TrimSuffix(a.URL, "/") + "/api/v1/query?" + url.Values{"query": {a.Query}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, errors.New("invalid URL")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return false, requestError(ctx, err, timeout)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, responseLimit+1))
	if err != nil {
		return false, requestError(ctx, err, timeout)
	}
	if len(body) > responseLimit {
		return false, fmt.Errorf("answer larger than %d bytes", responseLimit)
	}
	var pr promResponse
	jsonErr := json.Unmarshal(body, &pr)
	switch {
	case pr.Status == "error":
		// Prometheus answers errors with 400, 422 or 503 and a JSON body
		// that says more than the status.
		msg := pr.Error
		if pr.ErrorType != "" {
			msg = pr.ErrorType + ": " + msg
		}
		return false, fmt.Errorf("HTTP %d: %s", resp.StatusCode, oneLine(msg))
	case resp.StatusCode != http.StatusOK:
		return false, fmt.Errorf("HTTP %d", resp.StatusCode)
	case jsonErr != nil:
		return false, errors.New("answer is not Prometheus JSON")
	case pr.Status != "success":
		return false, fmt.Errorf("status %q", pr.Status)
	case pr.Data.ResultType != "vector" && pr.Data.ResultType != "matrix":
		// A scalar or string always has a value: it cannot say whether
		// anything is wrong, so the query is a mistake.
		return false, fmt.Errorf("result type %q, want a vector", pr.Data.ResultType)
	}
	return len(pr.Data.Result) > 0, nil
}

// requestError describes a failed request without its URL.
func requestError(ctx context.Context, err error, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s", timeout)
	}
	if ctx.Err() != nil {
		return errors.New("check cancelled")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return errors.New(oneLine(err.Error()))
}

func oneLine(s string) string { return textcut.OneLine(s, 200) }
