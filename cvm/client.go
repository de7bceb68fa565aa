package cvm

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

const (
	// EndpointV2Default is the legacy API's URL.
	EndpointV2Default = "https://cvm.api.qcloud.com/v2/index.php"
	// EndpointV3Default is API 3.0's nearest-region URL.
	EndpointV3Default = "https://cvm.tencentcloudapi.com"
	// GenerationDefault is the generation New uses when Config.Generation is empty.
	GenerationDefault = V3
	// SignatureMethodDefault is the v2 signature method.
	SignatureMethodDefault = "HmacSHA256"
	// TimeoutDefault bounds each HTTP call.
	TimeoutDefault = 30 * time.Second
	// v2Path is appended to a V2 endpoint URL that has no path.
	v2Path = "/v2/index.php"
)

// New returns a client for cfg.Generation. It fills defaults, then checks
// cfg; the error names the offending field. The client is safe for
// concurrent use. It asks cfg.Provider for credentials before every
// request, so one client serves for as long as the provider does.
func New(cfg Config) (API, error) {
	cfg.Generation = cmp.Or(cfg.Generation, GenerationDefault)
	switch cfg.Generation {
	case V2:
		cfg.Endpoint = cmp.Or(cfg.Endpoint, EndpointV2Default)
		cfg.SignatureMethod = cmp.Or(cfg.SignatureMethod, SignatureMethodDefault)
	case V3:
		cfg.Endpoint = cmp.Or(cfg.Endpoint, EndpointV3Default)
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, TimeoutDefault)
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	u, err := validate(&cfg)
	if err != nil {
		return nil, fmt.Errorf("cvm: config: %w", err)
	}
	if cfg.Generation == V2 {
		return newV2(cfg, u), nil
	}
	return newV3(cfg, u)
}

// validate checks a defaulted Config and returns its parsed endpoint.
func validate(cfg *Config) (*url.URL, error) {
	switch cfg.Generation {
	case V2, V3:
	default:
		return nil, fmt.Errorf("Generation %q: want %q or %q", cfg.Generation, V2, V3)
	}
	u, err := url.Parse(cfg.Endpoint)
	switch {
	case err != nil:
		// url.Parse errors quote the input; Endpoint holds no secret.
		return nil, fmt.Errorf("Endpoint: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("Endpoint %q: scheme must be http or https", cfg.Endpoint)
	case u.Host == "":
		return nil, fmt.Errorf("Endpoint %q: no host", cfg.Endpoint)
	case u.User != nil:
		return nil, errors.New("Endpoint: must not contain user info")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("Endpoint %q: must not have a query or fragment", cfg.Endpoint)
	}
	if cfg.Generation == V2 && (u.Path == "" || u.Path == "/") {
		u.Path = v2Path
	}
	if cfg.Region == "" {
		return nil, errors.New("Region: required")
	}
	if cfg.Provider == nil {
		if cfg.Credentials.SecretID == "" {
			return nil, errors.New("Credentials.SecretID: required (or a Provider)")
		}
		if cfg.Credentials.SecretKey == "" {
			return nil, errors.New("Credentials.SecretKey: required (or a Provider)")
		}
		cfg.Provider = StaticProvider(cfg.Credentials)
	}
	switch {
	case cfg.Generation == V2 && cfg.SignatureMethod != "HmacSHA256" && cfg.SignatureMethod != "HmacSHA1":
		return nil, fmt.Errorf("SignatureMethod %q: want HmacSHA256 or HmacSHA1", cfg.SignatureMethod)
	case cfg.Generation == V3 && cfg.SignatureMethod != "" && cfg.SignatureMethod != "TC3-HMAC-SHA256":
		// The SDK drops CommonRequest action parameters under the v1
		// signature methods (§4 gotcha), so V3 signs with TC3 only.
		return nil, fmt.Errorf("SignatureMethod %q: V3 signs with TC3-HMAC-SHA256 only", cfg.SignatureMethod)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("Timeout %v: must not be negative", cfg.Timeout)
	}
	return u, nil
}

// invalid wraps ErrInvalidRequest for a request the client refuses to send.
func invalid(gen Generation, action, format string, args ...any) error {
	return fmt.Errorf("cvm: %s %s: %w: %s", gen, action, ErrInvalidRequest, fmt.Sprintf(format, args...))
}

func checkIDs(gen Generation, action string, ids []string) error {
	if len(ids) > MaxDescribeIDs {
		return invalid(gen, action, "%d instance IDs, at most %d per call", len(ids), MaxDescribeIDs)
	}
	for i, id := range ids {
		if id == "" {
			return invalid(gen, action, "instance ID %d is empty", i)
		}
	}
	return nil
}
