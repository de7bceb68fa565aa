package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/ledger"
)

// Server-side search of a rollout's instances. The rollout page and
// /api/rollouts/NAME take the same query parameters:
//
//	id     part of an instance ID (any case; a prefix is a part)
//	wave   a wave number, 1-based
//	state  an instance state (pending, held, calling, resetting, succeeded, ...)
//	code   an error code, whole (any case)
//	page   the page, 1-based (default 1)
//	limit  the page size (default PageSizeDefault, at most Config.MaxInstanceRows)
//
// A refresh reads the rollout's counters, the resetting and held sets, and
// one page (see ledger.Page for what a filter costs); never every instance.

// PageSizeDefault is the number of instances a page or an API answer holds
// when the query names no limit.
const PageSizeDefault = ledger.PageLimitDefault

// failuresShown is how many failed or ambiguous instances the Failures
// section lists; the rest are a search away.
const failuresShown = 50

// failuresScan bounds the positions the Failures section reads on each
// refresh (a few failures late in a big rollout would otherwise cost a scan
// of all of it every few seconds); the section says when it stopped short.
const failuresScan = 20_000

// maxSearchLen bounds the id and code parameters: longer ones match nothing
// anyway, and they are echoed back in the search form.
const maxSearchLen = 128

// maxPage bounds the page parameter so that offsets cannot overflow.
const maxPage = 1_000_000

// search is an instance query as a URL states it.
type search struct {
	ID    string
	Wave  int // 1-based; 0 for every wave
	State string
	Code  string
	Page  int // 1-based
	Limit int
}

// errBadQuery is the error of a query parameter that cannot be used.
var errBadQuery = errors.New("bad query")

