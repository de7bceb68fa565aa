package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/fleetreset/fleetreset/control"
	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/notify"
)

func listCmd(ctx context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "list", "[flags]", "List rollouts with their state and progress")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cn, err := c.openReadOnly(ctx)
	if err != nil {
		return err
	}
	defer cn.Close()
	rs, err := cn.ledger.List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		for _, r := range rs {
			redact(r)
		}
		return writeJSON(env.Stdout, rs)
	}
	if len(rs) == 0 {
		fmt.Fprintln(env.Stdout, "No rollouts.")
		return nil
	}
	fmt.Fprintf(env.Stdout, "%-28s %-18s %-7s %-11s %s\n", "ROLLOUT", "STATE", "WAVE", "DONE", "CREATED")
	for _, r := range rs {
		fmt.Fprintf(env.Stdout, "%-28s %-18s %-7s %-11s %s\n", r.ID, r.State, fmt.Sprintf("%d/%d", min(r.Wave+1, len(r.Waves)), len(r.Waves)),
			fmt.Sprintf("%d/%d", r.Counters.Terminal, r.Total), r.CreatedAt.Format(time.DateTime))
	}
	return nil
}

func statusCmd(ctx context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "status", "[flags] [ROLLOUT]", "Show a rollout per wave and per instance (the newest rollout when none is named)")
	asJSON := fs.Bool("json", false, "print JSON")
	watchFlag := fs.Bool("watch", false, "redraw every second until the rollout ends")
	all := fs.Bool("instances", false, "list every instance, not only the ones that need attention")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cn, err := c.openReadOnly(ctx)
	if err != nil {
		return err
	}
	defer cn.Close()
	id := fs.Arg(0)
	if id == "" {
		rs, err := cn.ledger.List(ctx)
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return errors.New("no rollouts")
		}
		id = rs[len(rs)-1].ID
	}
	for {
		r, err := cn.ledger.Get(ctx, id)
		if err != nil {
			return err
		}
		is, err := cn.ledger.AllInstances(ctx, r)
		if err != nil {
			return err
		}
		if *asJSON {
			redact(r)
			return writeJSON(env.Stdout, struct {
				Rollout   *ledger.Rollout    `json:"rollout"`
				Instances []*ledger.Instance `json:"instances"`
			}{r, is})
		}
		if *watchFlag && env.Interactive {
			fmt.Fprint(env.Stdout, "\033[H\033[2J")
		}
		printStatus(env.Stdout, r, is, *all)
		if !*watchFlag || r.State.Terminal() {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func printStatus(out io.Writer, r *ledger.Rollout, is []*ledger.Instance, all bool) {
	fmt.Fprintf(out, "Rollout %s: %s", r.ID, r.State)
	if r.Reason != "" {
		fmt.Fprintf(out, " — %s", r.Reason)
	}
	fmt.Fprintf(out, "\n%s\n", progressLine(r))
	fmt.Fprintf(out, "  failure budget: %s; on breach: %s; attempt %d\n", r.Spec.Budget.String(), r.Spec.OnBreach, r.Attempt)
	for _, w := range r.Waves {
		mark := " "
		if w.Index == r.Wave && !r.State.Terminal() {
			mark = "▶"
		}
		extra := ""
		if !w.SoakUntil.IsZero() && w.SoakUntil.After(time.Now()) {
			extra = " soaking until " + w.SoakUntil.Format(time.TimeOnly)
		}
		if w.Index < len(r.Spec.Waves) && r.Spec.Waves[w.Index].Approval && !w.Approved {
			extra += " (manual approval after this wave)"
		}
		fmt.Fprintf(out, " %s wave %-3d %5d/%-5d ok %-5d skipped %-4d failed %-4d%s\n", mark, w.Index+1, w.Counters.Terminal, w.Size,
			w.Counters.Succeeded, w.Counters.Skipped, w.Counters.Failures(), extra)
	}
	byState := map[ledger.InstanceState]int{}
	adopted := 0
	for _, in := range is {
		byState[in.State]++
		if in.Adopted != "" {
			adopted++
		}
	}
	var parts []string
	for _, st := range []ledger.InstanceState{ledger.Pending, ledger.Held, ledger.Calling, ledger.Resetting, ledger.Succeeded, ledger.Skipped, ledger.Failed, ledger.Ambiguous, ledger.Cancelled} {
		if byState[st] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, byState[st]))
		}
	}
	fmt.Fprintf(out, "  instances: %s\n", strings.Join(parts, ", "))
	if adopted > 0 {
		fmt.Fprintf(out, "  adopted %d: judged from a reinstall the cloud already showed (running, or done since pre-flight), not called again\n", adopted)
	}
	shown := 0
	for _, in := range is {
		attention := in.State == ledger.Failed || in.State == ledger.Ambiguous || in.State == ledger.Calling || in.State == ledger.Resetting
		if !all && !attention {
			continue
		}
		if shown == 0 {
			fmt.Fprintf(out, "  %-14s %-5s %-10s %-6s %-38s %s\n", "INSTANCE", "WAVE", "STATE", "TRIES", "REQUEST", "ERROR")
		}
		shown++
		note := strings.TrimSpace(in.Code + " " + in.Error)
		if in.Adopted != "" {
			note = strings.TrimSpace("adopted: " + in.Adopted + "; " + note)
		}
		fmt.Fprintf(out, "  %-14s %-5d %-10s %-6d %-38s %s\n", in.ID, in.Wave+1, in.State, in.Tries, in.RequestID, strings.TrimSuffix(note, ";"))
	}
	if r.Counters.Ambiguous > 0 {
		fmt.Fprintln(out, "  Ambiguous instances need a human: check them in the console, then `fleetreset retry-failed --ambiguous` only if they were NOT reset.")
	}
}

