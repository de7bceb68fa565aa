package cvm

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Key pair of Tencent's signing docs (§1.3).
const (
	docSecretID  = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA"
	docSecretKey = "Gu5t9xGARNpq86cd98joQYCN3Cozk1qA"
)

// TestSignV2Vectors runs every v2 / signature-v1 vector of §1.3 through the
// client's own signing function: first the string to sign built from the
// parameters, then the signature.
func TestSignV2Vectors(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		host, path string
		params     map[string]string
		key        string
		sigMethod  string
		wantString string
		wantSig    string
	}{
		{
			name: "A_sha256_legacy_signature_page", method: "GET", host: "cvm.api.qcloud.com", path: "/v2/index.php",
			params: map[string]string{
				"Action": "DescribeInstances", "InstanceIds.0": "ins-09dx96dg", "Nonce": "11886", "Region": "ap-guangzhou",
				"SecretId": docSecretID, "SignatureMethod": "HmacSHA256", "Timestamp": "1465185768",
			},
			key: docSecretKey, sigMethod: "HmacSHA256",
			wantString: "GETcvm.api.qcloud.com/v2/index.php?Action=DescribeInstances&InstanceIds.0=ins-09dx96dg&Nonce=11886&Region=ap-guangzhou&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA&SignatureMethod=HmacSHA256&Timestamp=1465185768",
			wantSig:    "0EEm/HtGRr/VJXTAD9tYMth1Bzm3lLHz5RCDv1GdM8s=",
		},
		{
			name: "C_sha1_lowercase_params_sort_last", method: "GET", host: "cvm.api.qcloud.com", path: "/v2/index.php",
			params: map[string]string{
				"Action": "DescribeInstances", "Nonce": "11886", "Region": "gz", "SecretId": docSecretID, "Timestamp": "1465185768",
				"instanceIds.0": "ins-09dx96dg", "limit": "20", "offset": "0",
			},
			key: docSecretKey, sigMethod: "", // absent SignatureMethod means HmacSHA1
			wantString: "GETcvm.api.qcloud.com/v2/index.php?Action=DescribeInstances&Nonce=11886&Region=gz&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA&Timestamp=1465185768&instanceIds.0=ins-09dx96dg&limit=20&offset=0",
			wantSig:    "NSI3UqqD99b/UJb4tbG/xZpRW64=",
		},
		{
			name: "D_sha1_older_page", method: "GET", host: "cvm.api.qcloud.com", path: "/v2/index.php",
			params: map[string]string{
				"Action": "DescribeInstances", "Nonce": "345122", "Region": "gz", "SecretId": docSecretID, "Timestamp": "1408704141",
			},
			key: docSecretKey, sigMethod: "HmacSHA1",
			wantString: "GETcvm.api.qcloud.com/v2/index.php?Action=DescribeInstances&Nonce=345122&Region=gz&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA&Timestamp=1408704141",
			wantSig:    "HgIYOPcx5lN6gz8JsCFBNAWp2oQ=",
		},
		{
			name: "E_post_sha1_python_sdk", method: "POST", host: "cvm.api.qcloud.com", path: "/v2/index.php",
			params: vectorEParams("HmacSHA1"),
			key:    "secretKeyBar", sigMethod: "HmacSHA1",
			wantString: "POSTcvm.api.qcloud.com/v2/index.php?Action=DescribeInstances&Nonce=1290303896666895346&Region=ap-guangzhou&SecretId=secretIdFoo&SignatureMethod=HmacSHA1&Timestamp=1512393162&Version=2017-03-12",
			wantSig:    "p3n+pxBqF5JGZtDSxoVn5tGngf0=",
		},
		{
			name: "E_get_variant", method: "get", host: "cvm.api.qcloud.com", path: "/v2/index.php", // method is upper-cased
			params: vectorEParams("HmacSHA1"),
			key:    "secretKeyBar", sigMethod: "HmacSHA1",
			wantString: "GETcvm.api.qcloud.com/v2/index.php?Action=DescribeInstances&Nonce=1290303896666895346&Region=ap-guangzhou&SecretId=secretIdFoo&SignatureMethod=HmacSHA1&Timestamp=1512393162&Version=2017-03-12",
			wantSig:    "5HAq1BOKNLEE2/uauWnp6Zv9Z3c=",
		},
		{
			name: "E_sha256_variant", method: "POST", host: "cvm.api.qcloud.com", path: "/v2/index.php",
			params: vectorEParams("HmacSHA256"),
			key:    "secretKeyBar", sigMethod: "HmacSHA256",
			wantString: "POSTcvm.api.qcloud.com/v2/index.php?Action=DescribeInstances&Nonce=1290303896666895346&Region=ap-guangzhou&SecretId=secretIdFoo&SignatureMethod=HmacSHA256&Timestamp=1512393162&Version=2017-03-12",
			wantSig:    "B2T37FRSP6Fk0/q/cdfrTE0p3zX5ooB/2BPWZUFpsj4=",
		},
		{
			name: "F_api3_signature_v1", method: "GET", host: "cvm.tencentcloudapi.com", path: "/",
			params: map[string]string{
				"Action": "DescribeInstances", "InstanceIds.0": "ins-09dx96dg", "Limit": "20", "Nonce": "11886", "Offset": "0",
				"Region": "ap-guangzhou", "SecretId": "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******", "Timestamp": "1465185768", "Version": "2017-03-12",
			},
			key: "Gu5t9xGARNpq86cd98joQYCN3*******", sigMethod: "HmacSHA1", // asterisks are literal
			wantString: "GETcvm.tencentcloudapi.com/?Action=DescribeInstances&InstanceIds.0=ins-09dx96dg&Limit=20&Nonce=11886&Offset=0&Region=ap-guangzhou&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******&Timestamp=1465185768&Version=2017-03-12",
			wantSig:    "zmmjn35mikh6pM3V7sUEuX4wyYM=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The signature is computed over everything but Signature.
			params := map[string]string{"Signature": "ignored"}
			for k, v := range tt.params {
				params[k] = v
			}
			if got := stringToSignV2(tt.method, tt.host, tt.path, params); got != tt.wantString {
				t.Errorf("stringToSignV2 = %q; want %q", got, tt.wantString)
			}
			if got := signV2(tt.method, tt.host, tt.path, params, tt.key, tt.sigMethod); got != tt.wantSig {
				t.Errorf("signV2 = %q; want %q", got, tt.wantSig)
			}
		})
	}
}

