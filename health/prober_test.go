package health_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetreset/fleetreset/health"
	"github.com/fleetreset/fleetreset/rollout"
)

// probeTimeout bounds each probe in these tests; the hanging servers are
// cut off by it.
const probeTimeout = 300 * time.Millisecond

// server starts an httptest server with h and returns its base URL.
func server(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// closedAddr returns a loopback address nothing listens on: connecting to
// it is refused.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// resetAddr returns the address of a server that reads a little of each
// connection and then resets it (RST, not FIN).
func resetAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 16)
			io.ReadFull(c, buf) // the request has started: the reset hits the read
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	})
	return ln.Addr().String()
}

// probe runs one check against one instance.
func probe(t *testing.T, p *health.Prober, c rollout.Check, f health.Facts) health.Result {
	t.Helper()
	h := rollout.Health{Checks: []rollout.Check{c}, Timeout: probeTimeout}
	rs := p.ProbeAll(t.Context(), h, []health.Facts{f})
	if len(rs) != 1 {
		t.Fatalf("ProbeAll returned %d results; want 1", len(rs))
	}
	return rs[0]
}

func TestProbeHTTP(t *testing.T) {
	t.Parallel()
	ok := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Probe") != "yes" && r.URL.Path == "/headers" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if r.URL.Path == "/headers" && r.Host != "web.internal" {
			w.WriteHeader(http.StatusMisdirectedRequest)
			return
		}
		io.WriteString(w, "status: ok")
	})
	unavailable := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	var redirectFollowed atomic.Bool
	redirect := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/target" {
			redirectFollowed.Store(true)
			return
		}
		http.Redirect(w, r, "/target", http.StatusFound)
	})
	hang := server(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // until the prober gives up
	})
	slowBody := server(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(tlsSrv.Close)
	// The server from the instance's facts: {privateIp} and the port.
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(ok, "http://"))
	f := health.Facts{InstanceID: "ins-1", PrivateIP: host}

	tests := []struct {
		name       string
		check      rollout.Check
		want       health.Verdict
		wantDetail string
	}{
		{name: "ok_template", check: rollout.Check{Kind: "http", URL: "http://{privateIp}:" + port + "/healthz"}, want: health.Pass, wantDetail: "status 200"},
		{name: "https_self_signed", check: rollout.Check{Kind: "http", URL: tlsSrv.URL}, want: health.Pass, wantDetail: "status 200"}, // liveness, not identity
		{name: "body_found", check: rollout.Check{Kind: "http", URL: ok, Body: "ok"}, want: health.Pass, wantDetail: "body ok"},
		{name: "headers_sent", check: rollout.Check{Kind: "http", URL: ok + "/headers", Headers: map[string]string{"X-Probe": "yes", "Host": "web.internal"}}, want: health.Pass},
		{name: "body_missing", check: rollout.Check{Kind: "http", URL: ok, Body: "ready"}, want: health.Fail, wantDetail: `lacks "ready"`},
		{name: "wrong_status", check: rollout.Check{Kind: "http", URL: unavailable}, want: health.Fail, wantDetail: "status 503, want 200-399"},
		{name: "status_listed", check: rollout.Check{Kind: "http", URL: unavailable, Status: []int{503}}, want: health.Pass},
		{name: "status_not_listed", check: rollout.Check{Kind: "http", URL: ok, Status: []int{204}}, want: health.Fail, wantDetail: "status 200, want 204"},
		{name: "redirect_judged_not_followed", check: rollout.Check{Kind: "http", URL: redirect}, want: health.Pass, wantDetail: "status 302"},
		{name: "redirect_not_accepted", check: rollout.Check{Kind: "http", URL: redirect, Status: []int{200}}, want: health.Fail, wantDetail: "status 302"},
		{name: "refused", check: rollout.Check{Kind: "http", URL: "http://" + closedAddr(t) + "/"}, want: health.Fail, wantDetail: "connection refused"},
		{name: "reset", check: rollout.Check{Kind: "http", URL: "http://" + resetAddr(t) + "/"}, want: health.Fail, wantDetail: "connection reset"},
		{name: "timeout", check: rollout.Check{Kind: "http", URL: hang}, want: health.Fail, wantDetail: "timeout after 300ms"},
		{name: "timeout_in_body", check: rollout.Check{Kind: "http", URL: slowBody, Body: "done"}, want: health.Fail, wantDetail: "timeout after 300ms"},
		{name: "dns_failure", check: rollout.Check{Kind: "http", URL: "http://no-such-host.invalid/"}, want: health.Inconclusive, wantDetail: "DNS lookup of no-such-host.invalid"},
		{name: "prober_network", check: rollout.Check{Kind: "http", URL: "http://255.255.255.255/"}, want: health.Inconclusive, wantDetail: "prober network: network is unreachable"}, // the local stack refuses a broadcast connect
		{name: "empty_fact", check: rollout.Check{Kind: "http", URL: "http://{publicIp}/"}, want: health.Inconclusive, wantDetail: "{publicIp}"},
		{name: "not_http", check: rollout.Check{Kind: "http", URL: "ftp://{privateIp}/"}, want: health.Inconclusive, wantDetail: "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := probe(t, &health.Prober{}, tt.check, f)
			if got.Verdict != tt.want || !strings.Contains(got.Detail, tt.wantDetail) {
				t.Errorf("probe = %v; want %s with detail containing %q", got, tt.want, tt.wantDetail)
			}
			if strings.ContainsAny(got.Detail, "\n\r") {
				t.Errorf("detail %q is not one line", got.Detail)
			}
		})
	}
	if redirectFollowed.Load() {
		t.Error("the prober followed a redirect; a 3xx must be judged as it is")
	}
}

