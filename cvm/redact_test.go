package cvm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
)

// Planted secrets. The password has characters that every encoding
// changes: form (+ & = /), JSON HTML-escaping (&, <).
const (
	plantedKey      = "PLANTED-SECRETKEY-7f3a9c"
	plantedToken    = "PLANTED-TOKEN-b41e2d"
	plantedPassword = "PLANTED-Pw/+=&<x 1"
)

// leakWatch collects every secret a request carried: the planted ones plus
// the signature, read back from what was sent, each with the shortest
// piece of it that may not show.
type leakWatch struct {
	mu      sync.Mutex
	secrets map[string]int // secret -> shortest forbidden piece
}

func newLeakWatch() *leakWatch {
	return &leakWatch{secrets: map[string]int{
		plantedKey: minCredentialPiece, plantedToken: minCredentialPiece, plantedPassword: minPasswordPiece,
	}}
}

// addSignature adds a request signature: only the whole one is secret.
func (l *leakWatch) addSignature(sig string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.secrets[sig] = len(sig)
}

// observe records the signature of an outgoing request (v2 form field or
// v3 Authorization) and returns the raw request text, for echoing.
func (l *leakWatch) observe(r *http.Request, body []byte) string {
	if auth := r.Header.Get("Authorization"); auth != "" {
		l.addSignature(auth[strings.LastIndex(auth, "Signature=")+len("Signature="):])
	}
	if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Signature") != "" {
		l.addSignature(form.Get("Signature"))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", r.Method, r.URL)
	r.Header.Write(&b)
	b.Write(body)
	return b.String()
}

func (l *leakWatch) check(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("want an error")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	j, _ := json.Marshal(err)
	texts := []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), string(j)}
	for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
		texts = append(texts, e.Error())
	}
	for secret, piece := range l.secrets {
		for _, text := range texts {
			if leak := exposedPiece(text, secret, piece); leak != "" {
				t.Errorf("error text shows %q, %s:\n%s", secret, leak, text)
			}
		}
	}
}

// escapedEcho quotes every planted secret the ways a careless upstream
// might: JSON-escaped as text, HTML-escaped, as hex entities,
// percent-encoded, and cut after its first half.
func escapedEcho() string {
	var b strings.Builder
	for _, s := range []string{plantedKey, plantedToken, plantedPassword} {
		fmt.Fprintf(&b, "json=%s html=%s hex=%s url=%s cut=%s; ", jsonInner(s, true), html.EscapeString(s),
			perByte(s, "&#x%x;"), url.QueryEscape(s), s[:len(s)/2+1])
	}
	return b.String()
}

// TestSecretsNeverInErrors plants a SecretKey, Token and password, makes
// every error path happen for both generations, and checks that no error
// text contains any of them or the request signature, raw or encoded.
func TestSecretsNeverInErrors(t *testing.T) {
	type answer func(l *leakWatch, r *http.Request, body []byte) (*http.Response, error)
	echoJSON := func(status int, wrap func(echo string) any) answer {
		return func(l *leakWatch, r *http.Request, body []byte) (*http.Response, error) {
			b, _ := json.Marshal(wrap(l.observe(r, body)))
			return jsonResponse(status, string(b)), nil
		}
	}
	paths := []struct {
		name string
		ans  answer
	}{
		{"v3_error_echoing_request", echoJSON(200, func(echo string) any {
			return map[string]any{"Response": map[string]any{"Error": map[string]string{"Code": "InvalidParameterValue.InvalidPassword", "Message": echo}, "RequestId": echo}}
		})},
		{"v2_error_echoing_request", echoJSON(200, func(echo string) any {
			return map[string]any{"code": 4000, "message": echo, "codeDesc": "InvalidParameter.PasswordNotConformSpecs", "requestId": echo}
		})},
		{"v2_error_without_codeDesc", echoJSON(200, func(echo string) any {
			return map[string]any{"code": 4100, "message": echo}
		})},
		{"v3_error_echoing_escaped_and_cut", echoJSON(200, func(string) any {
			return map[string]any{"Response": map[string]any{"Error": map[string]string{"Code": "ResourceInUse", "Message": escapedEcho()}, "RequestId": "r-1"}}
		})},
		{"v2_error_echoing_escaped_and_cut", echoJSON(200, func(string) any {
			return map[string]any{"code": 5100, "message": escapedEcho(), "codeDesc": "OperationFail.SystemBusy", "requestId": 12}
		})},
		{"v2_batch_detail_echo", echoJSON(200, func(string) any {
			return map[string]any{"code": 5100, "message": "batch", "detail": map[string]any{"ins-1": map[string]any{"code": 5100, "codeDesc": "OperationFail.SystemBusy", "message": escapedEcho()}}}
		})},
		{"http_502_escaped_and_cut", func(l *leakWatch, r *http.Request, body []byte) (*http.Response, error) {
			l.observe(r, body)
			return jsonResponse(502, "<html>"+html.EscapeString(escapedEcho())+"</html>"), nil
		}},
		{"transport_error_escaped_and_cut", func(l *leakWatch, r *http.Request, body []byte) (*http.Response, error) {
			l.observe(r, body)
			return nil, errors.New("proxy: bad upstream answer: " + escapedEcho())
		}},
		{"http_502_echoing_request", func(l *leakWatch, r *http.Request, body []byte) (*http.Response, error) {
			return jsonResponse(502, "<html>"+l.observe(r, body)+"</html>"), nil
		}},
		{"http_500_long_body", func(l *leakWatch, r *http.Request, body []byte) (*http.Response, error) {
			// The secret straddles the message length limit.
			return jsonResponse(500, strings.Repeat("x", maxMessage-5)+l.observe(r, body)), nil
		}},
		{"http_500_whitespace_padding", func(l *leakWatch, r *http.Request, body []byte) (*http.Response, error) {
			// Padding that whitespace folding removes, and a secret cut in
			// half by the body cap.
			echo := l.observe(r, body)
			return jsonResponse(500, strings.Repeat(" \n", 1<<19-8)+echo+strings.Repeat(" ", 100)+echo), nil
		}},
		{"malformed_200_echo", func(l *leakWatch, r *http.Request, body []byte) (*http.Response, error) {
			return jsonResponse(200, "not json "+l.observe(r, body)), nil
		}},
		{"url_error_with_query", func(l *leakWatch, r *http.Request, body []byte) (*http.Response, error) {
			echo := l.observe(r, body)
			q := url.Values{"password": {plantedPassword}, "SecretKey": {plantedKey}, "Token": {plantedToken}}
			return nil, &url.Error{Op: "Post", URL: "https://u:" + plantedKey + "@cvm.api.qcloud.com/v2/index.php?" + q.Encode(), Err: errors.New("proxy said: " + echo)}
		}},
		{"plain_transport_error", func(l *leakWatch, r *http.Request, body []byte) (*http.Response, error) {
			return nil, errors.New("connection reset; request was " + l.observe(r, body))
		}},
	}
	for _, gen := range []Generation{V2, V3} {
		for _, p := range paths {
			t.Run(string(gen)+"/"+p.name, func(t *testing.T) {
				l := newLeakWatch()
				rt := &recordingTransport{respond: func(r *http.Request, body []byte) (*http.Response, error) { return p.ans(l, r, body) }}
				api := newTestAPI(t, gen, "", func(c *Config) {
					c.Transport = rt
					c.Credentials.SecretKey = plantedKey
					c.Credentials.Token = plantedToken
				})
				_, err := api.ResetInstance(context.Background(), ResetRequest{InstanceID: "ins-1", Password: plantedPassword})
				l.check(t, err)
				_, err = api.DescribeInstances(context.Background(), []string{"ins-1"})
				l.check(t, err)
			})
		}
	}
}

