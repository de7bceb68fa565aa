package web

import (
	"errors"
	"net/http"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/rollout"
)

// PathCompleteHook completes a webhook hook step that answered 202:
// POST /api/rollouts/{id}/hooks/{token}?result=continue|abandon, like
// `fleetreset complete-hook`. It is an action: refused unless AllowActions.
const PathCompleteHook = "POST /api/rollouts/{id}/hooks/{token}"

// HookCompletion is the answer of a hook completion that went through.
type HookCompletion struct {
	Rollout string `json:"rollout"`
	Result  string `json:"result"`
}

// completeHook serves PathCompleteHook. Its answers and logs never hold
// the token: it completes the step for whoever holds it.
func (s *Server) completeHook(w http.ResponseWriter, r *http.Request) {
	id, token, result := r.PathValue("id"), r.PathValue("token"), r.URL.Query().Get("result")
	if !s.cfg.AllowActions {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "this UI is read-only; start it with --allow-actions, or use fleetreset complete-hook"})
		return
	}
	if result != rollout.HookContinue && result != rollout.HookAbandon {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "result must be continue or abandon"})
		return
	}
	ctx := r.Context()
	if _, _, err := s.cfg.Ledger.State(ctx, id); errors.Is(err, ledger.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such rollout"})
		return
	}
	err := s.cfg.Ledger.CompleteHook(ctx, id, token, result)
	switch {
	case errors.Is(err, ledger.ErrHookNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no hook step of this rollout waits for that token"})
	case errors.Is(err, ledger.ErrHookCompleted):
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
	case err != nil:
		s.log.Error("web: complete hook", "rollout", id, "err", err)
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "redis did not answer"})
	default:
		s.log.Info("web: hook step completed", "rollout", id, "result", result, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, HookCompletion{Rollout: id, Result: result})
	}
}
