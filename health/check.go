package health

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/fleetreset/fleetreset/rollout"
)

// ErrInvalidCheck is wrapped by every ValidateCheck error.
var ErrInvalidCheck = errors.New("invalid health check")

// sample stands in for an instance when a check is validated at plan time:
// every fact set, so only the template's shape is judged.
var sample = Facts{InstanceID: "ins-sample", PrivateIP: "10.0.0.1", PublicIP: "203.0.113.1", Zone: "ap-guangzhou-3", Name: "sample"}

// ValidateCheck reports whether c can be probed: a known kind, the fields
// that kind needs, templates with known placeholders, an http(s) URL, a
// host:port address, status codes in 100-599. Errors name the field and
// wrap ErrInvalidCheck; they never quote a URL, which may hold credentials.
func ValidateCheck(c rollout.Check) error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("health: %s: %s: %w", field, fmt.Sprintf(format, args...), ErrInvalidCheck)
	}
	switch c.Kind {
	case rollout.CheckHTTP:
		if c.URL == "" {
			return bad("url", "required for an http check")
		}
		if err := ValidateTemplate(c.URL); err != nil {
			return bad("url", "%v", err)
		}
		u, err := url.Parse(mustExpand(c.URL))
		if err != nil {
			return bad("url", "not a URL")
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return bad("url", "scheme %q, want http or https", u.Scheme)
		}
		if u.Host == "" {
			return bad("url", "no host")
		}
		for _, s := range c.Status {
			if s < 100 || s > 599 {
				return bad("status", "%d is not an HTTP status", s)
			}
		}
	case rollout.CheckTCP:
		if c.Address == "" {
			return bad("address", "required for a tcp check")
		}
		if err := ValidateTemplate(c.Address); err != nil {
			return bad("address", "%v", err)
		}
		if _, port, err := net.SplitHostPort(mustExpand(c.Address)); err != nil || port == "" {
			return bad("address", "want host:port")
		}
	case rollout.CheckCLB:
		l := c.Listener
		if l == nil || l.LoadBalancerID == "" || l.ListenerID == "" {
			return bad("listener", "load_balancer_id and listener_id are required for a clb check")
		}
		if l.Port < 1 || l.Port > 65535 {
			return bad("listener.port", "%d is not a port", l.Port)
		}
	case rollout.CheckAgent:
	default:
		return bad("kind", "%q, want http, tcp, clb or tat", c.Kind)
	}
	return nil
}

// mustExpand expands a template already validated with the sample facts.
func mustExpand(template string) string {
	s, err := Expand(template, sample)
	if err != nil {
		panic("health: sample facts do not expand a valid template: " + err.Error())
	}
	return s
}

// label names a check in a Result. URLs lose their password and query
// values; a template that did not expand is shown unexpanded, redacted the
// same way.
func label(c rollout.Check, target string) string {
	switch c.Kind {
	case rollout.CheckHTTP:
		return "http " + redactURL(target)
	case rollout.CheckTCP:
		return "tcp " + target
	case rollout.CheckCLB:
		if l := c.Listener; l != nil {
			return fmt.Sprintf("clb %s/%s:%d", l.LoadBalancerID, l.ListenerID, l.Port)
		}
		return "clb"
	case rollout.CheckAgent:
		return "tat agent"
	}
	return c.Kind
}

// redactURL hides what may be a secret in a URL (or a URL template, which
// url.Parse may reject): the userinfo and every query value. The fragment
// is dropped; it never reaches the server anyway.
func redactURL(s string) string {
	s, _, _ = strings.Cut(s, "#")
	s, query, hasQuery := strings.Cut(s, "?")
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		authority, path, _ := strings.Cut(rest, "/")
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			authority = "xxxxx@" + authority[at+1:]
		}
		s = scheme + "://" + authority
		if path != "" || strings.Contains(rest, "/") {
			s += "/" + path
		}
	}
	if !hasQuery {
		return s
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		if k, _, ok := strings.Cut(p, "="); ok {
			params[i] = k + "=xxxxx"
		} else {
			params[i] = "xxxxx" // a bare value, as in ?TOKEN
		}
	}
	return s + "?" + strings.Join(params, "&")
}
