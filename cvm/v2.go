package cvm

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"hash"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// v2Client speaks the legacy API: form-encoded POSTs to /v2/index.php,
// signed with HmacSHA256 or HmacSHA1 (§1.2), {code,message,codeDesc} bodies.
type v2Client struct {
	cfg  Config
	url  *url.URL
	http *http.Client
	// now and nonce are seams for tests; the wall clock and a random
	// positive 63-bit number otherwise.
	now   func() time.Time
	nonce func() uint64
}

func newV2(cfg Config, u *url.URL) *v2Client {
	return &v2Client{
		cfg: cfg,
		url: u,
		http: &http.Client{
			Transport: captureTransport{base: cfg.Transport},
			// Following a redirect would resend as GET without the body.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		now: time.Now,
		// 63 bits: the server rejects a repeated nonce (code 4500), and at
		// 10 calls/s a 31-bit nonce would likely repeat within its window.
		nonce: func() uint64 { return rand.Uint64()>>1 | 1 },
	}
}

// Generation returns V2.
func (c *v2Client) Generation() Generation { return V2 }

// ResetInstance calls the legacy action ResetInstances (v2, host
// cvm.api.qcloud.com, path /v2/index.php) for one instance and returns its
// requestId (the task number).
//
// Doc: the legacy "ResetInstances" page (copy in shared/seeds/ResetInstances.md;
// common parameters https://cloud.tencent.com/document/api/213/6976).
//
// The request is always a POST with a form body, so the password never
// appears in a URL. ImageType is sent only with ImageID and defaults to 2
// (public image) then. KeyIDs, KeepImageLogin and HostName have no v2
// equivalent and are refused with ErrInvalidRequest.
func (c *v2Client) ResetInstance(ctx context.Context, req ResetRequest) (string, error) {
	const action = "ResetInstances"
	p, err := v2ResetParams(req)
	if err != nil {
		return "", err
	}
	var out struct {
		RequestID flexString `json:"requestId"`
	}
	if err := c.do(ctx, action, p, &out, req.Password.Reveal()); err != nil {
		return "", err
	}
	return string(out.RequestID), nil
}

func v2ResetParams(req ResetRequest) (map[string]string, error) {
	const action = "ResetInstances"
	switch {
	case req.InstanceID == "":
		return nil, invalid(V2, action, "InstanceID is empty")
	case len(req.KeyIDs) > 0 || req.KeepImageLogin || req.HostName != "" || len(req.UserData) > 0:
		return nil, invalid(V2, action, "KeyIDs, KeepImageLogin, HostName and UserData are V3-only")
	case req.ImageType != 0 && req.ImageID == "":
		return nil, invalid(V2, action, "ImageType %d given without ImageID", req.ImageType)
	case req.ImageType < 0 || req.ImageType > 4:
		return nil, invalid(V2, action, "ImageType %d: want 1 (private), 2 (public), 3 (marketplace) or 4 (shared)", req.ImageType)
	case req.RootSize < 0:
		return nil, invalid(V2, action, "RootSize %d is negative", req.RootSize)
	}
	p := map[string]string{"instanceId": req.InstanceID}
	if req.ImageID != "" {
		// The spec wants imageId and imageType together; 2 (public) is
		// the documented default.
		p["imageId"] = req.ImageID
		p["imageType"] = strconv.Itoa(cmp.Or(req.ImageType, 2))
	}
	if req.Password != "" {
		p["password"] = req.Password.Reveal()
	}
	if req.SecurityAgent != nil {
		p["needSecurityAgent"] = boolDigit(*req.SecurityAgent)
	}
	if req.MonitorAgent != nil {
		p["needMonitorAgent"] = boolDigit(*req.MonitorAgent)
	}
	if req.RootSize > 0 {
		p["rootSize"] = strconv.Itoa(req.RootSize)
	}
	return p, nil
}

// DescribeInstances calls the legacy action DescribeInstances (v2) with
// instanceIds.0…N-1, limit 100 and offset 0. Instances the cloud does not
// return are absent from the result. An empty ids returns nothing without a
// call (an empty filter would list every instance of the region).
//
// Doc: https://cloud.tencent.com/doc/api/213/831 (legacy "DescribeInstances").
func (c *v2Client) DescribeInstances(ctx context.Context, ids []string) ([]Instance, error) {
	const action = "DescribeInstances"
	if err := checkIDs(V2, action, ids); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	p := map[string]string{
		"limit":  strconv.Itoa(MaxDescribeIDs),
		"offset": "0",
	}
	for i, id := range ids {
		p["instanceIds."+strconv.Itoa(i)] = id // 0-based (§1.1)
	}
	var out struct {
		InstanceSet []struct {
			UnInstanceID string          `json:"unInstanceId"`
			InstanceID   string          `json:"instanceId"`
			ZoneName     string          `json:"zoneName"`
			ZoneID       json.RawMessage `json:"zoneId"`
			UnImgID      string          `json:"unImgId"`
			OS           string          `json:"os"`
			Status       flexInt         `json:"status"`
			LanIP        string          `json:"lanIp"`
			WanIPSet     []string        `json:"wanIpSet"`
			InstanceName string          `json:"instanceName"`
		} `json:"instanceSet"`
	}
	if err := c.do(ctx, action, p, &out); err != nil {
		return nil, err
	}
	res := make([]Instance, 0, len(out.InstanceSet))
	for _, in := range out.InstanceSet {
		res = append(res, Instance{
			// unInstanceId is the ins-xxxxxxxx form we address
			// instances by; old accounts may only have qcvm… IDs.
			InstanceID: cmp.Or(in.UnInstanceID, in.InstanceID),
			Zone:       cmp.Or(in.ZoneName, rawScalar(in.ZoneID)),
			ImageID:    in.UnImgID,
			OSName:     in.OS,
			State:      v2State(int(in.Status)),
			V2Status:   int(in.Status),
			PrivateIPs: nonEmpty([]string{in.LanIP}),
			PublicIPs:  nonEmpty(in.WanIPSet),
			Name:       in.InstanceName,
		})
	}
	return res, nil
}

// v2State maps a v2 status code to a v3-style InstanceState (§2.5).
func v2State(status int) string {
	switch status {
	case 2:
		return "RUNNING"
	case 4:
		return "STOPPED"
	case 14:
		return "RESETTING" // reinstalling the OS
	}
	return "STATUS_" + strconv.Itoa(status)
}

// do signs and POSTs one v2 call and decodes the success body into out.
// passwords are sent in params; they, the credentials and the signature
// are kept out of every error do returns. Each request is signed with the
// provider's credentials of the moment (see keyring.call).
func (c *v2Client) do(ctx context.Context, action string, params map[string]string, out any, passwords ...string) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	_, err := keyring{c.cfg.Provider}.call(ctx, V2, action, func(cred Credentials) error {
		return c.send(ctx, cred, action, params, out, passwords...)
	})
	return err
}

