package cvm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
)

// maxBody bounds a response body; the API documents 50 MB as its maximum.
const maxBody = 50 << 20

// errRedirect stops net/http (inside the SDK too) from following a redirect:
// following would turn our POST into a GET without a body.
var errRedirect = errors.New("redirect not followed")

// exchange records what one API call saw on the wire, whichever generation
// sent it: the answer (status and body) or the transport failure, and how
// far the request got. The v3 path needs it because the SDK folds all of
// this into message strings.
type exchange struct {
	mu        sync.Mutex
	status    int
	body      []byte
	err       error // from RoundTrip or from reading the body
	getConn   bool  // the transport started looking for a connection
	gotConn   bool  // ... and got one
	wroteOK   bool  // the request was written in full
	wroteErr  bool  // writing the request failed
	signature string
}

type exchangeKey struct{}

func withExchange(ctx context.Context, x *exchange) context.Context {
	return context.WithValue(ctx, exchangeKey{}, x)
}

func (x *exchange) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GetConn: func(string) { x.mu.Lock(); x.getConn = true; x.mu.Unlock() },
		GotConn: func(httptrace.GotConnInfo) { x.mu.Lock(); x.gotConn = true; x.mu.Unlock() },
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			x.mu.Lock()
			if info.Err == nil {
				x.wroteOK = true
			} else {
				x.wroteErr = true
			}
			x.mu.Unlock()
		},
	}
}

// sent reports whether the request may have reached the server in full.
// It is false only when that is proven impossible.
func (x *exchange) sent() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch {
	case x.wroteOK:
		return true
	case x.wroteErr:
		return false
	case x.getConn && !x.gotConn:
		// Never connected (DNS, dial, TLS failure, deadline while dialling).
		return false
	}
	// Connected but the write outcome is unknown, or a transport that
	// reports no trace events: assume it went out.
	return true
}

// captureTransport wraps the real transport for both generations. For
// requests carrying an exchange in their context it traces the connection,
// reads the whole response body (so a connection dropped mid-body is a
// transport failure, not a parse error), and records status and body.
type captureTransport struct {
	base http.RoundTripper
}

func (t captureTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	x, _ := r.Context().Value(exchangeKey{}).(*exchange)
	if x == nil {
		return t.base.RoundTrip(r)
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		// TC3: keep the signature so errors can be scrubbed of it.
		if i := strings.LastIndex(auth, "Signature="); i >= 0 {
			x.mu.Lock()
			x.signature = auth[i+len("Signature="):]
			x.mu.Unlock()
		}
	}
	r = r.WithContext(httptrace.WithClientTrace(r.Context(), x.trace()))
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		x.mu.Lock()
		x.err = err
		x.mu.Unlock()
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if err != nil {
		x.mu.Lock()
		x.err = err
		x.wroteOK = true // an answer started: the request was received
		x.mu.Unlock()
		return nil, err
	}
	x.mu.Lock()
	x.status = resp.StatusCode
	x.body = body
	x.mu.Unlock()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return nil, errRedirect
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// result turns the exchange, plus the error the sender returned, into the
// body of a successful answer or one of our errors. sendErr is the error
// from http.Client.Do (v2) or the SDK's Send (v3).
func (x *exchange) result(gen Generation, action string, sendErr error, r redactor) ([]byte, error) {
	x.mu.Lock()
	status, body, terr, sig := x.status, x.body, x.err, x.signature
	x.mu.Unlock()
	if sig != "" {
		r = r.withSignature(sig)
	}
	op := string(gen) + " " + action
	switch {
	case terr != nil:
		return nil, r.finish(&TransportError{Op: op, Err: terr, Sent: x.sent()})
	case status != 0:
		if err := checkResponse(gen, action, status, body); err != nil {
			return nil, r.finish(err)
		}
		if sendErr != nil {
			// We read a good envelope but the sender still failed.
			return nil, r.finish(fromSDKError(gen, action, sendErr))
		}
		return body, nil
	case sendErr != nil:
		// Nothing observed: the request never reached our transport
		// (context already done, or the SDK failed before sending).
		if isContextErr(sendErr) {
			cause := context.Canceled
			if errors.Is(sendErr, context.DeadlineExceeded) {
				cause = context.DeadlineExceeded
			}
			return nil, &TransportError{Op: op, Err: cause, Sent: false, text: cause.Error()}
		}
		return nil, r.finish(fromSDKError(gen, action, sendErr))
	}
	return nil, &TransportError{Op: op, Err: errors.New("no response recorded"), Sent: true}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// decodeBody decodes the success body of a call into out. A body that
// does not decode is a CodeMalformedResponse APIError, finished by r like
// every other error of the call: encoding/json quotes bits of the input it
// chokes on.
func decodeBody(gen Generation, action string, body []byte, out any, r redactor) error {
	if err := json.Unmarshal(body, out); err != nil {
		return r.finish(&APIError{Generation: gen, Action: action, Code: CodeMalformedResponse, HTTPStatus: 200, Message: err.Error()})
	}
	return nil
}
