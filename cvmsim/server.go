package cvmsim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"maps"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Paths the simulator serves. Admin paths live under /admin/, which neither
// API generation uses.
const (
	PathV3            = "/"
	PathV2            = "/v2/index.php"
	PathAdminStats    = "/admin/stats"
	PathAdminInstance = "/admin/instances"
	// PathAdminAlert switches an alert: POST ?name=X&firing=true|false.
	PathAdminAlert = "/admin/alert"
	// PathAdminHealthy sets an instance's health: POST ?id=ins-...&ok=true|false.
	PathAdminHealthy = "/admin/healthy"
)

// apiVersion is the only API 3.0 version the simulator speaks.
const apiVersion = "2017-03-12"

// maxBody caps request bodies; the documented cap for POST+TC3 is 10 MB.
const maxBody = 10 << 20

// generation is the API generation a request is answered in.
type generation int

const (
	genV2 generation = iota + 1 // {code,message,codeDesc} bodies
	genV3                       // {"Response":{...}} bodies
)

// Server is the simulated CVM API, an http.Handler serving both API
// generations and the admin endpoints. It is safe for concurrent use.
type Server struct {
	cfg Config // defaults filled; cfg.Faults is unused, see faults

	mu        sync.Mutex
	faults    Faults
	faultRand *rand.Rand // fault dice, so fault draws repeat for a seed
	idRand    *rand.Rand // RequestIds, apart so they do not shift fault draws
	durRand   *rand.Rand // reinstall durations (ResetDurationMax), apart too

	instances map[string]*instance
	order     []string          // instance IDs in the order added
	legacy    map[string]string // v2 qcvm ID -> instance ID
	images    map[string]bool   // nil: any well-formed image exists

	temp       map[string]tempCredential // temporary SecretId -> key, token, expiry
	callRegion string                    // the region of the request being answered
	nonces     map[string]time.Time      // SecretId/Nonce -> arrival
	nonceQueue []nonceEntry
	passed     map[string]map[int64]int // action -> arrival second -> calls let through
	accepted   int                      // accepted resets fleet-wide

	// Health endpoints (serving.go).
	started    bool                       // Start opened the endpoints
	closed     bool                       // Close was called
	healthPort int                        // effective port once started
	healthErr  error                      // first listen error since Start
	health     map[string]*healthListener // instance ID -> open endpoint
	stop       chan struct{}              // closed by Close to end healthLoop
	wg         sync.WaitGroup             // healthLoop and Serve goroutines

	lbs clbState // load balancers (clb.go)
	tat tatState // TAT invocations (tat.go)

	alerts map[string]time.Time // firing alert or policy -> since (alarm.go)

	stats Stats
}

// New returns a simulator with no instances. It panics if cfg does not
// validate (see Config.Validate).
func New(cfg Config) *Server {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:       cfg,
		instances: map[string]*instance{},
		legacy:    map[string]string{},
		nonces:    map[string]time.Time{},
		passed:    map[string]map[int64]int{},
		health:    map[string]*healthListener{},
		alerts:    map[string]time.Time{},
		stats:     newStats(),
	}
	s.lbs = newCLBState(cfg.LoadBalancers)
	if len(cfg.Images) > 0 {
		s.images = map[string]bool{}
		for _, img := range cfg.Images {
			s.images[img] = true
		}
	}
	s.setFaultsLocked(cfg.Faults, true)
	return s
}

// AddInstances adds or replaces instances. It panics on a malformed
// instance, a programmer error.
func (s *Server) AddInstances(ins ...Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, in := range ins {
		if err := in.validate(); err != nil {
			panic(err)
		}
		st := newInstance(in)
		if old, ok := s.instances[in.ID]; ok {
			st.index = old.index
		} else {
			st.index = len(s.order)
			s.order = append(s.order, in.ID)
			s.stats.AcceptedResets[in.ID] = 0
			s.lbs.register(in.ID)
		}
		if s.cfg.HealthPort != 0 {
			st.lanIP = loopbackIP(st.index)
		}
		s.instances[in.ID] = st
		s.legacy[st.legacyID] = in.ID
		s.syncHealth(st)
	}
}

