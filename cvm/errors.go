package cvm

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
)

// CodeMalformedResponse is the APIError.Code for an HTTP 200 answer whose
// body is not a recognisable API envelope (not JSON, or neither
// {"Response":{...}} nor {"code":...}). It reuses the Go SDK's client-side
// code so both generations report it alike.
const CodeMalformedResponse = "ClientError.ParseJsonError"

// ErrInvalidRequest is wrapped by errors for requests the client refuses to
// send (empty instance ID, too many IDs, options the generation cannot
// express). Nothing reached the cloud; Classify reports Permanent.
var ErrInvalidRequest = errors.New("invalid request")

// APIError is an answer from the cloud (or from something in front of it)
// that refuses a call: a well-formed error body, an HTTP status other than
// 200, or a 200 whose body cannot be parsed. Match it with errors.As.
//
// It is safe to print, log, store and show anywhere: no field holds a
// piece of the call's password (4 bytes or more), SecretKey or Token, or
// its signature, in any escaping form. The client checks every string that
// came from upstream before building the error, keeping Code and RequestID
// and replacing a Message that shows a secret with MessageWithheld.
type APIError struct {
	Generation Generation
	// Action is the API action called, e.g. "ResetInstance".
	Action string
	// Code is the v3 Response.Error.Code or the v2 codeDesc, e.g.
	// "OperationDenied.InstanceOperationInProgress". A v2 body with code≠0
	// and no codeDesc gets "V2.<code>" (e.g. "V2.4400"); an HTTP status
	// other than 200 gets "HTTPStatus.<status>"; an unparsable 200 body
	// gets CodeMalformedResponse.
	Code string
	// NumericCode is the v2 integer code (4100, 4400, 5100, ...); zero for V3.
	NumericCode int
	// Message is the cloud's text (or the start of the body for HTTP
	// status and parse errors) on one line of at most 200 bytes (then
	// ending in "…"); MessageWithheld if that text showed a secret of the
	// call; and a fixed summary for codes about the password or request
	// parameters (InvalidParameter*, MissingParameter, UnknownParameter,
	// v2 code 4000), whose upstream text tends to quote the parameter.
	Message string
	// RequestID is the v3 RequestId or v2 requestId, when the body had
	// one that looks like an ID and shows no secret.
	RequestID string
	// HTTPStatus is the HTTP status of the answer (200 for API errors, which
	// Tencent Cloud sends with status 200).
	HTTPStatus int
}

// Error formats e as "cvm: <generation> <action>: <code>: <message>
// (request id <id>)".
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cvm: %s %s: %s", e.Generation, e.Action, e.Code)
	if e.NumericCode != 0 && !strings.HasPrefix(e.Code, "V2.") {
		fmt.Fprintf(&b, " (code %d)", e.NumericCode)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	return b.String()
}

// TransportError is a call that got no answer from the cloud: dial failure,
// connection reset, EOF before or while reading the response, context
// deadline or cancellation. It is never an APIError. Check Sent (or use
// MayHaveLanded) before assuming the call did not happen.
type TransportError struct {
	// Op names the call, e.g. "v3 ResetInstance".
	Op string
	// Err is the underlying error with any URL query and user info
	// removed; if its chain still printed a secret of the call, an error
	// reading MessageWithheld that unwraps to the context and EOF errors
	// the chain held.
	Err error
	// Sent is false only when the request provably never reached the
	// server in full (no connection was made, or writing it failed). When
	// true the cloud may have received, accepted and executed the call:
	// a reset may be running even though the client saw an error.
	Sent bool

	// text is Err's message with the call's secrets scrubbed out.
	text string
}

// Error formats e as "cvm: <op>: transport: <cause>", with the call's
// secrets scrubbed from the cause.
func (e *TransportError) Error() string {
	text := e.text
	if text == "" && e.Err != nil {
		text = e.Err.Error()
	}
	return "cvm: " + e.Op + ": transport: " + text
}

// Unwrap returns Err, so errors.Is(err, context.DeadlineExceeded) works.
func (e *TransportError) Unwrap() error { return e.Err }

// envelope is the union of the v3 and v2 response shapes, enough to tell
// success from failure.
type envelope struct {
	Response *struct {
		Error *struct {
			Code    string `json:"Code"`
			Message string `json:"Message"`
		} `json:"Error"`
		RequestID string `json:"RequestId"`
	} `json:"Response"`
	Code      *flexInt    `json:"code"`
	Message   string      `json:"message"`
	CodeDesc  string      `json:"codeDesc"`
	RequestID flexString  `json:"requestId"`
	Detail    v2BatchInfo `json:"detail"`
}

// v2BatchInfo is the per-resource detail of the v2 batch format
// {code, message, detail:{<id>:{code, message, requestId}}}.
type v2BatchInfo map[string]struct {
	Code      flexInt    `json:"code"`
	Message   string     `json:"message"`
	CodeDesc  string     `json:"codeDesc"`
	RequestID flexString `json:"requestId"`
}

