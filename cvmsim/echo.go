package cvmsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// echoedPassword returns the password a request carried, wherever its
// generation puts it: v2 "password", API 3.0 "LoginSettings.Password" in a
// JSON body or (signature v1) a form or query. ok is false for a request
// without one, or one that does not parse.
func echoedPassword(r *http.Request, body []byte) (pw string, ok bool) {
	var leaves map[string]leaf
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "application/json" {
		var e *apiErr
		if leaves, e = flattenJSON(body); e != nil {
			return "", false
		}
	} else {
		raw := r.URL.RawQuery
		if r.Method == http.MethodPost {
			raw = string(body)
		}
		q, err := url.ParseQuery(raw)
		if err != nil {
			return "", false
		}
		leaves = flattenForm(q)
	}
	for _, name := range []string{"password", "LoginSettings.Password"} {
		if l, ok := leaves[name]; ok {
			return l.text, true
		}
	}
	return "", false
}

// echoText is what Faults.EchoParams appends to an error message: the
// password as a careless upstream might quote it, raw and in the escaped
// forms that reach logs and web pages (JSON string escaping, HTML
// entities, percent encoding), plus a cut-off copy.
func echoText(pw string) string {
	var j bytes.Buffer
	json.NewEncoder(&j).Encode(pw) // HTML-escaping on: & < > become \u0026 \u003c \u003e
	jsonForm := strings.TrimSpace(j.String())
	jsonForm = jsonForm[1 : len(jsonForm)-1]
	var hex strings.Builder
	for _, c := range []byte(pw) {
		if c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' {
			hex.WriteByte(c)
		} else {
			fmt.Fprintf(&hex, "&#x%x;", c)
		}
	}
	return fmt.Sprintf(" (request Password=%s json=%s html=%s html-hex=%s url=%s cut=%s)",
		pw, jsonForm, html.EscapeString(pw), hex.String(), url.QueryEscape(pw), pw[:min(len(pw), len(pw)/2+1)])
}
