package ledger_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/fleetreset/fleetreset/ledger"
)

// TestHookCompletion: a registered token is completed once; the same
// result again is fine, another is refused; unknown tokens and results
// are refused and change nothing.
func TestHookCompletion(t *testing.T) {
	l, spec, _ := setup(t, 1)
	ctx := t.Context()
	const tok = "tok-aaaaaaaaaaaaaaaaaaaa"
	if err := l.RegisterHookToken(ctx, spec.ID, tok, "ins-00000000"); err != nil {
		t.Fatal(err)
	}
	// Registering again (a retried Start) changes nothing.
	if err := l.RegisterHookToken(ctx, spec.ID, tok, "ins-00000000"); err != nil {
		t.Fatal(err)
	}
	if res, ok, err := l.HookResult(ctx, spec.ID, tok); err != nil || ok || res != "" {
		t.Fatalf("HookResult before completion = %q, %v, %v; want \"\", false, nil", res, ok, err)
	}

	tests := []struct {
		name    string
		rollout string
		token   string
		result  string
		wantErr error // nil: no error; errAny: some error
	}{
		{name: "unknown-token", rollout: spec.ID, token: "nope", result: "continue", wantErr: ledger.ErrHookNotFound},
		{name: "empty-token", rollout: spec.ID, token: "", result: "continue", wantErr: ledger.ErrNotFound},
		{name: "other-rollout", rollout: "r2", token: tok, result: "continue", wantErr: ledger.ErrNotFound},
		{name: "bad-result", rollout: spec.ID, token: tok, result: "maybe", wantErr: errAny},
		{name: "first", rollout: spec.ID, token: tok, result: "abandon"},
		{name: "same-again", rollout: spec.ID, token: tok, result: "abandon"},
		{name: "other-result", rollout: spec.ID, token: tok, result: "continue", wantErr: ledger.ErrHookCompleted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := l.CompleteHook(ctx, tc.rollout, tc.token, tc.result)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("CompleteHook = %v; want nil", err)
			case tc.wantErr == errAny && err == nil:
				t.Errorf("CompleteHook = nil; want an error")
			case tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Errorf("CompleteHook = %v; want %v", err, tc.wantErr)
			}
			if err != nil && tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("CompleteHook's error %q quotes the token", err)
			}
		})
	}
	if res, ok, err := l.HookResult(ctx, spec.ID, tok); err != nil || !ok || res != "abandon" {
		t.Errorf("HookResult = %q, %v, %v; want abandon, true, nil (the first result stands)", res, ok, err)
	}
	if _, ok, _ := l.HookResult(ctx, spec.ID, "nope"); ok {
		t.Errorf("HookResult of an unknown token says completed")
	}
}

var errAny = errors.New("any error")

// TestHookTokensNotStoredPlain: Redis holds no token in the clear.
func TestHookTokensNotStoredPlain(t *testing.T) {
	r := newRetention(t)
	ctx := t.Context()
	r.rollout(t, "hk", "", 0, 1)
	const tok = "planted-token-3f9a2c"
	if err := r.l.RegisterHookToken(ctx, "hk", tok, "ins-00000000"); err != nil {
		t.Fatal(err)
	}
	if err := r.l.CompleteHook(ctx, "hk", tok, "continue"); err != nil {
		t.Fatal(err)
	}
	for k := range r.keys(t) {
		if strings.Contains(k, tok) {
			t.Errorf("key %s holds the token", k)
		}
		if r.r.Client.Type(ctx, k).Val() != "hash" {
			continue
		}
		for f, v := range r.r.Client.HGetAll(ctx, k).Val() {
			if strings.Contains(f, tok) || strings.Contains(v, tok) {
				t.Errorf("hash %s holds the token in %s=%s", k, f, v)
			}
		}
	}
}

// TestPruneDeletesHookTokens: pruning a finished rollout deletes its hook
// tokens with every other key.
func TestPruneDeletesHookTokens(t *testing.T) {
	x := newRetention(t)
	ctx := t.Context()
	x.rollout(t, "old", "", 0, 1)
	if err := x.l.RegisterHookToken(ctx, "old", "tok", "ins-00000000"); err != nil {
		t.Fatal(err)
	}
	x.finish(t, "old", ledger.Aborted)
	x.clk.Add(31 * day)
	if _, err := x.l.Prune(ctx, ledger.PruneOptions{OlderThan: 30 * day}); err != nil {
		t.Fatal(err)
	}
	if left := x.of(t, x.keys(t), "old"); len(left) > 0 {
		t.Errorf("keys of the pruned rollout left: %v", left)
	}
	if err := x.l.CompleteHook(ctx, "old", "tok", "continue"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("CompleteHook after prune = %v; want ErrNotFound", err)
	}
}
