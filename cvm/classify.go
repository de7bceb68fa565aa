package cvm

import (
	"errors"
	"strconv"
	"strings"

	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
)

// Class is what a caller should do about a failed call.
type Class int

const (
	// None is the Class of a nil error.
	None Class = iota
	// Retryable: the call failed for a reason that passes by itself (busy
	// backend, instance mid-operation, transport failure, HTTP 5xx). Retry
	// this instance with backoff and a bounded budget; some of these (an
	// instance stuck in a state) never clear.
	Retryable
	// Throttled: the cloud's rate limit refused the call. Retry after a
	// delay and slow the whole fleet down, not just this instance.
	Throttled
	// Permanent: this instance cannot be reset as asked (unknown or
	// malformed ID, unsupported state or image, bad parameter). Fail the
	// instance, go on with the others. Also the default for codes this
	// package does not know: not hammering the API is the safe choice.
	Permanent
	// Fatal: no call with this configuration can succeed (credentials,
	// permissions, account balance, IP allow-list, wrong endpoint, version
	// or action). Stop the whole rollout.
	Fatal
)

// String returns the lower-case name of c, e.g. "retryable".
func (c Class) String() string {
	switch c {
	case None:
		return "none"
	case Retryable:
		return "retryable"
	case Throttled:
		return "throttled"
	case Permanent:
		return "permanent"
	case Fatal:
		return "fatal"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// IsThrottled reports whether err is a rate-limit refusal (Classify(err) ==
// Throttled).
func IsThrottled(err error) bool { return Classify(err) == Throttled }

// MayHaveLanded reports whether the call behind err may nevertheless have
// reached the cloud and been accepted: a TransportError whose request may
// have been written in full (connection reset, EOF, timeout after sending),
// an HTTP 5xx (a gateway may have forwarded it), or a 200 whose body could
// not be read as an envelope. It is false for nil, for any well-formed API
// error body (the server refused) and for requests the client refused to
// send. Unknown error types report true: that is the safe answer for a
// caller deciding whether to look before re-sending a reset.
func MayHaveLanded(err error) bool {
	if err == nil {
		return false
	}
	if te, ok := errors.AsType[*TransportError](err); ok {
		return te.Sent
	}
	if ae, ok := errors.AsType[*APIError](err); ok {
		switch {
		case ae.HTTPStatus >= 500:
			return true
		case ae.HTTPStatus == 0 && strings.HasPrefix(ae.Code, "HTTPStatus."):
			// A status error of unknown status: assume the worst.
			return true
		case ae.Code == CodeMalformedResponse:
			// A 200 we cannot read may well be a success.
			return true
		case ae.Code == "ClientError.CircuitBreakerError",
			ae.Code == "ClientError.CredentialError",
			ae.Code == "ClientError.InvalidParameter",
			ae.Code == "ClientError.BuildRequestError":
			// Raised by the SDK before sending.
			return false
		}
		return false
	}
	if errors.Is(err, ErrInvalidRequest) {
		return false
	}
	return true
}

// Classify tells a caller what to do about err. It matches *TransportError,
// *APIError and the Go SDK's *TencentCloudSDKError anywhere in the chain
// (errors.As). A nil error is None; errors this package does not recognise
// are Permanent.
func Classify(err error) Class {
	if err == nil {
		return None
	}
	if _, ok := errors.AsType[*TransportError](err); ok {
		// No answer at all: the network or a deadline. Retrying is right,
		// but check MayHaveLanded first: the reset may be running.
		return Retryable
	}
	if ae, ok := errors.AsType[*APIError](err); ok {
		return classifyAPIError(ae)
	}
	if sdk, ok := errors.AsType[*tcerr.TencentCloudSDKError](err); ok {
		return Classify(fromSDKError(V3, "", sdk))
	}
	if errors.Is(err, ErrInvalidRequest) {
		return Permanent
	}
	return Permanent
}

func classifyAPIError(e *APIError) Class {
	if strings.HasPrefix(e.Code, "HTTPStatus.") {
		return classifyHTTPStatus(e.HTTPStatus)
	}
	if c, ok := classifyCode(e.Code); ok {
		return c
	}
	// An unknown codeDesc still comes with a documented v2 common code.
	if c, ok := classifyV2Code(e.NumericCode); ok {
		return c
	}
	// Unknown: fail the instance rather than retry blindly.
	return Permanent
}

// classifyHTTPStatus handles answers with a status other than 200. Tencent
// Cloud answers every request it processed with 200, so these come from a
// gateway, a proxy or a wrong endpoint.
func classifyHTTPStatus(status int) Class {
	switch {
	case status == 0:
		// The SDK reported a status error we could not read a number
		// from: treat like a gateway failure.
		return Retryable
	case status == 429:
		// Too Many Requests from a gateway: a rate limit.
		return Throttled
	case status == 408:
		// Request Timeout: nothing was done; send again.
		return Retryable
	case status >= 500:
		// Gateway or server trouble; may have landed (MayHaveLanded).
		return Retryable
	case status == 401, status == 403, status == 407:
		// Refused in front of the API (WAF, proxy auth): every call will be.
		return Fatal
	case status == 404, status == 405, status >= 300 && status < 400:
		// Wrong endpoint or path, or a redirect: misconfiguration.
		return Fatal
	}
	// Other 4xx: this request was malformed.
	return Permanent
}

// classifyCode is the decision table: one case per documented code (API 3.0
// ResetInstance and common codes, v2 codeDescs, transitional codes, SDK
// client codes), then family prefixes. ok is false for unknown codes.
func classifyCode(code string) (Class, bool) {
	switch code {
	// --- Throttling (API 3.0 common, §3.7/§3.8) ---
	case "RequestLimitExceeded": // per Action+region+sub-account limit (10/s ResetInstance, 40/s DescribeInstances)
		return Throttled, true
	case "RequestLimitExceeded.UinLimitExceeded": // main-account limit
		return Throttled, true
	case "RequestLimitExceeded.IPLimitExceeded": // per-IP limit
		return Throttled, true
	case "RequestLimitExceeded.GlobalRegionUinLimitExceeded": // account limit across regions
		return Throttled, true
	case "InvalidRequest.LimitExceeded": // transitional-era frequency limit
		return Throttled, true
	case "InvalidRequest.RequestConcurrencyExceeded": // transitional-era QPS limit
		return Throttled, true

	// --- Transient: the backend or the instance is busy ---
	case "OperationFail.SystemBusy": // v2 ResetInstances: "system is busy"
		return Retryable, true
	case "OperationConstraints.InvaildInstanceStatus": // v2 (sic): "instance status is incorrect or fetching it failed"
		// Retryable with a budget: the usual cause is an instance still in
		// another operation (a previous reinstall, start, stop, reboot) or
		// a failed status lookup, both of which clear. A truly wrong state
		// (isolated, terminated) never clears, so the worker's attempt cap
		// must turn it into a failure; v2 gives us no finer code.
		return Retryable, true
	case "InternalError": // common: internal error
		return Retryable, true
	case "InternalServerError": // ResetInstance: internal error
		return Retryable, true
	case "InternalError.TradeUnknownError": // ResetInstance: billing backend hiccup
		return Retryable, true
	case "InternalError.ResourceOpFailed": // transitional-era internal failure
		return Retryable, true
	case "ServiceUnavailable": // common: service temporarily unavailable
		return Retryable, true
	case "ResourceUnavailable": // common: resource temporarily unavailable (Terraform retries it too)
		return Retryable, true
	case "ResourceInUse": // common + ResetInstance: resource busy with another operation
		return Retryable, true
	case "MutexOperation.TaskRunning": // ResetInstance: another task holds the instance
		return Retryable, true
	case "OperationDenied.InstanceOperationInProgress": // ResetInstance: the instance is mid-operation
		return Retryable, true
	case "UnsupportedOperation.InstanceStatePending": // still being created; becomes RUNNING
		return Retryable, true
	case "UnsupportedOperation.InstanceStateStarting": // transitional; becomes RUNNING
		return Retryable, true
	case "UnsupportedOperation.InstanceStateStopping": // transitional; becomes STOPPED
		return Retryable, true
	case "UnsupportedOperation.InstanceStateRebooting": // transitional; becomes RUNNING
		return Retryable, true
	case "UnsupportedOperation.InstanceStateServiceLiveMigrate": // platform live migration; ends by itself
		return Retryable, true
	case "UnsupportedOperation.InstanceStateEnterServiceLiveMigrate": // entering live migration; ends by itself
		return Retryable, true
	case "UnsupportedOperation.InstanceStateExitServiceLiveMigrate": // leaving live migration; ends by itself
		return Retryable, true
	case "UnsupportedOperation.InstanceStateExitRescueMode": // leaving rescue mode; returns to normal
		return Retryable, true
	case "ResourceUnavailable.AgentStatusNotOnline": // TAT: agent not online yet, as while a reinstalled instance boots
		return Retryable, true
	case "ResourceUnavailable.InstanceStateNotRunning": // TAT: instance not RUNNING yet (reinstalling, starting)
		return Retryable, true
	case "ResourceUnavailable.CommandInExecuting": // TAT: a command is still running
		return Retryable, true
	case "FailedOperation.ResourceInOperating": // CLB: the load balancer is busy with another task
		return Retryable, true
	case "FailedOperation.InvalidLBStatus": // CLB: load balancer in a transient state (e.g. mid-change)
		return Retryable, true
	case "FailedOperation.DataQueryFailed", "FailedOperation.DbQueryFailed": // Monitor: backend query failed
		return Retryable, true
	case "ClientError.CircuitBreakerError": // SDK region breaker (disabled here); transient by design
		return Retryable, true
	case CodeMalformedResponse: // unreadable 200 (proxy page, truncated body); may have landed
		return Retryable, true

	// --- Fatal: account, credentials, permissions, misconfiguration ---
	case "AuthFailure": // transitional-era generic auth failure
		return Fatal, true
	case "AuthFailure.InvalidAuthorization": // malformed Authorization header: client bug or proxy
		return Fatal, true
	case "AuthFailure.InvalidSecretId": // wrong key type/format
		return Fatal, true
	case "AuthFailure.MFAFailure": // MFA required/failed
		return Fatal, true
	case "AuthFailure.SecretIdNotFound": // key deleted or disabled
		return Fatal, true
	case "AuthFailure.SignatureExpire": // host clock >5 min off: every call fails until fixed
		return Fatal, true
	case "AuthFailure.SignatureFailure": // wrong SecretKey (or signing bug)
		return Fatal, true
	case "AuthFailure.TokenFailure": // STS token invalid or expired
		return Fatal, true
	case "AuthFailure.UnauthorizedOperation": // CAM denies the action
		return Fatal, true
	case "UnauthorizedOperation": // common: CAM denies
		return Fatal, true
	case "UnauthorizedOperation.InvalidToken": // ResetInstance: token invalid
		return Fatal, true
	case "UnauthorizedOperation.MFAExpired": // ResetInstance: MFA expired
		return Fatal, true
	case "UnauthorizedOperation.MFANotFound": // ResetInstance: MFA missing
		return Fatal, true
	case "InvalidAccount.InsufficientBalance": // ResetInstance: account in arrears
		return Fatal, true
	case "InvalidAccount.UnpaidOrder": // ResetInstance: unpaid order blocks the account
		return Fatal, true
	case "OperationConstraints.AccountBalanceNotEnough": // v2 ResetInstances: balance insufficient
		return Fatal, true
	case "IpInBlacklist": // caller IP blocked
		return Fatal, true
	case "IpNotInWhitelist": // caller IP not allowed
		return Fatal, true
	case "ActionOffline": // action retired: wrong generation/endpoint
		return Fatal, true
	case "InvalidAction": // action unknown to this endpoint/version
		return Fatal, true
	case "InvalidAction.NotFound": // transitional-era InvalidAction
		return Fatal, true
	case "NoSuchVersion": // Version wrong for this product
		return Fatal, true
	case "NoSuchProduct": // wrong service host
		return Fatal, true
	case "UnsupportedProtocol": // http vs https: wrong endpoint scheme
		return Fatal, true
	case "UnsupportedRegion": // Config.Region wrong for this action
		return Fatal, true
	case "InvalidParameter.SignatureFailure": // transitional-era signature failure
		return Fatal, true
	case "InvalidRequest.ReplayAttack":
		// Transitional-era replay check (nonce reused or timestamp out of
		// window). Our nonces are random 63-bit numbers, so this means
		// clock skew, which fails every call.
		return Fatal, true
	case "ClientError.CredentialError": // SDK: no usable credentials
		return Fatal, true
	case "ClientError.InvalidParameter", "ClientError.BuildRequestError": // SDK refused to build the request: client bug
		return Fatal, true

	// --- Permanent: this instance, as asked, cannot be reset ---
	case "OperationFail.AllResourceOpFailed": // v2: the operation failed on the resource
		return Permanent, true
	case "InvalidParameter.PasswordNotConformSpecs": // v2: password rules (§5)
		return Permanent, true
	case "FailedOperation": // common: operation failed
		return Permanent, true
	case "FailedOperation.InvalidInstanceApplicationRoleEmr": // EMR-managed instance
		return Permanent, true
	case "InvalidImageId.Malformed": // image ID format
		return Permanent, true
	case "InvalidImageId.NotFound": // image does not exist
		return Permanent, true
	case "InvalidInstance.NotSupported": // instance kind cannot be reset
		return Permanent, true
	case "InvalidInstanceId.Malformed": // instance ID format
		return Permanent, true
	case "InvalidInstanceId.NotFound": // unknown instance
		return Permanent, true
	case "InvalidInstanceType.Malformed": // instance type format
		return Permanent, true
	case "InvalidParameter": // common
		return Permanent, true
	case "InvalidParameter.HostNameIllegal": // HostName rules
		return Permanent, true
	case "InvalidParameter.InstanceImageNotSupport": // image not allowed for this instance
		return Permanent, true
	case "InvalidParameter.ParameterConflict": // e.g. Password with KeepImageLogin
		return Permanent, true
	case "InvalidParameterValue": // common
		return Permanent, true
	case "InvalidParameterValue.IllegalHostName": // HostName rules
		return Permanent, true
	case "InvalidParameterValue.InstanceIdMalformed": // instance ID format
		return Permanent, true
	case "InvalidParameterValue.InstanceTypeNotFound": // instance type unknown
		return Permanent, true
	case "InvalidParameterValue.InvalidImageForGivenInstanceType": // image vs instance type
		return Permanent, true
	case "InvalidParameterValue.InvalidImageFormat": // image format unsupported
		return Permanent, true
	case "InvalidParameterValue.InvalidImageId": // image ID invalid
		return Permanent, true
	case "InvalidParameterValue.InvalidImageIdForRetsetInstance": // (sic) image not usable for reset
		return Permanent, true
	case "InvalidParameterValue.InvalidImageState": // image not in a usable state
		return Permanent, true
	case "InvalidParameterValue.InvalidPassword": // password rules (§5)
		return Permanent, true
	case "InvalidParameterValue.InvalidUserDataFormat": // UserData not base64 / too big
		return Permanent, true
	case "InvalidParameterValue.KeyPairNotFound": // KeyIds unknown
		return Permanent, true
	case "InvalidParameterValue.LimitExceeded": // a parameter over its limit
		return Permanent, true
	case "InvalidRequest": // common: malformed request
		return Permanent, true
	case "MissingParameter": // common + ResetInstance
		return Permanent, true
	case "MissingParameter.MonitorService": // must keep monitor service for this image
		return Permanent, true
	case "UnknownParameter": // common: parameter not accepted
		return Permanent, true
	case "DryRunOperation": // common: DryRun answer; we never send DryRun
		return Permanent, true
	case "LimitExceeded": // common: quota (not rate) exceeded
		return Permanent, true
	case "RequestSizeLimitExceeded": // common: request too large
		return Permanent, true
	case "ResponseSizeLimitExceeded": // common: response too large
		return Permanent, true
	case "ResourceInsufficient": // common: capacity
		return Permanent, true
	case "ResourceInsufficient.CloudDiskSoldOut": // no disk capacity for the new system disk
		return Permanent, true
	case "ResourceNotFound": // common
		return Permanent, true
	case "ResourcesSoldOut.SpecifiedInstanceType": // capacity for the type
		return Permanent, true
	case "UnsupportedOperation": // common
		return Permanent, true
	case "OperationDenied.ChcInstallCloudImageWithoutDeployNetwork": // CHC host without deploy network
		return Permanent, true
	case "UnsupportedOperation.InstanceChargeType": // billing mode forbids reset
		return Permanent, true
	case "UnsupportedOperation.InstanceStateCorrupted": // broken instance: needs a human
		return Permanent, true
	case "UnsupportedOperation.InstanceStateEnterRescueMode": // heading into rescue mode, which is permanent for us
		return Permanent, true
	case "UnsupportedOperation.InstanceStateFreezing": // being frozen (arrears/compliance)
		return Permanent, true
	case "UnsupportedOperation.InstanceStateIsolating": // being isolated
		return Permanent, true
	case "UnsupportedOperation.InstanceStateRescueMode": // in rescue mode until someone exits it
		return Permanent, true
	case "UnsupportedOperation.InstanceStateShutdown": // awaiting destruction
		return Permanent, true
	case "UnsupportedOperation.InstanceStateTerminated": // gone
		return Permanent, true
	case "UnsupportedOperation.InstanceStateTerminating": // going
		return Permanent, true
	case "UnsupportedOperation.InvalidImageLicenseTypeForReset": // image license forbids reset
		return Permanent, true
	case "UnsupportedOperation.KeyPairUnsupportedWindows": // KeyIds on Windows
		return Permanent, true
	case "UnsupportedOperation.ModifyEncryptionNotSupported": // cannot change disk encryption
		return Permanent, true
	case "UnsupportedOperation.RawLocalDiskInsReinstalltoQcow2": // local-disk instance vs qcow2 image
		return Permanent, true
	case "UnsupportedOperation.StoppedModeStopCharging": // stopped without charging: start it first
		return Permanent, true
	case "ResourceUnavailable.AgentNotInstalled": // TAT: no agent on the instance; it does not install itself
		return Permanent, true
	case "InvalidParameter.LBIdNotFound", "InvalidParameter.ListenerIdNotFound", "InvalidParameter.LocationNotFound":
		// CLB: the plan names a load balancer, listener or rule that does
		// not exist; the planner should have caught it
		return Permanent, true
	}

	// Families: undocumented sub-codes behave like their documented siblings.
	switch {
	case strings.HasPrefix(code, "RequestLimitExceeded."): // every rate-limit sub-code
		return Throttled, true
	case strings.HasPrefix(code, "AuthFailure."), strings.HasPrefix(code, "UnauthorizedOperation."):
		return Fatal, true
	case strings.HasPrefix(code, "InvalidAccount."): // account-wide state
		return Fatal, true
	case strings.HasPrefix(code, "InternalError."): // backend trouble
		return Retryable, true
	case strings.HasPrefix(code, "MutexOperation."), strings.HasPrefix(code, "ResourceInUse."):
		return Retryable, true
	}
	return Permanent, false
}

// classifyV2Code classifies the v2 numeric common codes (§2.2), used when a
// v2 body has no codeDesc or one this package does not know.
func classifyV2Code(n int) (Class, bool) {
	switch {
	case n == 4000: // bad parameters
		return Permanent, true
	case n >= 4100 && n <= 4110: // 4100 auth failed; 4101–4103 CAM denied; 4104 SecretId not found; 4110 other CAM
		return Fatal, true
	case n == 4200: // request expired: clock skew, fails every call
		return Fatal, true
	case n == 4300: // access denied (account frozen/banned)
		return Fatal, true
	case n == 4400: // quota or frequency exceeded: throttling
		return Throttled, true
	case n == 4500: // replay: random 63-bit nonces leave clock skew as the cause
		return Fatal, true
	case n == 4600: // protocol unsupported: wrong scheme/endpoint
		return Fatal, true
	case n == 5000: // resource not found
		return Permanent, true
	case n == 5100: // resource operation failed (batch: all failed)
		return Permanent, true
	case n == 5200: // purchase failed
		return Permanent, true
	case n == 5300: // balance insufficient
		return Fatal, true
	case n == 5400: // partially succeeded (batch)
		return Permanent, true
	case n == 5500: // qualification check failed: account-level (e.g. verification)
		return Fatal, true
	case n == 6000: // internal server error
		return Retryable, true
	case n == 6100: // action not supported in this version: wrong domain
		return Fatal, true
	case n == 6200: // action temporarily unavailable
		return Retryable, true
	}
	return Permanent, false
}
