package cvm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewDefaults(t *testing.T) {
	creds := Credentials{SecretID: "id", SecretKey: "key"}
	tests := []struct {
		name      string
		cfg       Config
		wantGen   Generation
		wantURL   string // v2: full URL; v3: SDK endpoint host[/path]
		wantSig   string
		wantLimit time.Duration
	}{
		{name: "zero_is_v3", cfg: Config{Region: "ap-guangzhou", Credentials: creds},
			wantGen: V3, wantURL: "cvm.tencentcloudapi.com", wantLimit: TimeoutDefault},
		{name: "v2_defaults", cfg: Config{Generation: V2, Region: "gz", Credentials: creds},
			wantGen: V2, wantURL: "https://cvm.api.qcloud.com/v2/index.php", wantSig: "HmacSHA256", wantLimit: TimeoutDefault},
		{name: "v2_simulator_gets_path", cfg: Config{Generation: V2, Endpoint: "http://127.0.0.1:8080", Region: "gz", Credentials: creds, SignatureMethod: "HmacSHA1"},
			wantGen: V2, wantURL: "http://127.0.0.1:8080/v2/index.php", wantSig: "HmacSHA1", wantLimit: TimeoutDefault},
		{name: "v2_slash_gets_path", cfg: Config{Generation: V2, Endpoint: "http://127.0.0.1:8080/", Region: "gz", Credentials: creds},
			wantGen: V2, wantURL: "http://127.0.0.1:8080/v2/index.php", wantSig: "HmacSHA256", wantLimit: TimeoutDefault},
		{name: "v2_explicit_path_kept", cfg: Config{Generation: V2, Endpoint: "http://sim:1/custom/index.php", Region: "gz", Credentials: creds},
			wantGen: V2, wantURL: "http://sim:1/custom/index.php", wantSig: "HmacSHA256", wantLimit: TimeoutDefault},
		{name: "v3_simulator", cfg: Config{Generation: V3, Endpoint: "http://127.0.0.1:9000", Region: "ap-guangzhou", Credentials: creds, Timeout: time.Second},
			wantGen: V3, wantURL: "127.0.0.1:9000", wantLimit: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if api.Generation() != tt.wantGen {
				t.Errorf("Generation() = %v; want %v", api.Generation(), tt.wantGen)
			}
			switch c := api.(type) {
			case *v2Client:
				if c.url.String() != tt.wantURL || c.cfg.SignatureMethod != tt.wantSig || c.cfg.Timeout != tt.wantLimit {
					t.Errorf("v2 url, method, timeout = %s, %s, %v; want %s, %s, %v", c.url, c.cfg.SignatureMethod, c.cfg.Timeout, tt.wantURL, tt.wantSig, tt.wantLimit)
				}
			case *v3Client:
				if c.cfg.Timeout != tt.wantLimit {
					t.Errorf("v3 timeout = %v; want %v", c.cfg.Timeout, tt.wantLimit)
				}
				u, _ := url.Parse(c.cfg.Endpoint)
				if u.Host != tt.wantURL {
					t.Errorf("v3 endpoint host = %s; want %s", u.Host, tt.wantURL)
				}
			}
		})
	}
}

func TestNewValidation(t *testing.T) {
	ok := Config{Region: "ap-guangzhou", Credentials: Credentials{SecretID: "id", SecretKey: "key"}}
	tests := []struct {
		name   string
		modify func(*Config)
		field  string // the error must name it
	}{
		{"bad_generation", func(c *Config) { c.Generation = "v4" }, "Generation"},
		{"no_region", func(c *Config) { c.Region = "" }, "Region"},
		{"no_secret_id", func(c *Config) { c.Credentials.SecretID = "" }, "Credentials.SecretID"},
		{"no_secret_key", func(c *Config) { c.Credentials.SecretKey = "" }, "Credentials.SecretKey"},
		{"ftp_endpoint", func(c *Config) { c.Endpoint = "ftp://x" }, "Endpoint"},
		{"hostless_endpoint", func(c *Config) { c.Endpoint = "http://" }, "Endpoint"},
		{"endpoint_with_query", func(c *Config) { c.Endpoint = "http://x/?a=b" }, "Endpoint"},
		{"endpoint_with_userinfo", func(c *Config) { c.Endpoint = "http://u:p@x/" }, "Endpoint"},
		{"v2_bad_sig_method", func(c *Config) { c.Generation = V2; c.SignatureMethod = "HmacMD5" }, "SignatureMethod"},
		{"v3_v1_sig_method", func(c *Config) { c.SignatureMethod = "HmacSHA1" }, "SignatureMethod"},
		{"negative_timeout", func(c *Config) { c.Timeout = -time.Second }, "Timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.modify(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("New = %v; want an error naming %s", err, tt.field)
			}
			if err != nil && strings.Contains(err.Error(), ":p@") {
				t.Errorf("New error %q leaks endpoint user info", err)
			}
		})
	}
}