func vectorEParams(sigMethod string) map[string]string {
	return map[string]string{
		"Action": "DescribeInstances", "Nonce": "1290303896666895346", "Region": "ap-guangzhou", "SecretId": "secretIdFoo",
		"SignatureMethod": sigMethod, "Timestamp": "1512393162", "Version": "2017-03-12",
	}
}

// TestStringToSignV2Underscore checks the PHP rule: "_" in a name is
// signed as "." (values keep theirs), and hosts keep their port.
func TestStringToSignV2Underscore(t *testing.T) {
	got := stringToSignV2("POST", "127.0.0.1:8080", "/v2/index.php", map[string]string{
		"Placement_Zone": "CN_GUANGZHOU", "Action": "X",
	})
	want := "POST127.0.0.1:8080/v2/index.php?Action=X&Placement.Zone=CN_GUANGZHOU"
	if got != want {
		t.Errorf("stringToSignV2 = %q; want %q", got, want)
	}
}

// TestSignV2MethodSelection: only the exact "HmacSHA256" selects SHA-256.
func TestSignV2MethodSelection(t *testing.T) {
	p := vectorEParams("HmacSHA1")
	sha1Sig := signV2("POST", "cvm.api.qcloud.com", "/v2/index.php", p, "secretKeyBar", "HmacSHA1")
	for _, m := range []string{"", "hmacsha256", "HmacSHA1", "bogus"} {
		if got := signV2("POST", "cvm.api.qcloud.com", "/v2/index.php", p, "secretKeyBar", m); got != sha1Sig {
			t.Errorf("signV2(method %q) = %q; want the HmacSHA1 signature %q", m, got, sha1Sig)
		}
	}
}

// tc3 is an independent TC3-HMAC-SHA256 implementation written from §3.3,
// used to check the SDK's signatures. It returns the hex sha256 of the
// canonical request and the signature.
func tc3(secretKey, service, method, host, contentType string, timestamp int64, payload string) (hashedCanonical, signature string) {
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	canonical := strings.Join([]string{
		method, "/", "",
		"content-type:" + contentType + "\nhost:" + host + "\n",
		"content-type;host",
		sum(payload),
	}, "\n")
	hashedCanonical = sum(canonical)
	date := time.Unix(timestamp, 0).UTC().Format("2006-01-02")
	toSign := "TC3-HMAC-SHA256\n" + strconv.FormatInt(timestamp, 10) + "\n" + date + "/" + service + "/tc3_request\n" + hashedCanonical
	kDate := mac([]byte("TC3"+secretKey), date)
	kService := mac(kDate, service)
	kSigning := mac(kService, "tc3_request")
	return hashedCanonical, hex.EncodeToString(mac(kSigning, toSign))
}

