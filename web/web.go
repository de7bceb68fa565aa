package web

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
)

// Paths the handler serves.
const (
	// PathMonitoring is where asynqmon is mounted (with a trailing slash).
	PathMonitoring = "/monitoring/"
	// PathMetrics serves Config.Metrics.
	PathMetrics = "/metrics"
)

// RefreshDefault is how often the pages refresh themselves.
const RefreshDefault = 3 * time.Second

// MaxInstanceRowsDefault caps the page size of the instance table and of
// the JSON API.
const MaxInstanceRowsDefault = ledger.PageLimitMax

// Config configures the UI.
type Config struct {
	// Ledger is read for every page. Required.
	Ledger *ledger.Ledger
	// Engine carries out the buttons. Required when AllowActions.
	Engine *engine.Engine
	// RedisConnOpt is the Redis of the asynq queues, for asynqmon under
	// /monitoring/.
	// Defaults to nil: no asynq UI.
	RedisConnOpt asynq.RedisConnOpt
	// Queues names the namespace's queues, for links into asynqmon.
	// Defaults to the Engine's queues, else tasks.QueuesFor("").
	Queues tasks.Queues
	// AllowActions shows and permits pause, resume, approve, abort and
	// retry-failed, and lets asynqmon change queues and tasks.
	// Defaults to false: everything is read-only.
	AllowActions bool
	// BasicAuth, as "user:password", requires HTTP basic auth on every path.
	// Defaults to "": no authentication (bind to 127.0.0.1 then).
	BasicAuth string
	// Hosts, when set, are the only host names (without port) that requests
	// may name in their Host header; others get 421. Set it to the loopback
	// names when serving on 127.0.0.1 to defeat DNS rebinding.
	// Defaults to nil: any Host.
	Hosts []string
	// Metrics, when set, is served at /metrics.
	Metrics http.Handler
	// Refresh is how often pages refresh themselves. Defaults to RefreshDefault.
	Refresh time.Duration
	// MaxInstanceRows caps the page size (the limit parameter) of the
	// instance table of a rollout page and of /api/rollouts/NAME, at most
	// ledger.PageLimitMax. Defaults to MaxInstanceRowsDefault.
	MaxInstanceRows int
	// Logger logs actions and errors. Defaults to a discarding logger.
	Logger *slog.Logger
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Server is the UI's http.Handler.
type Server struct {
	cfg     Config
	log     *slog.Logger
	pages   map[string]*template.Template
	handler http.Handler
	mon     *asynqmon.HTTPHandler
	// failCache spares each refresh the search for failed instances.
	failCache failuresCache
}

// New checks cfg and returns the UI handler.
func New(cfg Config) (*Server, error) {
	if cfg.Ledger == nil {
		return nil, errors.New("web: Config.Ledger is required")
	}
	if cfg.AllowActions && cfg.Engine == nil {
		return nil, errors.New("web: Config.Engine is required with AllowActions")
	}
	if cfg.BasicAuth != "" {
		if u, p, ok := strings.Cut(cfg.BasicAuth, ":"); !ok || u == "" || p == "" {
			// Never echo the value: it is a password.
			return nil, errors.New("web: Config.BasicAuth must be user:password")
		}
	}
	if cfg.Queues == (tasks.Queues{}) {
		if cfg.Engine != nil {
			cfg.Queues = cfg.Engine.Queues()
		} else {
			cfg.Queues = tasks.QueuesFor("")
		}
	}
	cfg.Refresh = cmp.Or(cfg.Refresh, RefreshDefault)
	cfg.MaxInstanceRows = min(cmp.Or(cfg.MaxInstanceRows, MaxInstanceRowsDefault), ledger.PageLimitMax)
	s := &Server{cfg: cfg, log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))}
	var err error
	if s.pages, err = parseTemplates(); err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, http.FileServerFS(static))))
	mux.HandleFunc("GET /{$}", s.listPage)
	mux.HandleFunc("GET /rollouts/{id}", s.rolloutPage)
	mux.HandleFunc("GET /rollouts/{id}/instances/{iid}", s.instancePage)
	mux.HandleFunc("POST /rollouts/{id}/{action}", s.action)
	mux.HandleFunc("GET /api/rollouts", s.apiList)
	mux.HandleFunc("GET /api/rollouts/{id}", s.apiRollout)
	mux.HandleFunc("GET /api/rollouts/{id}/instances/{iid}", s.apiInstance)
	mux.HandleFunc(PathCompleteHook, s.completeHook)
	mux.HandleFunc("GET /healthz", s.healthz)
	if cfg.Metrics != nil {
		mux.Handle("GET "+PathMetrics, cfg.Metrics)
	}
	if cfg.RedisConnOpt != nil {
		s.mon = asynqmon.New(asynqmon.Options{
			RootPath:     strings.TrimSuffix(PathMonitoring, "/"),
			RedisConnOpt: cfg.RedisConnOpt,
			ReadOnly:     !cfg.AllowActions,
			// Payloads hold IDs only, but show even those through the one
			// function that knows which fields exist: an unknown field of a
			// future or foreign task is never shown.
			PayloadFormatter: asynqmon.PayloadFormatterFunc(tasks.Describe),
			// Our tasks write no results; never show bytes we did not write.
			ResultFormatter: asynqmon.ResultFormatterFunc(func(_ string, b []byte) string {
				if len(b) == 0 {
					return ""
				}
				return fmt.Sprintf("(%d bytes, not shown)", len(b))
			}),
		})
		mux.Handle(PathMonitoring, s.mon)
		mux.Handle("GET "+strings.TrimSuffix(PathMonitoring, "/"), http.RedirectHandler(PathMonitoring, http.StatusMovedPermanently))
	}

	var h http.Handler = mux
	h = http.NewCrossOriginProtection().Handler(h)
	h = securityHeaders(h)
	if cfg.BasicAuth != "" {
		h = basicAuth(cfg.BasicAuth, h)
	}
	if len(cfg.Hosts) > 0 {
		h = hostCheck(cfg.Hosts, h)
	}
	s.handler = h
	return s, nil
}