// sigServer is a v2 endpoint that verifies the §1.2 signature over every
// received form parameter (host as received, incl. port), records the
// requests, and answers with body.
type sigServer struct {
	t      *testing.T
	key    string
	body   string
	mu     sync.Mutex
	forms  []url.Values
	urls   []string
	header []http.Header
}

func (s *sigServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.t.Errorf("ParseForm: %v", err)
	}
	params := map[string]string{}
	for k, v := range r.PostForm {
		params[k] = v[0]
	}
	want := signV2(r.Method, r.Host, r.URL.Path, params, s.key, params["SignatureMethod"])
	if got := r.PostForm.Get("Signature"); got != want {
		s.t.Errorf("Signature = %q; want %q", got, want)
	}
	s.mu.Lock()
	s.forms = append(s.forms, r.PostForm)
	s.urls = append(s.urls, r.URL.String())
	s.header = append(s.header, r.Header.Clone())
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(s.body))
}

// TestV2ResetInstancesRequest checks the wire form of ResetInstances:
// POST, form body, every parameter, and a password that never appears in
// the URL or a header.
func TestV2ResetInstancesRequest(t *testing.T) {
	const password = "Pa55word!&=+/x"
	ss := &sigServer{t: t, key: "test-secret-key", body: `{"code":0,"message":"","codeDesc":"Success","requestId":987654321}`}
	srv := httptest.NewServer(ss)
	defer srv.Close()
	api := newTestAPI(t, V2, srv.URL, func(c *Config) { c.Credentials.Token = "sts-token" })
	no, yes := false, true
	id, err := api.ResetInstance(context.Background(), ResetRequest{
		InstanceID: "ins-abcdefgh", ImageID: "img-12345678", Password: password,
		SecurityAgent: &no, MonitorAgent: &yes, RootSize: 50,
	})
	if err != nil {
		t.Fatal(err)
	}
	if id != "987654321" {
		t.Errorf("requestId = %q; want 987654321 (a number in the body)", id)
	}
	form := ss.forms[0]
	for k, want := range map[string]string{
		"Action": "ResetInstances", "Region": "ap-guangzhou", "SecretId": "AKIDtest", "SignatureMethod": "HmacSHA256", "Token": "sts-token",
		"instanceId": "ins-abcdefgh", "imageId": "img-12345678", "imageType": "2", "password": password,
		"needSecurityAgent": "0", "needMonitorAgent": "1", "rootSize": "50",
	} {
		if got := form.Get(k); got != want {
			t.Errorf("form %s = %q; want %q", k, got, want)
		}
	}
	for _, k := range []string{"Timestamp", "Nonce", "Signature"} {
		if form.Get(k) == "" {
			t.Errorf("form %s missing", k)
		}
	}
	if u := ss.urls[0]; u != "/v2/index.php" {
		t.Errorf("request URL = %q; want /v2/index.php with no query", u)
	}
	for h, vs := range ss.header[0] {
		for _, v := range vs {
			if strings.Contains(v, password) || strings.Contains(v, url.QueryEscape(password)) {
				t.Errorf("header %s carries the password", h)
			}
		}
	}
}

