package cvmsim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"
)

type promAnswer struct {
	Status string
	Data   struct {
		ResultType string
		Result     []struct {
			Metric map[string]string
			Value  []any
		}
	}
}

func promQuery(t *testing.T, b *testBundle, q string) (int, promAnswer) {
	t.Helper()
	resp, err := http.Get(b.hs.URL + PathPrometheusQuery + "?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a promAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, a
}

func switchAlert(t *testing.T, b *testBundle, name, firing string) int {
	t.Helper()
	resp, err := http.Post(b.hs.URL+PathAdminAlert+"?name="+url.QueryEscape(name)+"&firing="+firing, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestPrometheusAlert(t *testing.T) {
	b := setup(t, Config{})
	if code, a := promQuery(t, b, `ALERTS{alertstate="firing"}`); code != http.StatusOK || a.Status != "success" || a.Data.ResultType != "vector" || len(a.Data.Result) != 0 {
		t.Fatalf("no alert: %d %+v", code, a)
	}
	if code := switchAlert(t, b, "HighErrorRate", "true"); code != http.StatusNoContent {
		t.Fatalf("POST %s = %d", PathAdminAlert, code)
	}
	_, a := promQuery(t, b, "up == 0")
	if len(a.Data.Result) != 1 || a.Data.Result[0].Metric["alertname"] != "HighErrorRate" || len(a.Data.Result[0].Value) != 2 || a.Data.Result[0].Value[1] != "1" {
		t.Fatalf("firing: %+v", a)
	}
	b.srv.SetAlert("HighErrorRate", false)
	if _, a := promQuery(t, b, "up == 0"); len(a.Data.Result) != 0 {
		t.Fatalf("after switching off: %+v", a)
	}
	if code, a := promQuery(t, b, ""); code != http.StatusBadRequest || a.Status != "error" {
		t.Fatalf("no query: %d %+v", code, a)
	}
	for _, bad := range [][2]string{{"", "true"}, {"x", "maybe"}} {
		if code := switchAlert(t, b, bad[0], bad[1]); code != http.StatusBadRequest {
			t.Errorf("POST name=%q firing=%q = %d; want 400", bad[0], bad[1], code)
		}
	}
	resp, err := http.Get(b.hs.URL + PathAdminAlert)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET %s = %d", PathAdminAlert, resp.StatusCode)
	}
}

func TestDescribeAlarmHistories(t *testing.T) {
	b := setup(t, Config{})
	type answer struct {
		TotalCount int
		Histories  []struct {
			AlarmId, PolicyId, AlarmStatus string
			FirstOccurTime, LastOccurTime  int64
		}
	}
	ask := func(policies []string, extra map[string]any) answer {
		p := map[string]any{"Module": "monitor", "PageNumber": 1, "PageSize": 20, "AlarmStatus": []string{"ALARM"},
			"StartTime": b.clk.Now().Add(-time.Hour).Unix(), "EndTime": b.clk.Now().Unix(), "PolicyIds": policies}
		for k, v := range extra {
			p[k] = v
		}
		var a answer
		b.c.mustSvc("monitor", "DescribeAlarmHistories", p, &a)
		return a
	}
	if a := ask([]string{"policy-aaaa"}, nil); a.TotalCount != 0 || len(a.Histories) != 0 {
		t.Fatalf("nothing firing: %+v", a)
	}
	since := b.clk.Now()
	b.srv.SetAlert("policy-aaaa", true)
	b.srv.SetAlert("policy-bbbb", true)
	b.clk.Advance(time.Minute)
	a := ask([]string{"policy-aaaa", "policy-cccc"}, nil)
	if a.TotalCount != 1 || a.Histories[0].PolicyId != "policy-aaaa" || a.Histories[0].AlarmStatus != "ALARM" ||
		a.Histories[0].FirstOccurTime != since.Unix() || a.Histories[0].LastOccurTime != b.clk.Now().Unix() || a.Histories[0].AlarmId == "" {
		t.Fatalf("policy-aaaa firing: %+v", a)
	}
	if a := ask(nil, nil); a.TotalCount != 2 {
		t.Fatalf("all policies: %+v", a)
	}
	if a := ask([]string{"policy-aaaa"}, map[string]any{"AlarmStatus": []string{"OK"}}); a.TotalCount != 0 {
		t.Fatalf("OK histories: %+v", a)
	}
	if a := ask([]string{"policy-aaaa"}, map[string]any{"EndTime": since.Add(-time.Second).Unix(), "StartTime": since.Add(-time.Hour).Unix()}); a.TotalCount != 0 {
		t.Fatalf("window before the alarm: %+v", a)
	}
	for params, want := range map[*map[string]any]string{
		{"PolicyIds": []string{"x"}}:         "MissingParameter",
		{"Module": "cvm"}:                    "InvalidParameter",
		{"Module": "monitor", "PageSize": 0}: "InvalidParameter",
	} {
		if got := b.c.svc("monitor", "DescribeAlarmHistories", *params, nil); got != want {
			t.Errorf("DescribeAlarmHistories(%v) = %q; want %q", *params, got, want)
		}
	}
}
