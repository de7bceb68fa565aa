// Package notify posts rollout events as JSON to an operator's webhook.
// Delivery is best effort: a webhook that fails is logged and never stops
// a rollout. A Poster posts one event and waits for the answer; a Sender
// queues events and posts them in the background, with retries, so that a
// slow receiver never holds up the task handler that announces an event.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	neturl "net/url"
	"time"
)

// Event kinds.
const (
	RolloutStarted   = "rollout_started"
	WavePassed       = "wave_passed"
	RolloutPaused    = "rollout_paused"
	AwaitingApproval = "awaiting_approval"
	RolloutAborted   = "rollout_aborted"
	RolloutCompleted = "rollout_completed"
	// OccurrenceSkipped: a scheduled occurrence found its instances held by
	// another active rollout and did not start.
	OccurrenceSkipped = "occurrence_skipped"
	// RollbackStarted: the rollout's rollback (a rollout of its own, named
	// in Reason) was created, after a breach or `fleetreset rollback`.
	RollbackStarted = "rollback_started"
)

// Event is one notification. It carries IDs and counts, never a secret.
type Event struct {
	Kind    string    `json:"kind"`
	Rollout string    `json:"rollout"`
	Wave    int       `json:"wave"`
	State   string    `json:"state,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Time    time.Time `json:"time"`
	// Counts of terminal outcomes so far in the whole rollout.
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Total     int `json:"total"`
}

// Errors a retry cannot fix.
var (
	errEncode  = errors.New("cannot encode the event")
	errRequest = errors.New("invalid webhook URL")
)

// Poster delivers events to webhooks.
type Poster struct {
	// Client sends the requests. Defaults to a client with a 10s timeout.
	Client *http.Client
}

// Post delivers e to url as JSON. An empty url does nothing.
func (p *Poster) Post(ctx context.Context, url string, e Event) error {
	if url == "" {
		return nil
	}
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("notify: %w: %w", errEncode, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		// The error quotes the URL: name only the host.
		return fmt.Errorf("notify: %s: %w for %s", e.Kind, errRequest, Host(url))
	}
	req.Header.Set("Content-Type", "application/json")
	c := p.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		// The client's error quotes the whole URL, and webhook URLs carry
		// tokens in their paths and queries: name only the host.
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("notify: %s: post to %s: %w", e.Kind, Host(url), err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("notify: %s: webhook at %s %w", e.Kind, Host(url), &StatusError{Code: resp.StatusCode, Status: resp.Status})
	}
	return nil
}

// Host returns the scheme and host of a webhook URL, the part that is safe
// to show: paths and queries of webhook URLs often hold tokens.
func Host(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil || u.Host == "" {
		return "(webhook)"
	}
	return u.Scheme + "://" + u.Host
}
