package cvm

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	tchttp "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http"
)

// service is one Tencent Cloud product API that Serving calls: its name
// (the host prefix and the TC3 credential scope) and API version.
type service struct {
	name    string
	version string
}

var (
	// serviceCLB is Cloud Load Balancer, host clb.tencentcloudapi.com.
	serviceCLB = service{"clb", "2018-03-17"}
	// serviceTAT is TencentCloud Automation Tools, host tat.tencentcloudapi.com.
	serviceTAT = service{"tat", "2020-10-28"}
	// serviceMonitor is Cloud Monitor, host monitor.tencentcloudapi.com.
	serviceMonitor = service{"monitor", "2018-07-24"}
)

// Documented rate limits of the actions Serving calls, per second, for
// callers that share a fleet-wide limiter: every one of them is 20/s.
const (
	CLBRateLimit     = 20
	TATRateLimit     = 20
	MonitorRateLimit = 20
)

// Serving calls the APIs that tell whether a reinstalled instance serves
// again and that take it out of and back into traffic: CLB target weights
// and health, TAT commands and agent status, and Cloud Monitor alarm
// history. It speaks API 3.0 only, exactly like the V3 CVM client: the
// official SDK's common client, TC3-HMAC-SHA256, no SDK retries, errors
// as *APIError, *TransportError or ErrInvalidRequest, classified by
// Classify and safe to log. It is safe for concurrent use. Rate limiting
// is the caller's (see CLBRateLimit and its siblings).
type Serving struct {
	c *v3Client
}

// NewServing returns a client for CLB, TAT and Cloud Monitor built from the
// same Config as New. Generation must be V3 (or empty). Without
// cfg.Endpoint each service goes to its own host
// (clb/tat/monitor.tencentcloudapi.com). With a real CVM host as the
// endpoint (cvm.ap-guangzhou.tencentcloudapi.com, cvm.intl...) each service
// goes to its own host under the same domain (clb.ap-guangzhou...): the
// cloud routes by host, and a CLB call to the CVM host is refused. Any
// other endpoint (a simulator, a gateway) gets every service at that one
// URL, each signed with its own service name.
func NewServing(cfg Config) (*Serving, error) {
	cfg.Generation = cmp.Or(cfg.Generation, GenerationDefault)
	if cfg.Generation != V3 {
		return nil, fmt.Errorf("cvm: serving config: Generation %q: CLB, TAT and Cloud Monitor speak API 3.0 only; use %q", cfg.Generation, V3)
	}
	perService := cfg.Endpoint == ""
	rootDomain := ""
	if d, ok := serviceRoot(cfg.Endpoint); ok {
		perService, rootDomain = true, d
	}
	// validate wants a URL; the real per-service hosts share this one's
	// scheme and shape.
	cfg.Endpoint = cmp.Or(cfg.Endpoint, EndpointV3Default)
	cfg.Timeout = cmp.Or(cfg.Timeout, TimeoutDefault)
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	u, err := validate(&cfg)
	if err != nil {
		return nil, fmt.Errorf("cvm: serving config: %w", err)
	}
	c, err := newV3(cfg, u)
	if err != nil {
		return nil, fmt.Errorf("cvm: serving config: %w", err)
	}
	if perService {
		// An empty SDK endpoint makes the SDK send each request to
		// <service>.<root domain> (tencentcloudapi.com when empty).
		c.cpf.HttpProfile.Endpoint = ""
		c.cpf.HttpProfile.RootDomain = rootDomain
	}
	return &Serving{c: c}, nil
}

// serviceRoot returns the domain under which the other services of a real
// CVM endpoint live: "ap-guangzhou.tencentcloudapi.com" for
// https://cvm.ap-guangzhou.tencentcloudapi.com, "tencentcloudapi.com" for
// the nearest-region host; false for any other endpoint.
func serviceRoot(endpoint string) (string, bool) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Port() != "" || (u.Path != "" && u.Path != "/") {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	root, ok := strings.CutPrefix(host, "cvm.")
	if !ok || (root != "tencentcloudapi.com" && !strings.HasSuffix(root, ".tencentcloudapi.com")) {
		return "", false
	}
	return root, true
}

// do sends one call to svc and decodes the success body into out, like
// v3Client.do: a deadline of Config.Timeout, the provider's credentials of
// the moment (sent once more after a refusal rotation explains), secrets
// kept out of errors. It returns the credentials the answer came back to,
// to scrub what the answer echoes.
func (s *Serving) do(ctx context.Context, svc service, action string, params map[string]any, out any) (Credentials, error) {
	ctx, cancel := context.WithTimeout(ctx, s.c.cfg.Timeout)
	defer cancel()
	return keyring{s.c.cfg.Provider}.call(ctx, V3, action, func(cred Credentials) error {
		return s.send(ctx, cred, svc, action, params, out)
	})
}

func (s *Serving) send(ctx context.Context, cred Credentials, svc service, action string, params map[string]any, out any) error {
	r := newRedactor(cred)
	if err := ctx.Err(); err != nil {
		return &TransportError{Op: "v3 " + action, Err: err, Sent: false, text: err.Error()}
	}
	req := tchttp.NewCommonRequest(svc.name, svc.version, action)
	if err := req.SetActionParameters(params); err != nil {
		return invalid(V3, action, "%s", r.clean(err.Error()))
	}
	x := &exchange{}
	req.SetContext(withExchange(ctx, x))
	resp := tchttp.NewCommonResponse()
	body, err := x.result(V3, action, s.c.client(cred).Send(req, resp), r)
	if err != nil {
		return err
	}
	return decodeBody(V3, action, body, out, r)
}

// malformed is the error for a success body that decodes but does not say
// what the call needs (a missing or unknown status): Classify treats it
// like any unreadable answer.
func malformed(action, format string, args ...any) error {
	return &APIError{Generation: V3, Action: action, Code: CodeMalformedResponse, HTTPStatus: 200,
		Message: clip(fmt.Sprintf(format, args...))}
}

// checkList refuses an empty list, an empty element and more than max
// elements (max 0: no limit). what names the elements in the error.
func checkList(action, what string, list []string, max int) error {
	switch {
	case len(list) == 0:
		return invalid(V3, action, "no %s", what)
	case max > 0 && len(list) > max:
		return invalid(V3, action, "%d %s, at most %d per call", len(list), what, max)
	}
	for i, v := range list {
		if v == "" {
			return invalid(V3, action, "%s %d is empty", what, i)
		}
	}
	return nil
}