func simpleCtl(name, short string, do func(ctx context.Context, env *Env, ctl *control.Controller, id string, extra *ctlFlags) error) func(context.Context, *Env, []string) error {
	return func(ctx context.Context, env *Env, args []string) error {
		fs, c := newFlags(env, name, "[flags] ROLLOUT", short)
		var x ctlFlags
		fs.StringVar(&x.reason, "reason", "", "why (shown in status, the UI and notifications)")
		if name == "retry-failed" {
			fs.BoolVar(&x.ambiguous, "ambiguous", false, "also retry ambiguous instances (only after checking they were not reset)")
		}
		if err := fs.Parse(args); err != nil {
			return err
		}
		id, err := oneArg(fs, "ROLLOUT")
		if err != nil {
			return err
		}
		cn, err := c.open(ctx)
		if err != nil {
			return err
		}
		defer cn.Close()
		err = do(ctx, env, cn.controller(c.namespace, c.logger(env, true)), id, &x)
		if errors.Is(err, control.ErrNotChanged) {
			st, _, _ := cn.ledger.State(ctx, id)
			return &ExitError{Code: exitFailed, Err: fmt.Errorf("%s: rollout %s is %s", name, id, st)}
		}
		return err
	}
}

type ctlFlags struct {
	reason    string
	ambiguous bool
}

