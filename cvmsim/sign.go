package cvmsim

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file holds the simulator's own signature checks, written from the
// reference (§1.2 and §3.3), never from a client, so that a client bug
// cannot be mirrored. All callers hold s.mu.

// tc3Algorithm is the only TC3 algorithm name.
const tc3Algorithm = "TC3-HMAC-SHA256"

// v1StringToSign builds the string the v2 and API 3.0 "signature v1"
// signatures cover: METHOD + host + path + "?" + the sorted k=v pairs of all
// parameters but Signature, values raw (decoded), "_" replaced by "." in
// names. Names are sorted as received, byte-wise, like the Python and Go
// SDKs do; a repeated name contributes one pair per value.
func v1StringToSign(method, host, path string, params url.Values) string {
	names := make([]string, 0, len(params))
	for name := range params {
		if name != "Signature" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString(strings.ToUpper(method) + host + path + "?")
	first := true
	for _, name := range names {
		// PHP rewrites "." to "_" in incoming names, so the server signs
		// them back with "."; clients that send "." are unaffected.
		signed := strings.ReplaceAll(name, "_", ".")
		for _, v := range params[name] {
			if !first {
				b.WriteByte('&')
			}
			first = false
			b.WriteString(signed + "=" + v)
		}
	}
	return b.String()
}

// v1Signature is base64(HMAC(secretKey, stringToSign)). Only the exact
// SignatureMethod "HmacSHA256" selects SHA-256; anything else, including
// absent, is HMAC-SHA1, as the docs say.
func v1Signature(signatureMethod, secretKey, stringToSign string) string {
	h := sha1.New
	if signatureMethod == "HmacSHA256" {
		h = sha256.New
	}
	return base64.StdEncoding.EncodeToString(hmacSum(h, []byte(secretKey), stringToSign))
}

// tc3CanonicalRequest builds the TC3 canonical request; canonicalHeaders
// ends with "\n" after each header, payloadHash is hex(sha256(body)).
func tc3CanonicalRequest(method, uri, query, canonicalHeaders, signedHeaders, payloadHash string) string {
	return strings.Join([]string{method, uri, query, canonicalHeaders, signedHeaders, payloadHash}, "\n")
}

// tc3StringToSign builds the TC3 string to sign for a canonical request.
func tc3StringToSign(timestamp int64, date, service, canonicalRequest string) string {
	scope := date + "/" + service + "/tc3_request"
	return tc3Algorithm + "\n" + strconv.FormatInt(timestamp, 10) + "\n" + scope + "\n" + sha256Hex([]byte(canonicalRequest))
}

// tc3Signature derives the signing key from secretKey, date and service and
// returns the hex signature of stringToSign.
func tc3Signature(secretKey, date, service, stringToSign string) string {
	kDate := hmacSum(sha256.New, []byte("TC3"+secretKey), date)
	kService := hmacSum(sha256.New, kDate, service)
	kSigning := hmacSum(sha256.New, kService, "tc3_request")
	return hex.EncodeToString(hmacSum(sha256.New, kSigning, stringToSign))
}

func hmacSum(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// tc3Date is the UTC date of a TC3 timestamp, as used in the scope.
func tc3Date(timestamp int64) string {
	return time.Unix(timestamp, 0).UTC().Format("2006-01-02")
}

// tempCredential is a temporary key the simulator accepts until expires.
type tempCredential struct {
	key, token string
	expires    time.Time
}

// AcceptCredentials makes the simulator accept temporary credentials (as a
// CVM role or STS issues them): requests signed with key under id must carry
// token, and are refused with AuthFailure.TokenFailure (v2 code 4100) from
// expires on. Calling it again for an id replaces that credential; earlier
// ids stay accepted until their own expiry. Config.SecretID stays accepted
// without a token.
func (s *Server) AcceptCredentials(id, key, token string, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.temp == nil {
		s.temp = map[string]tempCredential{}
	}
	s.temp[id] = tempCredential{key: key, token: token, expires: expires}
	// Forget credentials expired long ago: a long run rotates many.
	now := s.cfg.Clock.Now()
	for k, c := range s.temp {
		if now.Sub(c.expires) > time.Hour {
			delete(s.temp, k)
		}
	}
}

// secretKey returns the key signatures by id are checked with, or the
// refusal: an unknown id, a token where none belongs, a wrong or expired
// token. Tokens are compared in constant time.
func (s *Server) secretKey(id, token string, now time.Time) (string, *apiErr) {
	if id == s.cfg.SecretID {
		if token != "" {
			return "", newErr(errTokenFailure, "a token was sent with a permanent key")
		}
		return s.cfg.SecretKey, nil
	}
	c, ok := s.temp[id]
	switch {
	case !ok:
		return "", newErr(errSecretIDNotFound, "SecretId not found")
	case !hmac.Equal([]byte(token), []byte(c.token)):
		s.stats.TokenRejected++
		return "", newErr(errTokenFailure, "the token is invalid for this SecretId")
	case !now.Before(c.expires):
		s.stats.TokenRejected++
		return "", newErr(errTokenFailure, "the token has expired")
	}
	return c.key, nil
}

// checkSkew rejects a timestamp further than the replay window from now.
func (s *Server) checkSkew(ts int64, now time.Time) *apiErr {
	skew := now.Sub(time.Unix(ts, 0))
	if skew < 0 {
		skew = -skew
	}
	if skew > s.cfg.ReplayWindow {
		s.stats.ExpiredRejected++
		return newErr(errSignatureExpire, "request timestamp is %s away from server time, more than %s", skew.Round(time.Second), s.cfg.ReplayWindow)
	}
	return nil
}

// authV1 verifies a v2 or API 3.0 "signature v1" request: parameters
// present, SecretId known, timestamp within the window, signature right,
// nonce fresh. Only a request that passes records its nonce.
func (s *Server) authV1(method, host, path string, p url.Values, now time.Time) *apiErr {
	switch {
	case p.Get("SecretId") == "":
		return newErr(errInvalidAuthorization, "missing SecretId")
	case p.Get("Signature") == "":
		return newErr(errInvalidAuthorization, "missing Signature")
	case p.Get("Timestamp") == "":
		return newErr(errMissingParameter, "missing Timestamp")
	case p.Get("Nonce") == "":
		return newErr(errMissingParameter, "missing Nonce")
	}
	secretKey, e := s.secretKey(p.Get("SecretId"), p.Get("Token"), now)
	if e != nil {
		return e
	}
	ts, err := strconv.ParseInt(p.Get("Timestamp"), 10, 64)
	if err != nil {
		return newErr(errInvalidParameter, "Timestamp is not an integer")
	}
	nonce, err := strconv.ParseUint(p.Get("Nonce"), 10, 64)
	if err != nil || nonce == 0 {
		return newErr(errInvalidParameter, "Nonce is not a positive integer")
	}
	if e := s.checkSkew(ts, now); e != nil {
		return e
	}
	want := v1Signature(p.Get("SignatureMethod"), secretKey, v1StringToSign(method, host, path, p))
	if !hmac.Equal([]byte(want), []byte(p.Get("Signature"))) {
		s.stats.SignatureRejected++
		return newErr(errSignatureFailure, "signature mismatch: check the string to sign (method, host with port, path, sorted raw parameters) and SignatureMethod")
	}
	key := p.Get("SecretId") + "/" + strconv.FormatUint(nonce, 10)
	if s.nonceSeen(key, now) {
		s.stats.ReplayRejected++
		return newErr(errReplay, "Nonce %d was already used within %s", nonce, s.cfg.ReplayWindow)
	}
	return nil
}

// nonceSeen reports whether key was used within the replay window and
// records it otherwise. Expired nonces are pruned from the front of the
// arrival-ordered queue, so the check stays cheap.
func (s *Server) nonceSeen(key string, now time.Time) bool {
	for len(s.nonceQueue) > 0 && now.Sub(s.nonceQueue[0].at) > s.cfg.ReplayWindow {
		if s.nonces[s.nonceQueue[0].key].Equal(s.nonceQueue[0].at) {
			delete(s.nonces, s.nonceQueue[0].key)
		}
		s.nonceQueue = s.nonceQueue[1:]
	}
	if at, ok := s.nonces[key]; ok && now.Sub(at) <= s.cfg.ReplayWindow {
		return true
	}
	s.nonces[key] = now
	s.nonceQueue = append(s.nonceQueue, nonceEntry{key: key, at: now})
	return false
}

// nonceEntry is one recorded nonce in arrival order.
type nonceEntry struct {
	key string
	at  time.Time
}

// authTC3 verifies a TC3-HMAC-SHA256 request. TC3 has no nonce: the Go SDK
// re-sends an identical signed request when it retries, so identical
// requests within the window are accepted.
func (s *Server) authTC3(r *http.Request, body []byte, now time.Time) *apiErr {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, tc3Algorithm+" ")
	if !ok {
		return newErr(errInvalidAuthorization, "Authorization must start with %s", tc3Algorithm)
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 4 || fields["SignedHeaders"] == "" || fields["Signature"] == "" {
		return newErr(errInvalidAuthorization, "Authorization needs Credential=<id>/<date>/<service>/tc3_request, SignedHeaders and Signature")
	}
	id, date, service, term := scope[0], scope[1], scope[2], scope[3]
	secretKey, e := s.secretKey(id, r.Header.Get("X-TC-Token"), now)
	if e != nil {
		return e
	}
	tsText := r.Header.Get("X-TC-Timestamp")
	if tsText == "" {
		return newErr(errMissingParameter, "missing X-TC-Timestamp")
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return newErr(errInvalidParameter, "X-TC-Timestamp is not an integer")
	}
	if e := s.checkSkew(ts, now); e != nil {
		return e
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	if !slices.Contains(signed, "content-type") || !slices.Contains(signed, "host") {
		return newErr(errInvalidAuthorization, "SignedHeaders must include content-type and host")
	}
	var headers strings.Builder
	for _, h := range signed {
		v := r.Header.Get(h)
		if h == "host" {
			v = r.Host // as received, including the port
		}
		// The docs: lower-case and trim both name and value.
		headers.WriteString(strings.ToLower(h) + ":" + strings.ToLower(strings.TrimSpace(v)) + "\n")
	}
	payloadHash := sha256Hex(body)
	if r.Header.Get("X-TC-Content-SHA256") == "UNSIGNED-PAYLOAD" {
		payloadHash = sha256Hex([]byte("UNSIGNED-PAYLOAD"))
	}
	query := ""
	if r.Method == http.MethodGet {
		query = r.URL.RawQuery
	}
	canonical := tc3CanonicalRequest(r.Method, r.URL.Path, query, headers.String(), fields["SignedHeaders"], payloadHash)
	want := tc3Signature(secretKey, date, service, tc3StringToSign(ts, date, service, canonical))
	expected := tc3ServiceOf(r)
	if service != expected || term != "tc3_request" || date != tc3Date(ts) ||
		!hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		s.stats.SignatureRejected++
		return newErr(errSignatureFailure, "signature mismatch: check the canonical request (Content-Type exactly as sent, host with port), the credential scope date (UTC of X-TC-Timestamp) and service %q", expected)
	}
	return nil
}
