package cvmsim

import "fmt"

// errKind is one failure as each API generation spells it. The v2 numeric
// codes follow the common code table (§2.2 of the reference); which number
// Tencent pairs with each codeDesc is unconfirmed, see doc.go.
type errKind struct {
	v3     string // API 3.0 Error.Code
	v2Code int    // legacy v2 "code"
	v2Desc string // legacy v2 "codeDesc"
}

// The kinds the simulator answers. Keep doc.go's table in step.
var (
	errInvalidAuthorization = errKind{"AuthFailure.InvalidAuthorization", 4100, "AuthFailure.InvalidAuthorization"}
	errSignatureFailure     = errKind{"AuthFailure.SignatureFailure", 4100, "AuthFailure.SignatureFailure"}
	errSecretIDNotFound     = errKind{"AuthFailure.SecretIdNotFound", 4104, "AuthFailure.SecretIdNotFound"}
	errTokenFailure         = errKind{"AuthFailure.TokenFailure", 4100, "AuthFailure.TokenFailure"}
	errSignatureExpire      = errKind{"AuthFailure.SignatureExpire", 4200, "AuthFailure.SignatureExpire"}
	errReplay               = errKind{"InvalidRequest.ReplayAttack", 4500, "InvalidRequest.ReplayAttack"}
	errMissingParameter     = errKind{"MissingParameter", 4000, "MissingParameter"}
	errInvalidParameter     = errKind{"InvalidParameter", 4000, "InvalidParameter"}
	errInvalidParamValue    = errKind{"InvalidParameterValue", 4000, "InvalidParameterValue"}
	errUnknownParameter     = errKind{"UnknownParameter", 4000, "UnknownParameter"}
	errParameterConflict    = errKind{"InvalidParameter.ParameterConflict", 4000, "InvalidParameter"}
	errLimitExceeded        = errKind{"InvalidParameterValue.LimitExceeded", 4000, "InvalidParameter"}
	errInvalidFilter        = errKind{"InvalidFilter", 4000, "InvalidParameter"}
	errIllegalHostName      = errKind{"InvalidParameterValue.IllegalHostName", 4000, "InvalidParameter"}
	errInvalidUserData      = errKind{"InvalidParameterValue.InvalidUserDataFormat", 4000, "InvalidParameter"}
	errKeyPairNotFound      = errKind{"InvalidParameterValue.KeyPairNotFound", 4000, "InvalidParameter"}
	errKeyPairWindows       = errKind{"UnsupportedOperation.KeyPairUnsupportedWindows", 4000, "InvalidParameter"}
	errInvalidPassword      = errKind{"InvalidParameterValue.InvalidPassword", 4000, "InvalidParameter.PasswordNotConformSpecs"}
	errInvalidAction        = errKind{"InvalidAction", 6100, "InvalidAction"}
	errNoSuchVersion        = errKind{"NoSuchVersion", 6100, "NoSuchVersion"}
	errUnsupportedRegion    = errKind{"UnsupportedRegion", 4000, "InvalidParameter.Region"}
	errUnsupportedProtocol  = errKind{"UnsupportedProtocol", 4600, "UnsupportedProtocol"}
	errRequestTooLarge      = errKind{"RequestSizeLimitExceeded", 4000, "RequestSizeLimitExceeded"}
	errRateLimited          = errKind{"RequestLimitExceeded", 4400, "RequestLimitExceeded"}
	errInstanceMalformed    = errKind{"InvalidInstanceId.Malformed", 4000, "InvalidInstanceId.Malformed"}
	errInstanceNotFound     = errKind{"InvalidInstanceId.NotFound", 5000, "InvalidInstanceId.NotFound"}
	errImageMalformed       = errKind{"InvalidImageId.Malformed", 4000, "InvalidImageId.Malformed"}
	errImageNotFound        = errKind{"InvalidImageId.NotFound", 5000, "InvalidImageId.NotFound"}
	errInProgress           = errKind{"OperationDenied.InstanceOperationInProgress", 5100, "OperationConstraints.InvaildInstanceStatus"}
	errBalance              = errKind{"InvalidAccount.InsufficientBalance", 5300, "OperationConstraints.AccountBalanceNotEnough"}

	// CLB (API 3.0 only; the v2 columns are unused).
	errLBNotFound          = errKind{"InvalidParameter.LBIdNotFound", 4000, "InvalidParameter"}
	errListenerNotFound    = errKind{"InvalidParameter.ListenerIdNotFound", 4000, "InvalidParameter"}
	errLocationNotFound    = errKind{"InvalidParameter.LocationNotFound", 4000, "InvalidParameter"}
	errLength              = errKind{"InvalidParameterValue.Length", 4000, "InvalidParameter"}
	errResourceInOperating = errKind{"FailedOperation.ResourceInOperating", 5100, "FailedOperation"}

	// TAT.
	errInvalidContent      = errKind{"InvalidParameterValue.InvalidContent", 4000, "InvalidParameter"}
	errContentTooLong      = errKind{"InvalidParameterValue.TooLong", 4000, "InvalidParameter"}
	errTATInstanceMalform  = errKind{"InvalidParameterValue.InvalidInstanceId", 4000, "InvalidParameter"}
	errTATInstanceNotFound = errKind{"ResourceNotFound.InstanceNotFound", 5000, "InvalidParameter"}
	errAgentNotOnline      = errKind{"ResourceUnavailable.AgentStatusNotOnline", 5100, "InvalidParameter"}
	errNotRunning          = errKind{"ResourceUnavailable.InstanceStateNotRunning", 5100, "InvalidParameter"}
	errRange               = errKind{"InvalidParameterValue.Range", 4000, "InvalidParameter"}
	errCommandType         = errKind{"InvalidParameterValue.AgentUnsupportedCommandType", 4000, "InvalidParameter"}

	// errSystemBusy's v3 code is replaced by Faults.SystemBusyCodeV3 when answered.
	errSystemBusy = errKind{SystemBusyCodeV3Default, 5100, "OperationFail.SystemBusy"}
)

// apiErr is one failure answer: its kind and a human message. Messages never
// carry the password, so it cannot leak into a client's logs, unless
// Faults.EchoParams asks for a careless upstream.
type apiErr struct {
	kind errKind
	msg  string
}

func newErr(k errKind, format string, args ...any) *apiErr {
	return &apiErr{kind: k, msg: fmt.Sprintf(format, args...)}
}

// Error makes apiErr an error, for the parameter decoder.
func (e *apiErr) Error() string { return e.kind.v3 + ": " + e.msg }