// TestTC3OfficialVector proves the test's own TC3 implementation on the
// official §3.3 vector, so TestTC3SDKRequest can trust it.
func TestTC3OfficialVector(t *testing.T) {
	payload := `{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}`
	if h := sha256.Sum256([]byte(payload)); hex.EncodeToString(h[:]) != "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064" {
		t.Fatalf("payload hash = %x; want 35e9c5b0…", h)
	}
	hc, sig := tc3("Gu5t9xGARNpq86cd98joQYCN3*******", "cvm", "POST", "cvm.tencentcloudapi.com", "application/json; charset=utf-8", 1551113065, payload)
	if want := "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"; hc != want {
		t.Errorf("hashed canonical request = %s; want %s", hc, want)
	}
	if want := "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"; sig != want {
		t.Errorf("signature = %s; want %s", sig, want)
	}
}

// recordingTransport records requests (with bodies) and answers each with
// respond, or 200 {"Response":{"RequestId":"req-1"}}.
type recordingTransport struct {
	mu      sync.Mutex
	reqs    []*http.Request
	bodies  [][]byte
	respond func(*http.Request, []byte) (*http.Response, error)
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body.Close()
	}
	rt.mu.Lock()
	rt.reqs = append(rt.reqs, r)
	rt.bodies = append(rt.bodies, body)
	respond := rt.respond
	rt.mu.Unlock()
	if respond != nil {
		return respond(r, body)
	}
	return jsonResponse(200, `{"Response":{"RequestId":"req-1"}}`), nil
}

func (rt *recordingTransport) last(t *testing.T) (*http.Request, []byte) {
	t.Helper()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.reqs) == 0 {
		t.Fatal("no request recorded")
	}
	return rt.reqs[len(rt.reqs)-1], rt.bodies[len(rt.bodies)-1]
}

func jsonResponse(status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status,
		Status:     fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
}

// TestTC3SDKRequest captures a request signed by the SDK through the v3
// client and verifies its Authorization with the vector-proven tc3 above,
// for the default host and for a simulator-style http host with a port.
func TestTC3SDKRequest(t *testing.T) {
	for _, endpoint := range []string{"", "http://127.0.0.1:8080"} {
		t.Run(strconv.Quote(endpoint), func(t *testing.T) {
			rt := &recordingTransport{}
			api, err := New(Config{Generation: V3, Endpoint: endpoint, Region: "ap-guangzhou", Transport: rt,
				Credentials: Credentials{SecretID: "AKIDtest", SecretKey: "tc3-secret-key", Token: "sts-token-value"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := api.ResetInstance(context.Background(), ResetRequest{InstanceID: "ins-12345678", ImageID: "img-abcdefgh"}); err != nil {
				t.Fatal(err)
			}
			r, body := rt.last(t)
			wantHost, wantScheme := "cvm.tencentcloudapi.com", "https"
			if endpoint != "" {
				wantHost, wantScheme = "127.0.0.1:8080", "http"
			}
			if r.Method != "POST" || r.URL.Scheme != wantScheme || r.Host != wantHost || r.URL.Path != "/" || r.URL.RawQuery != "" {
				t.Errorf("request = %s %s (Host %s); want POST %s://%s/", r.Method, r.URL, r.Host, wantScheme, wantHost)
			}
			for h, want := range map[string]string{
				"X-TC-Action": "ResetInstance", "X-TC-Version": "2017-03-12", "X-TC-Region": "ap-guangzhou",
				"X-TC-Token": "sts-token-value", "Content-Type": "application/json",
			} {
				if got := r.Header.Get(h); got != want {
					t.Errorf("header %s = %q; want %q", h, got, want)
				}
			}
			ts, err := strconv.ParseInt(r.Header.Get("X-TC-Timestamp"), 10, 64)
			if err != nil {
				t.Fatalf("X-TC-Timestamp: %v", err)
			}
			_, sig := tc3("tc3-secret-key", "cvm", "POST", r.Host, r.Header.Get("Content-Type"), ts, string(body))
			date := time.Unix(ts, 0).UTC().Format("2006-01-02")
			want := "TC3-HMAC-SHA256 Credential=AKIDtest/" + date + "/cvm/tc3_request, SignedHeaders=content-type;host, Signature=" + sig
			if got := r.Header.Get("Authorization"); got != want {
				t.Errorf("Authorization = %q; want %q", got, want)
			}
		})
	}
}
