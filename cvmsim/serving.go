package cvmsim

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// This file makes instances "serve": each one up (RUNNING, not
// reinstalling) may listen on a health endpoint of its own, and the
// simulator records how many reinstalls ran at once.

// HealthPath is the path every instance's health endpoint answers.
const HealthPath = "/healthz"

// healthPollInterval is how often, in real time, the health goroutine
// completes due reinstalls so that listeners reopen without a request
// reading state first. It reads Config.Clock each time, so with a fake
// clock a listener reopens at most this long after the clock moved.
const healthPollInterval = 10 * time.Millisecond

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("cvmsim: server closed")

// healthListener is one instance's open health endpoint.
type healthListener struct {
	srv  *http.Server
	addr string
}

// loopbackIP is the private IP of the instance at index with health
// endpoints on: 127.1.0.1 for the first, counting up, so never 127.0.0.1
// and distinct for the first 16 million instances.
func loopbackIP(index int) string {
	n := index + 1
	return fmt.Sprintf("127.%d.%d.%d", 1+n>>16, (n>>8)&0xff, n&0xff)
}

// Start opens the health endpoints (with Config.HealthPort set; without
// it Start does nothing) and starts the goroutine that reopens them when
// reinstalls end. Endpoints of instances added later open as they are
// added. It fails if a loopback address other than 127.0.0.1 cannot be
// bound (they can on Linux, not by default on macOS) or the port is taken;
// then nothing stays open. Call Close when done.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.cfg.HealthPort == 0 || s.started:
		return nil
	}
	port := s.cfg.HealthPort
	if port < 0 {
		// Pick a port free on the first instance's address; the others
		// are distinct addresses, so the port is almost surely free there.
		ln, err := net.Listen("tcp", net.JoinHostPort(loopbackIP(0), "0"))
		if err != nil {
			return fmt.Errorf("cvmsim: health endpoints: pick a port on %s: %w (loopback addresses other than 127.0.0.1 need Linux)", loopbackIP(0), err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	s.healthPort = port
	s.started = true
	s.healthErr = nil
	now := s.cfg.Clock.Now()
	for _, id := range s.order {
		s.settle(s.instances[id], now)
	}
	if err := s.healthErr; err != nil {
		s.closeHealthLocked()
		s.started = false
		return err
	}
	s.stop = make(chan struct{})
	s.wg.Add(1)
	go s.healthLoop(s.stop)
	return nil
}

// Close closes every health endpoint and its connections and stops the
// goroutine Start started; it returns once they ended. The API handler
// keeps working. Close is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.closeHealthLocked()
	if s.stop != nil {
		close(s.stop)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// closeHealthLocked closes every health endpoint. Guarded by mu.
func (s *Server) closeHealthLocked() {
	for id, h := range s.health {
		h.srv.Close()
		delete(s.health, id)
	}
}

// healthLoop completes due reinstalls every healthPollInterval until stop
// is closed, which reopens their endpoints.
func (s *Server) healthLoop(stop <-chan struct{}) {
	defer s.wg.Done()
	t := time.NewTicker(healthPollInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.mu.Lock()
			now := s.cfg.Clock.Now()
			for _, id := range s.order {
				s.settle(s.instances[id], now)
			}
			s.mu.Unlock()
		}
	}
}

// syncHealth opens or closes in's health endpoint to match whether it is
// up. A listen error is kept in healthErr (Start returns it) and counted.
// Guarded by mu.
func (s *Server) syncHealth(in *instance) {
	if !s.started || s.closed {
		return
	}
	h, open := s.health[in.ID]
	switch want := in.up(); {
	case want && !open:
		addr := net.JoinHostPort(in.lanIP, strconv.Itoa(s.healthPort))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			s.stats.HealthListenErrors++
			if s.healthErr == nil {
				s.healthErr = fmt.Errorf("cvmsim: health endpoint of %s: listen on %s: %w (loopback addresses other than 127.0.0.1 need Linux)", in.ID, addr, err)
			}
			return
		}
		srv := &http.Server{Handler: s.healthHandler(in.ID), ReadHeaderTimeout: 10 * time.Second}
		s.health[in.ID] = &healthListener{srv: srv, addr: addr}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			srv.Serve(ln) // returns when srv is closed
		}()
	case !want && open:
		// Close, not Shutdown: a reinstalling machine drops its
		// connections, keep-alive ones included.
		h.srv.Close()
		delete(s.health, in.ID)
	}
}

