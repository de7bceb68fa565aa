// Package journal is the durable local record of the single-process mode
// (`fleetreset run` on its embedded Redis, which forgets everything when
// the process dies). Every reset intent is appended and fsynced before the
// API call, so the next run of the same plan knows which instances were
// called, which may have been, and which are done: nothing is reset twice
// and nothing is forgotten.
//
// The file is JSON Lines, one event per line, never holding a secret. Its
// first event records the Scope the calls are made against (API endpoint,
// region, SecretId): a journal only describes that fleet, and CheckScope
// refuses to let a run against another one resume from it.
package journal

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fleetreset/fleetreset/ledger"
)

// Event is one journal line.
type Event struct {
	Type       string `json:"t"` // scope | intent | called | outcome | wave
	InstanceID string `json:"i,omitempty"`
	Token      int64  `json:"tok,omitempty"`
	OldImage   string `json:"oimg,omitempty"`
	OldOp      string `json:"oop,omitempty"`
	RequestID  string `json:"rid,omitempty"`
	State      string `json:"st,omitempty"`
	Code       string `json:"code,omitempty"`
	Message    string `json:"msg,omitempty"`
	NewImage   string `json:"img,omitempty"`
	Wave       int    `json:"w,omitempty"`
	// Scope events only.
	Endpoint string `json:"ep,omitempty"`
	Region   string `json:"rg,omitempty"`
	SecretID string `json:"sid,omitempty"`
	At       int64  `json:"at"`
}

// Scope is what a journal's calls were made against: the API endpoint
// (after --endpoint and the plan's default), the region and the SecretId
// (never the key). A run against another scope would take the journal's
// successes for its own fleet's and skip instances it never reset.
type Scope struct {
	Endpoint string
	Region   string
	// SecretID identifies the account's key; empty for temporary
	// credentials (a session token from a CVM role or STS), whose SecretId
	// changes with every refresh and so identifies nothing.
	SecretID string
}

// Matches reports whether s and o name the same fleet. An empty SecretID
// on either side (temporary credentials) matches any.
func (s Scope) Matches(o Scope) bool {
	return s.Endpoint == o.Endpoint && s.Region == o.Region &&
		(s.SecretID == "" || o.SecretID == "" || s.SecretID == o.SecretID)
}

func (s Scope) String() string {
	return fmt.Sprintf("endpoint %s, region %s, SecretId %s", s.Endpoint, s.Region, cmp.Or(s.SecretID, "(temporary credentials)"))
}

// ScopeError is returned by CheckScope for a journal of another scope, or
// one written before scopes were recorded (Recorded false).
type ScopeError struct {
	Path     string
	Recorded bool
	Have     Scope // what the journal records, when Recorded
	Want     Scope // what this run uses
}

func (e *ScopeError) Error() string {
	if !e.Recorded {
		return fmt.Sprintf("journal %s does not record which endpoint, region and SecretId its calls were made against (it was written by an older fleetreset); this run uses %s", e.Path, e.Want)
	}
	return fmt.Sprintf("journal %s was written against %s; this run uses %s", e.Path, e.Have, e.Want)
}

// Journal appends events for one rollout. It is safe for concurrent use.
type Journal struct {
	mu   sync.Mutex
	f    *os.File
	path string
	now  func() time.Time
}

// Path returns the journal file of a rollout (by ID and plan hash, so a
// changed plan never inherits another plan's journal) under dir.
func Path(dir, rollout, planHash string) string {
	h := strings.TrimPrefix(planHash, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return filepath.Join(dir, rollout+"-"+h+".journal")
}

// Others returns the journals under dir of rollouts named rollout made
// from another version of the plan (another hash), sorted.
func Others(dir, rollout, planHash string) ([]string, error) {
	own := Path(dir, rollout, planHash)
	all, err := filepath.Glob(filepath.Join(dir, rollout+"-*.journal"))
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var out []string
	for _, p := range all {
		// rollout-<12 hex>.journal only: "web-2-…" is not a journal of "web".
		rest := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), rollout+"-"), ".journal")
		if p != own && len(rest) <= 12 && !strings.Contains(rest, "-") {
			out = append(out, p)
		}
	}
	return out, nil
}

