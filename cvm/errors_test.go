package cvm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
)

func TestCheckResponse(t *testing.T) {
	tests := []struct {
		name   string
		gen    Generation
		status int
		body   string
		want   *APIError // nil: success
	}{
		{name: "v3_success", gen: V3, status: 200, body: `{"Response":{"RequestId":"r-1"}}`},
		{name: "v3_error", gen: V3, status: 200,
			body: `{"Response":{"Error":{"Code":"InvalidInstanceId.NotFound","Message":"not found"},"RequestId":"r-2"}}`,
			want: &APIError{Code: "InvalidInstanceId.NotFound", Message: "not found", RequestID: "r-2", HTTPStatus: 200}},
		{name: "v3_empty_error_is_success", gen: V3, status: 200, body: `{"Response":{"Error":{"Code":""},"RequestId":"r-3"}}`},
		{name: "v3_auth_error_has_status_200", gen: V3, status: 200,
			body: `{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"bad sig"},"RequestId":"r-4"}}`,
			want: &APIError{Code: "AuthFailure.SignatureFailure", Message: "bad sig", RequestID: "r-4", HTTPStatus: 200}},
		{name: "v2_success", gen: V2, status: 200, body: `{"code":0,"message":"","codeDesc":"Success","requestId":"77"}`},
		{name: "v2_error_with_codeDesc", gen: V2, status: 200,
			body: `{"code":5100,"message":"(100004)busy","codeDesc":"OperationFail.SystemBusy"}`,
			want: &APIError{Code: "OperationFail.SystemBusy", NumericCode: 5100, Message: "(100004)busy", HTTPStatus: 200}},
		{name: "v2_no_codeDesc_gets_synthetic_code", gen: V2, status: 200,
			body: `{"code":4400,"message":"too often"}`,
			want: &APIError{Code: "V2.4400", NumericCode: 4400, Message: "too often", HTTPStatus: 200}},
		{name: "v2_empty_codeDesc", gen: V2, status: 200,
			body: `{"code":4100,"message":"auth","codeDesc":""}`,
			want: &APIError{Code: "V2.4100", NumericCode: 4100, Message: "auth", HTTPStatus: 200}},
		{name: "v2_numeric_requestId", gen: V2, status: 200,
			body: `{"code":4000,"message":"bad","codeDesc":"InvalidParameter","requestId":123456789012}`,
			want: &APIError{Code: "InvalidParameter", NumericCode: 4000, Message: messageParameter, RequestID: "123456789012", HTTPStatus: 200}},
		{name: "v2_quoted_code", gen: V2, status: 200, // one VPC sample quotes it
			body: `{"code":"5300","message":"no money","codeDesc":"OperationConstraints.AccountBalanceNotEnough"}`,
			want: &APIError{Code: "OperationConstraints.AccountBalanceNotEnough", NumericCode: 5300, Message: "no money", HTTPStatus: 200}},
		{name: "v2_batch_detail", gen: V2, status: 200,
			body: `{"code":5100,"message":"all failed","detail":{"ins-1":{"code":5100,"message":"status","codeDesc":"OperationConstraints.InvaildInstanceStatus","requestId":"9"}}}`,
			want: &APIError{Code: "OperationConstraints.InvaildInstanceStatus", NumericCode: 5100,
				Message: "all failed [ins-1: 5100 OperationConstraints.InvaildInstanceStatus status]", RequestID: "9", HTTPStatus: 200}},
		{name: "v2_host_serving_v3_body", gen: V2, status: 200, // transitional API
			body: `{"Response":{"Error":{"Code":"InvalidParameterValue","Message":"x"},"RequestId":"r-5"}}`,
			want: &APIError{Code: "InvalidParameterValue", Message: messageParameter, RequestID: "r-5", HTTPStatus: 200}},
		// Codes about parameters keep no upstream text: it tends to quote them.
		{name: "v3_password_code_text_withheld", gen: V3, status: 200,
			body: `{"Response":{"Error":{"Code":"InvalidParameterValue.InvalidPassword","Message":"password Xy9&... is too weak"},"RequestId":"r-7"}}`,
			want: &APIError{Code: "InvalidParameterValue.InvalidPassword", Message: messagePassword, RequestID: "r-7", HTTPStatus: 200}},
		{name: "v2_password_code_text_withheld", gen: V2, status: 200,
			body: `{"code":4000,"message":"password Xy9&... is too weak","codeDesc":"InvalidParameter.PasswordNotConformSpecs"}`,
			want: &APIError{Code: "InvalidParameter.PasswordNotConformSpecs", NumericCode: 4000, Message: messagePassword, HTTPStatus: 200}},
		{name: "v2_4000_without_codeDesc_text_withheld", gen: V2, status: 200,
			body: `{"code":4000,"message":"password=Xy9&... rejected"}`,
			want: &APIError{Code: "V2.4000", NumericCode: 4000, Message: messageParameter, HTTPStatus: 200}},
		{name: "v3_missing_parameter_text_withheld", gen: V3, status: 200,
			body: `{"Response":{"Error":{"Code":"MissingParameter","Message":"LoginSettings.Password=Xy9& needs InstanceId"},"RequestId":"r-8"}}`,
			want: &APIError{Code: "MissingParameter", Message: messageParameter, RequestID: "r-8", HTTPStatus: 200}},
		{name: "v2_batch_detail_parameter_text_withheld", gen: V2, status: 200,
			body: `{"code":5100,"message":"all failed","detail":{"ins-1":{"code":4000,"message":"password Xy9&","codeDesc":"InvalidParameter.PasswordNotConformSpecs"}}}`,
			want: &APIError{Code: "InvalidParameter.PasswordNotConformSpecs", NumericCode: 5100,
				Message: messagePassword, HTTPStatus: 200}}, // the detail's code becomes the code
		{name: "http_500_with_parameter_envelope", gen: V3, status: 500,
			body: `{"Response":{"Error":{"Code":"InvalidParameter","Message":"Password=Xy9&"},"RequestId":"r-9"}}`,
			want: &APIError{Code: "HTTPStatus.500", Message: "InvalidParameter: " + messageParameter, RequestID: "r-9", HTTPStatus: 500}},
		{name: "v3_long_message_clipped", gen: V3, status: 200,
			body: `{"Response":{"Error":{"Code":"InternalError","Message":"` + strings.Repeat("ab ", 100) + `"},"RequestId":"r-10"}}`,
			want: &APIError{Code: "InternalError", Message: strings.Repeat("ab ", 66) + "ab…", RequestID: "r-10", HTTPStatus: 200}},
		{name: "http_502_html", gen: V3, status: 502, body: `<html>Bad Gateway</html>`,
			want: &APIError{Code: "HTTPStatus.502", Message: "<html>Bad Gateway</html>", HTTPStatus: 502}},
		{name: "http_500_with_envelope", gen: V3, status: 500,
			body: `{"Response":{"Error":{"Code":"InternalError","Message":"oops"},"RequestId":"r-6"}}`,
			want: &APIError{Code: "HTTPStatus.500", Message: "InternalError: oops", RequestID: "r-6", HTTPStatus: 500}},
		{name: "http_429_v2", gen: V2, status: 429, body: ``,
			want: &APIError{Code: "HTTPStatus.429", HTTPStatus: 429}},
		{name: "http_200_not_json", gen: V2, status: 200, body: `<html>portal</html>`,
			want: &APIError{Code: CodeMalformedResponse, HTTPStatus: 200}},
		{name: "http_200_no_envelope", gen: V3, status: 200, body: `{"foo":1}`,
			want: &APIError{Code: CodeMalformedResponse, Message: `no Response or code in body: {"foo":1}`, HTTPStatus: 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := redactor(nil).finish(checkResponse(tt.gen, "ResetInstance", tt.status, []byte(tt.body)))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("checkResponse = %v; want nil", err)
				}
				return
			}
			got, ok := errors.AsType[*APIError](err)
			if !ok {
				t.Fatalf("checkResponse = %T %v; want *APIError", err, err)
			}
			tt.want.Generation, tt.want.Action = tt.gen, "ResetInstance"
			if tt.want.Code == CodeMalformedResponse && tt.want.Message == "" {
				tt.want.Message = got.Message // a json error text; not worth pinning
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(APIError{})); diff != "" {
				t.Errorf("checkResponse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFromSDKError(t *testing.T) {
	netCause := &url.Error{Op: "Post", URL: "https://cvm.tencentcloudapi.com/?x=1", Err: errors.New("connection reset by peer")}
	tests := []struct {
		name      string
		err       error
		wantClass Class
		wantCode  string // APIError.Code; "" for a TransportError
		landed    bool
	}{
		{name: "network_error", err: tcerr.NewTencentCloudSDKErrorWithCause("ClientError.NetworkError", "Fail to get response", "", netCause),
			wantClass: Retryable, landed: true},
		{name: "io_error", err: tcerr.NewTencentCloudSDKError("ClientError.IOError", "Fail to read response body because EOF", ""),
			wantClass: Retryable, landed: true},
		{name: "http_status", err: tcerr.NewTencentCloudSDKError("ClientError.HttpStatusCodeError", "Request fail with http status code: 502 Bad Gateway, with body: <html>", ""),
			wantClass: Retryable, wantCode: "HTTPStatus.502", landed: true},
		{name: "parse_json", err: tcerr.NewTencentCloudSDKError("ClientError.ParseJsonError", "Fail to parse json content", ""),
			wantClass: Retryable, wantCode: CodeMalformedResponse, landed: true},
		{name: "credential", err: tcerr.NewTencentCloudSDKError("ClientError.CredentialError", "no credential", ""),
			wantClass: Fatal, wantCode: "ClientError.CredentialError"},
		{name: "server_throttle", err: tcerr.NewTencentCloudSDKError("RequestLimitExceeded", "slow down", "r-1"),
			wantClass: Throttled, wantCode: "RequestLimitExceeded"},
		{name: "server_permanent", err: tcerr.NewTencentCloudSDKError("InvalidInstanceId.NotFound", "nope", "r-2"),
			wantClass: Permanent, wantCode: "InvalidInstanceId.NotFound"},
		{name: "v2_codeDesc_via_sdk", err: tcerr.NewTencentCloudSDKError("OperationFail.SystemBusy", "legacy", ""),
			wantClass: Retryable, wantCode: "OperationFail.SystemBusy"},
		{name: "not_an_sdk_error", err: errors.New("something odd"), wantClass: Retryable, landed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redactor(nil).finish(fromSDKError(V3, "ResetInstance", tt.err))
			if c := Classify(got); c != tt.wantClass {
				t.Errorf("Classify(%v) = %v; want %v", got, c, tt.wantClass)
			}
			// The raw SDK error classifies the same way.
			if _, isSDK := errors.AsType[*tcerr.TencentCloudSDKError](tt.err); isSDK {
				if c := Classify(fmt.Errorf("wrapped: %w", tt.err)); c != tt.wantClass {
					t.Errorf("Classify(raw SDK error) = %v; want %v", c, tt.wantClass)
				}
			}
			if l := MayHaveLanded(got); l != tt.landed {
				t.Errorf("MayHaveLanded(%v) = %v; want %v", got, l, tt.landed)
			}
			ae, isAPI := errors.AsType[*APIError](got)
			switch {
			case tt.wantCode == "":
				if _, ok := errors.AsType[*TransportError](got); !ok {
					t.Errorf("fromSDKError = %T %v; want *TransportError", got, got)
				}
			case !isAPI:
				t.Errorf("fromSDKError = %T %v; want *APIError", got, got)
			case ae.Code != tt.wantCode:
				t.Errorf("Code = %q; want %q", ae.Code, tt.wantCode)
			}
		})
	}
}

// TestTransportErrors drives both clients into real transport failures and
// checks they come back as *TransportError with the right Sent.
func TestTransportErrors(t *testing.T) {
	for _, gen := range []Generation{V2, V3} {
		t.Run(string(gen), func(t *testing.T) {
			t.Run("dial_refused", func(t *testing.T) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr := ln.Addr().String()
				ln.Close() // nothing listens there now
				api := newTestAPI(t, gen, "http://"+addr, nil)
				_, err = api.ResetInstance(context.Background(), ResetRequest{InstanceID: "ins-1"})
				te := requireTransportError(t, err)
				if te.Sent || MayHaveLanded(err) {
					t.Errorf("dial failure: Sent = %v, MayHaveLanded = %v; want false, false", te.Sent, MayHaveLanded(err))
				}
			})
			t.Run("dropped_after_request", func(t *testing.T) {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					r.ParseForm() // read the whole request, then hang up
					conn, _, err := w.(http.Hijacker).Hijack()
					if err == nil {
						conn.Close()
					}
				}))
				defer srv.Close()
				api := newTestAPI(t, gen, srv.URL, nil)
				_, err := api.ResetInstance(context.Background(), ResetRequest{InstanceID: "ins-1"})
				te := requireTransportError(t, err)
				if !te.Sent || !MayHaveLanded(err) || Classify(err) != Retryable {
					t.Errorf("dropped connection: Sent = %v, MayHaveLanded = %v, Classify = %v; want true, true, retryable",
						te.Sent, MayHaveLanded(err), Classify(err))
				}
			})
			t.Run("deadline_while_waiting", func(t *testing.T) {
				release := make(chan struct{})
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					select { // hold the answer until the client gives up
					case <-r.Context().Done():
					case <-release:
					}
				}))
				defer srv.Close()
				defer close(release)
				api := newTestAPI(t, gen, srv.URL, func(c *Config) { c.Timeout = 50 * time.Millisecond })
				_, err := api.DescribeInstances(context.Background(), []string{"ins-1"})
				te := requireTransportError(t, err)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("errors.Is(%v, DeadlineExceeded) = false", err)
				}
				if !te.Sent {
					t.Errorf("deadline after sending: Sent = false; want true")
				}
			})
			t.Run("context_already_done", func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				api := newTestAPI(t, gen, "http://127.0.0.1:1", nil)
				_, err := api.ResetInstance(ctx, ResetRequest{InstanceID: "ins-1"})
				te := requireTransportError(t, err)
				if te.Sent || !errors.Is(err, context.Canceled) {
					t.Errorf("cancelled before sending: Sent = %v, Is(Canceled) = %v; want false, true", te.Sent, errors.Is(err, context.Canceled))
				}
			})
			t.Run("redirect_not_followed", func(t *testing.T) {
				var hits atomic.Int32
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					hits.Add(1)
					http.Redirect(w, r, "/elsewhere", http.StatusFound)
				}))
				defer srv.Close()
				api := newTestAPI(t, gen, srv.URL, nil)
				_, err := api.ResetInstance(context.Background(), ResetRequest{InstanceID: "ins-1"})
				ae, ok := errors.AsType[*APIError](err)
				if !ok || ae.Code != "HTTPStatus.302" || Classify(err) != Fatal || hits.Load() != 1 {
					t.Errorf("redirect: err = %v, hits = %d; want HTTPStatus.302 APIError, Fatal, 1 hit", err, hits.Load())
				}
			})
		})
	}
}

func requireTransportError(t *testing.T, err error) *TransportError {
	t.Helper()
	te, ok := errors.AsType[*TransportError](err)
	if !ok {
		t.Fatalf("err = %T %v; want *TransportError", err, err)
	}
	if _, isAPI := errors.AsType[*APIError](err); isAPI {
		t.Fatalf("err %v is also an *APIError", err)
	}
	return te
}

// newTestAPI builds a client for endpoint with test credentials; modify
// may change the Config first.
func newTestAPI(t *testing.T, gen Generation, endpoint string, modify func(*Config)) API {
	t.Helper()
	cfg := Config{Generation: gen, Endpoint: endpoint, Region: "ap-guangzhou",
		Credentials: Credentials{SecretID: "AKIDtest", SecretKey: "test-secret-key"}}
	if modify != nil {
		modify(&cfg)
	}
	api, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return api
}
