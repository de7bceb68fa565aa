package health

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetreset/fleetreset/rollout"
)

// Defaults and limits of a Prober.
const (
	// MaxInFlightDefault is the number of HTTP/TCP probes (and so sockets)
	// open at once when Prober.MaxInFlight is zero.
	MaxInFlightDefault = 64
	// TimeoutDefault bounds one probe when rollout.Health.Timeout is zero.
	TimeoutDefault = 5 * time.Second
	// AgentBatch is the most instances asked about in one AgentOnline call
	// (DescribeAutomationAgentStatus takes at most 100 IDs).
	AgentBatch = 100
	// bodyLimit is how much of a response body a Body check reads.
	bodyLimit = 64 << 10
)

// TargetHealthReader reads a CLB listener's own view of its targets
// (DescribeTargetHealth). The map has true for each instance the CLB
// reports healthy on l's rule and port; an instance absent from it is not
// healthy. An error means the view could not be read.
type TargetHealthReader interface {
	TargetHealth(ctx context.Context, l rollout.Listener, instanceIDs []string) (map[string]bool, error)
}

// AgentReader reads whether the TAT agent of each instance is online
// (DescribeAutomationAgentStatus). An instance absent from the map is not
// online. It is called with at most AgentBatch IDs.
type AgentReader interface {
	AgentOnline(ctx context.Context, instanceIDs []string) (map[string]bool, error)
}

// Prober runs health checks. The zero value probes HTTP and TCP checks; CLB
// and agent checks need their reader. A Prober is safe for concurrent use
// if its readers are.
type Prober struct {
	// HTTP sends HTTP checks. Its redirect policy is replaced (redirects
	// are never followed) and each request closes its connection.
	// Defaults to a client that ignores proxy settings in the environment
	// (probes go straight to the instance: a proxy's 502 would fail a
	// healthy one), keeps no idle connections, dials with Dialer, and does
	// not verify TLS certificates: like a load balancer's health check, a
	// probe asks whether the service answers, not who it is.
	HTTP *http.Client
	// Dialer opens TCP checks' connections, and the default HTTP client's.
	// Defaults to a zero net.Dialer.
	Dialer *net.Dialer
	// CLB reads target health for clb checks. Without it they are
	// Inconclusive.
	CLB TargetHealthReader
	// Agent reads agent status for tat checks. Without it they are
	// Inconclusive.
	Agent AgentReader
	// MaxInFlight bounds the HTTP and TCP probes running at once across
	// one ProbeAll call. Defaults to MaxInFlightDefault.
	MaxInFlight int
}

// ProbeAll probes every item once with every check of h and returns one
// combined Result per item, in items' order: Fail if any check failed (the
// first failing check's result), else Inconclusive if any check proved
// nothing, else Pass. Each HTTP or TCP probe is bounded by h.Timeout
// (TimeoutDefault when zero); reader calls are bounded by ctx only. When
// ctx ends, probes not yet run are Inconclusive.
func (p *Prober) ProbeAll(ctx context.Context, h rollout.Health, items []Facts) []Result {
	timeout := cmp.Or(h.Timeout, TimeoutDefault)
	per := make([][]Result, len(h.Checks)) // per[check][item]
	for ci := range per {
		per[ci] = make([]Result, len(items))
	}
	var wg sync.WaitGroup
	// Reader calls first, in the background: they wait on the API, not on
	// sockets, and should not queue behind thousands of HTTP probes.
	p.readCLB(ctx, &wg, h.Checks, items, per)
	p.readAgents(ctx, &wg, h.Checks, items, per)

	client := p.httpClient()
	sem := make(chan struct{}, cmp.Or(p.MaxInFlight, MaxInFlightDefault))
	for ci, c := range h.Checks {
		if c.Kind != rollout.CheckHTTP && c.Kind != rollout.CheckTCP {
			continue
		}
		for ii, f := range items {
			// Acquire before starting the goroutine, so that a fleet of
			// 10,000 holds MaxInFlight goroutines and sockets, not 10,000.
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				per[ci][ii] = cancelled(c)
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				per[ci][ii] = p.probeOne(ctx, client, c, timeout, f)
			})
		}
	}
	wg.Wait()
	if p.HTTP == nil {
		client.CloseIdleConnections()
	}

	out := make([]Result, len(items))
	rs := make([]Result, len(h.Checks))
	for ii := range items {
		for ci := range h.Checks {
			rs[ci] = per[ci][ii]
		}
		out[ii] = combine(rs)
	}
	return out
}