// Open opens (creating) the journal at path for appending, and locks it
// against every other process until Close (ErrLocked).
func Open(path string) (*Journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := lock(f); err != nil {
		f.Close()
		return nil, err
	}
	return &Journal{f: f, path: path, now: time.Now}, nil
}

// Close closes the file.
func (j *Journal) Close() error { return j.f.Close() }

func (j *Journal) append(e Event) error {
	e.At = j.now().UnixMilli()
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("journal: write %s: %w", j.path, err)
	}
	// The whole point: on disk before the API call is made.
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: sync %s: %w", j.path, err)
	}
	return nil
}

// RecordScope records that the calls that follow are made against s. A
// new journal records it first; a later one (an operator adopting the
// journal for a rotated key or another URL of the same API) replaces it.
func (j *Journal) RecordScope(s Scope) error {
	return j.append(Event{Type: "scope", Endpoint: s.Endpoint, Region: s.Region, SecretID: s.SecretID})
}

// CheckScope returns nil when the journal at path may be resumed by a run
// against want: it is missing, holds no call yet, or records a scope that
// Matches. Otherwise it returns a *ScopeError.
func CheckScope(path string, want Scope) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	var have *Scope
	calls := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		var e Event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue // Recover judges torn and corrupt lines
		}
		switch e.Type {
		case "scope":
			have = &Scope{Endpoint: e.Endpoint, Region: e.Region, SecretID: e.SecretID}
		case "intent", "called", "outcome", "wave":
			calls = true
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("journal: read %s: %w", path, err)
	}
	switch {
	case have != nil && !have.Matches(want):
		return &ScopeError{Path: path, Recorded: true, Have: *have, Want: want}
	case have == nil && calls:
		return &ScopeError{Path: path, Want: want}
	}
	return nil
}

// Intent records that a reset call is about to be made under token.
func (j *Journal) Intent(_ context.Context, _, id string, token int64, oldImage, oldOp string) error {
	return j.append(Event{Type: "intent", InstanceID: id, Token: token, OldImage: oldImage, OldOp: oldOp})
}

// Called records that the cloud accepted the call.
func (j *Journal) Called(_ context.Context, _, id string, token int64, requestID string) error {
	return j.append(Event{Type: "called", InstanceID: id, Token: token, RequestID: requestID})
}

// Outcome records a terminal outcome.
func (j *Journal) Outcome(_ context.Context, _, id string, st ledger.InstanceState, code, msg, img string) error {
	return j.append(Event{Type: "outcome", InstanceID: id, State: string(st), Code: code, Message: msg, NewImage: img})
}

// WavePassed records that wave k passed its gate.
func (j *Journal) WavePassed(_ context.Context, _ string, k int) error {
	return j.append(Event{Type: "wave", Wave: k + 1})
}

// Recover reads the journal at path into the state a new run starts from.
// A missing file means a fresh start. A torn last line (the process died
// mid-write) is ignored: its event had not been synced, so its API call
// was never made.
func Recover(path string) (ledger.CreateOptions, error) {
	opts := ledger.CreateOptions{Seeds: map[string]ledger.Seed{}}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return opts, nil
	}
	if err != nil {
		return opts, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	var bad error
	for sc.Scan() {
		line++
		if bad != nil {
			// A bad line followed by good ones is corruption, not a torn write.
			return opts, bad
		}
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			bad = fmt.Errorf("journal: %s:%d: %w", path, line, err)
			continue
		}
		at := time.UnixMilli(e.At)
		s := opts.Seeds[e.InstanceID]
		switch e.Type {
		case "intent":
			s = ledger.Seed{State: ledger.Calling, Token: e.Token, IntentAt: at, OldImage: e.OldImage, OldOpRequestID: e.OldOp}
		case "called":
			s.State, s.RequestID, s.CalledAt, s.Token = ledger.Resetting, e.RequestID, at, e.Token
		case "outcome":
			s.State, s.Code, s.Error, s.NewImage = ledger.InstanceState(e.State), e.Code, e.Message, e.NewImage
		case "wave":
			opts.Wave = max(opts.Wave, e.Wave)
			continue
		default:
			continue
		}
		opts.Seeds[e.InstanceID] = s
	}
	if err := sc.Err(); err != nil {
		return opts, fmt.Errorf("journal: read %s: %w", path, err)
	}
	if len(opts.Seeds) > 0 || opts.Wave > 0 {
		opts.Seq = 1
	}
	return opts, nil
}
