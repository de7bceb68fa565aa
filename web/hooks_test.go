package web_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/web"
)

const hookToken = "Hk7vQ2mN9xR4tY1uI0oP3a"

// TestCompleteHookReadOnly: without AllowActions the endpoint refuses and
// the step stays open.
func TestCompleteHookReadOnly(t *testing.T) {
	b := setup(t, setupOpts{})
	b.apply(t, "hookro")
	if err := b.l.RegisterHookToken(t.Context(), "hookro", hookToken, fleetIDs[0]); err != nil {
		t.Fatal(err)
	}
	code, body := b.do(t, "POST", "/api/rollouts/hookro/hooks/"+hookToken+"?result=continue", nil, nil)
	if code != http.StatusForbidden || !strings.Contains(body, "--allow-actions") {
		t.Errorf("POST in read-only mode = %d %s; want 403 naming --allow-actions", code, body)
	}
	if _, ok, _ := b.l.HookResult(t.Context(), "hookro", hookToken); ok {
		t.Errorf("a refused completion completed the step")
	}
}

// TestCompleteHook: the endpoint completes a registered token once, as
// complete-hook does, refuses what complete-hook refuses and cross-site
// posts, and never answers or logs the token.
func TestCompleteHook(t *testing.T) {
	b := setup(t, setupOpts{allowActions: true})
	b.apply(t, "hooks")
	ctx := t.Context()
	if err := b.l.RegisterHookToken(ctx, "hooks", hookToken, fleetIDs[0]); err != nil {
		t.Fatal(err)
	}
	// In order: the first success fixes the result.
	tests := []struct {
		name     string
		path     string
		hdr      http.Header
		wantCode int
	}{
		{name: "no-result", path: "/api/rollouts/hooks/hooks/" + hookToken, wantCode: http.StatusBadRequest},
		{name: "bad-result", path: "/api/rollouts/hooks/hooks/" + hookToken + "?result=maybe", wantCode: http.StatusBadRequest},
		{name: "unknown-rollout", path: "/api/rollouts/nope/hooks/" + hookToken + "?result=continue", wantCode: http.StatusNotFound},
		{name: "unknown-token", path: "/api/rollouts/hooks/hooks/wrong?result=continue", wantCode: http.StatusNotFound},
		{name: "cross-site", path: "/api/rollouts/hooks/hooks/" + hookToken + "?result=abandon",
			hdr: http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}}, wantCode: http.StatusForbidden},
		{name: "continue", path: "/api/rollouts/hooks/hooks/" + hookToken + "?result=continue", wantCode: http.StatusOK},
		{name: "continue-again", path: "/api/rollouts/hooks/hooks/" + hookToken + "?result=continue", wantCode: http.StatusOK},
		{name: "abandon-after-continue", path: "/api/rollouts/hooks/hooks/" + hookToken + "?result=abandon", wantCode: http.StatusConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := b.do(t, "POST", tc.path, nil, tc.hdr)
			if code != tc.wantCode {
				t.Fatalf("POST %s = %d %s; want %d", tc.path, code, body, tc.wantCode)
			}
			if strings.Contains(body, hookToken) {
				t.Errorf("the answer holds the token: %s", body)
			}
			if code == http.StatusOK {
				var got web.HookCompletion
				if err := json.Unmarshal([]byte(body), &got); err != nil || got != (web.HookCompletion{Rollout: "hooks", Result: "continue"}) {
					t.Errorf("answer %s (%v); want rollout hooks, result continue", body, err)
				}
			}
		})
	}
	if res, ok, err := b.l.HookResult(ctx, "hooks", hookToken); err != nil || !ok || res != "continue" {
		t.Errorf("HookResult = %q, %v, %v; want continue", res, ok, err)
	}
	if code, _ := b.get(t, "/api/rollouts/hooks/hooks/"+hookToken+"?result=continue"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET of the completion = %d; want 405", code)
	}
	if strings.Contains(b.logs.String(), hookToken) {
		t.Errorf("the logs hold the token")
	}
}
