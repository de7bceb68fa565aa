package cvm

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// documentedCodes is every error code of the reference: ResetInstance
// (§3.6), the common codes (§3.7), the transitional-era codes (§3.7), the
// v2 codeDescs of the spec (§2.4, §5) and the SDK client codes (§4.4), each
// with the Class fleetreset gives it.
var documentedCodes = []struct {
	code string
	want Class
}{
	// §3.6 ResetInstance.
	{"FailedOperation.InvalidInstanceApplicationRoleEmr", Permanent},
	{"InternalError.TradeUnknownError", Retryable},
	{"InternalServerError", Retryable},
	{"InvalidAccount.InsufficientBalance", Fatal},
	{"InvalidAccount.UnpaidOrder", Fatal},
	{"InvalidImageId.Malformed", Permanent},
	{"InvalidImageId.NotFound", Permanent},
	{"InvalidInstance.NotSupported", Permanent},
	{"InvalidInstanceId.Malformed", Permanent},
	{"InvalidInstanceId.NotFound", Permanent},
	{"InvalidInstanceType.Malformed", Permanent},
	{"InvalidParameter.HostNameIllegal", Permanent},
	{"InvalidParameter.InstanceImageNotSupport", Permanent},
	{"InvalidParameter.ParameterConflict", Permanent},
	{"InvalidParameterValue", Permanent},
	{"InvalidParameterValue.IllegalHostName", Permanent},
	{"InvalidParameterValue.InstanceIdMalformed", Permanent},
	{"InvalidParameterValue.InstanceTypeNotFound", Permanent},
	{"InvalidParameterValue.InvalidImageForGivenInstanceType", Permanent},
	{"InvalidParameterValue.InvalidImageFormat", Permanent},
	{"InvalidParameterValue.InvalidImageId", Permanent},
	{"InvalidParameterValue.InvalidImageIdForRetsetInstance", Permanent},
	{"InvalidParameterValue.InvalidImageState", Permanent},
	{"InvalidParameterValue.InvalidPassword", Permanent},
	{"InvalidParameterValue.InvalidUserDataFormat", Permanent},
	{"InvalidParameterValue.KeyPairNotFound", Permanent},
	{"InvalidParameterValue.LimitExceeded", Permanent},
	{"MissingParameter", Permanent},
	{"MissingParameter.MonitorService", Permanent},
	{"MutexOperation.TaskRunning", Retryable},
	{"OperationDenied.ChcInstallCloudImageWithoutDeployNetwork", Permanent},
	{"OperationDenied.InstanceOperationInProgress", Retryable},
	{"ResourceInUse", Retryable},
	{"ResourceInsufficient.CloudDiskSoldOut", Permanent},
	{"ResourcesSoldOut.SpecifiedInstanceType", Permanent},
	{"UnauthorizedOperation.InvalidToken", Fatal},
	{"UnauthorizedOperation.MFAExpired", Fatal},
	{"UnauthorizedOperation.MFANotFound", Fatal},
	{"UnsupportedOperation.InstanceChargeType", Permanent},
	{"UnsupportedOperation.InstanceStateCorrupted", Permanent},
	{"UnsupportedOperation.InstanceStateEnterRescueMode", Permanent},
	{"UnsupportedOperation.InstanceStateEnterServiceLiveMigrate", Retryable},
	{"UnsupportedOperation.InstanceStateExitRescueMode", Retryable},
	{"UnsupportedOperation.InstanceStateExitServiceLiveMigrate", Retryable},
	{"UnsupportedOperation.InstanceStateFreezing", Permanent},
	{"UnsupportedOperation.InstanceStateIsolating", Permanent},
	{"UnsupportedOperation.InstanceStatePending", Retryable},
	{"UnsupportedOperation.InstanceStateRebooting", Retryable},
	{"UnsupportedOperation.InstanceStateRescueMode", Permanent},
	{"UnsupportedOperation.InstanceStateServiceLiveMigrate", Retryable},
	{"UnsupportedOperation.InstanceStateShutdown", Permanent},
	{"UnsupportedOperation.InstanceStateStarting", Retryable},
	{"UnsupportedOperation.InstanceStateStopping", Retryable},
	{"UnsupportedOperation.InstanceStateTerminated", Permanent},
	{"UnsupportedOperation.InstanceStateTerminating", Permanent},
	{"UnsupportedOperation.InvalidImageLicenseTypeForReset", Permanent},
	{"UnsupportedOperation.KeyPairUnsupportedWindows", Permanent},
	{"UnsupportedOperation.ModifyEncryptionNotSupported", Permanent},
	{"UnsupportedOperation.RawLocalDiskInsReinstalltoQcow2", Permanent},
	{"UnsupportedOperation.StoppedModeStopCharging", Permanent},

	// §3.7 common codes.
	{"ActionOffline", Fatal},
	{"AuthFailure.InvalidAuthorization", Fatal},
	{"AuthFailure.InvalidSecretId", Fatal},
	{"AuthFailure.MFAFailure", Fatal},
	{"AuthFailure.SecretIdNotFound", Fatal},
	{"AuthFailure.SignatureExpire", Fatal},
	{"AuthFailure.SignatureFailure", Fatal},
	{"AuthFailure.TokenFailure", Fatal},
	{"AuthFailure.UnauthorizedOperation", Fatal},
	{"DryRunOperation", Permanent},
	{"FailedOperation", Permanent},
	{"InternalError", Retryable},
	{"InvalidAction", Fatal},
	{"InvalidParameter", Permanent},
	{"InvalidRequest", Permanent},
	{"IpInBlacklist", Fatal},
	{"IpNotInWhitelist", Fatal},
	{"LimitExceeded", Permanent},
	{"NoSuchProduct", Fatal},
	{"NoSuchVersion", Fatal},
	{"RequestLimitExceeded", Throttled},
	{"RequestLimitExceeded.GlobalRegionUinLimitExceeded", Throttled},
	{"RequestLimitExceeded.IPLimitExceeded", Throttled},
	{"RequestLimitExceeded.UinLimitExceeded", Throttled},
	{"RequestSizeLimitExceeded", Permanent},
	{"ResourceInsufficient", Permanent},
	{"ResourceNotFound", Permanent},
	{"ResourceUnavailable", Retryable},
	{"ResponseSizeLimitExceeded", Permanent},
	{"ServiceUnavailable", Retryable},
	{"UnauthorizedOperation", Fatal},
	{"UnknownParameter", Permanent},
	{"UnsupportedOperation", Permanent},
	{"UnsupportedProtocol", Fatal},
	{"UnsupportedRegion", Fatal},

	// §3.7 transitional-era codes (cvm.api.qcloud.com + Version).
	{"AuthFailure", Fatal},
	{"InvalidParameter.SignatureFailure", Fatal},
	{"InvalidRequest.ReplayAttack", Fatal},
	{"InvalidRequest.LimitExceeded", Throttled},
	{"InvalidRequest.RequestConcurrencyExceeded", Throttled},
	{"InternalError.ResourceOpFailed", Retryable},
	{"InvalidAction.NotFound", Fatal},

	// v2 codeDescs of the ResetInstances spec (§2.4) and §5.
	{"OperationConstraints.InvaildInstanceStatus", Retryable},
	{"OperationFail.AllResourceOpFailed", Permanent},
	{"OperationConstraints.AccountBalanceNotEnough", Fatal},
	{"OperationFail.SystemBusy", Retryable},
	{"InvalidParameter.PasswordNotConformSpecs", Permanent},

	// Codes of the serving APIs (SDK errors.go of clb 2018-03-17, tat
	// 2020-10-28 and monitor 2018-07-24) that get a case of their own.
	{"ResourceUnavailable.AgentStatusNotOnline", Retryable},
	{"ResourceUnavailable.InstanceStateNotRunning", Retryable},
	{"ResourceUnavailable.CommandInExecuting", Retryable},
	{"ResourceUnavailable.AgentNotInstalled", Permanent},
	{"FailedOperation.ResourceInOperating", Retryable},
	{"FailedOperation.InvalidLBStatus", Retryable},
	{"FailedOperation.DataQueryFailed", Retryable},
	{"FailedOperation.DbQueryFailed", Retryable},
	{"InvalidParameter.LBIdNotFound", Permanent},
	{"InvalidParameter.ListenerIdNotFound", Permanent},
	{"InvalidParameter.LocationNotFound", Permanent},

	// SDK client-side codes (§4.4); NetworkError, IOError and
	// HttpStatusCodeError never reach an APIError.Code (see TestFromSDKError).
	{"ClientError.ParseJsonError", Retryable},
	{"ClientError.CredentialError", Fatal},
	{"ClientError.InvalidParameter", Fatal},
	{"ClientError.BuildRequestError", Fatal},
	{"ClientError.CircuitBreakerError", Retryable},
}