// SetTags replaces the tags of instance id, as an operator tagging it
// in the console would, keeping its image and any operation running. It
// reports whether the instance exists.
func (s *Server) SetTags(id string, tags map[string]string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if ok {
		in.Tags = maps.Clone(tags)
	}
	return ok
}

// SetFaults replaces the injected faults; zero fields take their defaults.
// The random source restarts only when the effective Seed changes.
func (s *Server) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setFaultsLocked(f.withDefaults(), false)
	return nil
}

func (s *Server) setFaultsLocked(f Faults, init bool) {
	if init || f.Seed != s.faults.Seed {
		s.faultRand = rand.New(rand.NewPCG(uint64(f.Seed), 0x5eed_fa17))
		s.idRand = rand.New(rand.NewPCG(uint64(f.Seed), 0x5eed_1d5))
		s.durRand = rand.New(rand.NewPCG(uint64(f.Seed), 0x5eed_d0e5))
	}
	s.faults = f
}

// resetDuration is how long a reinstall accepted now lasts: ResetDuration,
// or a uniform draw up to ResetDurationMax. Guarded by mu.
func (s *Server) resetDuration() time.Duration {
	lo, hi := s.cfg.ResetDuration, s.cfg.ResetDurationMax
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(s.durRand.Int64N(int64(hi-lo)+1))
}

// CurrentFaults returns the faults in force, defaults filled in.
func (s *Server) CurrentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Instance returns the current view of one instance.
func (s *Server) Instance(id string) (InstanceView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if !ok {
		return InstanceView{}, false
	}
	s.settle(in, s.cfg.Clock.Now())
	return in.view(), true
}

// Instances returns the current view of every instance, in the order added.
func (s *Server) Instances() []InstanceView {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock.Now()
	out := make([]InstanceView, 0, len(s.order))
	for _, id := range s.order {
		in := s.instances[id]
		s.settle(in, now)
		out = append(out, in.view())
	}
	return out
}

// settle completes in's operation if due and counts how it ended.
func (s *Server) settle(in *instance, now time.Time) {
	switch in.settle(now) {
	case OperationSuccess:
		s.stats.SucceededResets++
	case OperationFailed:
		s.stats.FailedResets++
	}
	s.syncHealth(in)
}

// ServeHTTP routes API 3.0 (/), legacy v2 (/v2/index.php) and admin
// (/admin/...) requests.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/admin/"):
		s.serveAdmin(w, r)
	case r.URL.Path == PathV3 || r.URL.Path == PathV2:
		s.serveAPI(w, r)
	case r.URL.Path == PathPrometheusQuery:
		s.servePrometheus(w, r)
	default:
		http.NotFound(w, r)
	}
}

// response is an answer computed before it is written, so that a drop
// fault can discard it after the request took effect.
type response struct {
	status      int
	contentType string
	body        []byte
	errCode     string // the Error.Code or codeDesc answered, "" on success

	// err, gen and reqID are set for an error answer built by fail, so
	// that Faults.EchoParams can build it again with a longer message.
	err   *apiErr
	gen   generation
	reqID string
}

// serveAPI applies the transport faults around one API request, in this
// order: latency, 502, drop-before, processing, drop-after.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	arrival := s.cfg.Clock.Now()
	s.mu.Lock()
	s.stats.TotalCalls++
	if secretInQuery(r.URL.RawQuery) {
		s.stats.SecretInURL++
	}
	f := s.faults
	s.mu.Unlock()

	// Read the body first: net/http notices a client hanging up (and
	// cancels r.Context) only once the body is consumed.
	body, bodyErr := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if f.Latency > 0 {
		if err := s.wait(r.Context(), f.Latency); err != nil {
			s.mu.Lock()
			s.stats.Abandoned++
			s.mu.Unlock()
			return // the client is gone; nothing took effect
		}
	}
	s.mu.Lock()
	// Both dice are always thrown (when enabled) so later draws do not
	// depend on which branch was taken.
	serverError := s.roll(f.ServerErrorRate)
	drop := s.roll(f.DropRate)
	if serverError {
		s.stats.ServerErrors++
	} else if drop {
		s.stats.Dropped++
	}
	s.mu.Unlock()
	switch {
	case serverError:
		page := badGatewayHTML
		if pw, ok := echoedPassword(r, body); ok && f.EchoParams {
			page = strings.Replace(page, "</body>", html.EscapeString(echoText(pw))+"\r\n</body>", 1)
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, page)
		return
	case drop && !f.DropAfterApply:
		hangUp(w)
		return
	}
	resp := s.handle(r, body, bodyErr, arrival)
	if resp.err != nil && f.EchoParams {
		if pw, ok := echoedPassword(r, body); ok {
			e := *resp.err
			e.msg += echoText(pw)
			resp = s.fail(resp.gen, resp.reqID, &e)
		}
	}
	if drop {
		hangUp(w)
		return
	}
	if resp.errCode != "" {
		s.mu.Lock()
		s.stats.Errors[resp.errCode]++
		s.mu.Unlock()
	}
	w.Header().Set("Content-Type", resp.contentType)
	w.WriteHeader(resp.status)
	w.Write(resp.body)
}

