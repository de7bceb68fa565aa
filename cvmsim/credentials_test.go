package cvmsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// tempCall signs a DescribeInstances with id and key, sends token (none
// when empty) through TC3 or the v2 form, and returns the error code.
func (c *client) tempCall(tc3 bool, id, key, token string) string {
	c.t.Helper()
	cc := *c
	cc.id, cc.key = id, key
	if tc3 {
		req := cc.tc3Request("DescribeInstances", []byte(`{"Limit":1}`), cc.clk.Now().Unix())
		if token != "" {
			req.Header.Set("X-TC-Token", token) // not a signed header
		}
		return decodeV3(c.t, second(cc.do(req))).code()
	}
	p := cc.v1Params("DescribeInstances", nil)
	if token != "" {
		p.Set("Token", token)
	}
	return decodeV2(c.t, second(cc.sendV1(http.MethodPost, PathV2, p))).CodeDesc
}

func TestAcceptCredentials(t *testing.T) {
	for _, tc3 := range []bool{false, true} {
		name := map[bool]string{false: "v2", true: "tc3"}[tc3]
		t.Run(name, func(t *testing.T) {
			b := setup(t, Config{}, linuxA)
			exp := b.clk.Now().Add(time.Minute)
			b.srv.AcceptCredentials("AKIDtemp", "temp-key", "temp-token", exp)
			ok := ""
			if !tc3 {
				ok = "Success" // the v2 codeDesc of a success
			}
			tests := []struct {
				name            string
				id, key, token  string
				advance         time.Duration
				want            string
				rejectedCounted bool
			}{
				{name: "valid", id: "AKIDtemp", key: "temp-key", token: "temp-token", want: ok},
				{name: "permanent_key_still_valid", id: SecretIDDefault, key: SecretKeyDefault, want: ok},
				{name: "permanent_key_with_token", id: SecretIDDefault, key: SecretKeyDefault, token: "temp-token", want: "AuthFailure.TokenFailure"},
				{name: "no_token", id: "AKIDtemp", key: "temp-key", want: "AuthFailure.TokenFailure", rejectedCounted: true},
				{name: "wrong_token", id: "AKIDtemp", key: "temp-key", token: "other", want: "AuthFailure.TokenFailure", rejectedCounted: true},
				{name: "wrong_key", id: "AKIDtemp", key: "other-key", token: "temp-token", want: "AuthFailure.SignatureFailure"},
				{name: "unknown_id", id: "AKIDnobody", key: "temp-key", token: "temp-token", want: "AuthFailure.SecretIdNotFound"},
				{name: "just_before_expiry", id: "AKIDtemp", key: "temp-key", token: "temp-token", advance: time.Minute - time.Second, want: ok},
				{name: "expired", id: "AKIDtemp", key: "temp-key", token: "temp-token", advance: time.Second, want: "AuthFailure.TokenFailure", rejectedCounted: true},
			}
			for _, tt := range tests {
				before := b.srv.Stats().TokenRejected
				b.clk.Advance(tt.advance)
				if got := b.c.tempCall(tc3, tt.id, tt.key, tt.token); got != tt.want {
					t.Errorf("%s: code %q; want %q", tt.name, got, tt.want)
				}
				if n := b.srv.Stats().TokenRejected - before; (n == 1) != tt.rejectedCounted {
					t.Errorf("%s: TokenRejected grew by %d; want counted = %v", tt.name, n, tt.rejectedCounted)
				}
			}
		})
	}
}

// metadataAnswer is the metadata service's credentials JSON.
type metadataAnswer struct {
	TmpSecretID  string `json:"TmpSecretId"`
	TmpSecretKey string `json:"TmpSecretKey"`
	Token        string `json:"Token"`
	ExpiredTime  int64  `json:"ExpiredTime"`
	Expiration   string `json:"Expiration"`
	Code         string `json:"Code"`
}

func TestMetadata(t *testing.T) {
	b := setup(t, Config{}, linuxA)
	md := NewMetadata(b.srv, MetadataConfig{Role: "deployer", Lifetime: 10 * time.Minute})
	hs := httptest.NewServer(md)
	t.Cleanup(hs.Close)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := hs.Client().Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	creds := func() metadataAnswer {
		t.Helper()
		code, body := get(MetadataPath + "cam/security-credentials/deployer")
		var a metadataAnswer
		if err := json.Unmarshal([]byte(body), &a); code != 200 || err != nil || a.Code != "Success" {
			t.Fatalf("credentials = %d %s (%v); want 200 with Code Success", code, body, err)
		}
		return a
	}

	if code, body := get(MetadataPath + "cam/security-credentials/"); code != 200 || body != "deployer" {
		t.Fatalf("role name = %d %q; want 200 deployer", code, body)
	}
	if code, _ := get(MetadataPath + "cam/security-credentials/other"); code != 404 {
		t.Errorf("unknown role = %d; want 404", code)
	}

	first := creds()
	exp, err := time.Parse(time.RFC3339, first.Expiration)
	if err != nil || exp.Unix() != first.ExpiredTime || first.ExpiredTime != b.clk.Now().Add(10*time.Minute).Unix() {
		t.Errorf("ExpiredTime %d, Expiration %q; want both now+10m", first.ExpiredTime, first.Expiration)
	}
	if got := b.c.tempCall(true, first.TmpSecretID, first.TmpSecretKey, first.Token); got != "" {
		t.Fatalf("call with issued credentials = %q; want success", got)
	}
	if again := creds(); again != first {
		t.Errorf("credentials changed before half their lifetime")
	}

	// Past half the lifetime the service hands out new credentials; the
	// old ones stay valid until their own expiry.
	b.clk.Advance(5*time.Minute + time.Second)
	second := creds()
	if second.TmpSecretID == first.TmpSecretID || second.Token == first.Token || md.Issued() != 2 {
		t.Fatalf("no rotation past half the lifetime (issued %d)", md.Issued())
	}
	for _, c := range []metadataAnswer{first, second} {
		if got := b.c.tempCall(true, c.TmpSecretID, c.TmpSecretKey, c.Token); got != "" {
			t.Errorf("call with %s after rotation = %q; want success", c.TmpSecretID, got)
		}
	}
	b.clk.Advance(5 * time.Minute)
	if got := b.c.tempCall(false, first.TmpSecretID, first.TmpSecretKey, first.Token); got != "AuthFailure.TokenFailure" {
		t.Errorf("call with expired credentials = %q; want AuthFailure.TokenFailure", got)
	}

	// Rotate(0) revokes the current credentials at once.
	md.Rotate(0)
	third := creds()
	if third.TmpSecretID == second.TmpSecretID {
		t.Fatal("Rotate served the same credentials")
	}
	if got := b.c.tempCall(true, second.TmpSecretID, second.TmpSecretKey, second.Token); got != "AuthFailure.TokenFailure" {
		t.Errorf("call with revoked credentials = %q; want AuthFailure.TokenFailure", got)
	}
	if got := b.c.tempCall(true, third.TmpSecretID, third.TmpSecretKey, third.Token); got != "" {
		t.Errorf("call with new credentials = %q; want success", got)
	}
	if md.Served() != 4 {
		t.Errorf("Served = %d; want 4", md.Served())
	}
}