func TestProbeTCP(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	f := health.Facts{InstanceID: "ins-1", PrivateIP: "127.0.0.1"}

	tests := []struct {
		name       string
		address    string
		want       health.Verdict
		wantDetail string
	}{
		{name: "connect", address: "{privateIp}:" + port, want: health.Pass, wantDetail: "connected"}, // the kernel completes the handshake; no Accept needed
		{name: "refused", address: closedAddr(t), want: health.Fail, wantDetail: "connection refused"},
		{name: "prober_network", address: "255.255.255.255:80", want: health.Inconclusive, wantDetail: "network is unreachable"},
		{name: "dns_failure", address: "no-such-host.invalid:22", want: health.Inconclusive, wantDetail: "DNS lookup"},
		{name: "not_host_port", address: "{privateIp}", want: health.Inconclusive, wantDetail: "host:port"},
		{name: "unknown_placeholder", address: "{ip}:22", want: health.Inconclusive, wantDetail: "{ip}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := probe(t, &health.Prober{}, rollout.Check{Kind: "tcp", Address: tt.address}, f)
			if got.Verdict != tt.want || !strings.Contains(got.Detail, tt.wantDetail) {
				t.Errorf("probe(%s) = %v; want %s with detail containing %q", tt.address, got, tt.want, tt.wantDetail)
			}
		})
	}
}

// TestProbeSecrets: credentials in a check's URL reach the server but
// never a Result, whether the probe passes or fails.
func TestProbeSecrets(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-Pa55"
	var gotAuth atomic.Bool
	ok := server(t, func(w http.ResponseWriter, r *http.Request) {
		_, pw, _ := r.BasicAuth()
		gotAuth.Store(pw == secret && r.URL.Query().Get("token") == secret)
	})
	for _, base := range []string{ok, "http://" + closedAddr(t)} {
		u := strings.Replace(base, "http://", "http://probe:"+secret+"@", 1) + "/healthz?token=" + secret
		got := probe(t, &health.Prober{}, rollout.Check{Kind: "http", URL: u}, facts)
		if s := fmt.Sprintf("%+v", got); strings.Contains(s, secret) {
			t.Errorf("result %s holds the secret", s)
		}
	}
	if !gotAuth.Load() {
		t.Error("the server did not get the URL's credentials")
	}
}

