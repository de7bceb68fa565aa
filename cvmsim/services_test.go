package cvmsim

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// testVersions are the API versions of each service, written apart from
// the simulator's table.
var testVersions = map[string]string{"cvm": "2017-03-12", "clb": "2018-03-17", "tat": "2020-10-28", "monitor": "2018-07-24"}

// testTC3AuthFor is testTC3Auth with the service in the scope.
func testTC3AuthFor(service, id, key, host, contentType string, body []byte, ts int64) string {
	hexsum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	mac := func(k []byte, msg string) []byte {
		m := hmac.New(sha256.New, k)
		io.WriteString(m, msg)
		return m.Sum(nil)
	}
	date := time.Unix(ts, 0).UTC().Format("2006-01-02")
	canon := "POST\n/\n\ncontent-type:" + contentType + "\nhost:" + host + "\n\ncontent-type;host\n" + hexsum(body)
	scope := date + "/" + service + "/tc3_request"
	sts := "TC3-HMAC-SHA256\n" + strconv.FormatInt(ts, 10) + "\n" + scope + "\n" + hexsum([]byte(canon))
	k := mac(mac(mac([]byte("TC3"+key), date), service), "tc3_request")
	return "TC3-HMAC-SHA256 Credential=" + id + "/" + scope + ", SignedHeaders=content-type;host, Signature=" + hex.EncodeToString(mac(k, sts))
}

// svcCall is one TC3 request to a service: the service signed for (scope)
// and the version sent can be set apart from the action's to test refusals.
type svcCall struct {
	scope, version, action string
	params                 any
	noRegion               bool
}

// send sends call and returns the raw body.
func (c *client) send(call svcCall) []byte {
	c.t.Helper()
	body, err := json.Marshal(call.params)
	if err != nil {
		c.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, c.base+"/", bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	ts := c.clk.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-TC-Action", call.action)
	req.Header.Set("X-TC-Version", call.version)
	if !call.noRegion {
		req.Header.Set("X-TC-Region", c.region)
	}
	req.Header.Set("X-TC-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("Authorization", testTC3AuthFor(call.scope, c.id, c.key, c.host, "application/json", body, ts))
	_, out := c.do(req)
	return out
}

// svc calls action of service with params and decodes Response into out
// (which may be nil); it returns the error code, "" on success.
func (c *client) svc(service, action string, params, out any) string {
	c.t.Helper()
	return c.decode(c.send(svcCall{scope: service, version: testVersions[service], action: action, params: params}), out)
}

// decode decodes an answer's Response into out and returns its error code.
func (c *client) decode(body []byte, out any) string {
	c.t.Helper()
	var env struct {
		Response struct {
			Error *struct {
				Code    string
				Message string
			}
			RequestId string
		}
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Response.RequestId == "" {
		c.t.Fatalf("answer %s: no Response.RequestId: %v", body, err)
	}
	if env.Response.Error != nil {
		return env.Response.Error.Code
	}
	if out != nil {
		var raw struct{ Response json.RawMessage }
		json.Unmarshal(body, &raw)
		if err := json.Unmarshal(raw.Response, out); err != nil {
			c.t.Fatalf("decode %s: %v", raw.Response, err)
		}
	}
	return ""
}

// mustSvc is svc that fails the test on an error answer.
func (c *client) mustSvc(service, action string, params, out any) {
	c.t.Helper()
	if code := c.svc(service, action, params, out); code != "" {
		c.t.Fatalf("%s %s = %s; want success", service, action, code)
	}
}

// TestServiceRouting checks the TC3 scope, version and action rules of
// the services beyond cvm.
func TestServiceRouting(t *testing.T) {
	b := setup(t, Config{LoadBalancers: []LoadBalancer{{ID: "lb-aaaaaaaa"}}}, linuxA)
	lb := map[string]any{"LoadBalancerId": "lb-aaaaaaaa"}
	tests := []struct {
		name string
		call svcCall
		want string
	}{
		{"clb_ok", svcCall{scope: "clb", version: "2018-03-17", action: "DescribeTargets", params: lb}, ""},
		{"clb_without_region", svcCall{scope: "clb", version: "2018-03-17", action: "DescribeTargets", params: lb, noRegion: true}, ""},
		{"tat_without_region", svcCall{scope: "tat", version: "2020-10-28", action: "DescribeAutomationAgentStatus", params: map[string]any{}, noRegion: true}, "MissingParameter"},
		{"clb_action_signed_for_cvm", svcCall{scope: "cvm", version: "2018-03-17", action: "DescribeTargets", params: lb}, "AuthFailure.SignatureFailure"},
		{"clb_wrong_version", svcCall{scope: "clb", version: "2017-03-12", action: "DescribeTargets", params: lb}, "NoSuchVersion"},
		{"cvm_action_on_clb", svcCall{scope: "clb", version: "2018-03-17", action: "DescribeInstances", params: map[string]any{}}, "InvalidAction"},
		{"unknown_tat_action", svcCall{scope: "tat", version: "2020-10-28", action: "InvokeCommand", params: map[string]any{}}, "InvalidAction"},
		{"unknown_parameter", svcCall{scope: "monitor", version: "2018-07-24", action: "DescribeAlarmHistories", params: map[string]any{"Module": "monitor", "Policies": []string{"x"}}}, "UnknownParameter"},
		{"cvm_still_works", svcCall{scope: "cvm", version: "2017-03-12", action: "DescribeInstances", params: map[string]any{}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *b.c
			c.t = t
			if got := c.decode(c.send(tt.call), nil); got != tt.want {
				t.Fatalf("%s %s = %q; want %q", tt.call.scope, tt.call.action, got, tt.want)
			}
		})
	}
}

// TestServiceRateLimit checks the 20 calls per second per action.
func TestServiceRateLimit(t *testing.T) {
	b := setup(t, Config{}, linuxA)
	args := map[string]any{"InstanceIds": []string{linuxA.ID}}
	for i := range 20 {
		if code := b.c.svc("tat", "DescribeAutomationAgentStatus", args, nil); code != "" {
			t.Fatalf("call %d = %s", i, code)
		}
	}
	if code := b.c.svc("tat", "DescribeAutomationAgentStatus", args, nil); code != "RequestLimitExceeded" {
		t.Fatalf("21st call in a second = %q; want RequestLimitExceeded", code)
	}
	// Another action has its own budget, and the next second a new one.
	b.c.mustSvc("tat", "DescribeInvocationTasks", map[string]any{}, nil)
	b.clk.Advance(time.Second)
	b.c.mustSvc("tat", "DescribeAutomationAgentStatus", args, nil)
	if got := b.srv.Stats().RateLimited["DescribeAutomationAgentStatus"]; got != 1 {
		t.Fatalf("RateLimited = %d; want 1", got)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