// probeOne runs one HTTP or TCP check against one instance.
func (p *Prober) probeOne(ctx context.Context, client *http.Client, c rollout.Check, timeout time.Duration, f Facts) Result {
	if ctx.Err() != nil {
		return cancelled(c)
	}
	tmpl := c.URL
	if c.Kind == rollout.CheckTCP {
		tmpl = c.Address
	}
	target, err := Expand(tmpl, f)
	if err != nil {
		// A plan that cannot address this instance: nothing learnt about it.
		return Result{Verdict: Inconclusive, Check: label(c, tmpl), Detail: oneLine(err.Error())}
	}
	r := Result{Check: label(c, target)}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if c.Kind == rollout.CheckTCP {
		r.Verdict, r.Detail = p.probeTCP(pctx, target)
	} else {
		r.Verdict, r.Detail = probeHTTP(pctx, client, c, target)
	}
	if r.Verdict != Pass {
		// Whatever the probe saw, a caller's cancellation explains it.
		if ctx.Err() != nil {
			r.Verdict, r.Detail = Inconclusive, "probe cancelled"
		} else if rest, ok := strings.CutPrefix(r.Detail, timeoutDetail); ok {
			r.Detail = "timeout after " + timeout.String() + rest
		}
	}
	return r
}

// cancelled is the result of a probe the caller's context stopped.
func cancelled(c rollout.Check) Result {
	return Result{Verdict: Inconclusive, Check: label(c, c.URL+c.Address), Detail: "probe cancelled"}
}

// probeTCP connects to addr and closes the connection at once.
func (p *Prober) probeTCP(ctx context.Context, addr string) (Verdict, string) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return Inconclusive, "address is not host:port"
	}
	conn, err := p.dialer().DialContext(ctx, "tcp", addr)
	if err != nil {
		return classify(err)
	}
	conn.Close()
	return Pass, "connected"
}

// probeHTTP GETs target and judges its status and body.
func probeHTTP(ctx context.Context, client *http.Client, c rollout.Check, target string) (Verdict, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") {
		return Inconclusive, "not an http(s) URL"
	}
	for k, v := range c.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v // Go sends req.Host, not Header["Host"]
			continue
		}
		req.Header.Set(k, v)
	}
	// A fresh connection per probe: a pooled one proves nothing new, and
	// idle ones would hold sockets beyond MaxInFlight.
	req.Close = true
	resp, err := client.Do(req)
	if err != nil {
		return classify(err)
	}
	defer resp.Body.Close()
	if !statusOK(resp.StatusCode, c.Status) {
		return Fail, fmt.Sprintf("status %d, want %s", resp.StatusCode, wantStatus(c.Status))
	}
	if c.Body == "" {
		return Pass, "status " + strconv.Itoa(resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, bodyLimit))
	if err != nil {
		v, d := classify(err)
		return v, d + " reading the body"
	}
	if !bytes.Contains(body, []byte(c.Body)) {
		return Fail, fmt.Sprintf("status %d, body (first %d bytes) lacks %q", resp.StatusCode, len(body), c.Body)
	}
	return Pass, "status " + strconv.Itoa(resp.StatusCode) + ", body ok"
}

// statusOK reports whether code is accepted: in want, or 200-399 when want
// is empty.
func statusOK(code int, want []int) bool {
	if len(want) == 0 {
		return code >= 200 && code < 400
	}
	return slices.Contains(want, code)
}

func wantStatus(want []int) string {
	if len(want) == 0 {
		return "200-399"
	}
	s := make([]string, len(want))
	for i, w := range want {
		s[i] = strconv.Itoa(w)
	}
	return strings.Join(s, " or ")
}

func (p *Prober) dialer() *net.Dialer {
	if p.Dialer != nil {
		return p.Dialer
	}
	return &net.Dialer{}
}

// httpClient returns the client for this call: the caller's, with
// redirects off, or a fresh default one (see Prober.HTTP).
func (p *Prober) httpClient() *http.Client {
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if p.HTTP != nil {
		c := *p.HTTP
		c.CheckRedirect = noRedirect
		return &c
	}
	return &http.Client{
		CheckRedirect: noRedirect,
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       p.dialer().DialContext,
			DisableKeepAlives: true,
			// Many probes answer 1 KiB; a 4 KiB buffer each keeps 64 in
			// flight cheap.
			ReadBufferSize:  4 << 10,
			WriteBufferSize: 4 << 10,
			TLSClientConfig: &tls.Config{
				InsecureSkipVerify: true, // a probe checks liveness, not identity; see Prober.HTTP
			},
		},
	}
}