// checkResponse is the one place that turns a wire answer (HTTP status and
// body) into an error, in the manner of go-github's CheckResponse. It
// returns nil for a success body and an *APIError otherwise. It accepts
// both envelope shapes under either generation, because the transitional
// API serves {"Response":...} bodies from the v2 host.
func checkResponse(gen Generation, action string, status int, body []byte) error {
	if status != 200 {
		e := &APIError{
			Generation: gen,
			Action:     action,
			Code:       "HTTPStatus." + strconv.Itoa(status),
			HTTPStatus: status,
			Message:    bodyText(body),
		}
		// Something in front of the API (or the API itself) may still have
		// said why in a proper envelope; keep that in the message.
		if inner, ok := checkResponse(gen, action, 200, body).(*APIError); ok && inner.Code != CodeMalformedResponse {
			e.Message = inner.Code + ": " + inner.Message
			e.RequestID = inner.RequestID
			e.NumericCode = inner.NumericCode
		}
		return e
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return &APIError{Generation: gen, Action: action, Code: CodeMalformedResponse, HTTPStatus: status,
			Message: fmt.Sprintf("%v; body: %s", err, bodyText(body))}
	}
	switch {
	case env.Response != nil:
		if env.Response.Error == nil || env.Response.Error.Code == "" {
			return nil
		}
		return &APIError{Generation: gen, Action: action, HTTPStatus: status,
			Code:      env.Response.Error.Code,
			Message:   upstreamText(env.Response.Error.Code, env.Response.Error.Message),
			RequestID: env.Response.RequestID}
	case env.Code != nil:
		if *env.Code == 0 {
			return nil
		}
		e := &APIError{Generation: gen, Action: action, HTTPStatus: status,
			Code:        env.CodeDesc,
			NumericCode: int(*env.Code),
			Message:     env.Message,
			RequestID:   string(env.RequestID)}
		// A batch answer names the per-resource failure in detail; for
		// our one-resource calls that is the more specific reason.
		for id, d := range env.Detail {
			if d.Code == 0 {
				continue
			}
			msg := upstreamText(cmp.Or(d.CodeDesc, "V2."+strconv.Itoa(int(d.Code))), d.Message)
			e.Message = strings.TrimSpace(fmt.Sprintf("%s [%s: %d %s %s]", e.Message, id, d.Code, d.CodeDesc, msg))
			if e.Code == "" {
				e.Code = d.CodeDesc
			}
			if e.RequestID == "" {
				e.RequestID = string(d.RequestID)
			}
			break
		}
		if e.Code == "" {
			// No codeDesc: name the numeric common code so Classify still
			// has something to match (§2.2).
			e.Code = "V2." + strconv.Itoa(e.NumericCode)
		}
		e.Message = upstreamText(e.Code, e.Message)
		return e
	default:
		return &APIError{Generation: gen, Action: action, Code: CodeMalformedResponse, HTTPStatus: status,
			Message: "no Response or code in body: " + bodyText(body)}
	}
}

// fromSDKError maps an error returned by the Go SDK's Client.Send to ours.
// The client normally builds errors from what its transport observed
// (checkResponse, TransportError); this is the fallback for SDK errors with
// no observed exchange, and the reference for what each SDK code means.
func fromSDKError(gen Generation, action string, err error) error {
	sdk, ok := errors.AsType[*tcerr.TencentCloudSDKError](err)
	if !ok {
		return &TransportError{Op: string(gen) + " " + action, Err: err, Sent: true}
	}
	switch code := sdk.GetCode(); code {
	case "ClientError.NetworkError":
		// http.Client.Do failed: no response. The SDK does not tell
		// whether the request was written, so assume it may have been.
		cause := errors.Unwrap(sdk)
		if cause == nil {
			cause = errors.New(sdk.GetMessage())
		}
		return &TransportError{Op: string(gen) + " " + action, Err: cause, Sent: true}
	case "ClientError.IOError":
		// Reading the body failed: the request was sent and answered.
		cause := errors.New(sdk.GetMessage())
		return &TransportError{Op: string(gen) + " " + action, Err: cause, Sent: true}
	case "ClientError.HttpStatusCodeError":
		// "Request fail with http status code: 502 Bad Gateway, with body: …"
		status := 0
		msg := sdk.GetMessage()
		if i := strings.Index(msg, "status code: "); i >= 0 {
			fmt.Sscanf(msg[i+len("status code: "):], "%d", &status)
		}
		return &APIError{Generation: gen, Action: action, Code: "HTTPStatus." + strconv.Itoa(status),
			HTTPStatus: status, Message: msg}
	default:
		// ClientError.ParseJsonError and other client-side codes keep
		// their SDK code; server codes carry their RequestId.
		e := &APIError{Generation: gen, Action: action, Code: code, Message: upstreamText(code, sdk.GetMessage()),
			RequestID: sdk.GetRequestId()}
		if !strings.HasPrefix(code, "ClientError.") {
			e.HTTPStatus = 200
		}
		return e
	}
}

// sanitize strips the query and user info from the URL inside a url.Error
// (go-github sanitizeURL); net/http puts the full request URL in it.
func sanitize(err error) error {
	ue, ok := err.(*url.Error)
	if !ok {
		return err
	}
	clean := ue.URL
	if u, perr := url.Parse(ue.URL); perr == nil {
		u.User = nil
		u.RawQuery = ""
		u.ForceQuery = false
		u.Fragment = ""
		clean = u.String()
	} else if i := strings.IndexAny(clean, "?#"); i >= 0 {
		clean = clean[:i]
	}
	return &url.Error{Op: ue.Op, URL: clean, Err: ue.Err}
}

// flexInt decodes a JSON number or a quoted number; v2 documents code as an
// integer, but one sample quotes it.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("code %s is not an integer", b)
	}
	*f = flexInt(n)
	return nil
}

// flexString decodes a JSON string or number; the v2 spec types requestId
// as Int while the task-API page says String.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexString(n.String())
	return nil
}
