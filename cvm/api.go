package cvm

import (
	"context"
	"net/http"
	"time"
)

// API is what fleetreset needs from Tencent Cloud CVM, whatever the API
// generation underneath. Implementations are safe for concurrent use.
type API interface {
	// ResetInstance asks the cloud to reinstall one instance and returns the
	// cloud's RequestId for the call. A nil error means the cloud accepted
	// the request; the reinstall itself runs asynchronously afterwards.
	ResetInstance(ctx context.Context, req ResetRequest) (requestID string, err error)
	// DescribeInstances returns the state of up to MaxDescribeIDs instances.
	// Instances the cloud does not know are absent from the result.
	DescribeInstances(ctx context.Context, ids []string) ([]Instance, error)
	// Generation reports which API generation the client speaks.
	Generation() Generation
}

// MaxDescribeIDs is the most instance IDs one DescribeInstances call takes,
// in both API generations.
const MaxDescribeIDs = 100

// Generation names an API generation.
type Generation string

const (
	// V2 is the legacy cvm.api.qcloud.com/v2/index.php API with action
	// ResetInstances, lower-case parameters and {code,message,codeDesc} bodies.
	V2 Generation = "v2"
	// V3 is API 3.0 (version 2017-03-12, action ResetInstance, TC3 signing,
	// {"Response":{...}} bodies).
	V3 Generation = "v3"
)

// ResetRequest is one reinstall. Zero values mean "leave it to the cloud's
// default" unless a field says otherwise.
type ResetRequest struct {
	InstanceID string
	// ImageID is the target image (img-xxxxxxxx). Empty means the instance's
	// current image.
	ImageID string
	// ImageType is the v2 image type: 1 private, 2 public, 3 marketplace,
	// 4 shared. Ignored by V3. Zero means not sent.
	ImageType int
	// Password is the new login password. It is sent only in a POST body,
	// never in a URL, and never appears in an error string.
	Password Secret
	// KeyIDs and KeepImageLogin are the V3 alternatives to a password.
	KeyIDs         []string
	KeepImageLogin bool
	// SecurityAgent and MonitorAgent install the agents; nil means the cloud
	// default (install).
	SecurityAgent *bool
	MonitorAgent  *bool
	// RootSize is the system disk size in GB; zero keeps it.
	RootSize int
	// HostName is the V3 HostName; empty keeps it.
	HostName string
	// UserData is the V3 UserData (cloud-init or a script) as plain
	// bytes; the client sends it base64-encoded, at most MaxUserData
	// bytes then. V2 has no UserData and refuses a request with it. It may
	// hold secrets: the client's own errors never quote it.
	UserData []byte
	// AutomationAgent installs the TAT agent (V3
	// EnhancedService.AutomationService.Enabled = true), which command
	// hooks and tat health checks need. False leaves it to the cloud's
	// default. Ignored by V2, which has no such parameter.
	AutomationAgent bool
}

// Instance is the part of DescribeInstances that fleetreset reads, normalised
// across generations.
type Instance struct {
	InstanceID string
	Zone       string
	// ImageID is the current image (v2 unImgId, v3 ImageId).
	ImageID string
	OSName  string
	// State is the v3 InstanceState (RUNNING, STOPPED, ...). For V2 it is
	// derived from Status: 2 RUNNING, 4 STOPPED, 14 RESETTING, other values
	// as "STATUS_<n>".
	State string
	// V2Status is the raw v2 status code; zero for V3.
	V2Status int
	// LatestOperation, LatestOperationState (SUCCESS|OPERATING|FAILED) and
	// LatestOperationRequestID come from V3; V2 leaves them empty.
	LatestOperation          string
	LatestOperationState     string
	LatestOperationRequestID string
	// LatestOperationErrorMsg is the cloud's text on a failed operation
	// (V3), cut to one line of 200 bytes and checked for the SecretKey
	// and Token (MessageWithheld if it shows them). The call that reads it
	// does not know the password the operation was sent with: pass it
	// through Scrub with that password before storing or showing it.
	LatestOperationErrorMsg string
	// PrivateIPs are the instance's private addresses (v3
	// PrivateIpAddresses, v2 lanIp), PublicIPs its public ones (v3
	// PublicIpAddresses, v2 wanIpSet); either may be empty.
	PrivateIPs []string
	PublicIPs  []string
	// Name is the instance name (v3 InstanceName, v2 instanceName) as the
	// owner set it.
	Name string
	// Tags are the instance's tags (v3 Tags [{Key, Value}]); nil when it
	// has none, and always nil for V2.
	Tags map[string]string
}

// Resetting reports whether a reinstall is visibly in progress.
func (in Instance) Resetting() bool {
	if in.V2Status == 14 {
		return true
	}
	return in.LatestOperationState == "OPERATING"
}

// Credentials are an API key pair and an optional STS token.
type Credentials struct {
	SecretID  string
	SecretKey Secret
	Token     Secret
}

// Config configures a Client. The zero value of every field means its default.
type Config struct {
	// Generation selects the API generation. Defaults to V3.
	Generation Generation
	// Endpoint is the full base URL, e.g. https://cvm.tencentcloudapi.com or
	// http://127.0.0.1:8080 for a simulator. For V2 the path /v2/index.php is
	// appended when the URL has no path. Defaults to the real host of the
	// generation.
	Endpoint string
	// Region, e.g. ap-guangzhou. Required.
	Region string
	// Provider supplies the credentials of each request; see
	// DefaultProvider. When nil, Credentials are used as a static key.
	Provider CredentialProvider
	// Credentials is a static key, used when Provider is nil; see
	// CredentialsFromEnv.
	Credentials Credentials
	// SignatureMethod for V2: "HmacSHA256" (the default) or "HmacSHA1".
	// V3 always signs with TC3-HMAC-SHA256 and accepts only "" or that.
	SignatureMethod string
	// Timeout bounds each HTTP call. Defaults to 30s.
	Timeout time.Duration
	// Transport sends the HTTP requests of both generations; tests use it
	// to observe or break requests. Defaults to a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
}
