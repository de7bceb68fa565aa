package cvm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// This file is the tests' own leak detector, written apart from the
// scrubber: where the scrubber decodes a message and compares, this
// encodes every piece of a secret in every form we know and searches for
// it, so a blind spot in one is unlikely to be a blind spot in the other.

// encoder is one way an upstream may write text into a message.
type encoder struct {
	name string
	enc  func(string) string
}

// encoders are the single escaping forms; exposedFragment also tries every
// pair of them, one inside the other.
var encoders = []encoder{
	{"raw", func(s string) string { return s }},
	{"json", func(s string) string { return jsonInner(s, true) }},
	{"json_nohtml", func(s string) string { return jsonInner(s, false) }},
	{"json_all", func(s string) string { return perByte(s, "\\u%04x") }},
	{"json_all_upper", func(s string) string { return perByte(s, "\\u%04X") }},
	{"go_quote", func(s string) string { q := strconv.Quote(s); return q[1 : len(q)-1] }},
	{"hex_escape", func(s string) string { return perByte(s, "\\x%02x") }},
	{"backslash", func(s string) string { return perByte(s, "\\%c") }},
	{"html", html.EscapeString},
	{"html_dec", func(s string) string { return perByte(s, "&#%d;") }},
	{"html_hex", func(s string) string { return perByte(s, "&#x%x;") }},
	{"html_hex_upper", func(s string) string { return perByte(s, "&#X%X;") }},
	{"html_named", htmlNamed},
	{"query", url.QueryEscape},
	{"path", url.PathEscape},
	{"percent", func(s string) string { return perByte(s, "%%%02X") }},
	{"percent_lower", func(s string) string { return perByte(s, "%%%02x") }},
}

// perByte writes every byte other than a letter or digit with format.
func perByte(s, format string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, format, c)
		}
	}
	return b.String()
}

func jsonInner(s string, escapeHTML bool) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(escapeHTML)
	enc.Encode(s)
	q := strings.TrimSpace(buf.String())
	return q[1 : len(q)-1]
}

// htmlNamed uses the named entities html.EscapeString does not.
func htmlNamed(s string) string {
	return strings.NewReplacer("&", "&amp;", "'", "&apos;", `"`, "&quot;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// encodedForms lists the single forms of secret that exposedFragment
// knows.
func encodedForms(secret string) []string {
	var forms []string
	for _, e := range encoders {
		forms = append(forms, e.enc(secret))
	}
	return forms
}

// exposedFragment reports the first piece of 4 bytes or more of a
// password that text holds in any single or doubly nested encoding, as
// "<piece> as <encoding>: <form>", or "" if there is none.
func exposedFragment(text, password string) string {
	return exposedPiece(text, password, minPasswordPiece)
}

// exposedPiece is exposedFragment for pieces of n bytes or more. Every
// encoding is applied byte by byte or character by character, so the form
// of a longer piece contains the form of each of its n-byte pieces:
// checking n-byte pieces is enough.
func exposedPiece(text, secret string, n int) string {
	for _, f := range pieceForms(secret, n) {
		if strings.Contains(text, f.form) {
			return f.desc
		}
	}
	return ""
}

type pieceForm struct{ form, desc string }

// formCache memoizes pieceForms for the first maxCached secrets: the race
// detector makes the encoders slow, and the tests look for the same few
// secrets in many texts (a fuzzer, for new ones each time).
var (
	formCache sync.Map // "n secret" -> []pieceForm
	cached    atomic.Int32
)

const maxCached = 64

// pieceForms returns every single and doubly nested form of every n-byte
// piece of secret.
func pieceForms(secret string, n int) []pieceForm {
	n = min(n, len(secret))
	key := strconv.Itoa(n) + " " + secret
	if forms, ok := formCache.Load(key); ok {
		return forms.([]pieceForm)
	}
	var forms []pieceForm
	seen := map[string]bool{}
	for i := 0; i+n <= len(secret); i++ {
		piece := secret[i : i+n]
		for _, outer := range encoders {
			for _, inner := range encoders {
				form := outer.enc(inner.enc(piece))
				if !seen[form] {
					seen[form] = true
					forms = append(forms, pieceForm{form, fmt.Sprintf("%q as %s(%s): %q", piece, outer.name, inner.name, form)})
				}
			}
		}
	}
	if cached.Add(1) <= maxCached {
		formCache.Store(key, forms)
	}
	return forms
}
