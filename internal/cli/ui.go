package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fleetreset/fleetreset/metrics"
	"github.com/fleetreset/fleetreset/tasks"
	"github.com/fleetreset/fleetreset/web"
	"github.com/hibiken/asynq"
)

// uiListenDefault keeps the UI on the loopback interface unless told otherwise.
const uiListenDefault = "127.0.0.1:8090"

type uiOpts struct {
	common
	listen  string
	allow   bool
	authEnv string
}

func (o *uiOpts) flags() []flagDef {
	return append(o.common.flags(),
		stringFlag(&o.listen, "listen", uiListenDefault, "address to listen on; anything but loopback exposes every rollout to the network, so add --basic-auth-env"),
		boolFlag(&o.allow, "allow-actions", false, "show and permit the pause, resume, approve, abort and retry-failed buttons, and asynqmon's queue and task actions; beyond loopback only with --basic-auth-env"),
		stringFlag(&o.authEnv, "basic-auth-env", "", "require HTTP basic auth with the user:password held in this environment variable (e.g. FLEETRESET_UI_AUTH)"))
}

func uiCmd(ctx context.Context, env *Env, o *uiOpts) error {
	c, listen, allow, authEnv := &o.common, &o.listen, &o.allow, &o.authEnv
	var basic string
	if *authEnv != "" {
		basic = env.getenv(*authEnv)
		// Name the variable, never its value.
		if u, p, ok := strings.Cut(basic, ":"); !ok || u == "" || p == "" {
			return &ExitError{Code: exitUsage, Err: fmt.Errorf("--basic-auth-env: $%s must hold user:password", *authEnv)}
		}
	}
	// Listen first: the address the socket is bound to, not the text of
	// --listen (a host name, an empty host), says whether it is loopback.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	loopback := isLoopback(ln.Addr())
	if *allow && !loopback && basic == "" {
		// Anyone who reaches the address could abort rollouts and delete
		// or run tasks in asynqmon: refuse rather than warn.
		ln.Close()
		return &ExitError{Code: exitUsage, Err: fmt.Errorf("ui: --allow-actions on %s, which is reachable beyond this machine, needs --basic-auth-env NAME ($NAME holding user:password); "+
			"or listen on 127.0.0.1 and use an SSH tunnel, or drop --allow-actions for a read-only UI", ln.Addr())}
	}
	log := c.logger(env, false)
	cn, err := c.open(ctx)
	if err != nil {
		ln.Close()
		return err
	}
	defer cn.Close()
	q := tasks.QueuesFor(c.namespace)
	insp := asynq.NewInspector(cn.opt)
	defer insp.Close()
	m := metrics.New(metrics.Config{Inspector: insp, Queues: []string{q.Reset, q.Control}, Ledger: cn.ledger, Logger: log, RedisErrors: cn.errs, Webhooks: cn.webhooks(log)})

	var hosts []string
	if loopback {
		// Only names of this machine: a site whose DNS name is rebound to
		// 127.0.0.1 sends its own name and is refused.
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	srv, err := web.New(web.Config{Ledger: cn.ledger, Engine: cn.controller(c.namespace, log), RedisConnOpt: cn.opt, Queues: q,
		AllowActions: *allow, BasicAuth: basic, Hosts: hosts, Metrics: m.Handler(), Logger: log})
	if err != nil {
		ln.Close()
		return err
	}
	defer srv.Close()
	if !loopback && basic == "" {
		// Read-only (actions were refused above): a warning is enough.
		log.Warn("the UI listens beyond this machine without authentication: anyone who reaches it sees every rollout; set --basic-auth-env", "listen", ln.Addr().String())
	}
	mode := "read-only"
	if *allow {
		mode = "actions enabled"
	}
	fmt.Fprintf(env.Stdout, "fleetreset UI at http://%s/ (%s); asynq at /monitoring/, metrics at /metrics\n", ln.Addr(), mode)

	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	sctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("ui: %w", err)
	case <-sctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ui: shutdown: %w", err)
	}
	return nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
