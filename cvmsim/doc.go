// Package cvmsim is a local HTTP simulator of the Tencent Cloud CVM API,
// faithful enough that fleetreset's client, workers, tests and demos run
// against it instead of Tencent. It implements ResetInstance(s) and
// DescribeInstances in both API generations, verifies signatures with its
// own code (it never imports package cvm or the Tencent SDK, so a client
// bug cannot be mirrored here), keeps a per-instance reinstall state
// machine on an injectable clock, injects faults, and counts what clients
// did so tests can assert on it. For issue 11 it also simulates what makes
// an instance "serving again": per-instance health endpoints, CLB targets
// and weights, TAT commands, Cloud Monitor alarms and a Prometheus
// endpoint (see "Serving" below).
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
// clock and reads the result. The one exception is health endpoints
// (Config.HealthPort): Start opens them and runs a goroutine that, every
// 10ms of real time, completes due reinstalls so their listeners reopen;
// Close stops it and closes every listener.
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
//   - / — also the services clb (2018-03-17), tat (2020-10-28) and monitor
//     (2018-07-24), TC3 only, routed by X-TC-Action; see "Serving".
//   - /prometheus/api/v1/query (GET or POST, query=EXPR) — a Prometheus
//     instant query; the expression is not evaluated (see SetAlert).
//   - /admin/stats (GET) — Stats as JSON; /admin/instances (GET) — every
//     InstanceView as a JSON list; /admin/alert (POST ?name=X&firing=true)
//     — Server.SetAlert; /admin/healthy (POST ?id=ins-...&ok=false) —
//     Server.SetHealthy. No authentication: a test and ops aid.
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
// lower-cased, Content-Type exactly as sent, service the action's (cvm,
// clb, tat or monitor: a request signed for another service fails as it
// would on the real per-service host), scope date the
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
// SUCCESS, or, with probability FailRate (always for FailIDs), FAILED with the image unchanged
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
//	InstanceIds and Filters together InvalidParameter.InvalidParameterCoexistInstanceIdsFilters [U] -  -
//	over 100 IDs / 10 filters        InvalidParameterValue.LimitExceeded [U]         4000     InvalidParameter [U]
//	over 5 values in one filter      InvalidFilterValue.LimitExceeded                -        -
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
// # Serving
//
// Instances have a name (Instance.Name, default "sim-" + ID), a public IP
// (43.x.y.z) and a private IP (10.x.y.z; with Config.HealthPort a loopback
// address of their own, 127.1.0.1 for the first added, counting up),
// reported by DescribeInstances (v3 InstanceName, PrivateIpAddresses,
// PublicIpAddresses; v2 instanceName, lanIp, wanIpSet). An instance is up
// while RUNNING and not reinstalling. After Start, an up instance listens
// on PrivateIP:HealthPort and answers GET /healthz with 200 "ok <imageId>",
// or 503 when unhealthy; a reinstall closes the listener and its
// connections (connection refused) and its end reopens it. A successful
// reinstall leaves the instance unhealthy with probability
// Faults.UnhealthyRate (drawn at acceptance, after FailRate) or always for
// Faults.UnhealthyIDs; Server.SetHealthy overrides until the next one.
// Start fails clearly where 127.x addresses cannot be bound (not Linux).
//
// CLB: Config.LoadBalancers (flag -clb LB:LISTENER:PORT[:LOCATION]).
// DescribeTargets {LoadBalancerId, ListenerIds, Protocol, Port} lists
// Targets on layer-4 listeners and Rules[].Targets on layer-7 ones.
// DescribeTargetHealth {LoadBalancerIds} reports every listener with
// Rules (a layer-4 one as one rule with LocationId ""), HealthStatus true
// iff the instance is up and healthy (Detail Alive, else Dead; Unknown for
// an instance the simulator does not have). BatchModifyTargetWeight
// {LoadBalancerId, ModifyList[{ListenerId, LocationId | Domain+Url,
// Targets[{InstanceId, Port, Weight}], Weight}]} (at most 500 targets) and
// ModifyTargetWeight {LoadBalancerId, ListenerId, LocationId, Targets,
// Weight} are all-or-nothing and asynchronous: the answer's RequestId is a
// task that DescribeTaskStatus {TaskId} reports as Status 2 for
// Config.TaskDuration, then 0, and the weights change only then. A
// target's Weight wins over the rule's; with neither it is 10, as
// documented. Server.WeightHistory and Server.Weights show the effect.
//
// TAT: RunCommand {Content (base64, at most 64 KiB of base64), InstanceIds
// (1-200), CommandType SHELL (Linux) | POWERSHELL (Windows), Timeout
// (1-86400 s, default 60), WorkingDirectory, Username, SaveCommand}
// starts one task per instance, all or nothing; each is RUNNING for
// Config.CommandDuration, then SUCCESS with exit 0 and output "ok", or
// FAILED with exit 1 when the script has a line "# sim: fail" or the
// instance is in Faults.CommandFailIDs; "# sim: hang" (or a Timeout
// shorter than CommandDuration) runs until Timeout, then TIMEOUT with exit
// -1 [U]. DescribeInvocationTasks (InvocationTaskIds or Filters
// invocation-id, invocation-task-id, instance-id, command-id; Limit,
// Offset) hides output unless HideOutput is false, as documented.
// DescribeAutomationAgentStatus reports Online while the instance is up
// and not in Faults.AgentOfflineIDs. Server.Invocations records commands.
//
// Alarms: Server.SetAlert(name, true) makes every Prometheus query answer
// one sample {"alertname": name} per firing alert, and
// DescribeAlarmHistories {Module "monitor", PolicyIds, AlarmStatus,
// StartTime, EndTime, PageNumber, PageSize} report an ALARM history for
// each firing name among PolicyIds (all when empty) that began by EndTime.
//
// Every clb, tat and monitor action is limited to Faults.ServiceRateLimit
// (default 20) calls per second each. Region is required except for clb,
// where the docs make it optional. Their error codes (from the SDKs'
// per-action lists unless marked [U]):
//
//	failure                              Error.Code
//	unknown load balancer                InvalidParameter.LBIdNotFound
//	unknown listener                     InvalidParameter.ListenerIdNotFound
//	no or unknown rule on layer 7,       InvalidParameter.LocationNotFound
//	a rule on layer 4
//	target not bound at that port        InvalidParameter [U]
//	weight outside 0-100, Type not CVM   InvalidParameterValue
//	over 500 targets                     InvalidParameterValue.Length
//	unknown TaskId                       InvalidParameter [U]
//	task running (Faults.LoadBalancerBusy) FailedOperation.ResourceInOperating [U]
//	Content not base64                   InvalidParameterValue.InvalidContent
//	Content over 64 KiB                  InvalidParameterValue.TooLong
//	over 200 instances                   InvalidParameterValue.LimitExceeded
//	malformed instance ID (TAT)          InvalidParameterValue.InvalidInstanceId
//	unknown instance (TAT)               ResourceNotFound.InstanceNotFound
//	instance not RUNNING                 ResourceUnavailable.InstanceStateNotRunning
//	agent offline or reinstalling        ResourceUnavailable.AgentStatusNotOnline
//	SHELL on Windows, POWERSHELL on Linux InvalidParameterValue.AgentUnsupportedCommandType
//	Timeout outside 1-86400              InvalidParameterValue.Range
//	Module not "monitor", bad paging     InvalidParameter
//	missing required parameter           MissingParameter
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
// or SecretKey in the URL query — a client bug), server_errors, dropped,
// abandoned, max_concurrent_resets and max_concurrent_resets_per_zone
// (reinstalls running at once, taken at each acceptance) and
// health_listen_errors.
package cvmsim
