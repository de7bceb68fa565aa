package alarm_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetreset/fleetreset/alarm"
	"github.com/fleetreset/fleetreset/rollout"
)

// prometheus starts a Prometheus stand-in that answers every instant query
// with status and the testdata file named (or nothing), after checking the
// request's shape. It records the queries it got.
func prometheus(t *testing.T, status int, file string) (url string, queries func() []string) {
	t.Helper()
	var body []byte
	if file != "" {
		var err error
		if body, err = os.ReadFile(filepath.Join("testdata", file)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/api/v1/query" {
			t.Errorf("request %s %s; want GET /api/v1/query", r.Method, r.URL.Path)
		}
		mu.Lock()
		got = append(got, r.URL.Query().Get("query"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(got) }
}

// hanging is a Prometheus that never answers until the client gives up.
func hanging(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCheckPrometheus(t *testing.T) {
	t.Parallel()
	empty, _ := prometheus(t, http.StatusOK, "vector_empty.json")
	one, queries := prometheus(t, http.StatusOK, "vector_one.json")
	badData, _ := prometheus(t, http.StatusBadRequest, "error_bad_data.json")
	broken, _ := prometheus(t, http.StatusInternalServerError, "")
	scalar, _ := prometheus(t, http.StatusOK, "scalar.json")
	notJSON, _ := prometheus(t, http.StatusOK, "")

	tests := []struct {
		name   string
		url    string
		firing bool
		err    string // substring of the error entry; "" for none
	}{
		{name: "empty_vector", url: empty},
		{name: "one_sample", url: one, firing: true},
		{name: "trailing_slash", url: one + "/", firing: true},
		{name: "error_status", url: badData, err: "prometheus a: HTTP 400: bad_data: invalid parameter"},
		{name: "http_500", url: broken, err: "prometheus a: HTTP 500"},
		{name: "scalar", url: scalar, err: `result type "scalar", want a vector`},
		{name: "not_json", url: notJSON, err: "not Prometheus JSON"},
		{name: "hang", url: hanging(t), err: "prometheus a: no answer within 200ms"},
		{name: "refused", url: "http://127.0.0.1:1", err: "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &alarm.Checker{Timeout: 200 * time.Millisecond}
			st := c.Check(t.Context(), rollout.StopWhen{Prometheus: []rollout.PromAlarm{{Name: "a", URL: tt.url, Query: `sum(rate(http_requests_total{code=~"5.."}[5m])) > 0.05`}}})
			if got := len(st.Firing) == 1 && st.Firing[0] == "prometheus a"; got != tt.firing || len(st.Firing) > 1 {
				t.Errorf("Firing = %q; want firing %v", st.Firing, tt.firing)
			}
			switch {
			case tt.err == "" && len(st.Errors) > 0:
				t.Errorf("Errors = %q; want none", st.Errors)
			case tt.err != "" && (len(st.Errors) != 1 || !strings.Contains(st.Errors[0], tt.err)):
				t.Errorf("Errors = %q; want one containing %q", st.Errors, tt.err)
			}
		})
	}
	// After the parallel subtests: the expression arrived intact.
	t.Cleanup(func() {
		if q := queries(); len(q) != 2 || q[0] != `sum(rate(http_requests_total{code=~"5.."}[5m])) > 0.05` {
			t.Errorf("queries = %q; want the expression twice, decoded intact", q)
		}
	})
}

// TestCheckSecretsStayOut: a Prometheus URL with credentials works, and
// its credentials reach no error entry.
func TestCheckSecretsStayOut(t *testing.T) {
	t.Parallel()
	const secret = "pr0m-s3cret"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pw, _ := r.BasicAuth(); pw != secret {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	withAuth := strings.Replace(srv.URL, "http://", "http://ops:"+secret+"@", 1)
	st := (&alarm.Checker{}).Check(t.Context(), rollout.StopWhen{Prometheus: []rollout.PromAlarm{
		{Name: "up", URL: withAuth, Query: "up == 0"},
		{Name: "down", URL: "http://ops:" + secret + "@127.0.0.1:1", Query: "up == 0"},
	}})
	if len(st.Errors) != 2 || !strings.Contains(st.Errors[0], "HTTP 503") {
		t.Fatalf("Errors = %q; want a 503 (credentials sent) and a refusal", st.Errors)
	}
	for _, e := range st.Errors {
		if strings.Contains(e, secret) {
			t.Errorf("error %q holds the secret", e)
		}
	}
}

// monitorFake stands in for the cvm client's DescribeAlarmHistories
// adapter, which is tested in cvm.
type monitorFake struct {
	mu           sync.Mutex
	since, until time.Time
	asked        []string
	firing       []string
	err          error
}

func (m *monitorFake) AlarmingPolicies(ctx context.Context, ids []string, since, until time.Time) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.asked, m.since, m.until = ids, since, until
	return m.firing, m.err
}

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

func TestCheckMonitor(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	one, _ := prometheus(t, http.StatusOK, "vector_one.json")
	tests := []struct {
		name    string
		monitor *monitorFake
		want    alarm.Status
	}{
		{name: "quiet", monitor: &monitorFake{}, want: alarm.Status{Firing: []string{"prometheus 5xx"}}},
		{name: "firing_in_config_order", monitor: &monitorFake{firing: []string{"policy-b", "policy-a"}},
			want: alarm.Status{Firing: []string{"prometheus 5xx", "monitor policy-a", "monitor policy-b"}}},
		{name: "reader_error", monitor: &monitorFake{err: errors.New("cvm: DescribeAlarmHistories: InternalError")},
			want: alarm.Status{Firing: []string{"prometheus 5xx"}, Errors: []string{"monitor: cvm: DescribeAlarmHistories: InternalError"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &alarm.Checker{Monitor: tt.monitor, Clock: fixedClock(now)}
			sw := rollout.StopWhen{
				Prometheus:      []rollout.PromAlarm{{Name: "5xx", URL: one, Query: "x"}},
				MonitorPolicies: []string{"policy-a", "policy-b"},
			}
			if diff := cmp.Diff(tt.want, c.Check(t.Context(), sw)); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
			m := tt.monitor
			if !slices.Equal(m.asked, sw.MonitorPolicies) || !m.until.Equal(now) || !m.since.Equal(now.Add(-alarm.MonitorWindow)) {
				t.Errorf("reader asked about %v from %v to %v; want %v over the %v before %v", m.asked, m.since, m.until, sw.MonitorPolicies, alarm.MonitorWindow, now)
			}
		})
	}
}

func TestCheckMonitorWithoutReader(t *testing.T) {
	t.Parallel()
	st := (&alarm.Checker{}).Check(t.Context(), rollout.StopWhen{MonitorPolicies: []string{"policy-a"}})
	if len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "no Cloud Monitor reader") {
		t.Errorf("Errors = %q; want the missing reader", st.Errors)
	}
}

func TestCheckNothingConfigured(t *testing.T) {
	t.Parallel()
	if st := (&alarm.Checker{}).Check(t.Context(), rollout.StopWhen{}); st.Firing != nil || st.Errors != nil {
		t.Errorf("Check(empty) = %+v; want nothing", st)
	}
}

func TestDecide(t *testing.T) {
	firing := alarm.Status{Firing: []string{"prometheus 5xx", "monitor policy-a"}}
	errs := alarm.Status{Errors: []string{"prometheus 5xx: HTTP 500"}}
	both := alarm.Status{Firing: []string{"prometheus 5xx"}, Errors: []string{"monitor: timeout"}}
	tests := []struct {
		name       string
		st         alarm.Status
		onError    string
		wantStop   bool
		wantReason string
	}{
		{name: "quiet", st: alarm.Status{}},
		{name: "firing", st: firing, wantStop: true, wantReason: "alarm firing: prometheus 5xx, monitor policy-a"},
		{name: "firing_despite_ignore", st: firing, onError: rollout.AlarmErrorIgnore, wantStop: true, wantReason: "alarm firing: prometheus 5xx, monitor policy-a"},
		{name: "firing_and_errors", st: both, wantStop: true, wantReason: "alarm firing: prometheus 5xx (and 1 could not be read)"},
		{name: "errors_default_pause", st: errs, wantStop: true, wantReason: "alarm could not be read: prometheus 5xx: HTTP 500"},
		{name: "errors_pause", st: errs, onError: rollout.AlarmErrorPause, wantStop: true, wantReason: "alarm could not be read: prometheus 5xx: HTTP 500"},
		{name: "errors_ignored", st: errs, onError: rollout.AlarmErrorIgnore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stop, reason := alarm.Decide(tt.st, rollout.StopWhen{OnError: tt.onError})
			if stop != tt.wantStop || reason != tt.wantReason {
				t.Errorf("Decide = %v, %q; want %v, %q", stop, reason, tt.wantStop, tt.wantReason)
			}
		})
	}
}
