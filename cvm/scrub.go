package cvm

import (
	"context"
	"errors"
	"html"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Upstream text is untrusted: a gateway or API that echoes request
// parameters in its error messages would otherwise carry the reset password
// through err.Error() into logs, Redis, asynq and web pages, where every
// layer escapes it a little differently (issue 16). So the client never
// shows an upstream message it has not checked, and what it checks is the
// text exactly as it will be shown: clipped to one line first, then
// decoded in every way an upstream (or a later display) might have
// escaped it, and compared with every piece of every secret of the call.
// A message that shows any piece is replaced whole by MessageWithheld;
// cutting pieces out would leave their neighbours, and an escaping form
// nobody listed, behind.

// Fixed messages that stand in for upstream text.
const (
	// MessageWithheld replaces upstream text (an APIError.Message, or the
	// cause of a TransportError) that showed a piece of a secret of the
	// call, in any escaping form. The Code and RequestID of an APIError
	// are kept.
	MessageWithheld = "upstream text withheld: it quoted a secret of the request"

	// messagePassword and messageParameter replace the upstream text of
	// codes about the password and about request parameters: the text
	// explaining such a code is the likeliest to quote a parameter, in a
	// form no decoder knows (masked, re-cased, cut), and the code alone
	// says what went wrong.
	messagePassword  = "the password was refused (upstream text withheld)"
	messageParameter = "a request parameter was refused (upstream text withheld)"
)

const (
	// minPasswordPiece is the shortest piece of a password that may not be
	// shown: people reuse passwords and their parts, so even a 4-byte
	// piece tells something.
	minPasswordPiece = 4
	// minCredentialPiece is the same for SecretKey and Token, which are
	// random: a short piece tells nothing, and a long token (an STS token
	// runs to 1,000+ bytes) would match ordinary text by chance every
	// hundred messages or so at 4 bytes; at 8 it never does.
	minCredentialPiece = 8

	// maxMessage bounds the text an error keeps from upstream, in bytes.
	maxMessage = 200
	// maxCode bounds an APIError.Code; real codes are under 80 bytes.
	maxCode = 128
	// maxScan is the longest text leaks decodes. Longer text (an error
	// chain of unusual length) counts as leaking: safe, and bounded.
	maxScan = 64 << 10
	// maxViews bounds the decoded variants of one text (see leaks); a
	// text that has more counts as leaking.
	maxViews = 256
)

// secretText is one secret of a call and the shortest piece of it that
// may not be shown; a signature's piece is the whole signature.
type secretText struct {
	text  string
	piece int
}

// redactor holds the secrets of one call (password, SecretKey, Token,
// request signature) and keeps them out of every error the call returns.
// The zero value knows no secrets and only bounds message length.
type redactor []secretText

// newRedactor returns a redactor for a call signed with creds that sends
// passwords.
func newRedactor(creds Credentials, passwords ...string) redactor {
	var r redactor
	r = r.with(creds.SecretKey.Reveal(), minCredentialPiece)
	r = r.with(creds.Token.Reveal(), minCredentialPiece)
	for _, pw := range passwords {
		r = r.with(pw, minPasswordPiece)
	}
	return r
}

// with returns r plus secret s, pieces of which down to piece bytes may
// not show. A secret shorter than piece is kept whole if at least
// minPasswordPiece long and ignored otherwise: no real secret is that
// short, and matching 1–3 bytes would withhold nearly everything.
func (r redactor) with(s string, piece int) redactor {
	piece = min(piece, len(s))
	if piece < minPasswordPiece {
		return r
	}
	return append(r, secretText{text: s, piece: piece})
}

// withSignature returns r plus a request signature: random, so only the
// whole one is a secret.
func (r redactor) withSignature(sig string) redactor { return r.with(sig, len(sig)) }

// Scrub returns text as it may be shown when it comes from upstream and
// secrets were sent: on one line, at most 200 bytes, or MessageWithheld if
// that still holds a piece of 4 bytes or more of any secret, raw or in any
// escaping form an upstream might echo it in (JSON \uXXXX and backslash
// escapes, HTML entities, percent or form encoding, nested). It is what
// the client does to every upstream message of its errors; use it for
// other upstream text, such as Instance.LatestOperationErrorMsg, before
// storing or showing it.
func Scrub(text string, secrets ...Secret) string {
	var r redactor
	for _, s := range secrets {
		r = r.with(s.Reveal(), minPasswordPiece)
	}
	return r.clean(text)
}

// clean returns s clipped to one line of at most maxMessage bytes, or
// MessageWithheld if the clipped text shows a secret. It checks what is
// kept, after clipping, so neither the cut nor the whitespace folding can
// assemble a piece the check did not see.
func (r redactor) clean(s string) string {
	s = clip(s)
	if r.leaks(s) {
		return MessageWithheld
	}
	return s
}

// leaks reports whether s, or any text it decodes to by undoing escaping
// forms one after another, shows a secret of r. Every order of decoders is
// tried, breadth first, and every intermediate text is checked too: a
// decoder may destroy what another order would have revealed, and a
// password may itself look like an escape ("%2f", "&amp;").
func (r redactor) leaks(s string) bool {
	if len(r) == 0 {
		return false
	}
	if len(s) > maxScan {
		return true
	}
	seen := map[string]bool{s: true}
	queue := []string{s}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		if r.shows(v) {
			return true
		}
		for _, decode := range decoders {
			d := decode(v)
			if d == v || seen[d] {
				continue
			}
			if len(seen) >= maxViews {
				return true
			}
			seen[d] = true
			queue = append(queue, d)
		}
	}
	return false
}