const badGatewayHTML = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>stgw</center>\r\n</body>\r\n</html>\r\n"

// hangUp closes the connection without an answer. Without a Hijacker
// (HTTP/2, recorders) it aborts the handler, which net/http turns into a
// reset stream or closed connection.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// afterClock is a Clock that can also wait, such as a test's fake clock.
type afterClock interface {
	After(d time.Duration) <-chan time.Time
}

// wait blocks for d on the configured clock, or until ctx ends.
func (s *Server) wait(ctx context.Context, d time.Duration) error {
	var ch <-chan time.Time
	if ac, ok := s.cfg.Clock.(afterClock); ok {
		ch = ac.After(d)
	} else {
		t := time.NewTimer(d)
		defer t.Stop()
		ch = t.C
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cvmsim: latency wait: %w", ctx.Err())
	}
}

// roll throws a die that comes up true with probability p. It draws
// nothing when p is 0, so a disabled fault does not shift other draws.
func (s *Server) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	return s.faultRand.Float64() < p
}

// newRequestID returns a random UUID-shaped RequestId.
func (s *Server) newRequestID() string {
	a, b := s.idRand.Uint64(), s.idRand.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x",
		a>>32, (a>>16)&0xffff, a&0x0fff, 0x8000|(b>>48)&0x3fff, b&0xffffffffffff)
}

// secretInQuery reports whether a URL query carries a password or a secret
// key, which a client must never put in a URL (it ends up in logs).
func secretInQuery(rawQuery string) bool {
	q, _ := url.ParseQuery(rawQuery)
	for name := range q {
		n := strings.ToLower(name)
		if n == "password" || n == "secretkey" || strings.HasSuffix(n, ".password") || strings.HasSuffix(n, "_password") {
			return true
		}
	}
	return false
}

// handle authenticates and executes one API request; err is the error
// reading body, if any.
func (s *Server) handle(r *http.Request, body []byte, err error, arrival time.Time) response {
	gen := genV3
	if r.URL.Path == PathV2 {
		gen = genV2
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// callRegion is set by the dispatch once the request's region is
	// checked, and holds only while the request is answered.
	s.callRegion = ""
	defer func() { s.callRegion = "" }()
	now := s.cfg.Clock.Now()
	reqID := s.newRequestID()
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return s.fail(gen, reqID, newErr(errRequestTooLarge, "request body exceeds %d bytes", maxBody))
		}
		return s.fail(gen, reqID, newErr(errInvalidParameter, "cannot read request body"))
	}
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))

	// TC3: API 3.0 with a JSON body (or GET with a TC3 Authorization).
	if gen == genV3 && (mediaType == "application/json" || strings.HasPrefix(r.Header.Get("Authorization"), tc3Algorithm)) {
		if r.Method != http.MethodPost && r.Method != http.MethodGet {
			return s.fail(gen, reqID, newErr(errUnsupportedProtocol, "method %s is not supported", r.Method))
		}
		return s.serveTC3(r, body, arrival, now, reqID)
	}

	// Everything else is signed with v1/v2 parameters: GET query or POST form.
	var params url.Values
	switch {
	case r.Method == http.MethodGet:
		params, err = url.ParseQuery(r.URL.RawQuery)
	case r.Method == http.MethodPost && mediaType == "application/x-www-form-urlencoded":
		params, err = url.ParseQuery(string(body))
	default:
		return s.fail(gen, reqID, newErr(errUnsupportedProtocol, "use GET with a query, POST with application/x-www-form-urlencoded, or (API 3.0) POST application/json with TC3"))
	}
	if err != nil {
		return s.fail(gen, reqID, newErr(errInvalidParameter, "malformed parameters"))
	}
	// The transitional generation: Version=2017-03-12 on the v2 path is
	// API 3.0 with v1 signing and {"Response":...} bodies.
	if gen == genV3 || params.Get("Version") != "" {
		return s.serveV1(r.Method, r.Host, r.URL.Path, params, arrival, now, reqID)
	}
	return s.serveV2(r.Method, r.Host, params, arrival, now, reqID)
}

