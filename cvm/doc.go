// Package cvm is fleetreset's client for the Tencent Cloud CVM API: it
// reinstalls one instance (ResetInstance) and reads instance state
// (DescribeInstances), speaking either API generation exactly as the real
// cloud expects, and turns every failure into a typed error that says what
// to do next.
//
// # Generations
//
// New(Config) returns an API for one of two generations:
//
//   - V3, the default: API 3.0, version 2017-03-12, actions ResetInstance
//     and DescribeInstances on https://cvm.tencentcloudapi.com, JSON bodies
//     signed with TC3-HMAC-SHA256 by the official Go SDK's common client
//     (tencentcloud-sdk-go/tencentcloud/common), with SDK retries and the
//     region breaker switched off.
//   - V2, the legacy API: actions ResetInstances and DescribeInstances on
//     https://cvm.api.qcloud.com/v2/index.php, lower-case parameters,
//     signed here (HmacSHA256 by default, HmacSHA1 selectable) and always
//     sent as a form-encoded POST, so a password never travels in a URL.
//
// The calls, per generation:
//
//   - API.ResetInstance: V3 ResetInstance
//     (https://cloud.tencent.com/document/api/213/15724); V2 ResetInstances
//     (legacy page, copy in shared/seeds/ResetInstances.md).
//   - API.DescribeInstances: V3 DescribeInstances
//     (https://cloud.tencent.com/document/api/213/15728); V2
//     DescribeInstances (https://cloud.tencent.com/doc/api/213/831).
//
// ResetInstance has no idempotency token in either generation.
//
// Config.Endpoint may point at a simulator (http://127.0.0.1:port); the
// signature covers the host and port as sent.
//
// # Serving: CLB, TAT and Cloud Monitor
//
// NewServing(Config) returns a Serving for the calls that decide whether a
// reinstalled instance serves again, all API 3.0 through the same SDK
// common client, signing, credential handling, errors and redaction as V3:
//
//   - CLB (clb, 2018-03-17): Targets (DescribeTargets), TargetHealth
//     (DescribeTargetHealth; FindHealth picks one verdict), SetWeights
//     (BatchModifyTargetWeight, split at MaxWeightTargets) and TaskStatus
//     (DescribeTaskStatus, to follow SetWeights' asynchronous tasks).
//   - TAT (tat, 2020-10-28): RunCommand, InvocationTasks
//     (DescribeInvocationTasks) and AgentStatus
//     (DescribeAutomationAgentStatus).
//   - Cloud Monitor (monitor, 2018-07-24): AlarmingPolicies
//     (DescribeAlarmHistories in state ALARM).
//
// Without Config.Endpoint each service goes to its own host,
// <service>.tencentcloudapi.com; with it, all go to that URL, each signed
// with its own service name in the TC3 credential scope.
//
// # Credentials
//
// A client asks its CredentialProvider (Config.Provider; Config.Credentials
// is a static one) for credentials before every request, so one client
// lives as long as the process. DefaultProvider tries the environment, the
// SDK's profile file, then the CVM role (RoleProvider: temporary
// credentials from the metadata service, cached and fetched again ahead of
// expiry by one fetch that concurrent callers share). A call the cloud
// refuses for a reason rotation explains (AuthFailure.TokenFailure,
// SecretIdNotFound, SignatureFailure, UnauthorizedOperation.InvalidToken)
// is sent once more, within the same Timeout, when the provider has other
// credentials by then (a Refresher is asked to fetch them); the refusal
// proves the first request did nothing. A provider that fails gives an
// APIError with CodeCredentialError (Fatal, never sent). Identity names
// the credentials stably across rotations, for rate-limit keys.
//
// # Errors
//
// A method returns one of:
//
//   - *APIError: the cloud (or something in front of it) answered and
//     refused. Code is the v3 Error.Code or the v2 codeDesc ("V2.<code>"
//     when the v2 body has none; "HTTPStatus.<n>" for a status other than
//     200; CodeMalformedResponse for an unreadable 200).
//   - *TransportError: no answer (dial failure, reset, EOF, deadline). Its
//     Sent field says whether the request may have been delivered; a
//     dropped connection after the request was written is Sent.
//   - an error wrapping ErrInvalidRequest: refused before sending.
//
// Classify maps any of them to a Class (Retryable, Throttled, Permanent,
// Fatal); MayHaveLanded says whether the call may have taken effect despite
// the error, which matters because ResetInstance has no idempotency token:
// before re-sending a reset after such an error, look at DescribeInstances
// (v3 LatestOperationRequestId / LatestOperationState, v2 status 14).
//
// Every error a method returns is safe to print, log, store in Redis and
// show on a web page, whatever the cloud or a proxy answered: upstream text
// is never kept verbatim. URLs are stripped of queries and user info; each
// upstream message is cut to one line of 200 bytes and then decoded every
// way it may have been escaped (JSON \uXXXX and other backslash escapes,
// HTML entities, percent and form encoding, nested), and if any form shows
// a piece of a secret of the call (4 bytes of the reset password, 8 of the
// SecretKey or Token, the whole request signature) the message is replaced
// by MessageWithheld. Codes about the password or parameters never keep
// upstream text at all. APIError.Code and RequestID are kept. Scrub applies
// the same check to other upstream text, such as
// Instance.LatestOperationErrorMsg, which DescribeInstances returns as the
// cloud wrote it. Credentials and passwords are held as Secret.
//
// # Tests
//
// The signing vectors of the reference document, the TC3 vector, the error
// mapping and classification tables and the redaction checks run with
// plain go test. conformance_test.go runs one suite against the simulator
// (package cvmsim) for both generations. The same suite runs against the
// real API under the live build tag; it resets a real instance, so point it
// at a disposable one:
//
//	TENCENTCLOUD_SECRET_ID=... TENCENTCLOUD_SECRET_KEY=... \
//	FLEETRESET_LIVE_REGION=ap-guangzhou \
//	FLEETRESET_LIVE_INSTANCE=ins-xxxxxxxx \
//	go test -tags live -run TestLive -v -timeout 30m ./cvm/
//
// Optional: TENCENTCLOUD_SESSION_TOKEN, FLEETRESET_LIVE_GENERATIONS (v3,
// v2 or "v2,v3"; default v3), FLEETRESET_LIVE_IMAGE (image to reinstall
// with; default the instance's current image) and FLEETRESET_LIVE_PASSWORD
// (without it the cloud mails a random password). Missing required
// variables fail the run rather than skip it. The fault cases run only
// against the simulator, the one place faults can be injected.
package cvm
