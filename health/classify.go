package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
)

// timeoutDetail marks a probe's own timeout; probeOne adds the duration.
const timeoutDetail = "timeout"

// classify maps a dial or HTTP error to a verdict and a short detail. The
// order matters: the prober's own troubles are checked before the timeout
// and connection errors they can surface as, so that a DNS lookup that
// timed out is Inconclusive, not an instance's timeout. The caller's
// cancellation is judged by the caller, which alone knows its context.
func classify(err error) (Verdict, string) {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		// Only the probe's host name is looked up; its failure is the
		// resolver's or the plan's, never the instance's.
		return Inconclusive, oneLine("DNS lookup of " + dnsErr.Name + ": " + dnsErr.Err)
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return Inconclusive, "prober network: " + errnoText(err)
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return Inconclusive, "prober out of file descriptors"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return Inconclusive, "prober out of local ports"
	case errors.Is(err, syscall.ENOBUFS):
		return Inconclusive, "prober out of buffer space"
	case errors.Is(err, syscall.ECONNREFUSED):
		return Fail, "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return Fail, "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Fail, "connection closed without a response"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return Fail, timeoutDetail
	}
	var (
		certErr  *tls.CertificateVerificationError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
		unkAuth  x509.UnknownAuthorityError
	)
	if errors.As(err, &certErr) || errors.As(err, &recErr) || errors.As(err, &alertErr) || errors.As(err, &unkAuth) {
		return Fail, oneLine("TLS: " + innermost(err).Error())
	}
	// Anything else happened on the way to or from the instance.
	return Fail, oneLine(innermost(err).Error())
}

// isTimeout reports a net.Error timeout (a read deadline, say).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errnoText returns the errno's text ("network is unreachable").
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return innermost(err).Error()
}

// innermost strips *url.Error, whose text quotes the whole URL (query
// values included), and returns what is left.
func innermost(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