// shows reports whether v holds a forbidden piece of a secret of r, as is.
func (r redactor) shows(v string) bool {
	for _, s := range r {
		for i := 0; i+s.piece <= len(s.text); i++ {
			if strings.Contains(v, s.text[i:i+s.piece]) {
				return true
			}
		}
	}
	return false
}

// containsWhole reports whether v holds a whole secret of r, as is.
func (r redactor) containsWhole(v string) bool {
	for _, s := range r {
		if strings.Contains(v, s.text) {
			return true
		}
	}
	return false
}

// decoders undo one escaping form each. All are lenient: anything that is
// not a well-formed escape stays as it is.
var decoders = []func(string) string{
	html.UnescapeString, // &amp; &#39; &#x27; &quot; &lt; &apos; ...
	unbackslash,         // \u0026 \U00000026 \x26 \046 \' \" \\ \n ...
	unpercent,           // %26 %2B %u0026
	unform,              // as unpercent, and + for a space
}

// unbackslash undoes backslash escapes as JSON, JavaScript, Go, C, PHP and
// Python write them: \uXXXX (with UTF-16 surrogate pairs), \UXXXXXXXX,
// \xHH, three octal digits, the letter escapes, and a backslash before any
// other character, which stands for that character.
func unbackslash(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for i < len(s) {
		if s[i] != '\\' || i+1 == len(s) {
			b = append(b, s[i])
			i++
			continue
		}
		switch c := s[i+1]; {
		case c == 'u' && isHex(s, i+2, 4):
			r := rune(hexValue(s[i+2 : i+6]))
			i += 6
			if utf16.IsSurrogate(r) && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' && isHex(s, i+2, 4) {
				if pair := utf16.DecodeRune(r, rune(hexValue(s[i+2:i+6]))); pair != utf8.RuneError {
					r = pair
					i += 6
				}
			}
			b = utf8.AppendRune(b, r)
		case c == 'U' && isHex(s, i+2, 8):
			b = utf8.AppendRune(b, rune(hexValue(s[i+2:i+10])))
			i += 10
		case c == 'x' && isHex(s, i+2, 2):
			b = append(b, byte(hexValue(s[i+2:i+4])))
			i += 4
		case isOctal(s, i+1):
			b = append(b, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 4
		default:
			if j := strings.IndexByte("abfnrtv", c); j >= 0 {
				c = "\a\b\f\n\r\t\v"[j]
			}
			b = append(b, c)
			i += 2
		}
	}
	return string(b)
}

// unpercent undoes percent encoding (%XX, either case) and the old
// JavaScript escape() form %uXXXX. A + stays a +.
func unpercent(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for i < len(s) {
		switch {
		case s[i] != '%':
			b = append(b, s[i])
			i++
		case isHex(s, i+1, 2):
			b = append(b, byte(hexValue(s[i+1:i+3])))
			i += 3
		case i+1 < len(s) && s[i+1] == 'u' && isHex(s, i+2, 4):
			b = utf8.AppendRune(b, rune(hexValue(s[i+2:i+6])))
			i += 6
		default:
			b = append(b, s[i])
			i++
		}
	}
	return string(b)
}

// unform undoes form encoding: unpercent, and + for a space.
func unform(s string) string {
	if !strings.Contains(s, "+") {
		return unpercent(s)
	}
	return unpercent(strings.ReplaceAll(s, "+", " "))
}