func TestClassifyDocumentedCodes(t *testing.T) {
	for _, tt := range documentedCodes {
		t.Run(tt.code, func(t *testing.T) {
			err := fmt.Errorf("worker: %w", &APIError{Generation: V3, Action: "ResetInstance", Code: tt.code, HTTPStatus: 200})
			if got := Classify(err); got != tt.want {
				t.Errorf("Classify(%s) = %v; want %v", tt.code, got, tt.want)
			}
			if got := IsThrottled(err); got != (tt.want == Throttled) {
				t.Errorf("IsThrottled(%s) = %v; want %v", tt.code, got, tt.want == Throttled)
			}
			if MayHaveLanded(err) && tt.code != CodeMalformedResponse {
				t.Errorf("MayHaveLanded(%s) = true; want false for a well-formed refusal", tt.code)
			}
		})
	}
}

// TestClassifyCasesAreDocumented keeps the decision table and the list
// above in step: every code with its own case in classifyCode is in
// documentedCodes, and vice versa every documented code has its own case.
func TestClassifyCasesAreDocumented(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "classify.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	cased := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		fn, ok := n.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "classifyCode" {
			return true
		}
		ast.Inspect(fn, func(n ast.Node) bool {
			cc, ok := n.(*ast.CaseClause)
			if !ok {
				return true
			}
			for _, e := range cc.List {
				switch e := e.(type) {
				case *ast.BasicLit:
					s, _ := strconv.Unquote(e.Value)
					cased[s] = true
				case *ast.Ident:
					if e.Name == "CodeMalformedResponse" {
						cased[CodeMalformedResponse] = true
					}
				}
			}
			return true
		})
		return false
	})
	documented := map[string]bool{}
	for _, d := range documentedCodes {
		documented[d.code] = true
		if !cased[d.code] {
			t.Errorf("documented code %s has no case of its own in classifyCode", d.code)
		}
	}
	for c := range cased {
		if !documented[c] {
			t.Errorf("classifyCode has a case for %s, which documentedCodes does not list", c)
		}
	}
}

