package cvmsim

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// parseSigned splits a documented string to sign into its parts. Values in
// the vectors contain no '&' or '=', so a plain split is exact.
func parseSigned(t *testing.T, sts string) (method, host, path string, p url.Values) {
	t.Helper()
	for _, m := range []string{"GET", "POST"} {
		if rest, ok := strings.CutPrefix(sts, m); ok {
			method, sts = m, rest
		}
	}
	hostPath, query, _ := strings.Cut(sts, "?")
	i := strings.IndexByte(hostPath, '/')
	host, path = hostPath[:i], hostPath[i:]
	p = url.Values{}
	for pair := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(pair, "=")
		p.Add(k, v)
	}
	return method, host, path, p
}

// TestV1Vectors runs every documented v2 / signature-v1 vector (§1.3)
// through the simulator's string-to-sign, signature and full verification.
func TestV1Vectors(t *testing.T) {
	const (
		docKey  = "Gu5t9xGARNpq86cd98joQYCN3Cozk1qA"
		starKey = "Gu5t9xGARNpq86cd98joQYCN3*******" // asterisks are literal
	)
	eBase := "cvm.api.qcloud.com/v2/index.php?Action=DescribeInstances&Nonce=1290303896666895346&Region=ap-guangzhou&SecretId=secretIdFoo&SignatureMethod=HmacSHA1&Timestamp=1512393162&Version=2017-03-12"
	tests := []struct {
		name string
		key  string
		sts  string
		want string
	}{
		{"A_sha256", docKey, "GETcvm.api.qcloud.com/v2/index.php?Action=DescribeInstances&InstanceIds.0=ins-09dx96dg&Nonce=11886&Region=ap-guangzhou&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA&SignatureMethod=HmacSHA256&Timestamp=1465185768", "0EEm/HtGRr/VJXTAD9tYMth1Bzm3lLHz5RCDv1GdM8s="},
		{"C_lowercase_params_last", docKey, "GETcvm.api.qcloud.com/v2/index.php?Action=DescribeInstances&Nonce=11886&Region=gz&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA&Timestamp=1465185768&instanceIds.0=ins-09dx96dg&limit=20&offset=0", "NSI3UqqD99b/UJb4tbG/xZpRW64="},
		{"D_older_page", docKey, "GETcvm.api.qcloud.com/v2/index.php?Action=DescribeInstances&Nonce=345122&Region=gz&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3gnPhESA&Timestamp=1408704141", "HgIYOPcx5lN6gz8JsCFBNAWp2oQ="},
		{"E_post", "secretKeyBar", "POST" + eBase, "p3n+pxBqF5JGZtDSxoVn5tGngf0="},
		{"E_get", "secretKeyBar", "GET" + eBase, "5HAq1BOKNLEE2/uauWnp6Zv9Z3c="},
		{"E_sha256", "secretKeyBar", "POST" + strings.Replace(eBase, "HmacSHA1", "HmacSHA256", 1), "B2T37FRSP6Fk0/q/cdfrTE0p3zX5ooB/2BPWZUFpsj4="},
		{"F_api3_v1", starKey, "GETcvm.tencentcloudapi.com/?Action=DescribeInstances&InstanceIds.0=ins-09dx96dg&Limit=20&Nonce=11886&Offset=0&Region=ap-guangzhou&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******&Timestamp=1465185768&Version=2017-03-12", "zmmjn35mikh6pM3V7sUEuX4wyYM="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, host, path, p := parseSigned(t, tt.sts)
			if got := v1StringToSign(method, host, path, p); got != tt.sts {
				t.Fatalf("v1StringToSign = %q; want %q", got, tt.sts)
			}
			if got := v1Signature(p.Get("SignatureMethod"), tt.key, tt.sts); got != tt.want {
				t.Fatalf("v1Signature = %q; want %q", got, tt.want)
			}
			// The full check, at the vector's own time and key pair.
			ts, _ := strconv.ParseInt(p.Get("Timestamp"), 10, 64)
			clk := newFakeClock()
			clk.now = time.Unix(ts, 0)
			s := New(Config{SecretID: p.Get("SecretId"), SecretKey: tt.key, Clock: clk})
			p.Set("Signature", tt.want)
			s.mu.Lock()
			defer s.mu.Unlock()
			if e := s.authV1(method, host, path, p, clk.Now()); e != nil {
				t.Fatalf("authV1 = %v; want nil", e)
			}
			// The same request again is a replay.
			if e := s.authV1(method, host, path, p, clk.Now()); e == nil || e.kind != errReplay {
				t.Fatalf("authV1 replay = %v; want %s", e, errReplay.v3)
			}
		})
	}
}