// isHex reports whether s[i:i+n] is n hex digits.
func isHex(s string, i, n int) bool {
	if i+n > len(s) {
		return false
	}
	for _, c := range []byte(s[i : i+n]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// hexValue is the value of hex digits already checked by isHex. Values
// beyond utf8.MaxRune become invalid runes, which AppendRune writes as
// U+FFFD.
func hexValue(h string) uint32 {
	v, _ := strconv.ParseUint(h, 16, 32)
	return uint32(v)
}

// isOctal reports whether s[i:i+3] is an octal escape of one byte (000–377).
func isOctal(s string, i int) bool {
	if i+3 > len(s) || s[i] < '0' || s[i] > '3' {
		return false
	}
	for _, c := range []byte(s[i+1 : i+3]) {
		if c < '0' || c > '7' {
			return false
		}
	}
	return true
}

// upstreamText is the message to keep for an upstream refusal with code:
// msg, or a fixed summary for codes about the password or parameters.
func upstreamText(code, msg string) string {
	switch {
	case strings.Contains(strings.ToLower(code), "password"):
		// InvalidParameterValue.InvalidPassword, v2
		// InvalidParameter.PasswordNotConformSpecs.
		return messagePassword
	case strings.HasPrefix(code, "InvalidParameter"), // and InvalidParameterValue
		strings.HasPrefix(code, "MissingParameter"),
		strings.HasPrefix(code, "UnknownParameter"),
		code == "ClientError.InvalidParameter",
		code == "V2.4000": // the v2 common code for bad parameters
		return messageParameter
	}
	return msg
}

// codeRe is the shape of every CVM, SDK and synthetic error code.
var codeRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$`)

// requestIDRe is the shape of a RequestId: a UUID (v3) or a number (v2).
var requestIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// code returns an upstream error code as it may be shown. A code has a
// shape no escaping form fits, so it is kept unless it holds a whole
// secret: its pieces cannot be judged, as a password like "MyPassword1!"
// shares "Password" with real codes, and changing a code changes what
// Classify says. Anything else is kept only if it shows no secret; the
// fallback is the v2 common code, or CodeMalformedResponse.
func (r redactor) code(code string, numeric int) string {
	switch {
	case len(code) > maxCode:
	case codeRe.MatchString(code):
		if !r.containsWhole(code) {
			return code
		}
	case clip(code) == code && !r.leaks(code):
		return code
	}
	if numeric != 0 {
		return "V2." + strconv.Itoa(numeric)
	}
	return CodeMalformedResponse
}

// requestID returns an upstream RequestId as it may be shown, or "" if it
// does not look like one or shows a secret.
func (r redactor) requestID(id string) string {
	if id == "" || requestIDRe.MatchString(id) && !r.leaks(id) {
		return id
	}
	return ""
}

// finish makes an error built by this package safe to show anywhere: it
// checks every string that came from the wire or a lower layer, keeping it
// only if it shows no secret of the call, and bounds its length.
func (r redactor) finish(err error) error {
	switch e := err.(type) {
	case *APIError:
		e.Code = r.code(e.Code, e.NumericCode)
		e.Message = r.clean(e.Message)
		e.RequestID = r.requestID(e.RequestID)
	case *TransportError:
		e.Err = r.safe(e.Err)
		if e.Err != nil {
			e.text = r.clean(e.Err.Error())
		}
	}
	return err
}

// safe returns err with any URL query removed; if some error in its chain
// still prints a secret (a transport or proxy echoing the request), the
// chain is replaced by one whose text is MessageWithheld and that unwraps
// only to the well-known causes callers test for (context.DeadlineExceeded,
// io.EOF, ...).
func (r redactor) safe(err error) error {
	if err == nil {
		return nil
	}
	err = sanitize(err)
	if !r.chainLeaks(err) {
		return err
	}
	s := &scrubbedError{text: MessageWithheld}
	for _, cause := range []error{context.DeadlineExceeded, context.Canceled, io.EOF, io.ErrUnexpectedEOF} {
		if errors.Is(err, cause) {
			s.causes = append(s.causes, cause)
		}
	}
	return s
}

// chainLeaks reports whether any error in err's tree prints a secret.
func (r redactor) chainLeaks(err error) bool {
	if err == nil {
		return false
	}
	if r.leaks(err.Error()) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return r.chainLeaks(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if r.chainLeaks(e) {
				return true
			}
		}
	}
	return false
}

// scrubbedError stands in for an error chain that printed a secret.
type scrubbedError struct {
	text   string
	causes []error
}

func (e *scrubbedError) Error() string   { return e.text }
func (e *scrubbedError) Unwrap() []error { return e.causes }

// bodyText is the start of a body, for a message that clip shortens
// further. The cap is far beyond maxMessage, so whitespace folding (an
// HTML page's padding) still leaves maxMessage bytes of text to show.
func bodyText(b []byte) string {
	const maxBodyText = 1 << 20
	if len(b) > maxBodyText {
		b = b[:maxBodyText]
	}
	return string(b)
}

// clip bounds a message to maxMessage bytes of valid UTF-8 on one line,
// marking a cut with "…". Bodies (HTML error pages) come with newlines and
// padding; folding runs of white space before cutting keeps the padding
// from using up the length. It reads no further than it keeps.
func clip(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	var b []byte
	for w := range strings.FieldsSeq(s) {
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = append(b, w[:min(len(w), maxMessage+1-len(b))]...)
		if len(b) > maxMessage {
			break
		}
	}
	if len(b) <= maxMessage {
		return string(b)
	}
	b = b[:maxMessage]
	for !utf8.Valid(b) { // a rune cut in half
		b = b[:len(b)-1]
	}
	return strings.TrimRight(string(b), " ") + "…"
}
