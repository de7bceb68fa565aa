// Package cvmsim is a local HTTP simulator of the Tencent Cloud CVM API,
// faithful enough that fleetreset's client, workers, tests and demos run
// against it instead of Tencent. It implements ResetInstance(s) and
// DescribeInstances in both API generations, verifies signatures with its
// own code (it never imports package cvm or the Tencent SDK, so a client
// bug cannot be mirrored here), keeps a per-instance reinstall state
// machine on an injectable clock, injects faults, and counts what clients
// did so tests can assert on it.
//
// Facts come from /work/shared/reference/cvm-api.md (section numbers below
// refer to it). Choices that no public source confirms are marked [U].
//
// # Use
//
//	sim := cvmsim.New(cvmsim.Config{Clock: fake, ResetDuration: 10 * time.Second})
//	sim.AddInstances(cvmsim.Generate(100)...)
//	ts := httptest.NewServer(sim)         // a Server is an http.Handler
//	// point the client at ts.URL with SecretID/SecretKey SecretIDDefault/SecretKeyDefault
//	st := sim.Stats()                      // or GET /admin/stats
//
// A Server is safe for concurrent use. All state advances lazily from
// Config.Clock: there are no goroutines or timers, so a test moves a fake
// clock and reads the result.
//
// # Routes
//
// One handler serves every generation, like the real hosts:
//
//   - /v2/index.php — legacy v2 (§1, §2): GET with a query or POST with an
//     application/x-www-form-urlencoded body; actions ResetInstances and
//     DescribeInstances; answers {"code":int,"message","codeDesc",...}.
//     With a Version parameter (the transitional generation, §0) the request
//     is treated as API 3.0 with signature v1 on this path instead.
//   - / — API 3.0, version 2017-03-12 (§3): POST application/json signed
//     with TC3-HMAC-SHA256, or "signature v1" (HmacSHA1/HmacSHA256) as a
//     POST form or GET query; actions ResetInstance and DescribeInstances;
//     answers {"Response":{...,"RequestId"}}, HTTP 200 even for errors.
//   - /admin/stats (GET) — Stats as JSON; /admin/instances (GET) — every
//     InstanceView as a JSON list. No authentication: a test and ops aid.
//     Neither generation uses /admin/, so the paths cannot collide.
//
// Any other path answers 404.
//
// # Signatures
//
// v2 and signature v1 (§1.2): every parameter but Signature, names sorted
// byte-wise as received with "_" rewritten to "." when joined, raw decoded
// values, string METHOD + Host as received (port included) + path + "?" +
// pairs; HMAC-SHA256 only for SignatureMethod exactly "HmacSHA256", else
// HMAC-SHA1; base64. TC3 (§3.3): canonical headers from SignedHeaders
// (which must include content-type and host), values trimmed and
// lower-cased, Content-Type exactly as sent, service "cvm", scope date the
// UTC date of X-TC-Timestamp; X-TC-Content-SHA256: UNSIGNED-PAYLOAD is
// honoured. All documented vectors (§1.3 A, C, D, E and variants, F; §3.3)
// pass the simulator's verifier (sign_test.go).
//
// Timestamps further than ReplayWindow (default 5 minutes) from the clock
// are refused. A v2 or signature-v1 Nonce is remembered per SecretId for
// ReplayWindow once its request authenticates, and a reuse is refused even
// if the first call was rate-limited [U]: clients must draw a fresh
// 63-bit nonce per attempt. Note that Go's http.Transport may silently
// re-send an idempotent (GET) request whose connection dropped; the
// simulator then reports a replay. TC3 has no nonce and identical TC3
// requests are accepted, because the Go SDK re-sends the very same signed
// request when it retries (§4.3).
//
// # Temporary credentials
//
// Config.SecretID is a permanent key: a token sent with it is refused.
// Server.AcceptCredentials adds a temporary key (as a CVM role or STS
// issues it): requests under its SecretId must carry its token (v2 and
// signature v1 parameter Token, TC3 header X-TC-Token) and are refused with
// AuthFailure.TokenFailure from its expiry on (Stats.TokenRejected).
// Metadata is a stand-in for the CVM metadata service's role credentials
// (mount it on its own httptest server; the client's metadata URL is that
// server's URL plus MetadataPath): it issues credentials to its Server,
// hands out new ones past half their lifetime, and Metadata.Rotate issues
// new ones at once, optionally revoking the old.
//
// # Instances and the reinstall state machine
//
// An accepted reset sets LatestOperation "ResetInstance",
// LatestOperationState OPERATING, LatestOperationRequestId to the RequestId
// answered (v2: requestId; a UUID-shaped string in both generations [U])
// and v2 status 14. After ResetDuration (or, with ResetDurationMax above
// it, a duration drawn uniformly between the two from a source seeded by
// Faults.Seed, apart from the fault dice) the image becomes the requested one
// (unchanged when none was given), the state returns to what it was
// (RUNNING/STOPPED, v2 status 2/4 [U]) and LatestOperationState becomes
// SUCCESS, or, with probability FailRate, FAILED with the image unchanged
// and LatestOperationErrorMsg set. During a reinstall v3 InstanceState keeps
// its previous value [U]: use LatestOperationState. LatestOperation* are
// JSON null until the first accepted reset. OsName is derived from the OS
// (it starts with "Windows" for Windows) and does not follow image changes.
// v2 also knows each instance by a legacy qcvm ID (32 hex digits).
//
// A reset's checks run in this order; the first failure answers and
// changes nothing:
//
//  1. authentication (SecretId, timestamp, signature, nonce);
//  2. rate limit (the call is counted in Stats.Calls either way);
//  3. Region (v2 accepts the legacy short code, e.g. "gz");
//  4. parameters: unknown (API 3.0 names are case-sensitive, arrays
//     0-based), wrong JSON type, v2 imageId without imageType or vice
//     versa, malformed or unknown instance, malformed or unknown image,
//     KeepImageLogin with Password/KeyIds, KeyIds on Windows, password
//     rules (§5: v2 8–16/12–16, v3 8–30/12–30, per OS), HostName rules;
//  5. BalanceAfter, SystemBusyFirst, SystemBusyRate;
//  6. an operation already in progress.
//
// # Faults
//
// Faults are set in Config and changed at run time with Server.SetFaults.
// Transport faults apply to every API request (not admin), in this order:
// the body is read, Latency is waited out on the clock (a client that
// gives up first causes no effect: Stats.Abandoned), then ServerErrorRate
// answers HTTP 502 with an HTML body, then DropRate closes the connection
// without an answer, before processing or, with DropAfterApply, after the
// request took effect. EchoParams makes error answers (and the 502 page)
// quote the request's password in several escaped forms, like a careless
// upstream; a client must not show them. Rate limits count whole seconds of arrival time per
// action name as received (ResetInstance and ResetInstances have separate
// budgets; DescribeInstances of both generations share one [U]); a
// rejected call does not use up the budget. Probabilities come from a
// math/rand source seeded by Faults.Seed; a fault whose rate is 0 draws
// nothing, so enabling one fault does not shift the dice of another.
//
// # Error codes
//
// Each failure in both generations. v3 codes are documented (§3.6, §3.7)
// unless marked; every v2 numeric code is [U] beyond its class (§2.2), and
// v2 codeDescs are [U] unless the ResetInstances spec lists them.
//
//	failure                          v3 Error.Code                                   v2 code  v2 codeDesc
//	wrong signature                  AuthFailure.SignatureFailure                    4100     AuthFailure.SignatureFailure [U]
//	malformed Authorization/no key   AuthFailure.InvalidAuthorization                4100     AuthFailure.InvalidAuthorization [U]
//	unknown SecretId                 AuthFailure.SecretIdNotFound                    4104     AuthFailure.SecretIdNotFound [U]
//	token wrong, expired, misplaced  AuthFailure.TokenFailure                        4100     AuthFailure.TokenFailure [U]
//	timestamp outside window         AuthFailure.SignatureExpire                     4200     AuthFailure.SignatureExpire [U]
//	nonce reused                     InvalidRequest.ReplayAttack [U, transitional]   4500     InvalidRequest.ReplayAttack [U]
//	unknown action                   InvalidAction                                   6100     InvalidAction [U]
//	wrong version                    NoSuchVersion                                   6100     NoSuchVersion [U]
//	wrong region                     UnsupportedRegion [U]                           4000     InvalidParameter.Region [U]
//	bad method/content type          UnsupportedProtocol                             4600     UnsupportedProtocol [U]
//	body over 10 MB                  RequestSizeLimitExceeded                        4000     RequestSizeLimitExceeded [U]
//	rate limit                       RequestLimitExceeded                            4400     RequestLimitExceeded
//	missing Timestamp/Nonce          MissingParameter                                4000     MissingParameter [U]
//	missing v2 instanceId            MissingParameter (InstanceId)                   4000     InvalidParameter [U]
//	bad parameter / type             InvalidParameter or InvalidParameterValue       4000     InvalidParameter [U]
//	unknown parameter                UnknownParameter [U for CVM]                    -        (v2 ignores unknown names)
//	malformed instance ID            InvalidInstanceId.Malformed                     4000     InvalidInstanceId.Malformed [U]
//	unknown instance                 InvalidInstanceId.NotFound                      5000     InvalidInstanceId.NotFound
//	malformed image ID               InvalidImageId.Malformed                        4000     InvalidImageId.Malformed [U]
//	unknown image                    InvalidImageId.NotFound                         5000     InvalidImageId.NotFound [U]
//	password breaks rules            InvalidParameterValue.InvalidPassword           4000     InvalidParameter.PasswordNotConformSpecs
//	KeyIds on Windows                UnsupportedOperation.KeyPairUnsupportedWindows  -        (v2 has no keys)
//	malformed key ID                 InvalidParameterValue.KeyPairNotFound           -        -
//	KeepImageLogin + Password/KeyIds InvalidParameter.ParameterConflict              -        -
//	KeepImageLogin not TRUE/FALSE    InvalidParameterValue                           -        -
//	illegal HostName                 InvalidParameterValue.IllegalHostName           -        -
//	bad UserData                     InvalidParameterValue.InvalidUserDataFormat     -        -
//	operation in progress            OperationDenied.InstanceOperationInProgress     5100     OperationConstraints.InvaildInstanceStatus (sic)
//	BalanceAfter reached             InvalidAccount.InsufficientBalance              5300     OperationConstraints.AccountBalanceNotEnough
//	SystemBusyFirst / SystemBusyRate Faults.SystemBusyCodeV3, default InternalError  5100     OperationFail.SystemBusy
//	                                 with Message "system busy" [U]
//	InstanceIds and Filters together InvalidParameter.ParameterConflict [U]          -        -
//	over 100 IDs / 10 filters        InvalidParameterValue.LimitExceeded [U]         4000     InvalidParameter [U]
//	Limit outside [1, 100]           InvalidParameterValue                           4000     InvalidParameter [U]
//	unknown filter name              InvalidFilter                                   -        -
//	v2 instanceIds.N not 0,1,2...    -                                               4000     InvalidParameter [U]
//
// API 3.0 has no documented SystemBusy code; InternalError is the closest
// common code and, like the real one, it is not retried by the SDK or by
// Terraform, so set SystemBusyCodeV3 to test another classification.
//
// # DescribeInstances
//
// v3 filters instance-id, zone, image-id and instance-state are simulated;
// InstanceIds (at most 100) and Filters cannot be combined; unknown IDs are
// absent from the answer; results are in the order instances were added.
// v2 accepts instanceIds.N (0-based, at most 100), offset, limit (1–100,
// default 20) and status, and ignores other filters.
//
// # Stats
//
// Server.Stats (and /admin/stats) returns counters with snake_case JSON
// keys: total_calls, calls (action → Unix second of arrival → count of
// authenticated arrivals, rate-limited ones included),
// max_calls_per_second, accepted_resets (every known instance, zero
// included), reset_times (arrival times of accepted resets), succeeded_resets,
// failed_resets, rate_limited, errors (by code answered: v3 Error.Code or
// v2 codeDesc), signature_rejected, replay_rejected, expired_rejected,
// secret_in_url (requests with password, Password, LoginSettings.Password
// or SecretKey in the URL query — a client bug), server_errors, dropped and
// abandoned.
package cvmsim