// readCLB asks the CLB reader, once per distinct listener, about every
// item, and fills per for the clb checks.
func (p *Prober) readCLB(ctx context.Context, wg *sync.WaitGroup, checks []rollout.Check, items []Facts, per [][]Result) {
	byListener := map[rollout.Listener][]int{} // listener → check indexes
	var order []rollout.Listener
	for ci, c := range checks {
		if c.Kind != rollout.CheckCLB {
			continue
		}
		if c.Listener == nil || p.CLB == nil {
			detail := "no CLB reader configured"
			if c.Listener == nil {
				detail = "check has no listener"
			}
			fill(per[ci], Result{Verdict: Inconclusive, Check: label(c, ""), Detail: detail})
			continue
		}
		l := *c.Listener
		if _, ok := byListener[l]; !ok {
			order = append(order, l)
		}
		byListener[l] = append(byListener[l], ci)
	}
	ids := instanceIDs(items)
	for _, l := range order {
		wg.Go(func() {
			healthy, err := p.CLB.TargetHealth(ctx, l, ids)
			for _, ci := range byListener[l] {
				judge(per[ci], items, label(checks[ci], ""), healthy, err,
					"CLB reports it healthy", "CLB reports it unhealthy or not a target", "CLB target health unreadable")
			}
		})
	}
}

// readAgents asks the agent reader about every item, AgentBatch at a time,
// and fills per for the tat checks.
func (p *Prober) readAgents(ctx context.Context, wg *sync.WaitGroup, checks []rollout.Check, items []Facts, per [][]Result) {
	var cis []int
	for ci, c := range checks {
		if c.Kind == rollout.CheckAgent {
			cis = append(cis, ci)
		}
	}
	if len(cis) == 0 {
		return
	}
	if p.Agent == nil {
		for _, ci := range cis {
			fill(per[ci], Result{Verdict: Inconclusive, Check: label(checks[ci], ""), Detail: "no TAT reader configured"})
		}
		return
	}
	where := map[string][]int{} // instance ID → item indexes
	for ii, f := range items {
		where[f.InstanceID] = append(where[f.InstanceID], ii)
	}
	for _, ci := range cis {
		for _, ii := range where[""] {
			per[ci][ii] = verdictFromMap(label(checks[ci], ""), "", nil, nil, "", "", "")
		}
	}
	for batch := range slices.Chunk(instanceIDs(items), AgentBatch) {
		wg.Go(func() {
			online, err := p.Agent.AgentOnline(ctx, batch)
			// Each batch writes only its own instances' items.
			for _, id := range batch {
				for _, ii := range where[id] {
					for _, ci := range cis {
						per[ci][ii] = verdictFromMap(label(checks[ci], ""), id, online, err,
							"agent Online", "agent Offline or unknown", "agent status unreadable")
					}
				}
			}
		})
	}
}

// judge fills rs, one per item, from a reader's answer.
func judge(rs []Result, items []Facts, check string, ok map[string]bool, err error, pass, fail, unreadable string) {
	for ii, f := range items {
		rs[ii] = verdictFromMap(check, f.InstanceID, ok, err, pass, fail, unreadable)
	}
}

func verdictFromMap(check, id string, ok map[string]bool, err error, pass, fail, unreadable string) Result {
	switch {
	case err != nil:
		// A reader's error says nothing about the instance. Its text comes
		// from our API client, which keeps secrets out of errors.
		return Result{Verdict: Inconclusive, Check: check, Detail: oneLine(unreadable + ": " + err.Error())}
	case id == "":
		return Result{Verdict: Inconclusive, Check: check, Detail: "no instance ID"}
	case ok[id]:
		return Result{Verdict: Pass, Check: check, Detail: pass}
	default:
		return Result{Verdict: Fail, Check: check, Detail: fail}
	}
}

func fill(rs []Result, r Result) {
	for i := range rs {
		rs[i] = r
	}
}

// instanceIDs lists items' distinct, non-empty instance IDs in order.
func instanceIDs(items []Facts) []string {
	seen := make(map[string]bool, len(items))
	ids := make([]string, 0, len(items))
	for _, f := range items {
		if f.InstanceID != "" && !seen[f.InstanceID] {
			seen[f.InstanceID] = true
			ids = append(ids, f.InstanceID)
		}
	}
	return ids
}
