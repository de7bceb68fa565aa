package cvm

import (
	"context"
	"encoding/base64"
	"net/url"
	"sync"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tchttp "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
)

// v3Version is the CVM API 3.0 version both actions use.
const v3Version = "2017-03-12"

// v3Client speaks API 3.0 through the official SDK's common client: JSON
// POSTs signed with TC3-HMAC-SHA256, {"Response":{...}} bodies.
type v3Client struct {
	cfg Config
	cpf *profile.ClientProfile

	// The SDK client holds one credential; it is rebuilt when the
	// provider's credentials change (rarely: a rotation).
	mu      sync.Mutex
	sdkCred Credentials
	sdk     *common.Client
}

func newV3(cfg Config, u *url.URL) (*v3Client, error) {
	cpf := profile.NewClientProfile()
	cpf.SignMethod = "TC3-HMAC-SHA256"
	cpf.Language = "en-US"
	// The SDK splits host and path at the first "/"; TC3 signs "/" anyway.
	cpf.HttpProfile.Endpoint = u.Host
	if u.Path != "" && u.Path != "/" {
		cpf.HttpProfile.Endpoint += u.Path
	}
	if u.Scheme == "http" {
		cpf.HttpProfile.Scheme = "HTTP"
	}
	cpf.HttpProfile.ReqMethod = "POST"
	// Each call has a context deadline of cfg.Timeout instead; 0 leaves the
	// SDK's http.Client without a timeout of its own.
	cpf.HttpProfile.ReqTimeout = 0
	// No SDK retries: they re-send the same signed request blindly, and
	// the worker owns retry policy (and must see every throttle).
	cpf.NetworkFailureMaxRetries = 0
	cpf.RateLimitExceededMaxRetries = 0
	cpf.UnsafeRetryOnConnectionFailure = false
	// The region breaker would redirect calls to a backup host.
	cpf.DisableRegionBreaker = true
	return &v3Client{cfg: cfg, cpf: cpf}, nil
}

// client returns the SDK client that signs with cred.
func (c *v3Client) client(cred Credentials) *common.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sdk == nil || c.sdkCred != cred {
		tok := common.NewTokenCredential(cred.SecretID, cred.SecretKey.Reveal(), cred.Token.Reveal())
		c.sdk = common.NewCommonClient(tok, c.cfg.Region, c.cpf).
			WithHttpTransport(captureTransport{base: c.cfg.Transport})
		c.sdkCred = cred
	}
	return c.sdk
}

// Generation returns V3.
func (c *v3Client) Generation() Generation { return V3 }

// ResetInstance calls ResetInstance (API 3.0, version 2017-03-12) and
// returns its RequestId, which DescribeInstances later reports as
// LatestOperationRequestId. There is no idempotency token: a retry after an
// error that MayHaveLanded can start a second reinstall.
//
// Doc: https://cloud.tencent.com/document/api/213/15724
//
// At most one of Password, KeyIDs and KeepImageLogin may be set; none
// means the cloud sends a random password to the message center.
// ImageType is ignored.
func (c *v3Client) ResetInstance(ctx context.Context, req ResetRequest) (string, error) {
	const action = "ResetInstance"
	params, err := v3ResetParams(req)
	if err != nil {
		return "", err
	}
	var out struct {
		Response struct {
			RequestID string `json:"RequestId"`
		} `json:"Response"`
	}
	if _, err := c.do(ctx, action, params, &out, req.Password.Reveal()); err != nil {
		return "", err
	}
	return out.Response.RequestID, nil
}

