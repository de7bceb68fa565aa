package cvmsim

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzSignV1 is the fuzz test's own reading of the documented signature v1
// rule (§1.2, as the simulator states it): METHOD (upper case) + host +
// path + "?" + every parameter but Signature, names sorted byte-wise as
// received and written with "_" as ".", one name=value pair per value.
func fuzzSignV1(method, host, path, key string, p url.Values) string {
	var names []string
	for k := range p {
		if k != "Signature" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var pairs []string
	for _, k := range names {
		for _, v := range p[k] {
			pairs = append(pairs, strings.ReplaceAll(k, "_", ".")+"="+v)
		}
	}
	h := sha1.New
	if p.Get("SignatureMethod") == "HmacSHA256" {
		h = sha256.New
	}
	m := hmac.New(h, []byte(key))
	m.Write([]byte(strings.ToUpper(method) + host + path + "?" + strings.Join(pairs, "&")))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// FuzzAuthV1 checks the v2 / signature-v1 verifier with arbitrary
// requests (method, host, path, parameters):
//
//   - as sent, a request the fuzzer made up is never accepted unless its
//     Signature is right (it cannot be: the fuzzer has no key);
//   - signed with the simulator's key (fresh Timestamp and Nonce), it is
//     accepted, then refused as a replay;
//   - signed, then with one parameter value changed, it is refused.
func FuzzAuthV1(f *testing.F) {
	f.Add("GET", "cvm.api.qcloud.com", "/v2/index.php", "Action=DescribeInstances&Region=ap-guangzhou&instanceIds.0=ins-aaaaaaaa", uint64(11886), true)
	f.Add("POST", "127.0.0.1:8080", "/", "Action=ResetInstance&Version=2017-03-12&InstanceId=ins-aaaaaaaa&LoginSettings.Password=Passw0rd-x", uint64(1), false)
	f.Add("post", "h", "/v2/index.php", "a_b=1&a.b=2&a=1%262&a=3&SecretId=AKIDother&Signature=x&Timestamp=0&Nonce=5", uint64(7), true)
	f.Add("GET", "", "", "Token=t&SignatureMethod=HmacSHA1", uint64(0), false)
	f.Fuzz(func(t *testing.T, method, host, path, query string, nonce uint64, sha256 bool) {
		p, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		now := testEpoch
		fresh := func() *Server {
			clk := newFakeClock()
			return New(Config{Clock: clk})
		}
		// As sent: the fuzzer's own Signature.
		s := fresh()
		if e := s.authV1(method, host, path, p, now); e == nil && p.Get("Signature") != fuzzSignV1(method, host, path, SecretKeyDefault, p) {
			t.Fatalf("authV1 accepted a request with a wrong signature: %s %s%s ? %s", method, host, path, query)
		}
		// Signed properly.
		p.Set("SecretId", SecretIDDefault)
		p.Del("Token")
		p.Set("Timestamp", strconv.FormatInt(now.Unix(), 10))
		p.Set("Nonce", strconv.FormatUint(max(nonce, 1), 10))
		if sha256 {
			p.Set("SignatureMethod", "HmacSHA256")
		}
		p.Set("Signature", fuzzSignV1(method, host, path, SecretKeyDefault, p))
		s = fresh()
		if e := s.authV1(method, host, path, p, now); e != nil {
			t.Fatalf("authV1 refused a properly signed request: %v\n%s %s%s ? %s", e, method, host, path, p.Encode())
		}
		if e := s.authV1(method, host, path, p, now); e == nil || e.kind != errReplay {
			t.Fatalf("authV1 of the same request again = %v; want %s", e, errReplay.v3)
		}
		// Tampered: one value longer, so the string to sign changes.
		names := make([]string, 0, len(p))
		for k := range p {
			if k != "Signature" {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		q := url.Values{}
		for k, v := range p {
			q[k] = append([]string(nil), v...)
		}
		q[names[0]][0] += "0"
		if e := fresh().authV1(method, host, path, q, now); e == nil {
			t.Fatalf("authV1 accepted a request whose %s was changed after signing", names[0])
		}
	})
}

// fuzzTC3Auth is the fuzz test's own TC3-HMAC-SHA256 Authorization value
// (§3.3): content-type and host signed, values lower-cased and trimmed.
func fuzzTC3Auth(id, key, method, path, query, host, contentType string, body []byte, ts int64) string {
	hexsum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	mac := func(k []byte, msg string) []byte {
		var h func() hash.Hash = sha256.New
		m := hmac.New(h, k)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	date := time.Unix(ts, 0).UTC().Format("2006-01-02")
	headers := "content-type:" + strings.ToLower(strings.TrimSpace(contentType)) + "\nhost:" + strings.ToLower(strings.TrimSpace(host)) + "\n"
	canon := method + "\n" + path + "\n" + query + "\n" + headers + "\ncontent-type;host\n" + hexsum(body)
	sts := "TC3-HMAC-SHA256\n" + strconv.FormatInt(ts, 10) + "\n" + date + "/cvm/tc3_request\n" + hexsum([]byte(canon))
	k := mac(mac(mac([]byte("TC3"+key), date), "cvm"), "tc3_request")
	return "TC3-HMAC-SHA256 Credential=" + id + "/" + date + "/cvm/tc3_request, SignedHeaders=content-type;host, Signature=" + hex.EncodeToString(mac(k, sts))
}

// FuzzAuthTC3 checks the TC3 verifier with arbitrary requests (GET or
// POST, host, path, query, Content-Type, body, timestamp within the
// window):
//
//   - an Authorization header the fuzzer made up is never accepted unless
//     it is the right one;
//   - signed with the simulator's key, the request is accepted;
//   - signed, then with the body or the host changed, it is refused.
func FuzzAuthTC3(f *testing.F) {
	f.Add(false, "cvm.tencentcloudapi.com", "/", "", "application/json", []byte(`{"InstanceIds":["ins-aaaaaaaa"]}`), int64(0), "TC3-HMAC-SHA256 Credential=AKIDsimulator/2026-01-01/cvm/tc3_request, SignedHeaders=content-type;host, Signature=00")
	f.Add(true, "127.0.0.1:8080", "/", "Action=DescribeInstances", "application/x-www-form-urlencoded", []byte{}, int64(-299), "")
	f.Add(false, " Host.Example:443 ", "/x y", "", " Application/JSON; charset=utf-8 ", []byte("\x00\xff"), int64(250), "TC3-HMAC-SHA256 ,,,=")
	f.Fuzz(func(t *testing.T, get bool, host, path, query, contentType string, body []byte, offset int64, auth string) {
		method := http.MethodPost
		if get {
			method = http.MethodGet
		} else {
			query = "" // the canonical query of a POST is empty
		}
		now := testEpoch
		// Within the replay window, so only the signature decides.
		ts := now.Unix() + offset%int64(ReplayWindowDefault/time.Second-1)
		req := func(auth string, host string) *http.Request {
			r := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: query}, Host: host, Header: http.Header{}}
			r.Header.Set("Content-Type", contentType)
			r.Header.Set("X-TC-Timestamp", strconv.FormatInt(ts, 10))
			r.Header.Set("Authorization", auth)
			return r
		}
		good := fuzzTC3Auth(SecretIDDefault, SecretKeyDefault, method, path, query, host, contentType, body, ts)
		s := New(Config{Clock: newFakeClock()})
		if e := s.authTC3(req(auth, host), body, now); e == nil && auth != good {
			t.Fatalf("authTC3 accepted a made-up Authorization %q", auth)
		}
		if e := s.authTC3(req(good, host), body, now); e != nil {
			t.Fatalf("authTC3 refused a properly signed request: %v\n%s %q %s?%s ct=%q", e, method, host, path, query, contentType)
		}
		changed := append(append([]byte(nil), body...), '!')
		if e := s.authTC3(req(good, host), changed, now); e == nil {
			t.Fatal("authTC3 accepted a body changed after signing")
		}
		if e := s.authTC3(req(good, host+"x"), body, now); e == nil {
			t.Fatal("authTC3 accepted a request sent to another host than signed")
		}
	})
}