// TestV1SignatureDetails pins the rules around the vectors: the "_" to "."
// name rewrite, the exact SignatureMethod match, and host with port.
func TestV1SignatureDetails(t *testing.T) {
	p := url.Values{"Placement_Zone": {"CN_GUANGZHOU"}, "Action": {"X"}}
	if got, want := v1StringToSign("post", "h:8080", "/v2/index.php", p), "POSTh:8080/v2/index.php?Action=X&Placement.Zone=CN_GUANGZHOU"; got != want {
		t.Errorf("v1StringToSign = %q; want %q", got, want)
	}
	const sts = "GEThost/?A=1"
	sha1Sig := v1Signature("", "k", sts)
	for _, method := range []string{"", "HmacSHA1", "hmacsha256", "HMACSHA256", "HmacSHA256 "} {
		if got := v1Signature(method, "k", sts); got != sha1Sig {
			t.Errorf("v1Signature(%q) = %q; want the HMAC-SHA1 %q", method, got, sha1Sig)
		}
	}
	if v1Signature("HmacSHA256", "k", sts) == sha1Sig {
		t.Errorf("v1Signature(HmacSHA256) equals the SHA1 signature")
	}
}

// The official TC3 vector (§3.3), asterisks literal.
const (
	tc3VecID      = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******"
	tc3VecKey     = "Gu5t9xGARNpq86cd98joQYCN3*******"
	tc3VecTS      = 1551113065
	tc3VecPayload = `{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}`
	tc3VecSig     = "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
)

func TestTC3Vector(t *testing.T) {
	payloadHash := sha256Hex([]byte(tc3VecPayload))
	if want := "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"; payloadHash != want {
		t.Fatalf("payload hash = %s; want %s", payloadHash, want)
	}
	canon := tc3CanonicalRequest("POST", "/", "", "content-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n", "content-type;host", payloadHash)
	if got, want := sha256Hex([]byte(canon)), "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"; got != want {
		t.Fatalf("hashed canonical request = %s; want %s", got, want)
	}
	date := tc3Date(tc3VecTS)
	if date != "2019-02-25" {
		t.Fatalf("tc3Date = %s; want 2019-02-25", date)
	}
	if got := tc3Signature(tc3VecKey, date, "cvm", tc3StringToSign(tc3VecTS, date, "cvm", canon)); got != tc3VecSig {
		t.Fatalf("tc3Signature = %s; want %s", got, tc3VecSig)
	}
}

// TestTC3VectorRequest runs the vector as an HTTP request through authTC3.
func TestTC3VectorRequest(t *testing.T) {
	auth := "TC3-HMAC-SHA256 Credential=" + tc3VecID + "/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=" + tc3VecSig
	tests := []struct {
		name        string
		contentType string
		auth        string
		at          time.Time
		want        *errKind
	}{
		{"valid", "application/json; charset=utf-8", auth, time.Unix(tc3VecTS, 0), nil},
		{"valid_within_window", "application/json; charset=utf-8", auth, time.Unix(tc3VecTS, 0).Add(4 * time.Minute), nil},
		{"content_type_changed", "application/json", auth, time.Unix(tc3VecTS, 0), &errSignatureFailure},
		{"expired", "application/json; charset=utf-8", auth, time.Unix(tc3VecTS, 0).Add(6 * time.Minute), &errSignatureExpire},
		{"from_future", "application/json; charset=utf-8", auth, time.Unix(tc3VecTS, 0).Add(-6 * time.Minute), &errSignatureExpire},
		{"bad_signature", "application/json; charset=utf-8", strings.Replace(auth, "Signature=2", "Signature=3", 1), time.Unix(tc3VecTS, 0), &errSignatureFailure},
		{"wrong_service", "application/json; charset=utf-8", strings.Replace(auth, "/cvm/", "/cbs/", 1), time.Unix(tc3VecTS, 0), &errSignatureFailure},
		{"unknown_id", "application/json; charset=utf-8", strings.Replace(auth, tc3VecID, "AKIDother", 1), time.Unix(tc3VecTS, 0), &errSecretIDNotFound},
		{"not_tc3", "application/json; charset=utf-8", "HMAC foo", time.Unix(tc3VecTS, 0), &errInvalidAuthorization},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "http://cvm.tencentcloudapi.com/", strings.NewReader(tc3VecPayload))
			r.Header.Set("Content-Type", tt.contentType)
			r.Header.Set("X-TC-Timestamp", strconv.Itoa(tc3VecTS))
			r.Header.Set("Authorization", tt.auth)
			clk := newFakeClock()
			clk.now = tt.at
			s := New(Config{SecretID: tc3VecID, SecretKey: tc3VecKey, Clock: clk})
			s.mu.Lock()
			defer s.mu.Unlock()
			e := s.authTC3(r, []byte(tc3VecPayload), clk.Now())
			switch {
			case tt.want == nil && e != nil:
				t.Fatalf("authTC3 = %v; want nil", e)
			case tt.want != nil && (e == nil || e.kind != *tt.want):
				t.Fatalf("authTC3 = %v; want %s", e, tt.want.v3)
			}
		})
	}
}
