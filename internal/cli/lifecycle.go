package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/cvm"
	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/journal"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/planner"
	"github.com/fleetreset/fleetreset/tasks"
)

// errInterrupted is returned by watch when ctx ends: Ctrl-C or SIGTERM.
var errInterrupted = errors.New("interrupted")

// interruptedReason is the pause reason of a rollout whose `run` was
// stopped by a signal. It is seen only if the process dies before it can
// resume the rollout in Redis (a second signal, SIGKILL during the drain).
const interruptedReason = "fleetreset run was stopped (Ctrl-C or SIGTERM) before the rollout finished; resume it, then run the same command"

// drainPoll is how often drain looks at the ledger.
const drainPoll = 250 * time.Millisecond

// drain waits, up to limit, until no instance of rollout id is in flight:
// called (a handler is in its API call) or resetting (the cloud accepted
// the reinstall, verification has not seen it end). The workers must still
// run: they verify. It says so when it waits, and when it gives up.
func drain(ctx context.Context, out io.Writer, l *ledger.Ledger, id string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	said := false
	for {
		n := -1
		if r, err := l.Get(ctx, id); err == nil {
			if insts, err := l.AllInstances(ctx, r); err == nil {
				n = len(inFlight(insts))
			}
		}
		if n == 0 {
			return
		}
		if !said && n > 0 {
			fmt.Fprintf(out, "Waiting up to %s (--drain-timeout) for %s in flight to be verified; Ctrl-C or SIGTERM again stops at once (the next run verifies them).\n", limit, plural(n, "reinstall"))
			said = true
		}
		if time.Now().After(deadline) {
			if n > 0 {
				fmt.Fprintf(out, "Stopped waiting after %s: %s still in flight.\n", limit, plural(n, "reinstall"))
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(drainPoll):
		}
	}
}

// inFlight returns the IDs of instances called or resetting, in plan order.
func inFlight(insts []*ledger.Instance) []string {
	var ids []string
	for _, in := range insts {
		if in.State == ledger.Calling || in.State == ledger.Resetting {
			ids = append(ids, in.ID)
		}
	}
	return ids
}

// leftRunning says what a stopped run leaves: reinstalls in flight (by
// ID, up to ten) and instances not called yet.
func leftRunning(insts []*ledger.Instance) string {
	ids := inFlight(insts)
	pending := 0
	for _, in := range insts {
		if in.State == ledger.Pending || in.State == ledger.Held {
			pending++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s accepted by the cloud, not verified yet", plural(len(ids), "reinstall"))
	if len(ids) > 0 {
		shown := ids[:min(len(ids), 10)]
		fmt.Fprintf(&b, " (%s", strings.Join(shown, ", "))
		if len(ids) > len(shown) {
			fmt.Fprintf(&b, ", and %d more", len(ids)-len(shown))
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, "; %s pending", plural(pending, "instance"))
	return b.String()
}

// continueCommand is the command that continues this run: the flags given,
// the journal's directory and the plan as absolute paths, so that it works
// from any directory (the journal's default is relative to the current one).
func continueCommand(fs *flag.FlagSet, withJournal bool, stateDir string) string {
	parts := []string{"fleetreset", "run"}
	fs.Visit(func(f *flag.Flag) {
		repeated, many := f.Value.(interface{ Values() []string })
		switch {
		case f.Name == "state-dir":
		case isBoolFlag(f) && f.Value.String() == "true":
			parts = append(parts, "--"+f.Name)
		case many:
			// Written back value by value: a repeatable flag (--sim-clb)
			// keeps each, and a list keeps its commas.
			for _, v := range repeated.Values() {
				parts = append(parts, "--"+f.Name+"="+shellQuote(v))
			}
		default:
			parts = append(parts, "--"+f.Name+"="+shellQuote(f.Value.String()))
		}
	})
	if withJournal {
		parts = append(parts, "--state-dir", shellQuote(absPath(stateDir)))
	}
	for _, arg := range fs.Args() {
		parts = append(parts, shellQuote(absPath(arg)))
	}
	return strings.Join(parts, " ")
}

// withFlag adds a bool flag to a command from continueCommand, once.
func withFlag(cmd, name string) string {
	if strings.Contains(cmd, " --"+name) {
		return cmd
	}
	return strings.Replace(cmd, "fleetreset run", "fleetreset run --"+name, 1)
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_@%+=:,./-", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// runNamespace is the namespace of `run` on REDIS_URL: one per rollout, so
// that its in-process workers never take a task of a rollout queued by
// `apply` (or by a `run` of another plan) in the same Redis.
func runNamespace(ns, rollout string) string {
	return cmp.Or(ns, tasks.DefaultNamespace) + "-run-" + rollout
}

// refuseApplied refuses a `run` on REDIS_URL of a rollout that `apply`
// already recorded in namespace ns: it is served by `fleetreset worker`,
// and a second rollout of the same plan would reset its instances again.
func refuseApplied(ctx context.Context, getenv func(string) string, url, ns, id string) error {
	cn, err := openURL(ctx, getenv, url, ns)
	if err != nil {
		return err
	}
	defer cn.Close()
	r, err := cn.ledger.Get(ctx, id)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	ns = cmp.Or(ns, tasks.DefaultNamespace)
	return &ExitError{Code: exitFailed, Err: fmt.Errorf("rollout %s is already in namespace %s (%s; applied with `fleetreset apply`): `run` serves only rollouts it creates; serve it with `fleetreset worker --namespace %s` and follow it with `fleetreset status --watch --namespace %s %s`", id, ns, r.State, ns, ns, id)}
}

// recheckBudgets judges the failure budgets of an existing rollout again,
// from its counters: failures from an earlier run (remembered by the
// journal or by Redis) keep a breached rollout stopped.
func recheckBudgets(ctx context.Context, ctl *engine.Engine, plan *planner.Plan) error {
	r, err := ctl.Ledger().Get(ctx, plan.Spec.ID)
	if err != nil || r.Wave >= len(r.Waves) {
		return nil
	}
	w := r.Waves[r.Wave]
	return ctl.AfterFinish(ctx, plan.Spec, ledger.FinishResult{Wave: r.Wave, WaveCounters: w.Counters, Overall: r.Counters, WaveComplete: w.Complete, WaveSize: w.Size, Total: r.Total})
}

// scopeOf is what the calls of a run go to: the effective endpoint, the
// region and the key's SecretId (none for temporary credentials).
func scopeOf(ctx context.Context, a apiFlags, plan *planner.Plan, prov cvm.CredentialProvider) journal.Scope {
	creds, _ := prov.Credentials(ctx) // a provider that fails here fails every call anyway
	gen := cvm.Generation(cmp.Or(a.api, plan.Spec.API, string(cvm.GenerationDefault)))
	def := cvm.EndpointV3Default
	if gen == cvm.V2 {
		def = cvm.EndpointV2Default
	}
	s := journal.Scope{Endpoint: strings.TrimRight(cmp.Or(a.endpoint, plan.Spec.Endpoint, def), "/"), Region: plan.Spec.Region}
	if creds.Token == "" {
		s.SecretID = creds.SecretID
	}
	return s
}

// openJournal opens the journal of a run on the embedded Redis and reads
// what it remembers; closeFunc closes it (and removes a temporary one). It
// says where the journal is; it refuses a journal of another scope (unless
// adopt); it warns when it starts fresh that a run of this plan elsewhere
// cannot be seen from here.
func openJournal(env *Env, plan *planner.Plan, stateDir string, simulate, adopt bool, scope journal.Scope) (j *journal.Journal, recovered ledger.CreateOptions, closeFunc func(), err error) {
	dir := stateDir
	cleanup := func() {}
	if simulate {
		// The in-process simulator forgets its fleet when the process
		// ends, so a journal would only describe resets of a simulator
		// that no longer exists: keep it for this run alone.
		tmp, err := os.MkdirTemp("", "fleetreset-demo-")
		if err != nil {
			return nil, recovered, nil, err
		}
		dir, cleanup = tmp, func() { os.RemoveAll(tmp) }
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	j, recovered, err = openJournalAt(env, plan, dir, simulate, adopt, scope)
	if err != nil {
		return nil, recovered, nil, err
	}
	return j, recovered, func() { j.Close(); cleanup() }, nil
}

func openJournalAt(env *Env, plan *planner.Plan, dir string, simulate, adopt bool, scope journal.Scope) (*journal.Journal, ledger.CreateOptions, error) {
	out := env.Stdout
	path := absPath(journal.Path(dir, plan.Spec.ID, plan.Spec.PlanHash))
	if _, err := os.Stat(path); !simulate && errors.Is(err, fs.ErrNotExist) {
		// --api and --endpoint are part of the plan's hash, so a run of the
		// same plan against another endpoint has a journal path of its
		// own: check the journals of this rollout's other versions too.
		others, _ := journal.Others(dir, plan.Spec.ID, plan.Spec.PlanHash)
		for _, o := range others {
			var se *journal.ScopeError
			if errors.As(journal.CheckScope(o, scope), &se) {
				path = absPath(o) // refused below, or adopted
				break
			}
		}
	}
	if !simulate {
		err := journal.CheckScope(path, scope)
		var se *journal.ScopeError
		switch {
		case errors.As(err, &se) && adopt:
			fmt.Fprintf(out, "Adopting journal %s for %s (--adopt-journal).\n", path, scope)
		case errors.As(err, &se):
			return nil, ledger.CreateOptions{}, &ExitError{Code: exitFailed, Err: fmt.Errorf("%w. It describes that fleet only. "+
				"If this is the same fleet reached another way (another URL of the same API, a rotated key), run again with --adopt-journal; "+
				"if it is another fleet, use another --state-dir and keep this journal for its own", err)}
		case err != nil:
			return nil, ledger.CreateOptions{}, err
		}
	}
	recovered, err := journal.Recover(path)
	if err != nil {
		return nil, recovered, err
	}
	recovered.Wave = min(recovered.Wave, len(plan.Spec.Waves)-1)
	j, err := journal.Open(path)
	if err != nil {
		return nil, recovered, err
	}
	if simulate {
		fmt.Fprintf(out, "Journal: %s (temporary: --simulate)\n", path)
		return j, recovered, nil
	}
	if err := j.RecordScope(scope); err != nil {
		j.Close()
		return nil, recovered, err
	}
	fmt.Fprintf(out, "Journal: %s (for %s)\n", path, scope)
	if len(recovered.Seeds) > 0 || recovered.Wave > 0 {
		fmt.Fprintf(out, "Resuming from %s: %d instances already touched.\n", path, len(recovered.Seeds))
		return j, recovered, nil
	}
	fmt.Fprintf(env.Stderr, "fleetreset: warning: no earlier run of this plan is recorded in %s: starting fresh. "+
		"A run of this plan from another directory or another host cannot be seen from here; "+
		"if there was one, stop now and continue it there (or run here with its --state-dir).\n", filepath.Dir(path))
	if others, err := journal.Others(filepath.Dir(path), plan.Spec.ID, plan.Spec.PlanHash); err == nil && len(others) > 0 {
		fmt.Fprintf(env.Stderr, "fleetreset: warning: %s holds journals of other versions of plan %s, not resumed: %s\n", filepath.Dir(path), plan.Spec.ID, strings.Join(others, ", "))
	}
	return j, recovered, nil
}