var (
	pauseCmd = simpleCtl("pause", "Stop starting new resets; calls already in flight finish and are verified", func(ctx context.Context, env *Env, ctl *control.Controller, id string, x *ctlFlags) error {
		if err := ctl.Pause(ctx, id, x.reason); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Rollout %s paused. Resume with: fleetreset resume %s\n", id, id)
		return nil
	})
	resumeCmd = simpleCtl("resume", "Resume a paused rollout; parked instances are queued again and nothing that succeeded is called again", func(ctx context.Context, env *Env, ctl *control.Controller, id string, x *ctlFlags) error {
		res, err := ctl.Resume(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Rollout %s resumed at wave %d (%d parked instances queued again).\n", id, res.Wave+1, len(res.Requeue))
		return nil
	})
	approveCmd = simpleCtl("approve", "Approve the manual gate so the next wave starts", func(ctx context.Context, env *Env, ctl *control.Controller, id string, x *ctlFlags) error {
		res, err := ctl.Approve(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Rollout %s: gate after wave %d approved.\n", id, res.Wave+1)
		return nil
	})
	abortCmd = simpleCtl("abort", "Stop a rollout for good: nothing new starts, calls in flight finish (the overshoot is shown)", func(ctx context.Context, env *Env, ctl *control.Controller, id string, x *ctlFlags) error {
		n, err := ctl.Abort(ctx, id, x.reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Rollout %s aborted; %d reset(s) already in flight will finish and be verified.\n", id, n)
		return nil
	})
	retryFailedCmd = simpleCtl("retry-failed", "Give failed instances a new attempt; succeeded instances are never called again", func(ctx context.Context, env *Env, ctl *control.Controller, id string, x *ctlFlags) error {
		res, err := ctl.RetryFailed(ctx, id, x.ambiguous)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Rollout %s: %d instance(s) queued for a new attempt.\n", id, len(res.Requeue))
		fmt.Fprintf(env.Stdout, "Each is described before any call: one whose earlier reset the cloud shows finished on the target image, or still running, is re-verified, not reset again; only a reset that FAILED or ended off the target is called again. `fleetreset status --all %s` marks the re-verified ones \"adopted\".\n", id)
		return nil
	})
)

// ReportRow is one instance in a report. It never holds a secret.
type ReportRow struct {
	Rollout    string `json:"rollout"`
	InstanceID string `json:"instance_id"`
	Wave       int    `json:"wave"`
	Zone       string `json:"zone,omitempty"`
	Outcome    string `json:"outcome"`
	OldImage   string `json:"old_image"`
	NewImage   string `json:"new_image"`
	Target     string `json:"target_image"`
	RequestID  string `json:"request_id"`
	Attempts   int    `json:"attempts"`
	Resets     int    `json:"resets"`
	// Adopted, when set, says why the last reset was judged from what the
	// cloud showed (a reinstall running or already done) instead of called.
	Adopted    string    `json:"adopted,omitempty"`
	Code       string    `json:"code,omitempty"`
	Error      string    `json:"error,omitempty"`
	FirstTryAt time.Time `json:"first_try_at,omitzero"`
	CalledAt   time.Time `json:"called_at,omitzero"`
	DoneAt     time.Time `json:"done_at,omitzero"`
}

// Report builds the report rows of a rollout.
func Report(ctx context.Context, l *ledger.Ledger, id string) ([]ReportRow, error) {
	r, err := l.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	is, err := l.AllInstances(ctx, r)
	if err != nil {
		return nil, err
	}
	rows := make([]ReportRow, 0, len(is))
	for _, in := range is {
		rows = append(rows, ReportRow{Rollout: id, InstanceID: in.ID, Wave: in.Wave + 1, Zone: in.Zone, Outcome: string(in.State),
			OldImage: in.OldImage, NewImage: in.NewImage, Target: r.Spec.Groups[in.Group].ImageID, RequestID: in.RequestID,
			Attempts: in.Tries, Resets: in.Resets, Adopted: in.Adopted, Code: in.Code, Error: in.Error,
			FirstTryAt: in.FirstTryAt, CalledAt: in.CalledAt, DoneAt: in.DoneAt})
	}
	return rows, nil
}

func reportCmd(ctx context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "report", "[flags] ROLLOUT", "Print every instance of a rollout: old and new image, RequestId, attempts, outcome and times. Never a secret")
	format := fs.String("format", "json", "json or csv")
	if err := fs.Parse(args); err != nil {
		return err
	}
	id, err := oneArg(fs, "ROLLOUT")
	if err != nil {
		return err
	}
	cn, err := c.openReadOnly(ctx)
	if err != nil {
		return err
	}
	defer cn.Close()
	rows, err := Report(ctx, cn.ledger, id)
	if err != nil {
		return err
	}
	switch *format {
	case "json":
		return writeJSON(env.Stdout, rows)
	case "csv":
		w := csv.NewWriter(env.Stdout)
		_ = w.Write([]string{"rollout", "instance_id", "wave", "zone", "outcome", "old_image", "new_image", "target_image", "request_id", "attempts", "resets", "adopted", "code", "error", "first_try_at", "called_at", "done_at"})
		ts := func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		}
		for _, r := range rows {
			_ = w.Write([]string{r.Rollout, r.InstanceID, strconv.Itoa(r.Wave), r.Zone, r.Outcome, r.OldImage, r.NewImage, r.Target, r.RequestID,
				strconv.Itoa(r.Attempts), strconv.Itoa(r.Resets), r.Adopted, r.Code, r.Error, ts(r.FirstTryAt), ts(r.CalledAt), ts(r.DoneAt)})
		}
		w.Flush()
		return w.Error()
	}
	return &ExitError{Code: exitUsage, Err: fmt.Errorf("report: --format must be json or csv")}
}

// redact keeps only the host of a rollout's webhook: the rest of a webhook
// URL is often a token, and JSON output ends up in terminals and CI logs.
func redact(r *ledger.Rollout) {
	if r.Spec.Webhook != "" {
		r.Spec.Webhook = notify.Host(r.Spec.Webhook)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
