package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
)

// page is what every template gets.
type page struct {
	Title        string
	Nav          string
	AllowActions bool
	Monitoring   bool
	Metrics      bool
	RefreshMS    int64
	Now          time.Time
	Queues       string // asynqmon path of the reset queue
	Data         any
}

func (s *Server) page(title, nav string, data any) page {
	return page{Title: title, Nav: nav, AllowActions: s.cfg.AllowActions, Monitoring: s.mon != nil,
		Metrics: s.cfg.Metrics != nil, RefreshMS: s.cfg.Refresh.Milliseconds(), Now: time.Now(),
		Queues: PathMonitoring + "queues/" + url.PathEscape(s.cfg.Queues.Reset), Data: data}
}

func parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"bar":      bar,
		"fmtTime":  fmtTime,
		"isoTime":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"zoneTime": zoneTime,
		"instPath": instancePath,
		"pathSeg":  url.PathEscape,
		"label":    func(s string) string { return strings.ReplaceAll(s, "_", " ") },
		"failures": func(c ledger.Counters) int { return c.Failures() },
		"pct":      pct,
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", base, err)
		}
		out[strings.TrimSuffix(base, ".html")] = t
	}
	return out, nil
}

func (s *Server) render(w http.ResponseWriter, status int, name string, p page) {
	var b strings.Builder
	if err := s.pages[name].ExecuteTemplate(&b, "layout", p); err != nil {
		s.log.Error("web: render", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

func (s *Server) errorPage(w http.ResponseWriter, status int, msg string) {
	s.render(w, status, "error", s.page(http.StatusText(status), "", struct {
		Status  int
		Message string
	}{status, msg}))
}

// segment is one coloured part of a progress bar.
type segment struct {
	Class string
	N     int
	Pct   float64
	Label string
}

// progress is a bar: coloured segments over a grey track of Total.
type progress struct {
	Segments []segment
	Done     int
	Total    int
	Title    string
}

func bar(c ledger.Counters, inFlight, total int) progress {
	p := progress{Done: c.Terminal, Total: total}
	var title []string
	for _, s := range []segment{
		{Class: "succeeded", N: c.Succeeded, Label: "succeeded"},
		{Class: "skipped", N: c.Skipped, Label: "skipped"},
		{Class: "failed", N: c.Failed, Label: "failed"},
		{Class: "ambiguous", N: c.Ambiguous, Label: "ambiguous"},
		{Class: "cancelled", N: c.Cancelled, Label: "cancelled"},
		{Class: "inflight", N: inFlight, Label: "in flight"},
	} {
		if s.N == 0 {
			continue
		}
		s.Pct = pct(s.N, total)
		p.Segments = append(p.Segments, s)
		title = append(title, fmt.Sprintf("%d %s", s.N, s.Label))
	}
	p.Title = fmt.Sprintf("%d of %d finished", c.Terminal, total)
	if len(title) > 0 {
		p.Title += ": " + strings.Join(title, ", ")
	}
	return p
}

func pct(n, total int) float64 {
	if total <= 0 {
		return 0
	}
	return float64(n) * 100 / float64(total)
}

// zoneTime shows an instant of an instance's history to the millisecond,
// in the server's time zone with its offset, and for machines in UTC:
// the instance page is read side by side with cloud console and API logs.
func zoneTime(t time.Time) template.HTML {
	if t.IsZero() {
		return "—"
	}
	return template.HTML(`<time datetime="` + t.UTC().Format(time.RFC3339Nano) + `">` +
		template.HTMLEscapeString(t.Local().Format("2006-01-02 15:04:05.000 -07:00 MST")) + `</time>`)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func (s *Server) listPage(w http.ResponseWriter, r *http.Request) {
	rs, err := s.cfg.Ledger.List(r.Context())
	if err != nil {
		s.log.Error("web: list rollouts", "err", err)
		s.errorPage(w, http.StatusBadGateway, "Redis did not answer: the rollouts cannot be read right now.")
		return
	}
	now := time.Now()
	views := make([]RolloutView, 0, len(rs))
	// Newest first: the rollout an operator is watching is usually the last.
	for i := len(rs) - 1; i >= 0; i-- {
		views = append(views, rolloutView(rs[i], now))
	}
	linkRollbacks(views)
	s.render(w, http.StatusOK, "list", s.page("Rollouts", "rollouts", views))
}

// stateCount is one state filter chip.
type stateCount struct {
	State  string
	N      int
	Active bool
	Href   string
}

type flash struct {
	Kind string // ok or warn
	Text string
}

// actionsView says which buttons apply to the rollout's state.
type actionsView struct {
	Pause, Resume, Approve, Abort, Retry bool
	RetryAmbiguous                       bool
}

type rolloutData struct {
	R        RolloutView
	Flash    *flash
	Actions  actionsView
	InFlight int
	Chips    []stateCount
	// Search is the instance query; Page its answer; States and Limits
	// the choices of the search form.
	Search search
	Page   pageView
	States []string
	Limits []limitChoice
	// Failures lists the first failed and ambiguous instances; FailuresPartial
	// says the list stopped at its scan bound (see failuresScan).
	Failures        []InstanceView
	FailuresPartial bool
	Ambiguous       int
}

func (s *Server) loadError(w http.ResponseWriter, id string, err error) {
	if errors.Is(err, ledger.ErrNotFound) {
		s.errorPage(w, http.StatusNotFound, fmt.Sprintf("There is no rollout %q.", id))
		return
	}
	s.log.Error("web: read rollout", "rollout", id, "err", err)
	s.errorPage(w, http.StatusBadGateway, "Redis did not answer: the rollout cannot be read right now.")
}

func (s *Server) rolloutPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctx := r.Context()
	ro, err := s.cfg.Ledger.Get(ctx, id)
	if err != nil {
		s.loadError(w, id, err)
		return
	}
	// A page shows what it can of a query with a bad parameter: that
	// parameter is left at its default and the form shows what applied.
	se, _ := parseSearch(r.URL.Query(), s.cfg.MaxInstanceRows)
	snap, err := s.snapshot(ctx, ro, se)
	if err != nil {
		s.loadError(w, id, err)
		return
	}
	d := rolloutData{R: snap.R, InFlight: snap.Activity.Resetting, Chips: chips(ro, snap.Activity, se), Search: se, Page: snap.Page,
		States: stateNames(), Limits: limitChoices(se.Limit, s.cfg.MaxInstanceRows), Ambiguous: ro.Counters.Ambiguous}
	if d.Failures, d.FailuresPartial, err = s.failures(ctx, ro); err != nil {
		s.loadError(w, id, err)
		return
	}
	switch ro.State {
	case ledger.Running, ledger.Scheduled:
		d.Actions.Pause = true
	case ledger.AwaitingApproval:
		d.Actions.Pause, d.Actions.Approve = true, true
	case ledger.Paused:
		d.Actions.Resume = true
	}
	d.Actions.Abort = !ro.State.Terminal()
	d.Actions.Retry = ro.State != ledger.Aborted && ro.Counters.Failures() > 0
	d.Actions.RetryAmbiguous = ro.Counters.Ambiguous > 0
	d.Flash = flashFor(r.URL.Query(), ro)
	s.render(w, http.StatusOK, "rollout", s.page(ro.ID, "rollouts", d))
}

// failures lists up to failuresShown failed and ambiguous instances, the
// last wave first (the running wave's failures are the ones being
// watched; later waves hold only failures of the pre-flight at apply), in
// plan order within a wave. Waves without failures are not read (their
// counters say so), and all waves together read at most failuresScan
// positions; partial says the list stopped there.
//
// The list is cached per rollout under failuresKey: it is read again only
// when a failure was added or retried, not on every refresh.
func (s *Server) failures(ctx context.Context, ro *ledger.Rollout) (out []InstanceView, partial bool, err error) {
	key := failuresKey(ro)
	if e, ok := s.failCache.get(ro.ID, key); ok {
		return e.list, e.partial, nil
	}
	budget := failuresScan
	for k := len(ro.Waves) - 1; k >= 0 && len(out) < failuresShown; k-- {
		if ro.Waves[k].Counters.Failures() == 0 {
			continue
		}
		if budget <= 0 {
			partial = true
			break
		}
		p, err := s.cfg.Ledger.Page(ctx, ro, ledger.Query{Waves: []int{k}, States: []ledger.InstanceState{ledger.Failed, ledger.Ambiguous},
			Limit: failuresShown - len(out), MaxScan: budget})
		if err != nil {
			return nil, false, err
		}
		for _, in := range p.Instances {
			out = append(out, instanceView(ro, in))
		}
		budget -= p.Scanned
		partial = partial || p.Partial
	}
	s.failCache.put(ro.ID, failuresEntry{key: key, list: out, partial: partial})
	return out, partial, nil
}

// failuresKey names the set of failed and ambiguous instances of a
// rollout. Within one attempt an instance never leaves those states
// (finishing is one-way; only retry-failed reopens them, and it counts a
// new attempt in the same script), so equal per-wave counts under the same
// attempt mean the same instances, with the same recorded fields. The
// creation time covers a rollout deleted and applied again.
func failuresKey(ro *ledger.Rollout) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d", ro.CreatedAt.UnixMilli(), ro.Attempt)
	for _, w := range ro.Waves {
		fmt.Fprintf(&b, "/%d,%d", w.Counters.Failed, w.Counters.Ambiguous)
	}
	return b.String()
}

// failuresCache holds the last Failures list of each rollout. It is safe
// for concurrent use.
type failuresCache struct {
	mu sync.Mutex
	m  map[string]failuresEntry // by rollout ID
}

type failuresEntry struct {
	key     string
	list    []InstanceView
	partial bool
}

// failuresCacheMax bounds the rollouts remembered; past it the cache
// starts over (a UI watches a handful at a time).
const failuresCacheMax = 256

func (c *failuresCache) get(rollout, key string) (failuresEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[rollout]
	return e, ok && e.key == key
}

func (c *failuresCache) put(rollout string, e failuresEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= failuresCacheMax {
		c.m = map[string]failuresEntry{}
	}
	c.m[rollout] = e
}

// flashFor turns the query of the redirect after an action into a message.
// Only fixed texts and integers are shown: nothing from the query is echoed.
func flashFor(q url.Values, ro *ledger.Rollout) *flash {
	n, _ := strconv.Atoi(q.Get("n"))
	if q.Get("err") == "notchanged" {
		return &flash{Kind: "warn", Text: fmt.Sprintf("That command does not apply to a rollout that is %s; nothing changed.", strings.ReplaceAll(string(ro.State), "_", " "))}
	}
	switch q.Get("done") {
	case "pause":
		return &flash{Kind: "ok", Text: "Paused. No new reset starts; calls already in flight finish and are verified."}
	case "resume":
		return &flash{Kind: "ok", Text: fmt.Sprintf("Resumed: %d parked instance(s) queued again.", n)}
	case "approve":
		return &flash{Kind: "ok", Text: fmt.Sprintf("Gate after wave %d approved; the next wave starts.", n)}
	case "abort":
		return &flash{Kind: "warn", Text: fmt.Sprintf("Aborted. %d reset(s) already in flight will finish and be verified (the overshoot).", n)}
	case "retry-failed":
		return &flash{Kind: "ok", Text: fmt.Sprintf("%d instance(s) queued for a new attempt.", n)}
	}
	return nil
}

// maxReasonLen bounds the reason an operator types; it is stored in Redis
// and shown in status, notifications and this UI.
const maxReasonLen = 300

func (s *Server) action(w http.ResponseWriter, r *http.Request) {
	id, act := r.PathValue("id"), r.PathValue("action")
	if !s.cfg.AllowActions {
		s.errorPage(w, http.StatusForbidden, "This UI is read-only. Start it with `fleetreset ui --allow-actions` to pause, resume, approve, abort and retry from here; the CLI commands work either way.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
	}
	if reason != "" {
		reason += " (web UI)"
	}
	ctl := s.cfg.Engine
	ctx := r.Context()
	n := 0
	var err error
	switch act {
	case "pause":
		err = ctl.Pause(ctx, id, reason)
	case "resume":
		var res ledger.ResumeResult
		res, err = ctl.Resume(ctx, id)
		n = len(res.Requeue)
	case "approve":
		var res ledger.ResumeResult
		res, err = ctl.Approve(ctx, id)
		n = res.Wave + 1 // the gate approved is the one after the current wave
	case "abort":
		n, err = ctl.Abort(ctx, id, reason)
	case "retry-failed":
		var res ledger.ResumeResult
		res, err = ctl.RetryFailed(ctx, id, r.PostFormValue("ambiguous") == "1")
		n = len(res.Requeue)
	default:
		s.errorPage(w, http.StatusNotFound, "No such action.")
		return
	}
	target := "/rollouts/" + url.PathEscape(id)
	switch {
	case errors.Is(err, engine.ErrNotChanged):
		s.log.Info("web: action did not apply", "rollout", id, "action", act)
		http.Redirect(w, r, target+"?err=notchanged", http.StatusSeeOther)
	case errors.Is(err, ledger.ErrNotFound):
		s.errorPage(w, http.StatusNotFound, fmt.Sprintf("There is no rollout %q.", id))
	case err != nil:
		s.log.Error("web: action failed", "rollout", id, "action", act, "err", err)
		s.errorPage(w, http.StatusInternalServerError, "The command failed; the UI's log has the details. The rollout may be partly changed: reload to see its state.")
	default:
		s.log.Info("web: action", "rollout", id, "action", act, "count", n, "remote", r.RemoteAddr)
		http.Redirect(w, r, fmt.Sprintf("%s?done=%s&n=%d", target, act, n), http.StatusSeeOther)
	}
}

func (s *Server) apiList(w http.ResponseWriter, r *http.Request) {
	rs, err := s.cfg.Ledger.List(r.Context())
	if err != nil {
		s.log.Error("web: list rollouts", "err", err)
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "redis did not answer"})
		return
	}
	now := time.Now()
	views := make([]RolloutView, 0, len(rs))
	for _, ro := range rs {
		views = append(views, rolloutView(ro, now))
	}
	linkRollbacks(views)
	writeJSON(w, http.StatusOK, struct {
		Rollouts []RolloutView `json:"rollouts"`
	}{views})
}

// apiRollout answers the rollout with its complete counters and one page
// of its instances (see search.go for the query parameters).
func (s *Server) apiRollout(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	se, err := parseSearch(r.URL.Query(), s.cfg.MaxInstanceRows)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	ro, err := s.cfg.Ledger.Get(r.Context(), id)
	var snap snapshot
	if err == nil {
		snap, err = s.snapshot(r.Context(), ro, se)
	}
	if errors.Is(err, ledger.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such rollout"})
		return
	}
	if err != nil {
		s.log.Error("web: read rollout", "rollout", id, "err", err)
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "redis did not answer"})
		return
	}
	rows := snap.Page.Rows
	if rows == nil {
		rows = []InstanceView{}
	}
	writeJSON(w, http.StatusOK, struct {
		Rollout   RolloutView    `json:"rollout"`
		Instances []InstanceView `json:"instances"`
		Page      PageInfo       `json:"page"`
	}{snap.R, rows, snap.Page.Info})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