// TestSecretsNotInRealNetErrors covers errors net/http builds itself: a
// real url.Error from a refused dial and from a deadline.
func TestSecretsNotInRealNetErrors(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-hold:
		}
	}))
	defer srv.Close()
	for _, gen := range []Generation{V2, V3} {
		for _, endpoint := range []string{"http://127.0.0.1:1", srv.URL} {
			t.Run(string(gen)+"/"+endpoint, func(t *testing.T) {
				l := newLeakWatch()
				var sigMu sync.Mutex
				base := http.DefaultTransport.(*http.Transport).Clone()
				spy := roundTripFunc(func(r *http.Request) (*http.Response, error) {
					body, _ := io.ReadAll(r.Body)
					sigMu.Lock()
					l.observe(r, body)
					sigMu.Unlock()
					r.Body = io.NopCloser(strings.NewReader(string(body)))
					return base.RoundTrip(r)
				})
				api := newTestAPI(t, gen, endpoint, func(c *Config) {
					c.Transport = spy
					c.Credentials.SecretKey = plantedKey
					c.Credentials.Token = plantedToken
					c.Timeout = 100 * time.Millisecond
				})
				_, err := api.ResetInstance(context.Background(), ResetRequest{InstanceID: "ins-1", Password: plantedPassword})
				requireTransportError(t, err)
				l.check(t, err)
			})
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestSanitizeURLError checks the url.Error scrubbing on its own and via
// the SDK's NetworkError.
func TestSanitizeURLError(t *testing.T) {
	ue := &url.Error{Op: "Get", URL: "https://user:" + plantedKey + "@cvm.api.qcloud.com/v2/index.php?password=" + url.QueryEscape(plantedPassword) + "&Signature=abc%2Bdef#frag", Err: errors.New("dial tcp: refused")}
	want := `Get "https://cvm.api.qcloud.com/v2/index.php": dial tcp: refused`
	if got := sanitize(ue).Error(); got != want {
		t.Errorf("sanitize = %q; want %q", got, want)
	}
	sdkErr := tcerr.NewTencentCloudSDKErrorWithCause("ClientError.NetworkError", "Fail to get response", "", ue)
	got := newRedactor(Credentials{SecretKey: plantedKey}, plantedPassword).finish(fromSDKError(V2, "ResetInstances", sdkErr))
	if s := got.Error(); strings.Contains(s, "password") || strings.Contains(s, "Signature") || strings.Contains(s, plantedKey) {
		t.Errorf("SDK network error = %q; want the URL without query or user info", s)
	}
}

// TestSecretFormatting: Credentials and requests print without secrets.
func TestSecretFormatting(t *testing.T) {
	cfg := Config{Credentials: Credentials{SecretID: "AKIDvisible", SecretKey: plantedKey, Token: plantedToken}}
	req := ResetRequest{InstanceID: "ins-1", Password: plantedPassword}
	b, _ := json.Marshal(struct {
		Config
		ResetRequest
	}{cfg, req})
	for _, text := range []string{fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg), fmt.Sprintf("%v %+v %#v", req, req, req), string(b)} {
		for _, s := range []string{plantedKey, plantedToken, plantedPassword} {
			if strings.Contains(text, s) {
				t.Errorf("formatted value leaks %q: %s", s, text)
			}
		}
	}
}