// TestProbeAllBoundsSockets: however many instances, no more than
// MaxInFlight probes are open at once, and the bound is actually used.
func TestProbeAllBoundsSockets(t *testing.T) {
	t.Parallel()
	const maxInFlight, n = 4, 40
	var cur, peak atomic.Int64
	full := make(chan struct{})
	var once sync.Once
	url := server(t, func(w http.ResponseWriter, r *http.Request) {
		now := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
		if now == maxInFlight {
			once.Do(func() { close(full) })
		}
		// The first probes wait for each other, so the bound is reached.
		select {
		case <-full:
		case <-r.Context().Done():
		}
	})
	items := make([]health.Facts, n)
	for i := range items {
		items[i] = health.Facts{InstanceID: "ins-" + strconv.Itoa(i)}
	}
	h := rollout.Health{Checks: []rollout.Check{{Kind: "http", URL: url + "/{instanceId}"}}, Timeout: 10 * time.Second}
	rs := (&health.Prober{MaxInFlight: maxInFlight}).ProbeAll(t.Context(), h, items)
	for i, r := range rs {
		if r.Verdict != health.Pass {
			t.Errorf("item %d = %v; want pass", i, r)
		}
	}
	if got := peak.Load(); got != maxInFlight {
		t.Errorf("peak probes in flight = %d; want %d", got, maxInFlight)
	}
}

// TestProbeAllCancelled: a caller's cancellation makes probes
// Inconclusive, not failures, even those already waiting on a server.
func TestProbeAllCancelled(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	url := server(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()
	h := rollout.Health{Checks: []rollout.Check{{Kind: "http", URL: url}, {Kind: "tcp", Address: closedAddr(t)}}, Timeout: time.Minute}
	items := []health.Facts{{InstanceID: "ins-1"}, {InstanceID: "ins-2"}}
	rs := (&health.Prober{MaxInFlight: 1}).ProbeAll(ctx, h, items)
	for i, r := range rs {
		if r.Verdict != health.Inconclusive || r.Detail != "probe cancelled" {
			t.Errorf("item %d = %v; want inconclusive: probe cancelled", i, r)
		}
	}
}

// readers are fakes for the cloud readers (the real ones are the cvm
// client's, tested there). They record the IDs of every call.
type clbFake struct {
	mu      sync.Mutex
	calls   []string // listener IDs
	sizes   []int
	healthy func(id string) bool
	err     error
}

func (f *clbFake) TargetHealth(ctx context.Context, l rollout.Listener, ids []string) (map[string]bool, error) {
	f.mu.Lock()
	f.calls = append(f.calls, l.ListenerID)
	f.sizes = append(f.sizes, len(ids))
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	m := map[string]bool{}
	for _, id := range ids {
		if f.healthy(id) {
			m[id] = true
		}
	}
	return m, nil
}

type agentFake struct {
	mu     sync.Mutex
	sizes  []int
	online func(id string) bool
	err    error
}

func (f *agentFake) AgentOnline(ctx context.Context, ids []string) (map[string]bool, error) {
	f.mu.Lock()
	f.sizes = append(f.sizes, len(ids))
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = f.online(id) // false entries are as good as absent
	}
	return m, nil
}