func v3ResetParams(req ResetRequest) (map[string]any, error) {
	const action = "ResetInstance"
	logins := 0
	for _, set := range []bool{req.Password != "", len(req.KeyIDs) > 0, req.KeepImageLogin} {
		if set {
			logins++
		}
	}
	switch {
	case req.InstanceID == "":
		return nil, invalid(V3, action, "InstanceID is empty")
	case logins > 1:
		return nil, invalid(V3, action, "set at most one of Password, KeyIDs and KeepImageLogin")
	case req.RootSize < 0:
		return nil, invalid(V3, action, "RootSize %d is negative", req.RootSize)
	case base64.StdEncoding.EncodedLen(len(req.UserData)) > MaxUserData:
		return nil, invalid(V3, action, "UserData is %d bytes base64-encoded, at most %d", base64.StdEncoding.EncodedLen(len(req.UserData)), MaxUserData)
	}
	p := map[string]any{"InstanceId": req.InstanceID}
	if req.ImageID != "" {
		p["ImageId"] = req.ImageID
	}
	switch {
	case req.Password != "":
		p["LoginSettings"] = map[string]any{"Password": req.Password.Reveal()}
	case len(req.KeyIDs) > 0:
		p["LoginSettings"] = map[string]any{"KeyIds": req.KeyIDs}
	case req.KeepImageLogin:
		// A string, not a bool: "TRUE" or "FALSE".
		p["LoginSettings"] = map[string]any{"KeepImageLogin": "TRUE"}
	}
	if req.SecurityAgent != nil || req.MonitorAgent != nil || req.AutomationAgent {
		es := map[string]any{}
		if req.SecurityAgent != nil {
			es["SecurityService"] = map[string]any{"Enabled": *req.SecurityAgent}
		}
		if req.MonitorAgent != nil {
			es["MonitorService"] = map[string]any{"Enabled": *req.MonitorAgent}
		}
		if req.AutomationAgent {
			es["AutomationService"] = map[string]any{"Enabled": true}
		}
		p["EnhancedService"] = es
	}
	if len(req.UserData) > 0 {
		p["UserData"] = base64.StdEncoding.EncodeToString(req.UserData)
	}
	if req.RootSize > 0 {
		p["SystemDisk"] = map[string]any{"DiskSize": req.RootSize}
	}
	if req.HostName != "" {
		p["HostName"] = req.HostName
	}
	return p, nil
}

// DescribeInstances calls DescribeInstances (API 3.0, version 2017-03-12)
// with InstanceIds (at most MaxDescribeIDs) and Limit 100. Instances the
// cloud does not return are absent from the result. An empty ids returns
// nothing without a call (no filter would list every instance).
//
// Doc: https://cloud.tencent.com/document/api/213/15728
func (c *v3Client) DescribeInstances(ctx context.Context, ids []string) ([]Instance, error) {
	const action = "DescribeInstances"
	if err := checkIDs(V3, action, ids); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	params := map[string]any{
		"InstanceIds": ids,
		// Limit defaults to 20; InstanceIds cannot be combined with
		// Filters, and 100 IDs fit one page.
		"Limit": MaxDescribeIDs,
	}
	list, _, err := c.describe(ctx, action, params)
	return list, err
}

// do sends one API 3.0 call through the SDK and decodes the success body,
// exactly as received, into out. passwords are sent in params; they, the
// credentials and the signature are kept out of every error do returns.
// Each request is signed with the provider's credentials of the moment
// (see keyring.call), which do returns.
func (c *v3Client) do(ctx context.Context, action string, params map[string]any, out any, passwords ...string) (Credentials, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	return keyring{c.cfg.Provider}.call(ctx, V3, action, func(cred Credentials) error {
		return c.send(ctx, cred, action, params, out, passwords...)
	})
}

// send signs one request with cred and sends it.
func (c *v3Client) send(ctx context.Context, cred Credentials, action string, params map[string]any, out any, passwords ...string) error {
	r := newRedactor(cred, passwords...)
	if err := ctx.Err(); err != nil {
		return &TransportError{Op: "v3 " + action, Err: err, Sent: false, text: err.Error()}
	}

	req := tchttp.NewCommonRequest("cvm", v3Version, action)
	if err := req.SetActionParameters(params); err != nil {
		return invalid(V3, action, "%s", r.clean(err.Error()))
	}
	x := &exchange{}
	req.SetContext(withExchange(ctx, x))
	resp := tchttp.NewCommonResponse()
	body, err := x.result(V3, action, c.client(cred).Send(req, resp), r)
	if err != nil {
		return err
	}
	return decodeBody(V3, action, body, out, r)
}
