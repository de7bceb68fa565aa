package cvm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// Secrets planted in the fuzzed calls; seeds echo them back in answers, as
// a confused proxy or API might, so the fuzzer can move them around.
const (
	fuzzSecretKey = "fuzz-secret-key-0123456789"
	fuzzPassword  = "Fuzz-Passw0rd!x"
)

// fuzzSeeds are answers of both generations: successes, API errors, HTTP
// errors, and bodies that echo the call's secrets raw and encoded.
var fuzzSeeds = []struct {
	status int
	body   string
}{
	{200, `{"Response":{"RequestId":"6ef60bec-0242-43af-bb20-270359fb54a7"}}`},
	{200, `{"Response":{"InstanceSet":[{"InstanceId":"ins-aaaaaaaa","Placement":{"Zone":"ap-guangzhou-3"},"ImageId":"img-lnxnew01","InstanceState":"RUNNING","LatestOperation":"ResetInstance","LatestOperationState":"SUCCESS","LatestOperationRequestId":"r1"}],"TotalCount":1,"RequestId":"r2"}}`},
	{200, `{"Response":{"Error":{"Code":"RequestLimitExceeded","Message":"too many"},"RequestId":"r3"}}`},
	{200, `{"Response":{"Error":{"Code":"InvalidParameterValue","Message":"password Fuzz-Passw0rd!x is invalid"},"RequestId":"r4"}}`},
	{200, `{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"key fuzz-secret-key-0123456789 \u0026 Fuzz-Passw0rd!x"}}}`},
	{200, `{"code":0,"message":"","codeDesc":"Success","requestId":123}`},
	{200, `{"code":0,"instanceSet":[{"unInstanceId":"ins-aaaaaaaa","zoneId":100003,"unImgId":"img-lnxnew01","os":"ubuntu","status":"2"}],"totalCount":1}`},
	{200, `{"code":4400,"message":"limit","codeDesc":"RequestLimitExceeded","requestId":"r5"}`},
	{200, `{"code":5100,"message":"batch","detail":{"ins-aaaaaaaa":{"code":9999,"message":"password=Fuzz-Passw0rd%21x","codeDesc":"OperationFail.SystemBusy"}}}`},
	{200, `not json Fuzz-Passw0rd!x`},
	{502, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>fuzz-secret-key-0123456789</body></html>"},
	{503, `{"Response":{"Error":{"Code":"InternalError","Message":"x"}}}`},
	{200, ``},
	{200, `{"Response":null}`},
}

// FuzzCheckResponse feeds arbitrary answers to the one function that turns
// a wire answer into an error, for both generations: it must not panic,
// must return nil or an *APIError with a code, keep the HTTP status, and
// keep the message to one bounded line.
func FuzzCheckResponse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(true, s.status, []byte(s.body))
		f.Add(false, s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, v3 bool, status int, body []byte) {
		gen := V2
		if v3 {
			gen = V3
		}
		err := checkResponse(gen, "ResetInstance", status, body)
		if err == nil {
			if status != 200 {
				t.Fatalf("checkResponse(%d, %q) = nil; a status other than 200 is never a success", status, body)
			}
			return
		}
		ae, ok := err.(*APIError)
		if !ok {
			t.Fatalf("checkResponse(%d, %q) = %T %v; want *APIError", status, body, err, err)
		}
		if ae.Code == "" || ae.HTTPStatus != status {
			t.Fatalf("checkResponse(%d, %q) = code %q status %d; want a code and status %d", status, body, ae.Code, ae.HTTPStatus, status)
		}
		_ = Classify(err)
		_ = MayHaveLanded(err)
		// What the client returns is finished (scrubbed and clipped).
		fin := newRedactor(Credentials{SecretKey: fuzzSecretKey}, fuzzPassword).finish(err).(*APIError)
		if strings.ContainsAny(fin.Message, "\n\r") || len(fin.Message) > maxMessage+len("…") || !utf8.ValidString(fin.Message) {
			t.Fatalf("finished message %q is not one valid line of at most %d bytes", fin.Message, maxMessage)
		}
	})
}

// fuzzAnswer is the answer every request of the fuzzed clients gets. Each
// fuzz worker is one process running inputs one after another.
var fuzzAnswer struct {
	sync.Mutex
	status int
	body   []byte
}

type fuzzTransport struct{}

func (fuzzTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	fuzzAnswer.Lock()
	status, body := fuzzAnswer.status, fuzzAnswer.body
	fuzzAnswer.Unlock()
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)), Request: r}, nil
}

// FuzzResponses sends a reset and a describe through the real clients of
// both generations (the v3 one through the Go SDK) and answers them with
// arbitrary bodies. Whatever comes back: no panic; errors are *APIError or
// *TransportError; no error text holds a piece of a secret the call sent
// (8 bytes of the SecretKey; 4 of the reset's password) in any encoding;
// no call succeeds on an HTTP status other than 200.
func FuzzResponses(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(true, s.status, []byte(s.body))
		f.Add(false, s.status, []byte(s.body))
	}
	apis := map[bool]API{}
	for _, v3 := range []bool{false, true} {
		gen := V2
		if v3 {
			gen = V3
		}
		api, err := New(Config{Generation: gen, Endpoint: "https://cvm.example.test", Region: "ap-guangzhou",
			Credentials: Credentials{SecretID: "AKIDfuzz", SecretKey: fuzzSecretKey}, Transport: fuzzTransport{}})
		if err != nil {
			f.Fatal(err)
		}
		apis[v3] = api
	}
	f.Fuzz(func(t *testing.T, v3 bool, status int, body []byte) {
		if status < 100 || status > 999 {
			return // not a status line net/http would deliver
		}
		fuzzAnswer.Lock()
		fuzzAnswer.status, fuzzAnswer.body = status, body
		fuzzAnswer.Unlock()
		api := apis[v3]
		ctx := context.Background()
		_, rerr := api.ResetInstance(ctx, ResetRequest{InstanceID: "ins-aaaaaaaa", ImageID: "img-lnxnew01", Password: fuzzPassword})
		list, derr := api.DescribeInstances(ctx, []string{"ins-aaaaaaaa"})
		for i, err := range []error{rerr, derr} {
			if err == nil {
				continue
			}
			var ae *APIError
			var te *TransportError
			if !errors.As(err, &ae) && !errors.As(err, &te) {
				t.Fatalf("error %T %v is neither *APIError nor *TransportError", err, err)
			}
			// A call scrubs the secrets it sent: the SecretKey always, the
			// password only in the reset that carried it.
			text := err.Error()
			if leak := exposedPiece(text, fuzzSecretKey, minCredentialPiece); leak != "" {
				t.Fatalf("error text shows the SecretKey, %s: %s", leak, text)
			}
			if leak := exposedFragment(text, fuzzPassword); i == 0 && leak != "" {
				t.Fatalf("error text shows the password, %s: %s", leak, text)
			}
			_ = Classify(err)
			_ = MayHaveLanded(err)
		}
		if derr == nil && status != 200 {
			t.Fatalf("DescribeInstances succeeded on HTTP %d", status)
		}
		if rerr == nil && status != 200 {
			t.Fatalf("ResetInstance succeeded on HTTP %d", status)
		}
		_ = list
	})
}