func TestClassifyFamiliesAndDefaults(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		want    Class
		landed  bool
		throttl bool
	}{
		{name: "nil", err: nil, want: None},
		{name: "unknown_code_is_permanent", err: &APIError{Code: "Some.NewCode", HTTPStatus: 200}, want: Permanent},
		{name: "undocumented_ratelimit_subcode", err: &APIError{Code: "RequestLimitExceeded.Whatever", HTTPStatus: 200}, want: Throttled, throttl: true},
		{name: "undocumented_authfailure", err: &APIError{Code: "AuthFailure.Something", HTTPStatus: 200}, want: Fatal},
		{name: "undocumented_unauthorized", err: &APIError{Code: "UnauthorizedOperation.CamNoAuth", HTTPStatus: 200}, want: Fatal},
		{name: "undocumented_internal", err: &APIError{Code: "InternalError.DbError", HTTPStatus: 200}, want: Retryable},
		{name: "undocumented_invalid_account", err: &APIError{Code: "InvalidAccount.Frozen", HTTPStatus: 200}, want: Fatal},
		{name: "http_502", err: &APIError{Code: "HTTPStatus.502", HTTPStatus: 502}, want: Retryable, landed: true},
		{name: "http_503", err: &APIError{Code: "HTTPStatus.503", HTTPStatus: 503}, want: Retryable, landed: true},
		{name: "http_unknown_status", err: &APIError{Code: "HTTPStatus.0"}, want: Retryable, landed: true},
		{name: "http_429", err: &APIError{Code: "HTTPStatus.429", HTTPStatus: 429}, want: Throttled, throttl: true},
		{name: "http_408", err: &APIError{Code: "HTTPStatus.408", HTTPStatus: 408}, want: Retryable},
		{name: "http_403", err: &APIError{Code: "HTTPStatus.403", HTTPStatus: 403}, want: Fatal},
		{name: "http_404", err: &APIError{Code: "HTTPStatus.404", HTTPStatus: 404}, want: Fatal},
		{name: "http_400", err: &APIError{Code: "HTTPStatus.400", HTTPStatus: 400}, want: Permanent},
		{name: "malformed_200", err: &APIError{Code: CodeMalformedResponse, HTTPStatus: 200}, want: Retryable, landed: true},
		{name: "transport_sent", err: &TransportError{Op: "v3 ResetInstance", Err: errors.New("EOF"), Sent: true}, want: Retryable, landed: true},
		{name: "transport_not_sent", err: &TransportError{Op: "v3 ResetInstance", Err: errors.New("refused"), Sent: false}, want: Retryable},
		{name: "transport_deadline", err: &TransportError{Op: "v2 ResetInstances", Err: context.DeadlineExceeded, Sent: true}, want: Retryable, landed: true},
		{name: "invalid_request", err: invalid(V3, "ResetInstance", "x"), want: Permanent},
		{name: "foreign_error", err: errors.New("boom"), want: Permanent, landed: true},
		// A known codeDesc wins over its numeric code ...
		{name: "v2_codeDesc_over_numeric", err: &APIError{Generation: V2, Code: "OperationFail.SystemBusy", NumericCode: 5100, HTTPStatus: 200}, want: Retryable},
		// ... and an unknown one falls back to it.
		{name: "v2_unknown_codeDesc_numeric_4400", err: &APIError{Generation: V2, Code: "Odd.Desc", NumericCode: 4400, HTTPStatus: 200}, want: Throttled, throttl: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %v; want %v", tt.err, got, tt.want)
			}
			if got := MayHaveLanded(tt.err); got != tt.landed {
				t.Errorf("MayHaveLanded(%v) = %v; want %v", tt.err, got, tt.landed)
			}
			if got := IsThrottled(tt.err); got != tt.throttl {
				t.Errorf("IsThrottled(%v) = %v; want %v", tt.err, got, tt.throttl)
			}
		})
	}
}

// TestClassifyV2NumericCodes covers every v2 common code of §2.2 and the
// CAM variants of §1.4, as a v2 body without codeDesc produces them.
func TestClassifyV2NumericCodes(t *testing.T) {
	want := map[int]Class{
		4000: Permanent, 4100: Fatal, 4101: Fatal, 4102: Fatal, 4103: Fatal, 4104: Fatal, 4110: Fatal,
		4200: Fatal, 4300: Fatal, 4400: Throttled, 4500: Fatal, 4600: Fatal,
		5000: Permanent, 5100: Permanent, 5200: Permanent, 5300: Fatal, 5400: Permanent, 5500: Fatal,
		6000: Retryable, 6100: Fatal, 6200: Retryable,
		9999: Permanent, // undocumented
	}
	for n, c := range want {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			err := checkResponse(V2, "ResetInstances", 200, fmt.Appendf(nil, `{"code":%d,"message":"m"}`, n))
			if got := Classify(err); got != c {
				t.Errorf("Classify(%v) = %v; want %v", err, got, c)
			}
		})
	}
}
