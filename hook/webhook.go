package hook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/fleetreset/fleetreset/notify"
	"github.com/fleetreset/fleetreset/rollout"
)

// WebhookRequest is the JSON body a webhook step POSTs.
type WebhookRequest struct {
	Rollout  string `json:"rollout"`
	Instance string `json:"instance"`
	// Phase is PhaseBefore or PhaseAfter.
	Phase string `json:"phase"`
	// Hook is the hook's name.
	Hook string `json:"hook"`
	// Token completes the step when the webhook answered 202.
	Token string `json:"token"`
	Facts Facts  `json:"facts"`
	// CompleteWith is the command line that completes the step.
	CompleteWith string `json:"completeWith"`
}

// NewToken returns a one-time completion token: 128 random bits, URL-safe.
func NewToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("hook: token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (r *Runner) startWebhook(ctx context.Context, log *slog.Logger, rolloutID, phase string, h rollout.Hook, f Facts, hd Handle) (Handle, error) {
	token, err := NewToken()
	if err != nil {
		return Handle{}, err
	}
	if reg, ok := r.Completions.(Registrar); ok {
		// Before the POST: the receiver may complete the step before it
		// even answers.
		if err := reg.RegisterHookToken(ctx, rolloutID, token, f.InstanceID); err != nil {
			return Handle{}, fmt.Errorf("hook: register the token of %s for %s: %w", h.Name, f.InstanceID, err)
		}
	}
	hd.Token = token
	body, err := json.Marshal(WebhookRequest{Rollout: rolloutID, Instance: f.InstanceID, Phase: phase, Hook: h.Name, Token: token, Facts: f,
		CompleteWith: fmt.Sprintf("fleetreset complete-hook %s %s --result %s|%s", rolloutID, token, ResultContinue, ResultAbandon)})
	if err != nil {
		return Handle{}, fmt.Errorf("hook: encode webhook %s: %w", h.Name, err)
	}
	where := notify.Host(h.Webhook.URL)
	pctx, cancel := context.WithTimeout(ctx, WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodPost, h.Webhook.URL, bytes.NewReader(body))
	if err != nil {
		// The error quotes the URL, whose path may hold a secret.
		hd.Verdict = &Status{Done: true, Detail: "webhook URL at " + where + " is not valid"}
		return hd, nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fleetreset-hook")
	res, err := r.client().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			// Our own caller gave up (shutdown): not the webhook's fault.
			return Handle{}, fmt.Errorf("hook: post webhook %s for %s: %w", h.Name, f.InstanceID, ctx.Err())
		}
		// The client's error quotes the whole URL: keep only its cause.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		detail := fmt.Sprintf("webhook at %s unreachable: %v", where, err)
		if errors.Is(err, context.DeadlineExceeded) {
			detail = fmt.Sprintf("webhook at %s did not answer within %s", where, WebhookTimeout)
		}
		hd.Verdict = &Status{Done: true, Detail: strings.ReplaceAll(detail, token, "[token]")}
		log.Info("hook: webhook failed", "detail", hd.Verdict.Detail)
		return hd, nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	switch {
	case res.StatusCode == http.StatusAccepted:
		log.Info("hook: webhook accepted; awaiting completion", "url", where)
	case res.StatusCode/100 == 2:
		hd.Verdict = &Status{Done: true, OK: true, Detail: fmt.Sprintf("webhook answered %d", res.StatusCode)}
		log.Info("hook: webhook answered", "url", where, "status", res.StatusCode)
	default:
		hd.Verdict = &Status{Done: true, Detail: fmt.Sprintf("webhook answered %d", res.StatusCode)}
		log.Info("hook: webhook failed", "url", where, "status", res.StatusCode)
	}
	return hd, nil
}

func (r *Runner) pollWebhook(ctx context.Context, rolloutID string, hd Handle) (Status, error) {
	if r.Completions == nil {
		return Status{}, errors.New("hook: a webhook step that answered 202 needs Runner.Completions")
	}
	res, ok, err := r.Completions.HookResult(ctx, rolloutID, hd.Token)
	if err != nil {
		// Never the token: HookResult's errors are the caller's own.
		return Status{}, fmt.Errorf("hook: read the completion of %s's webhook step: %w", hd.InstanceID, err)
	}
	switch {
	case !ok:
		return Status{Detail: "awaiting completion"}, nil
	case res == ResultContinue:
		return Status{Done: true, OK: true, Detail: "completed with " + ResultContinue}, nil
	case res == ResultAbandon:
		return Status{Done: true, Detail: "completed with " + ResultAbandon}, nil
	}
	return Status{Done: true, Detail: fmt.Sprintf("completed with unknown result %q", res)}, nil
}

// client is r.HTTP, or a default one, that does not follow redirects.
func (r *Runner) client() *http.Client {
	c := http.Client{}
	if r.HTTP != nil {
		c = *r.HTTP
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}
