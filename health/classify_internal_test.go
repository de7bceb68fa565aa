package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
)

// TestClassify covers the errors a test cannot make with real sockets on
// every machine (no route to host, buffer and port exhaustion) and the
// wrappings the HTTP client adds.
func TestClassify(t *testing.T) {
	dial := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	inURL := func(err error) error {
		return &url.Error{Op: "Get", URL: "http://10.0.0.1/?token=s3cret", Err: err}
	}
	tests := []struct {
		name       string
		err        error
		want       Verdict
		wantDetail string
	}{
		{"host_unreachable", dial(syscall.EHOSTUNREACH), Inconclusive, "prober network: no route to host"},
		{"net_unreachable_in_url", inURL(dial(syscall.ENETUNREACH)), Inconclusive, "prober network: network is unreachable"},
		{"enfile", dial(syscall.ENFILE), Inconclusive, "prober out of file descriptors"},
		{"no_local_port", dial(syscall.EADDRNOTAVAIL), Inconclusive, "prober out of local ports"},
		{"enobufs", dial(syscall.ENOBUFS), Inconclusive, "prober out of buffer space"},
		{"dns_timeout", &net.OpError{Op: "dial", Err: &net.DNSError{Name: "web-1.internal", Err: "i/o timeout", IsTimeout: true}}, Inconclusive, "DNS lookup of web-1.internal: i/o timeout"}, // not the instance's timeout
		{"refused", inURL(dial(syscall.ECONNREFUSED)), Fail, "connection refused"},
		{"epipe", dial(syscall.EPIPE), Fail, "connection reset"},
		{"eof", inURL(io.EOF), Fail, "connection closed without a response"},
		{"deadline", inURL(context.DeadlineExceeded), Fail, timeoutDetail},
		{"other", inURL(errors.New("http: server gave HTTP response to HTTPS client")), Fail, "http: server gave HTTP response to HTTPS client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, d := classify(tt.err)
			if v != tt.want || d != tt.wantDetail {
				t.Errorf("classify(%v) = %s, %q; want %s, %q", tt.err, v, d, tt.want, tt.wantDetail)
			}
		})
	}
	if _, d := classify(inURL(fmt.Errorf("odd"))); d != "odd" {
		t.Errorf("classify kept the URL: %q", d)
	}
}
