package cvmsim

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testEpoch is the fake clock's start; any fixed instant works.
var testEpoch = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

// fakeClock is a clock.Clock moved by hand. It also implements After, so
// the simulator's Latency waits on it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	// waiting receives a value each time After is called, so a test can
	// await "the request is now waiting" instead of sleeping.
	waiting chan struct{}
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: testEpoch, waiting: make(chan struct{}, 64)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves time forward and fires due waiters.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			continue
		}
		kept = append(kept, w)
	}
	c.waiters = kept
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
	} else {
		c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	}
	select {
	case c.waiting <- struct{}{}:
	default:
	}
	return ch
}

// testBundle is a simulator behind an httptest server with a fake clock
// and a signing client.
type testBundle struct {
	srv *Server
	hs  *httptest.Server
	clk *fakeClock
	c   *client
}

// setup starts a simulator with cfg (Clock replaced by a fake) and the
// given instances.
func setup(t *testing.T, cfg Config, ins ...Instance) *testBundle {
	t.Helper()
	clk := newFakeClock()
	cfg.Clock = clk
	srv := New(cfg)
	srv.AddInstances(ins...)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	d := cfg.withDefaults()
	u, err := url.Parse(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &testBundle{srv: srv, hs: hs, clk: clk, c: &client{
		t: t, base: hs.URL, host: u.Host, id: d.SecretID, key: d.SecretKey,
		region: d.Region, clk: clk, hc: hs.Client(),
	}}
}

// Test instances.
var (
	linuxA   = Instance{ID: "ins-aaaa0001", Zone: "ap-guangzhou-3", ImageID: ImageLinuxOld, OS: OSLinux, State: StateRunning}
	linuxB   = Instance{ID: "ins-bbbb0002", Zone: "ap-guangzhou-4", ImageID: ImageLinuxOld, OS: OSLinux, State: StateRunning}
	stoppedC = Instance{ID: "ins-cccc0003", Zone: "ap-guangzhou-6", ImageID: ImageLinuxOld, OS: OSLinux, State: StateStopped}
	windowsD = Instance{ID: "ins-dddd0004", Zone: "ap-guangzhou-3", ImageID: ImageWindowsOld, OS: OSWindows, State: StateRunning}
)

// client signs requests with its own small implementations of the
// algorithms, written apart from the simulator's.
type client struct {
	t      *testing.T
	base   string
	host   string
	id     string
	key    string
	region string
	clk    *fakeClock
	hc     *http.Client
}

// testNonce numbers nonces across all clients, so copies of a client and
// concurrent callers never collide by accident.
var testNonce atomic.Int64

// v2Answer is a legacy answer. Code is *int so that a quoted code fails to
// decode, as it would in the Go SDK.
type v2Answer struct {
	Code        *int   `json:"code"`
	Message     string `json:"message"`
	CodeDesc    string `json:"codeDesc"`
	RequestID   string `json:"requestId"`
	TotalCount  int    `json:"totalCount"`
	InstanceSet []struct {
		UnInstanceID string `json:"unInstanceId"`
		InstanceID   string `json:"instanceId"`
		UnImgID      string `json:"unImgId"`
		Status       int    `json:"status"`
		ZoneName     string `json:"zoneName"`
		OS           string `json:"os"`
	} `json:"instanceSet"`
}

// v3Answer is an API 3.0 answer.
type v3Answer struct {
	Response struct {
		Error *struct {
			Code    string
			Message string
		}
		RequestId   string
		TotalCount  int
		InstanceSet []struct {
			InstanceId               string
			Placement                struct{ Zone string }
			ImageId                  string
			OsName                   string
			InstanceState            string
			LatestOperation          *string
			LatestOperationState     *string
			LatestOperationRequestId *string
			LatestOperationErrorMsg  *string
		}
	}
}

func (a v3Answer) code() string {
	if a.Response.Error == nil {
		return ""
	}
	return a.Response.Error.Code
}

func (a v3Answer) message() string {
	if a.Response.Error == nil {
		return ""
	}
	return a.Response.Error.Message
}

// v1Params returns the common v1/v2 parameters plus extra, unsigned.
func (c *client) v1Params(action string, extra map[string]string) url.Values {
	p := url.Values{
		"Action":    {action},
		"Region":    {c.region},
		"Timestamp": {strconv.FormatInt(c.clk.Now().Unix(), 10)},
		"Nonce":     {strconv.FormatInt(1000+testNonce.Add(1), 10)},
		"SecretId":  {c.id},
	}
	for k, v := range extra {
		p.Set(k, v)
	}
	return p
}

// testSignV1 is the test's own §1.2 implementation.
func testSignV1(method, host, path, key string, p url.Values) string {
	var names []string
	for k := range p {
		if k != "Signature" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var pairs []string
	for _, k := range names {
		pairs = append(pairs, strings.ReplaceAll(k, "_", ".")+"="+p.Get(k))
	}
	h := sha1.New
	if p.Get("SignatureMethod") == "HmacSHA256" {
		h = sha256.New
	}
	m := hmac.New(h, []byte(key))
	io.WriteString(m, method+host+path+"?"+strings.Join(pairs, "&"))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// sendV1 signs p for method and path and sends it, GET as a query, POST as
// a form body.
func (c *client) sendV1(method, path string, p url.Values) (*http.Response, []byte) {
	c.t.Helper()
	p.Set("Signature", testSignV1(method, c.host, path, c.key, p))
	return c.sendSigned(method, path, p)
}

// sendSigned sends already signed parameters.
func (c *client) sendSigned(method, path string, p url.Values) (*http.Response, []byte) {
	c.t.Helper()
	var req *http.Request
	var err error
	if method == http.MethodGet {
		req, err = http.NewRequest(method, c.base+path+"?"+p.Encode(), nil)
	} else {
		req, err = http.NewRequest(method, c.base+path, strings.NewReader(p.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return c.do(req)
}

func (c *client) do(req *http.Request) (*http.Response, []byte) {
	c.t.Helper()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	return resp, body
}

// v2 calls a legacy action and decodes the answer.
func (c *client) v2(method, action string, extra map[string]string) v2Answer {
	c.t.Helper()
	_, body := c.sendV1(method, PathV2, c.v1Params(action, extra))
	return decodeV2(c.t, body)
}

func decodeV2(t *testing.T, body []byte) v2Answer {
	t.Helper()
	var a v2Answer
	if err := json.Unmarshal(body, &a); err != nil || a.Code == nil {
		t.Fatalf("v2 answer %s: not {code:int,...}: %v", body, err)
	}
	return a
}

// v1 calls an API 3.0 action with signature v1 (POST form on /).
func (c *client) v1(action string, extra map[string]string) v3Answer {
	c.t.Helper()
	p := c.v1Params(action, extra)
	p.Set("Version", apiVersion)
	_, body := c.sendV1(http.MethodPost, PathV3, p)
	return decodeV3(c.t, body)
}

func decodeV3(t *testing.T, body []byte) v3Answer {
	t.Helper()
	var a v3Answer
	if err := json.Unmarshal(body, &a); err != nil || a.Response.RequestId == "" {
		t.Fatalf("v3 answer %s: no Response.RequestId: %v", body, err)
	}
	return a
}

// tc3Request builds a TC3-signed POST with the test's own §3.3 code.
func (c *client) tc3Request(action string, body []byte, ts int64) *http.Request {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+"/", bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	const ct = "application/json"
	req.Header.Set("Content-Type", ct)
	req.Header.Set("X-TC-Action", action)
	req.Header.Set("X-TC-Version", apiVersion)
	req.Header.Set("X-TC-Region", c.region)
	req.Header.Set("X-TC-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("Authorization", testTC3Auth(c.id, c.key, c.host, ct, body, ts))
	return req
}

// testTC3Auth is the test's own TC3-HMAC-SHA256 Authorization value.
func testTC3Auth(id, key, host, contentType string, body []byte, ts int64) string {
	hexsum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	mac := func(k []byte, msg string) []byte {
		var h func() hash.Hash = sha256.New
		m := hmac.New(h, k)
		io.WriteString(m, msg)
		return m.Sum(nil)
	}
	date := time.Unix(ts, 0).UTC().Format("2006-01-02")
	canon := "POST\n/\n\ncontent-type:" + contentType + "\nhost:" + host + "\n\ncontent-type;host\n" + hexsum(body)
	sts := "TC3-HMAC-SHA256\n" + strconv.FormatInt(ts, 10) + "\n" + date + "/cvm/tc3_request\n" + hexsum([]byte(canon))
	k := mac(mac(mac([]byte("TC3"+key), date), "cvm"), "tc3_request")
	return "TC3-HMAC-SHA256 Credential=" + id + "/" + date + "/cvm/tc3_request, SignedHeaders=content-type;host, Signature=" + hex.EncodeToString(mac(k, sts))
}

// v3 calls an API 3.0 action with TC3 and decodes the answer.
func (c *client) v3(action string, params any) v3Answer {
	c.t.Helper()
	body, err := json.Marshal(params)
	if err != nil {
		c.t.Fatal(err)
	}
	_, out := c.do(c.tc3Request(action, body, c.clk.Now().Unix()))
	return decodeV3(c.t, out)
}

// gen names the four ways a test can reach an action.
type gen string

const (
	genV2Get  gen = "v2GET"
	genV2Post gen = "v2POST"
	genV1Form gen = "v1Form"
	genTC3    gen = "tc3"
)

var allGens = []gen{genV2Get, genV2Post, genV1Form, genTC3}

// outcome is a generation-neutral answer.
type outcome struct {
	code      string // "" on success; v3 Error.Code or v2 codeDesc
	v2Code    int
	requestID string
	message   string // the error message, as decoded from the JSON body
}

// reset sends a reset through g. v3 names params as in API 3.0 JSON; for
// v2 and v1 they are already flat (instanceId, LoginSettings.Password...).
func (c *client) reset(g gen, id string, params map[string]string) outcome {
	c.t.Helper()
	switch g {
	case genV2Get, genV2Post:
		p := map[string]string{}
		if id != "" {
			p["instanceId"] = id
		}
		for k, v := range params {
			p[k] = v
		}
		a := c.v2(map[gen]string{genV2Get: http.MethodGet, genV2Post: http.MethodPost}[g], "ResetInstances", p)
		if *a.Code != 0 {
			return outcome{code: a.CodeDesc, v2Code: *a.Code, message: a.Message}
		}
		return outcome{requestID: a.RequestID}
	case genV1Form:
		p := map[string]string{}
		if id != "" {
			p["InstanceId"] = id
		}
		for k, v := range params {
			p[k] = v
		}
		a := c.v1("ResetInstance", p)
		return outcome{code: a.code(), requestID: a.Response.RequestId, message: a.message()}
	default:
		body := map[string]any{}
		if id != "" {
			body["InstanceId"] = id
		}
		for k, v := range params {
			setPath(body, k, v)
		}
		a := c.v3("ResetInstance", body)
		return outcome{code: a.code(), requestID: a.Response.RequestId, message: a.message()}
	}
}

// setPath sets a flat name like LoginSettings.Password in a JSON object.
func setPath(m map[string]any, path, v string) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

// view is a generation-neutral DescribeInstances row.
type view struct {
	image, state, opState, opRequestID string
	v2Status                           int
}

// describe fetches one instance through g.
func (c *client) describe(g gen, id string) view {
	c.t.Helper()
	switch g {
	case genV2Get, genV2Post:
		a := c.v2(http.MethodPost, "DescribeInstances", map[string]string{"instanceIds.0": id})
		if *a.Code != 0 || len(a.InstanceSet) != 1 {
			c.t.Fatalf("v2 DescribeInstances %s = %+v", id, a)
		}
		return view{image: a.InstanceSet[0].UnImgID, v2Status: a.InstanceSet[0].Status}
	default:
		a := c.v3("DescribeInstances", map[string]any{"InstanceIds": []string{id}})
		if a.code() != "" || len(a.Response.InstanceSet) != 1 {
			c.t.Fatalf("DescribeInstances %s = %+v", id, a)
		}
		in := a.Response.InstanceSet[0]
		deref := func(p *string) string {
			if p == nil {
				return ""
			}
			return *p
		}
		return view{image: in.ImageId, state: in.InstanceState, opState: deref(in.LatestOperationState), opRequestID: deref(in.LatestOperationRequestId)}
	}
}

// wantCode fails unless o answered code (v3 Error.Code or v2 codeDesc).
func wantCode(t *testing.T, o outcome, code string) {
	t.Helper()
	if o.code != code {
		t.Fatalf("answer code = %q; want %q", o.code, code)
	}
}