// TestV2PasswordNeverInURL sends resets through every option combination
// and checks no URL ever carries a query.
func TestV2PasswordNeverInURL(t *testing.T) {
	var seen []string
	rt := &recordingTransport{respond: func(r *http.Request, _ []byte) (*http.Response, error) {
		seen = append(seen, r.URL.String())
		return jsonResponse(200, `{"code":0,"requestId":"1"}`), nil
	}}
	for _, method := range []string{"HmacSHA256", "HmacSHA1"} {
		api := newTestAPI(t, V2, "https://cvm.api.qcloud.com", func(c *Config) { c.Transport = rt; c.SignatureMethod = method })
		for _, req := range []ResetRequest{
			{InstanceID: "ins-1", Password: "Secr3t-Passw0rd"},
			{InstanceID: "ins-1", ImageID: "img-1", ImageType: 1, Password: "Secr3t-Passw0rd"},
		} {
			if _, err := api.ResetInstance(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, u := range seen {
		if u != "https://cvm.api.qcloud.com/v2/index.php" {
			t.Errorf("v2 request URL = %q; want no query", u)
		}
	}
}

func TestV2DescribeInstances(t *testing.T) {
	ss := &sigServer{t: t, key: "test-secret-key", body: `{"code":0,"message":"","codeDesc":"Success","totalCount":3,"instanceSet":[
		{"unInstanceId":"ins-aaaaaaaa","instanceId":"qcvm0001","zoneName":"ap-guangzhou-3","zoneId":100003,"unImgId":"img-11111111","os":"CentOS 7","status":2,
		 "lanIp":"10.0.0.11","wanIpSet":["203.0.113.11"],"instanceName":"web-1"},
		{"unInstanceId":"ins-bbbbbbbb","zoneId":100004,"unImgId":"img-22222222","os":"Windows","status":14,"lanIp":"10.0.0.12","wanIpSet":[],"instanceName":"win-2"},
		{"instanceId":"qcvm0003","unImgId":"img-33333333","status":7}]}`}
	srv := httptest.NewServer(ss)
	defer srv.Close()
	api := newTestAPI(t, V2, srv.URL, nil)
	got, err := api.DescribeInstances(context.Background(), []string{"ins-aaaaaaaa", "ins-bbbbbbbb", "qcvm0003"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Instance{
		{InstanceID: "ins-aaaaaaaa", Zone: "ap-guangzhou-3", ImageID: "img-11111111", OSName: "CentOS 7", State: "RUNNING", V2Status: 2,
			PrivateIPs: []string{"10.0.0.11"}, PublicIPs: []string{"203.0.113.11"}, Name: "web-1"},
		{InstanceID: "ins-bbbbbbbb", Zone: "100004", ImageID: "img-22222222", OSName: "Windows", State: "RESETTING", V2Status: 14,
			PrivateIPs: []string{"10.0.0.12"}, Name: "win-2"},
		{InstanceID: "qcvm0003", ImageID: "img-33333333", State: "STATUS_7", V2Status: 7},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DescribeInstances mismatch (-want +got):\n%s", diff)
	}
	if !got[1].Resetting() {
		t.Errorf("status 14 instance: Resetting() = false")
	}
	form := ss.forms[0]
	for k, want := range map[string]string{
		"Action": "DescribeInstances", "instanceIds.0": "ins-aaaaaaaa", "instanceIds.1": "ins-bbbbbbbb", "instanceIds.2": "qcvm0003",
		"limit": "100", "offset": "0",
	} {
		if got := form.Get(k); got != want {
			t.Errorf("form %s = %q; want %q", k, got, want)
		}
	}
	if form.Has("Token") {
		t.Errorf("form has Token without an STS token")
	}
}

func TestV3ResetInstanceParams(t *testing.T) {
	no, yes := false, true
	tests := []struct {
		name string
		req  ResetRequest
		want string // JSON of the action parameters
	}{
		{name: "minimal", req: ResetRequest{InstanceID: "ins-1"}, want: `{"InstanceId":"ins-1"}`},
		{name: "password_image_agents_disk_hostname",
			req: ResetRequest{InstanceID: "ins-1", ImageID: "img-2", ImageType: 3, Password: "Pw-12345678", SecurityAgent: &no, MonitorAgent: &yes, RootSize: 60, HostName: "web-1"},
			want: `{"EnhancedService":{"MonitorService":{"Enabled":true},"SecurityService":{"Enabled":false}},"HostName":"web-1","ImageId":"img-2","InstanceId":"ins-1",` +
				`"LoginSettings":{"Password":"Pw-12345678"},"SystemDisk":{"DiskSize":60}}`},
		{name: "keys", req: ResetRequest{InstanceID: "ins-1", KeyIDs: []string{"skey-1", "skey-2"}},
			want: `{"InstanceId":"ins-1","LoginSettings":{"KeyIds":["skey-1","skey-2"]}}`},
		{name: "keep_image_login", req: ResetRequest{InstanceID: "ins-1", KeepImageLogin: true},
			want: `{"InstanceId":"ins-1","LoginSettings":{"KeepImageLogin":"TRUE"}}`},
		{name: "security_only", req: ResetRequest{InstanceID: "ins-1", SecurityAgent: &yes},
			want: `{"EnhancedService":{"SecurityService":{"Enabled":true}},"InstanceId":"ins-1"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &recordingTransport{}
			api := newTestAPI(t, V3, "", func(c *Config) { c.Transport = rt })
			id, err := api.ResetInstance(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if id != "req-1" {
				t.Errorf("RequestId = %q; want req-1", id)
			}
			_, body := rt.last(t)
			if diff := cmp.Diff(canonicalJSON(t, tt.want), canonicalJSON(t, string(body))); diff != "" {
				t.Errorf("body mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func canonicalJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON %q: %v", s, err)
	}
	return v
}

func TestV3DescribeInstances(t *testing.T) {
	rt := &recordingTransport{respond: func(*http.Request, []byte) (*http.Response, error) {
		return jsonResponse(200, `{"Response":{"TotalCount":2,"InstanceSet":[
			{"InstanceId":"ins-1","Placement":{"Zone":"ap-guangzhou-3","ProjectId":0},"ImageId":"img-new","OsName":"TencentOS","InstanceState":"RUNNING",
			 "LatestOperation":"ResetInstance","LatestOperationState":"OPERATING","LatestOperationRequestId":"req-9","LatestOperationErrorMsg":null,"CPU":2,
			 "PrivateIpAddresses":["172.16.0.5"],"PublicIpAddresses":["198.51.100.5","198.51.100.6"],"InstanceName":"api-1"},
			{"InstanceId":"ins-2","Placement":{"Zone":"ap-guangzhou-4"},"ImageId":"img-old","OsName":"Windows","InstanceState":"STOPPED",
			 "LatestOperation":"ResetInstance","LatestOperationState":"FAILED","LatestOperationRequestId":"req-8","LatestOperationErrorMsg":"disk error",
			 "PrivateIpAddresses":["172.16.0.6"],"PublicIpAddresses":null,"InstanceName":""}],
			"RequestId":"req-10"}}`), nil
	}}
	api := newTestAPI(t, V3, "", func(c *Config) { c.Transport = rt })
	got, err := api.DescribeInstances(context.Background(), []string{"ins-1", "ins-2", "ins-3"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Instance{
		{InstanceID: "ins-1", Zone: "ap-guangzhou-3", ImageID: "img-new", OSName: "TencentOS", State: "RUNNING",
			LatestOperation: "ResetInstance", LatestOperationState: "OPERATING", LatestOperationRequestID: "req-9",
			PrivateIPs: []string{"172.16.0.5"}, PublicIPs: []string{"198.51.100.5", "198.51.100.6"}, Name: "api-1"},
		{InstanceID: "ins-2", Zone: "ap-guangzhou-4", ImageID: "img-old", OSName: "Windows", State: "STOPPED",
			LatestOperation: "ResetInstance", LatestOperationState: "FAILED", LatestOperationRequestID: "req-8", LatestOperationErrorMsg: "disk error",
			PrivateIPs: []string{"172.16.0.6"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DescribeInstances mismatch (-want +got):\n%s", diff)
	}
	r, body := rt.last(t)
	if r.Header.Get("X-TC-Action") != "DescribeInstances" {
		t.Errorf("X-TC-Action = %q", r.Header.Get("X-TC-Action"))
	}
	if diff := cmp.Diff(canonicalJSON(t, `{"InstanceIds":["ins-1","ins-2","ins-3"],"Limit":100}`), canonicalJSON(t, string(body))); diff != "" {
		t.Errorf("body mismatch (-want +got):\n%s", diff)
	}
}

// TestInvalidRequestsNotSent: requests the client refuses never go out.
func TestInvalidRequestsNotSent(t *testing.T) {
	tooMany := make([]string, MaxDescribeIDs+1)
	for i := range tooMany {
		tooMany[i] = "ins-x"
	}
	tests := []struct {
		name string
		gen  Generation
		call func(API) error
	}{
		{"v2_no_instance", V2, func(a API) error { _, err := a.ResetInstance(context.Background(), ResetRequest{}); return err }},
		{"v2_keys", V2, func(a API) error {
			_, err := a.ResetInstance(context.Background(), ResetRequest{InstanceID: "i", KeyIDs: []string{"k"}})
			return err
		}},
		{"v2_hostname", V2, func(a API) error {
			_, err := a.ResetInstance(context.Background(), ResetRequest{InstanceID: "i", HostName: "h"})
			return err
		}},
		{"v2_imagetype_without_image", V2, func(a API) error {
			_, err := a.ResetInstance(context.Background(), ResetRequest{InstanceID: "i", ImageType: 1})
			return err
		}},
		{"v3_password_and_keys", V3, func(a API) error {
			_, err := a.ResetInstance(context.Background(), ResetRequest{InstanceID: "i", Password: "p", KeyIDs: []string{"k"}})
			return err
		}},
		{"v3_negative_disk", V3, func(a API) error {
			_, err := a.ResetInstance(context.Background(), ResetRequest{InstanceID: "i", RootSize: -1})
			return err
		}},
		{"v2_too_many_ids", V2, func(a API) error { _, err := a.DescribeInstances(context.Background(), tooMany); return err }},
		{"v3_too_many_ids", V3, func(a API) error { _, err := a.DescribeInstances(context.Background(), tooMany); return err }},
		{"v3_empty_id", V3, func(a API) error {
			_, err := a.DescribeInstances(context.Background(), []string{"ins-1", ""})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &recordingTransport{}
			api := newTestAPI(t, tt.gen, "", func(c *Config) { c.Transport = rt })
			err := tt.call(api)
			if !errors.Is(err, ErrInvalidRequest) || Classify(err) != Permanent || MayHaveLanded(err) {
				t.Errorf("err = %v; want ErrInvalidRequest, Permanent, not landed", err)
			}
			if len(rt.reqs) != 0 {
				t.Errorf("%d requests sent; want none", len(rt.reqs))
			}
		})
	}
}

// TestDescribeNoIDs: no IDs means no call (an empty filter lists everything).
func TestDescribeNoIDs(t *testing.T) {
	for _, gen := range []Generation{V2, V3} {
		rt := &recordingTransport{}
		api := newTestAPI(t, gen, "", func(c *Config) { c.Transport = rt })
		got, err := api.DescribeInstances(context.Background(), nil)
		if err != nil || len(got) != 0 || len(rt.reqs) != 0 {
			t.Errorf("%s DescribeInstances(nil) = %v, %v with %d requests; want nothing", gen, got, err, len(rt.reqs))
		}
	}
}

func TestCredentialsFromEnv(t *testing.T) {
	t.Setenv(EnvSecretID, "AKIDenv")
	t.Setenv(EnvSecretKey, "env-secret-key")
	t.Setenv(EnvSessionToken, "env-token")
	got, err := CredentialsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	want := Credentials{SecretID: "AKIDenv", SecretKey: "env-secret-key", Token: "env-token"}
	if got != want {
		t.Errorf("CredentialsFromEnv = %+v; want %+v", got, want)
	}
	// DefaultCredentials takes the environment first (and so never reaches
	// the metadata service here).
	if got, err := DefaultCredentials(); err != nil || got != want {
		t.Errorf("DefaultCredentials = %+v, %v; want %+v", got, err, want)
	}

	t.Setenv(EnvSecretKey, "")
	_, err = CredentialsFromEnv()
	if !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), EnvSecretKey) {
		t.Errorf("CredentialsFromEnv without key = %v; want ErrNoCredentials naming %s", err, EnvSecretKey)
	}
	if strings.Contains(err.Error(), "AKIDenv") {
		t.Errorf("error %q prints the SecretId", err)
	}
}