// parseSearch reads q. A parameter that cannot be used is left at its
// default, and the error names it (the API answers 400; a page ignores it).
func parseSearch(q url.Values, maxLimit int) (search, error) {
	s := search{ID: strings.TrimSpace(q.Get("id")), Code: strings.TrimSpace(q.Get("code")), Page: 1, Limit: min(PageSizeDefault, maxLimit)}
	var bad []string
	if len(s.ID) > maxSearchLen {
		s.ID, bad = "", append(bad, fmt.Sprintf("id is longer than %d bytes", maxSearchLen))
	}
	if len(s.Code) > maxSearchLen {
		s.Code, bad = "", append(bad, fmt.Sprintf("code is longer than %d bytes", maxSearchLen))
	}
	if v := q.Get("state"); v != "" {
		if knownState(v) {
			s.State = v
		} else {
			bad = append(bad, "state must be one of "+strings.Join(stateNames(), ", "))
		}
	}
	num := func(name string, lo, hi int, dst *int) {
		v := q.Get(name)
		if v == "" {
			return
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo {
			bad = append(bad, fmt.Sprintf("%s must be a whole number of at least %d", name, lo))
			return
		}
		*dst = min(n, hi)
	}
	num("wave", 1, 1<<20, &s.Wave)
	num("page", 1, maxPage, &s.Page)
	num("limit", 1, maxLimit, &s.Limit) // larger limits are capped, not refused
	if bad != nil {
		return s, fmt.Errorf("%w: %s", errBadQuery, strings.Join(bad, "; "))
	}
	return s, nil
}

// Filtered reports whether s narrows the instances at all.
func (s search) Filtered() bool { return s.ID != "" || s.Wave != 0 || s.State != "" || s.Code != "" }

// values returns the query of s, defaults left out.
func (s search) values() url.Values {
	v := url.Values{}
	set := func(k, val string, ok bool) {
		if ok {
			v.Set(k, val)
		}
	}
	set("id", s.ID, s.ID != "")
	set("wave", strconv.Itoa(s.Wave), s.Wave != 0)
	set("state", s.State, s.State != "")
	set("code", s.Code, s.Code != "")
	set("page", strconv.Itoa(s.Page), s.Page != 1)
	set("limit", strconv.Itoa(s.Limit), s.Limit != PageSizeDefault)
	return v
}

// Href is a link to s relative to the current page ("?..." or "?" alone).
func (s search) Href() string { return "?" + s.values().Encode() }

// query is s for the ledger.
func (s search) query() ledger.Query {
	q := ledger.Query{IDContains: s.ID, Code: s.Code, Offset: (s.Page - 1) * s.Limit, Limit: s.Limit}
	if s.Wave > 0 {
		q.Waves = []int{s.Wave - 1}
	}
	if s.State != "" {
		q.States = []ledger.InstanceState{ledger.InstanceState(s.State)}
	}
	return q
}

// PageInfo describes the page of instances an API answer holds.
type PageInfo struct {
	// Page is 1-based; Limit is the page size after the cap.
	Page  int `json:"page"`
	Limit int `json:"limit"`
	// Total counts the instances that match; when TotalExact is false it
	// is a lower bound (the search stopped counting, see ledger.Page).
	Total      int  `json:"total"`
	TotalExact bool `json:"total_exact"`
	// More reports matches after this page; Next and Prev are the query
	// strings of the neighbouring pages, when there are any.
	More bool   `json:"more"`
	Next string `json:"next,omitempty"`
	Prev string `json:"prev,omitempty"`
	// Filter repeats the filters applied.
	Filter Filter `json:"filter"`
}

// Filter is the filters of a search; empty fields filter nothing.
type Filter struct {
	ID    string `json:"id,omitempty"`
	Wave  int    `json:"wave,omitempty"`
	State string `json:"state,omitempty"`
	Code  string `json:"code,omitempty"`
}

// pageView is a page of instances as the rollout page shows it.
type pageView struct {
	Rows    []InstanceView
	Info    PageInfo
	From    int // 1-based position of the first row among the matches
	To      int
	Partial bool
}

func newPageView(ro *ledger.Rollout, s search, p ledger.Page) pageView {
	v := pageView{Info: PageInfo{Page: s.Page, Limit: p.Limit, Total: p.Total, TotalExact: p.Exact, More: p.More,
		Filter: Filter{ID: s.ID, Wave: s.Wave, State: s.State, Code: s.Code}}, Partial: p.Partial}
	for _, in := range p.Instances {
		v.Rows = append(v.Rows, instanceView(ro, in))
	}
	if len(v.Rows) > 0 {
		v.From, v.To = p.Offset+1, p.Offset+len(v.Rows)
	}
	if p.More {
		n := s
		n.Page++
		v.Info.Next = n.Href()
	}
	if s.Page > 1 {
		n := s
		// Past the end, "previous" leads to the last page there is.
		n.Page = min(s.Page-1, max(1, (p.Total+s.Limit-1)/s.Limit))
		v.Info.Prev = n.Href()
	}
	return v
}

// snapshot is what one refresh of a rollout reads: the rollout with its
// counters, the in-flight and held sets, and one page of instances.
type snapshot struct {
	R        RolloutView
	Activity ledger.Activity
	Page     pageView
}

func (s *Server) snapshot(ctx context.Context, ro *ledger.Rollout, se search) (snapshot, error) {
	l := s.cfg.Ledger
	act, err := l.Activity(ctx, ro)
	if err != nil {
		return snapshot{}, err
	}
	p, err := l.Page(ctx, ro, se.query())
	if err != nil {
		return snapshot{}, err
	}
	v := rolloutView(ro, time.Now())
	v.RolledBackBy = l.RolledBackBy(ctx, ro.ID)
	for k, n := range act.ResettingByWave {
		if k < len(v.Waves) {
			v.Waves[k].InFlight = n
		}
	}
	return snapshot{R: v, Activity: act, Page: newPageView(ro, se, p)}, nil
}

// chips are the state filters over the instance table, counted from the
// counters and the sets: pending includes instances being called, which
// no set records.
func chips(ro *ledger.Rollout, act ledger.Activity, se search) []stateCount {
	c := ro.Counters
	n := map[ledger.InstanceState]int{
		ledger.Pending: max(0, ro.Total-c.Terminal-act.Held-act.Resetting), ledger.Held: act.Held, ledger.Resetting: act.Resetting,
		ledger.Succeeded: c.Succeeded, ledger.Skipped: c.Skipped, ledger.Failed: c.Failed, ledger.Ambiguous: c.Ambiguous, ledger.Cancelled: c.Cancelled,
	}
	at := se
	at.Page, at.State = 1, ""
	out := []stateCount{{State: "", N: ro.Total, Active: se.State == "", Href: at.Href()}}
	for _, st := range instanceStates {
		if n[st] > 0 || string(st) == se.State {
			at.State = string(st)
			out = append(out, stateCount{State: string(st), N: n[st], Active: string(st) == se.State, Href: at.Href()})
		}
	}
	return out
}

// limitChoices are the page sizes the search form offers, cur among them.
func limitChoices(cur, maxLimit int) []limitChoice {
	ns := []int{cur}
	for _, n := range []int{50, 100, 500, 1000} {
		if n <= maxLimit && n != cur {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	out := make([]limitChoice, len(ns))
	for i, n := range ns {
		out[i] = limitChoice{n, n == cur}
	}
	return out
}

type limitChoice struct {
	N        int
	Selected bool
}

func stateNames() []string {
	out := make([]string, len(instanceStates))
	for i, st := range instanceStates {
		out[i] = string(st)
	}
	return out
}

// instancePath is the page of one instance, both IDs escaped as path
// segments: an ID holding "/", "?" or "#" still names one instance.
func instancePath(rollout, id string) string {
	return "/rollouts/" + url.PathEscape(rollout) + "/instances/" + url.PathEscape(id)
}

type instanceData struct {
	Rollout string
	I       InstanceView
}

// readInstance reads one instance of a rollout with the rollout's spec
// (for its group and target image).
func (s *Server) readInstance(r *http.Request) (*ledger.Rollout, *ledger.Instance, error) {
	id, iid := r.PathValue("id"), r.PathValue("iid")
	spec, st, err := s.cfg.Ledger.Spec(r.Context(), id)
	if err != nil {
		return nil, nil, err
	}
	in, err := s.cfg.Ledger.Instance(r.Context(), id, iid)
	if err != nil {
		return nil, nil, err
	}
	return &ledger.Rollout{ID: id, Spec: spec, State: st}, in, nil
}

func (s *Server) instancePage(w http.ResponseWriter, r *http.Request) {
	id, iid := r.PathValue("id"), r.PathValue("iid")
	ro, in, err := s.readInstance(r)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		s.errorPage(w, http.StatusNotFound, fmt.Sprintf("Rollout %q has no instance %q.", id, iid))
		return
	case err != nil:
		s.log.Error("web: read instance", "rollout", id, "instance_id", iid, "err", err)
		s.errorPage(w, http.StatusBadGateway, "Redis did not answer: the instance cannot be read right now.")
		return
	}
	s.render(w, http.StatusOK, "instance", s.page(in.ID+" · "+ro.ID, "rollouts", instanceData{Rollout: ro.ID, I: instanceView(ro, in)}))
}

func (s *Server) apiInstance(w http.ResponseWriter, r *http.Request) {
	id, iid := r.PathValue("id"), r.PathValue("iid")
	ro, in, err := s.readInstance(r)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such rollout or instance"})
		return
	case err != nil:
		s.log.Error("web: read instance", "rollout", id, "instance_id", iid, "err", err)
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "redis did not answer"})
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Rollout  string       `json:"rollout"`
		Instance InstanceView `json:"instance"`
	}{ro.ID, instanceView(ro, in)})
}
