package cvmsim

import (
	"encoding/json"
	"hash/fnv"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// This file simulates the alarms a rollout stops on: Cloud Monitor's
// DescribeAlarmHistories (service monitor, version 2018-07-24) and a
// Prometheus instant-query endpoint. Both read one set of switchable
// alerts (Server.SetAlert, POST /admin/alert).

// PathPrometheusQuery is the Prometheus instant-query endpoint; a client's
// Prometheus base URL is the simulator's URL plus "/prometheus".
const PathPrometheusQuery = "/prometheus/api/v1/query"

// SetAlert switches alert name on or off. While any alert is firing every
// Prometheus query returns one sample per firing alert, labelled
// alertname=<name>; DescribeAlarmHistories reports an ALARM history for
// each firing name among the PolicyIds asked for, so switch a Cloud
// Monitor policy on with its policy ID.
func (s *Server) SetAlert(name string, firing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !firing {
		delete(s.alerts, name)
		return
	}
	if _, on := s.alerts[name]; !on {
		s.alerts[name] = s.cfg.Clock.Now()
	}
}

// firingAlerts returns the firing alert names, sorted. Guarded by mu.
func (s *Server) firingAlerts() []string { return sortedKeys(s.alerts) }

// servePrometheus answers GET or POST /prometheus/api/v1/query?query=EXPR
// in the Prometheus HTTP API's shape. The expression is not evaluated.
func (s *Server) servePrometheus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		w.WriteHeader(http.StatusMethodNotAllowed)
		json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": "bad_data", "error": "method not allowed"})
		return
	}
	if err := r.ParseForm(); err != nil || r.Form.Get("query") == "" {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": "bad_data", "error": "missing query parameter \"query\""})
		return
	}
	s.mu.Lock()
	now := s.cfg.Clock.Now()
	firing := s.firingAlerts()
	s.mu.Unlock()
	type sample struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	result := []sample{}
	ts := float64(now.UnixMilli()) / 1000
	for _, name := range firing {
		result = append(result, sample{Metric: map[string]string{"alertname": name}, Value: [2]any{ts, "1"}})
	}
	json.NewEncoder(w).Encode(map[string]any{
		"status": "success",
		"data":   map[string]any{"resultType": "vector", "result": result},
	})
}

// ---- Cloud Monitor ----

type monitorHistoriesParams struct {
	Module       *string
	PageNumber   *int64
	PageSize     *int64
	Order        *string
	StartTime    *int64
	EndTime      *int64
	MonitorTypes []string
	AlarmStatus  []string
	PolicyIds    []string
}

type monitorHistory struct {
	AlarmID        string `json:"AlarmId"`
	MonitorType    string `json:"MonitorType"`
	Namespace      string `json:"Namespace"`
	AlarmObject    string `json:"AlarmObject"`
	Content        string `json:"Content"`
	FirstOccurTime int64  `json:"FirstOccurTime"`
	LastOccurTime  int64  `json:"LastOccurTime"`
	AlarmStatus    string `json:"AlarmStatus"`
	PolicyID       string `json:"PolicyId"`
	PolicyName     string `json:"PolicyName"`
}

type monitorHistoriesBody struct {
	TotalCount int              `json:"TotalCount"`
	Histories  []monitorHistory `json:"Histories"`
	RequestID  string           `json:"RequestId"`
}

func (s *Server) describeAlarmHistories(leaves map[string]leaf, now time.Time, reqID string) response {
	var p monitorHistoriesParams
	if e := decodeParams(leaves, &p); e != nil {
		return s.fail(genV3, reqID, e)
	}
	bad := func(format string, args ...any) response {
		return s.fail(genV3, reqID, newErr(errInvalidParameter, format, args...))
	}
	switch {
	case p.Module == nil:
		return s.fail(genV3, reqID, newErr(errMissingParameter, "missing Module"))
	case *p.Module != "monitor":
		return bad("Module must be \"monitor\"")
	case p.StartTime != nil && p.EndTime != nil && *p.EndTime < *p.StartTime:
		return bad("EndTime is before StartTime")
	}
	pageNo, pageSize := int64(1), int64(20)
	if p.PageNumber != nil {
		pageNo = *p.PageNumber
	}
	if p.PageSize != nil {
		pageSize = *p.PageSize
	}
	if pageNo < 1 || pageSize < 1 || pageSize > 100 {
		return bad("PageNumber must be at least 1 and PageSize within [1, 100]")
	}
	if len(p.AlarmStatus) > 0 && !slices.Contains(p.AlarmStatus, "ALARM") {
		// Only alarms in ALARM state are simulated.
		return jsonResponse("", v3Envelope{Response: monitorHistoriesBody{Histories: []monitorHistory{}, RequestID: reqID}})
	}
	var all []monitorHistory
	for _, name := range s.firingAlerts() {
		since := s.alerts[name]
		switch {
		case len(p.PolicyIds) > 0 && !slices.Contains(p.PolicyIds, name),
			p.EndTime != nil && *p.EndTime > 0 && since.Unix() > *p.EndTime:
			continue
		}
		all = append(all, monitorHistory{
			AlarmID: alarmID(name), MonitorType: "MT_QCE", Namespace: "cvm_device",
			AlarmObject: name, Content: "simulated alarm " + name,
			FirstOccurTime: since.Unix(), LastOccurTime: now.Unix(), AlarmStatus: "ALARM",
			PolicyID: name, PolicyName: "sim " + name,
		})
	}
	body := monitorHistoriesBody{TotalCount: len(all), Histories: []monitorHistory{}, RequestID: reqID}
	body.Histories = append(body.Histories, page(all, int((pageNo-1)*pageSize), int(pageSize))...)
	return jsonResponse("", v3Envelope{Response: body})
}

// alarmID is a stable AlarmId for an alert name.
func alarmID(name string) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	return "alarm-" + base36(h.Sum64()%idSpace)
}

// serveAlertAdmin answers POST /admin/alert?name=X&firing=true|false.
func (s *Server) serveAlertAdmin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	firing, err := strconv.ParseBool(q.Get("firing"))
	if q.Get("name") == "" || err != nil {
		http.Error(w, "want ?name=X&firing=true|false", http.StatusBadRequest)
		return
	}
	s.SetAlert(q.Get("name"), firing)
	w.WriteHeader(http.StatusNoContent)
}