// healthHandler answers GET /healthz (and any path ending in /healthz,
// such as /api/healthz) for one instance: 200 "ok <imageId>"
// when healthy, 503 when not. A request that arrives while the instance
// is down (its listener is closing) loses its connection.
func (s *Server) healthHandler(id string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		in := s.instances[id]
		var up, healthy bool
		var image string
		if in != nil {
			s.settle(in, s.cfg.Clock.Now())
			up, healthy, image = in.up(), in.healthy, in.ImageID
		}
		s.mu.Unlock()
		switch {
		case !up:
			hangUp(w)
		case !strings.HasSuffix(r.URL.Path, HealthPath):
			http.NotFound(w, r)
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		case !healthy:
			http.Error(w, "unhealthy "+image, http.StatusServiceUnavailable)
		default:
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, "ok "+image)
		}
	})
}

// Health reports whether instance id is up (RUNNING, not reinstalling:
// its endpoint accepts connections once started) and healthy (its
// endpoint answers 200). Both are false for an unknown instance.
func (s *Server) Health(id string) (up, healthy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if !ok {
		return false, false
	}
	s.settle(in, s.cfg.Clock.Now())
	return in.up(), in.healthy
}

// SetHealthy makes instance id healthy or not from now on, until its next
// successful reinstall decides again. It panics on an unknown instance, a
// programmer error.
func (s *Server) SetHealthy(id string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, found := s.instances[id]
	if !found {
		panic("cvmsim: SetHealthy: unknown instance " + id)
	}
	s.settle(in, s.cfg.Clock.Now())
	in.healthy = ok
}

// HealthPort returns the port health endpoints listen on: Config.HealthPort,
// or the one picked by Start when that was negative; 0 when off.
func (s *Server) HealthPort() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.healthPort != 0 {
		return s.healthPort
	}
	return max(s.cfg.HealthPort, 0)
}

// HealthURL returns the URL of instance id's health endpoint, or "" when
// health endpoints are off, not yet started with a picked port, or the
// instance is unknown.
func (s *Server) HealthURL(id string) string {
	port := s.HealthPort()
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if !ok || port == 0 {
		return ""
	}
	return "http://" + net.JoinHostPort(in.lanIP, strconv.Itoa(port)) + HealthPath
}

// recordConcurrency counts the reinstalls running at now, in just accepted
// included, overall and in its zone, and keeps the maxima. Guarded by mu.
func (s *Server) recordConcurrency(in *instance, now time.Time) {
	total, zone := 0, 0
	for _, id := range s.order {
		o := s.instances[id]
		if o == in || o.operating() && now.Before(o.opEnds) {
			total++
			if o.Zone == in.Zone {
				zone++
			}
		}
	}
	s.stats.MaxConcurrentResets = max(s.stats.MaxConcurrentResets, total)
	s.stats.MaxConcurrentResetsPerZone[in.Zone] = max(s.stats.MaxConcurrentResetsPerZone[in.Zone], zone)
}

// serveHealthyAdmin answers POST /admin/healthy?id=ins-...&ok=true|false.
func (s *Server) serveHealthyAdmin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	ok, err := strconv.ParseBool(q.Get("ok"))
	if err != nil {
		http.Error(w, "want ?id=ins-...&ok=true|false", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	_, known := s.instances[q.Get("id")]
	s.mu.Unlock()
	if !known {
		http.Error(w, "unknown instance", http.StatusNotFound)
		return
	}
	s.SetHealthy(q.Get("id"), ok)
	w.WriteHeader(http.StatusNoContent)
}