// ServeHTTP serves the UI.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Close releases asynqmon's Redis connections.
func (s *Server) Close() error {
	if s.mon != nil {
		return s.mon.Close()
	}
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Ledger.Redis().Ping(r.Context()).Err(); err != nil {
		s.log.Warn("healthz: redis does not answer", "err", err)
		http.Error(w, "redis does not answer", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// basicAuth requires user:pass. Both are compared in constant time, through
// their hashes so that their lengths do not leak either.
func basicAuth(userPass string, next http.Handler) http.Handler {
	wantUser, wantPass, _ := strings.Cut(userPass, ":")
	wu, wp := sha256.Sum256([]byte(wantUser)), sha256.Sum256([]byte(wantPass))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		gu, gp := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		userOK := subtle.ConstantTimeCompare(gu[:], wu[:]) == 1
		passOK := subtle.ConstantTimeCompare(gp[:], wp[:]) == 1
		if !ok || !userOK || !passOK {
			w.Header().Set("WWW-Authenticate", `Basic realm="fleetreset", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostCheck refuses requests naming a host other than hosts: a web page
// whose DNS name was rebound to 127.0.0.1 still sends its own name.
func hostCheck(hosts []string, next http.Handler) http.Handler {
	ok := map[string]bool{}
	for _, h := range hosts {
		ok[strings.ToLower(strings.Trim(h, "[]"))] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !ok[strings.ToLower(strings.Trim(host, "[]"))] {
			http.Error(w, "unexpected Host header; open the UI by the address it listens on", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// securityHeaders sets headers for every answer, and a strict content
// security policy for our own pages (asynqmon's page has inline scripts).
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, PathMonitoring) {
			h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; "+
				"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		}
		next.ServeHTTP(w, r)
	})
}

func cacheFor(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(d.Seconds())))
		next.ServeHTTP(w, r)
	})
}
