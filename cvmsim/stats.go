package cvmsim

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"time"
)

// Stats is what the simulator observed, for tests and the admin endpoint.
// Maps are never nil in a value returned by Server.Stats.
type Stats struct {
	// TotalCalls counts every API request received, whatever its fate.
	TotalCalls int `json:"total_calls"`
	// Calls counts arrivals that passed authentication: action name as
	// received (e.g. "ResetInstance", "ResetInstances", "DescribeInstances")
	// → Unix second of arrival → count. Rate-limited calls are included.
	Calls map[string]map[int64]int `json:"calls"`
	// MaxCallsPerSecond is the largest per-second count in Calls, per action.
	MaxCallsPerSecond map[string]int `json:"max_calls_per_second"`
	// CallsBy counts the same arrivals per caller: CallKey (action, the
	// region the request named and its SecretId) → Unix second → count.
	CallsBy map[string]map[int64]int `json:"calls_by"`
	// AcceptedResets maps every known instance to its number of accepted
	// resets, zero included: "every instance reset exactly once" is every
	// value being 1.
	AcceptedResets map[string]int `json:"accepted_resets"`
	// ResetTimes lists, per instance, the arrival time of each accepted reset.
	ResetTimes map[string][]time.Time `json:"reset_times"`
	// SucceededResets and FailedResets count reinstalls that have ended by
	// the time Stats was called.
	SucceededResets int `json:"succeeded_resets"`
	FailedResets    int `json:"failed_resets"`
	// RateLimited counts RequestLimitExceeded answers per action.
	RateLimited map[string]int `json:"rate_limited"`
	// Errors counts error answers by the code answered: API 3.0 Error.Code,
	// or the v2 codeDesc.
	Errors map[string]int `json:"errors"`
	// SignatureRejected counts wrong signatures.
	SignatureRejected int `json:"signature_rejected"`
	// TokenRejected counts temporary credentials refused for a wrong or
	// expired token (see Server.AcceptCredentials).
	TokenRejected int `json:"token_rejected"`
	// ReplayRejected counts reused nonces.
	ReplayRejected int `json:"replay_rejected"`
	// ExpiredRejected counts timestamps outside the replay window.
	ExpiredRejected int `json:"expired_rejected"`
	// SecretInURL counts requests whose URL query carried a password or a
	// SecretKey parameter (password, Password, LoginSettings.Password,
	// SecretKey, ...): a client bug, since URLs end up in logs.
	SecretInURL int `json:"secret_in_url"`
	// ServerErrors counts injected HTTP 502 answers.
	ServerErrors int `json:"server_errors"`
	// Dropped counts connections closed without an answer.
	Dropped int `json:"dropped"`
	// Abandoned counts requests whose client went away during Latency.
	Abandoned int `json:"abandoned"`
	// MaxConcurrentResets is the largest number of reinstalls running at
	// once, and MaxConcurrentResetsPerZone the same per zone, both taken
	// when a reset is accepted.
	MaxConcurrentResets        int            `json:"max_concurrent_resets"`
	MaxConcurrentResetsPerZone map[string]int `json:"max_concurrent_resets_per_zone"`
	// HealthListenErrors counts health endpoints that could not be opened.
	HealthListenErrors int `json:"health_listen_errors"`
}

func newStats() Stats {
	return Stats{
		Calls:             map[string]map[int64]int{},
		MaxCallsPerSecond: map[string]int{},
		CallsBy:           map[string]map[int64]int{},
		AcceptedResets:    map[string]int{},
		ResetTimes:        map[string][]time.Time{},
		RateLimited:       map[string]int{},
		Errors:            map[string]int{},

		MaxConcurrentResetsPerZone: map[string]int{},
	}
}

// ResetCountHistogram maps a number of accepted resets to how many
// instances had it; {1: n} means every one of n instances was reset once.
func (st Stats) ResetCountHistogram() map[int]int {
	h := map[int]int{}
	for _, n := range st.AcceptedResets {
		h[n]++
	}
	return h
}

// Stats returns a deep copy of the counters, with operations that are due
// completed first.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock.Now()
	for _, id := range s.order {
		s.settle(s.instances[id], now)
	}
	st := s.stats
	st.Calls = map[string]map[int64]int{}
	st.MaxCallsPerSecond = map[string]int{}
	for action, perSec := range s.stats.Calls {
		st.Calls[action] = maps.Clone(perSec)
		st.MaxCallsPerSecond[action] = slices.Max(slices.Collect(maps.Values(perSec)))
	}
	st.CallsBy = map[string]map[int64]int{}
	for k, perSec := range s.stats.CallsBy {
		st.CallsBy[k] = maps.Clone(perSec)
	}
	st.AcceptedResets = maps.Clone(s.stats.AcceptedResets)
	st.ResetTimes = map[string][]time.Time{}
	for id, ts := range s.stats.ResetTimes {
		st.ResetTimes[id] = slices.Clone(ts)
	}
	st.RateLimited = maps.Clone(s.stats.RateLimited)
	st.Errors = maps.Clone(s.stats.Errors)
	st.MaxConcurrentResetsPerZone = maps.Clone(s.stats.MaxConcurrentResetsPerZone)
	return st
}

// serveAdmin answers the unauthenticated admin endpoints.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	var v any
	switch r.URL.Path {
	case PathAdminAlert:
		s.serveAlertAdmin(w, r)
		return
	case PathAdminHealthy:
		s.serveHealthyAdmin(w, r)
		return
	case PathAdminStats:
		v = s.Stats()
	case PathAdminInstance:
		v = s.Instances()
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// CallKey names a caller's calls of one action in Stats.CallsBy.
func CallKey(action, region, secretID string) string {
	return action + " " + region + " " + secretID
}

// MaxPerSecond is the largest per-second count of action's calls in region
// under secretID (Stats.CallsBy), 0 when there were none.
func (st Stats) MaxPerSecond(action, region, secretID string) int {
	n := 0
	for _, c := range st.CallsBy[CallKey(action, region, secretID)] {
		n = max(n, c)
	}
	return n
}