// countCall records an authenticated arrival of action.
// countCaller records an authenticated arrival in Stats.CallsBy.
func (s *Server) countCaller(action, region, secretID string, arrival time.Time) {
	k := CallKey(action, region, secretID)
	perSec := s.stats.CallsBy[k]
	if perSec == nil {
		perSec = map[int64]int{}
		s.stats.CallsBy[k] = perSec
	}
	perSec[arrival.Unix()]++
}

func (s *Server) countCall(action string, arrival time.Time) {
	perSec := s.stats.Calls[action]
	if perSec == nil {
		perSec = map[int64]int{}
		s.stats.Calls[action] = perSec
	}
	perSec[arrival.Unix()]++
}

// allow applies the per-second limit of an action to an arrival. Calls are
// counted per whole second of arrival time, like the real service; a
// rejected call does not use up the second's budget.
func (s *Server) allow(action string, limit int, arrival time.Time) bool {
	if limit < 0 {
		return true
	}
	sec := arrival.Unix()
	perSec := s.passed[action]
	if perSec == nil {
		perSec = map[int64]int{}
		s.passed[action] = perSec
	}
	if len(perSec) > 120 {
		// Only recent seconds can still receive arrivals.
		maps.DeleteFunc(perSec, func(k int64, _ int) bool { return k < sec-60 })
	}
	if perSec[sec] >= limit {
		s.stats.RateLimited[action]++
		return false
	}
	perSec[sec]++
	return true
}

// regionOK reports whether region names one of the simulator's regions;
// v2 may use the legacy short code.
func (s *Server) regionOK(gen generation, region string) bool {
	return s.canonRegion(gen, region) != ""
}

// canonRegion returns the simulator's region that region names, or "".
func (s *Server) canonRegion(gen generation, region string) string {
	for _, r := range append([]string{s.cfg.Region}, s.cfg.Regions...) {
		if region == r || (gen == genV2 && region != "" && legacyRegions[r] == region) {
			return r
		}
	}
	return ""
}

// inRegion reports whether in lives in the region of the request being
// answered (any region outside a request).
func (s *Server) inRegion(in *instance) bool {
	return s.callRegion == "" || cmp.Or(in.Region, s.cfg.Region) == s.callRegion
}

// legacyRegions maps regions to the short codes of the old v2 docs.
var legacyRegions = map[string]string{
	"ap-guangzhou": "gz", "ap-shanghai": "sh", "ap-beijing": "bj", "ap-hongkong": "hk",
	"ap-singapore": "sg", "ap-chengdu": "cd", "ap-seoul": "kr", "na-siliconvalley": "usw",
	"na-toronto": "ca", "eu-frankfurt": "de",
}

// listInstances returns the instances in the order added, settled at now,
// filtered by keep.
func (s *Server) listInstances(now time.Time, keep func(*instance) bool) []*instance {
	var out []*instance
	for _, id := range s.order {
		in := s.instances[id]
		s.settle(in, now)
		if s.inRegion(in) && keep(in) {
			out = append(out, in)
		}
	}
	return out
}

// page applies offset and limit to a result list.
func page[T any](all []T, offset, limit int) []T {
	if offset >= len(all) {
		return nil
	}
	return all[offset:min(len(all), offset+limit)]
}

// sortedKeys returns the keys of m in order, for deterministic messages.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