func TestProbeAllBatchesReaders(t *testing.T) {
	t.Parallel()
	const n = 250
	items := make([]health.Facts, n)
	for i := range items {
		items[i] = health.Facts{InstanceID: fmt.Sprintf("ins-%03d", i)}
	}
	num := func(id string) int { i, _ := strconv.Atoi(strings.TrimPrefix(id, "ins-")); return i }
	clb := &clbFake{healthy: func(id string) bool { return num(id)%2 == 0 }}
	agent := &agentFake{online: func(id string) bool { return num(id)%3 != 0 }}
	l1 := &rollout.Listener{LoadBalancerID: "lb-1", ListenerID: "lbl-1", Port: 80}
	l2 := &rollout.Listener{LoadBalancerID: "lb-1", ListenerID: "lbl-2", Port: 443}
	h := rollout.Health{Checks: []rollout.Check{
		{Kind: "tat"},
		{Kind: "clb", Listener: l1},
		{Kind: "clb", Listener: &rollout.Listener{LoadBalancerID: "lb-1", ListenerID: "lbl-1", Port: 80}}, // same listener: no second call
		{Kind: "clb", Listener: l2},
		{Kind: "tat"},
	}}
	rs := (&health.Prober{CLB: clb, Agent: agent}).ProbeAll(t.Context(), h, items)

	slices.Sort(clb.calls)
	if want := []string{"lbl-1", "lbl-2"}; !slices.Equal(clb.calls, want) || !slices.Equal(clb.sizes, []int{n, n}) {
		t.Errorf("TargetHealth calls = %v with %v IDs; want %v with %d each", clb.calls, clb.sizes, want, n)
	}
	slices.Sort(agent.sizes)
	if want := []int{50, 100, 100}; !slices.Equal(agent.sizes, want) {
		t.Errorf("AgentOnline batch sizes = %v; want %v", agent.sizes, want)
	}
	for i, r := range rs {
		var want health.Result
		switch {
		case i%3 == 0: // the agent check comes first
			want = health.Result{Verdict: health.Fail, Check: "tat agent", Detail: "agent Offline or unknown"}
		case i%2 != 0:
			want = health.Result{Verdict: health.Fail, Check: "clb lb-1/lbl-1:80", Detail: "CLB reports it unhealthy or not a target"}
		default:
			want = health.Result{Verdict: health.Pass, Check: "tat agent, clb lb-1/lbl-1:80, clb lb-1/lbl-1:80, clb lb-1/lbl-2:443, tat agent", Detail: "agent Online; CLB reports it healthy; CLB reports it healthy; CLB reports it healthy; agent Online"}
		}
		if r != want {
			t.Errorf("item %d = %+v; want %+v", i, r, want)
		}
	}
}

func TestProbeAllCombines(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	up := rollout.Check{Kind: "tcp", Address: ln.Addr().String()}
	down := rollout.Check{Kind: "tcp", Address: closedAddr(t)}
	broken := &agentFake{err: errors.New("cvm: DescribeAutomationAgentStatus: RequestLimitExceeded")}
	lis := &rollout.Listener{LoadBalancerID: "lb-1", ListenerID: "lbl-1", Port: 80}
	tests := []struct {
		name       string
		prober     *health.Prober
		checks     []rollout.Check
		want       health.Verdict
		wantDetail string
	}{
		{name: "all_pass", prober: &health.Prober{}, checks: []rollout.Check{up, up}, want: health.Pass, wantDetail: "connected; connected"},
		{name: "no_checks", prober: &health.Prober{}, checks: nil, want: health.Pass, wantDetail: "no checks"},
		{name: "fail_beats_inconclusive", prober: &health.Prober{Agent: broken}, checks: []rollout.Check{{Kind: "tat"}, up, down}, want: health.Fail, wantDetail: "connection refused"},
		{name: "inconclusive_beats_pass", prober: &health.Prober{Agent: broken}, checks: []rollout.Check{up, {Kind: "tat"}}, want: health.Inconclusive, wantDetail: "agent status unreadable: cvm: DescribeAutomationAgentStatus: RequestLimitExceeded"},
		{name: "clb_reader_error", prober: &health.Prober{CLB: &clbFake{err: errors.New("cvm: DescribeTargetHealth: timeout")}}, checks: []rollout.Check{{Kind: "clb", Listener: lis}}, want: health.Inconclusive, wantDetail: "CLB target health unreadable"},
		{name: "no_clb_reader", prober: &health.Prober{}, checks: []rollout.Check{{Kind: "clb", Listener: lis}}, want: health.Inconclusive, wantDetail: "no CLB reader"},
		{name: "no_agent_reader", prober: &health.Prober{}, checks: []rollout.Check{{Kind: "tat"}}, want: health.Inconclusive, wantDetail: "no TAT reader"},
		{name: "clb_without_listener", prober: &health.Prober{CLB: &clbFake{}}, checks: []rollout.Check{{Kind: "clb"}}, want: health.Inconclusive, wantDetail: "no listener"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := rollout.Health{Checks: tt.checks, Timeout: probeTimeout}
			rs := tt.prober.ProbeAll(t.Context(), h, []health.Facts{{InstanceID: "ins-1"}, {InstanceID: "ins-2"}})
			for i, r := range rs {
				if r.Verdict != tt.want || !strings.Contains(r.Detail, tt.wantDetail) {
					t.Errorf("item %d = %v; want %s with detail containing %q", i, r, tt.want, tt.wantDetail)
				}
			}
		})
	}
}