// send signs one request with cred and POSTs it.
func (c *v2Client) send(ctx context.Context, cred Credentials, action string, params map[string]string, out any, passwords ...string) error {
	p := make(map[string]string, len(params)+8)
	for k, v := range params {
		p[k] = v
	}
	p["Action"] = action
	p["Region"] = c.cfg.Region
	p["Timestamp"] = strconv.FormatInt(c.now().Unix(), 10)
	p["Nonce"] = strconv.FormatUint(c.nonce(), 10)
	p["SecretId"] = cred.SecretID
	p["SignatureMethod"] = c.cfg.SignatureMethod
	if tok := cred.Token.Reveal(); tok != "" {
		p["Token"] = tok
	}
	sig := signV2(http.MethodPost, c.url.Host, c.url.Path, p, cred.SecretKey.Reveal(), c.cfg.SignatureMethod)
	p["Signature"] = sig

	r := newRedactor(cred, passwords...).withSignature(sig)

	form := url.Values{}
	for k, v := range p {
		form.Set(k, v)
	}
	x := &exchange{}
	if err := ctx.Err(); err != nil {
		return &TransportError{Op: "v2 " + action, Err: err, Sent: false, text: err.Error()}
	}
	hreq, err := http.NewRequestWithContext(withExchange(ctx, x), http.MethodPost, c.url.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return invalid(V2, action, "build request: %v", sanitize(err))
	}
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(hreq)
	if resp != nil {
		resp.Body.Close() // captureTransport already read it
	}
	body, err := x.result(V2, action, err, r)
	if err != nil {
		return err
	}
	return decodeBody(V2, action, body, out, r)
}

// signV2 returns the base64 HMAC signature of a v2 request (§1.2): all
// params but Signature, sorted by name byte-wise, joined as k=v with raw
// values, names with "_" written as ".", prefixed by METHOD+host+path+"?".
// host is as sent, including a non-default port. Only the exact method
// "HmacSHA256" selects SHA-256; anything else is HmacSHA1, as on the server.
func signV2(method, host, path string, params map[string]string, secretKey, signatureMethod string) string {
	return hmacBase64(stringToSignV2(method, host, path, params), secretKey, signatureMethod)
}

func stringToSignV2(method, host, path string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	// The server (PHP) sees names with "." rewritten to "_" and sorts
	// those; sort the same way, then print names in the "." form.
	slices.SortFunc(keys, func(a, b string) int {
		return strings.Compare(strings.ReplaceAll(a, ".", "_"), strings.ReplaceAll(b, ".", "_"))
	})
	var b strings.Builder
	b.WriteString(strings.ToUpper(method))
	b.WriteString(host)
	b.WriteString(path)
	b.WriteByte('?')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(strings.ReplaceAll(k, "_", "."))
		b.WriteByte('=')
		b.WriteString(params[k])
	}
	return b.String()
}

func hmacBase64(msg, key, signatureMethod string) string {
	h := sha1.New
	if signatureMethod == "HmacSHA256" {
		h = sha256.New
	}
	return base64.StdEncoding.EncodeToString(hmacSum(h, key, msg))
}

func hmacSum(h func() hash.Hash, key, msg string) []byte {
	m := hmac.New(h, []byte(key))
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// rawScalar renders a JSON string or number as text; null or absent is "".
func rawScalar(b json.RawMessage) string {
	var s flexString
	if len(b) == 0 || json.Unmarshal(b, &s) != nil {
		return ""
	}
	return string(s)
}

// nonEmpty returns ss without empty strings, or nil when none is left, so
// an absent and an empty address list compare equal.
func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
