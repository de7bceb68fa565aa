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
	"text/tabwriter"
	"time"

	"github.com/fleetreset/fleetreset/engine"
	"github.com/fleetreset/fleetreset/ledger"
)

type listOpts struct {
	common
	asJSON bool
}

func (o *listOpts) flags() []flagDef {
	return append(o.common.flags(), boolFlag(&o.asJSON, "json", false, "print JSON"))
}

func listCmd(ctx context.Context, env *Env, o *listOpts) error {
	c, asJSON := &o.common, &o.asJSON
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
		views := make([]rolloutJSON, 0, len(rs))
		for _, r := range rs {
			views = append(views, rolloutView(r, rolloutTally(r), nil))
		}
		linkRollbacks(views)
		return writeJSON(env.Stdout, views)
	}
	if len(rs) == 0 {
		fmt.Fprintln(env.Stdout, "No rollouts.")
		return nil
	}
	// list reads no instance (a rollout may have 100k), so what has no
	// outcome yet is one number: unfinished, in flight or pending alike.
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLLOUT\tSTATE\tWAVE\tTOTAL\tOK\tSKIPPED\tFAILED\tAMBIGUOUS\tCANCELLED\tUNFINISHED\tCREATED")
	for _, r := range rs {
		t := rolloutTally(r)
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", r.ID, r.State, min(r.Wave+1, len(r.Waves)), len(r.Waves),
			t.Size, t.Succeeded, t.Skipped, t.Failed, t.Ambiguous, t.Cancelled, t.NotFinished(), humanTimeOf(r.CreatedAt))
	}
	return tw.Flush()
}

type statusOpts struct {
	common
	asJSON, watch, all bool
}

func (o *statusOpts) flags() []flagDef {
	return append(o.common.flags(),
		boolFlag(&o.asJSON, "json", false, "print JSON"),
		boolFlag(&o.watch, "watch", false, "redraw every second until the rollout ends"),
		boolFlag(&o.all, "instances", false, "list every instance, not only the ones that need attention"))
}

func statusCmd(ctx context.Context, env *Env, o *statusOpts) error {
	c, asJSON, watchFlag, all := &o.common, &o.asJSON, &o.watch, &o.all
	cn, err := c.openReadOnly(ctx)
	if err != nil {
		return err
	}
	defer cn.Close()
	id := o.arg(0)
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
			total, waves := instanceTallies(r, is)
			out := struct {
				Rollout   rolloutJSON    `json:"rollout"`
				Instances []instanceJSON `json:"instances"`
			}{rolloutView(r, total, waves), make([]instanceJSON, 0, len(is))}
			out.Rollout.RolledBackBy = cn.ledger.RolledBackBy(ctx, r.ID)
			for _, in := range is {
				out.Instances = append(out.Instances, instanceView(r, in))
			}
			return writeJSON(env.Stdout, out)
		}
		if *watchFlag && env.Interactive {
			fmt.Fprint(env.Stdout, "\033[H\033[2J")
		}
		printStatus(env.Stdout, r, is, *all)
		if rb := cn.ledger.RolledBackBy(ctx, r.ID); rb != "" {
			fmt.Fprintf(env.Stdout, "  rolled back by %s: fleetreset status %s\n", rb, rb)
		}
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
	total, waves := instanceTallies(r, is)
	fmt.Fprintf(out, "Rollout %s: %s", r.ID, r.State)
	if r.Reason != "" {
		fmt.Fprintf(out, " — %s", r.Reason)
	}
	fmt.Fprintf(out, "\n%s\n", formatProgress(r, total))
	if r.Spec.RollbackOf != "" {
		fmt.Fprintf(out, "  rollback of %s: its instances go back to the image they ran before it\n", r.Spec.RollbackOf)
	}
	fmt.Fprintf(out, "  failure budget: %s; on breach: %s; attempt %d; created %s\n", r.Spec.Budget.String(), r.Spec.OnBreach, r.Attempt, humanTimeOf(r.CreatedAt))
	for _, l := range timingLines(r.Spec) {
		fmt.Fprintf(out, "  %s\n", l)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(mark, wave string, t tally, extra string) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", mark, wave, t.Size, t.Succeeded, t.Skipped, t.Failed, t.Ambiguous, t.Cancelled, t.InFlight, t.Pending, extra)
	}
	fmt.Fprintln(tw, " \twave\tsize\tsucceeded\tskipped\tfailed\tambiguous\tcancelled\tin-flight\tpending\t")
	for _, w := range r.Waves {
		mark := " "
		if w.Index == r.Wave && !r.State.Terminal() {
			mark = "▶"
		}
		var extra []string
		if !w.SoakUntil.IsZero() && w.SoakUntil.After(time.Now()) {
			extra = append(extra, "soaking until "+humanTimeOf(w.SoakUntil))
		}
		if w.Index < len(r.Spec.Waves) && r.Spec.Waves[w.Index].Approval && !w.Approved {
			extra = append(extra, "manual approval after this wave")
		}
		note := strings.Join(extra, "; ")
		if note != "" {
			note = " " + note
		}
		row(mark, strconv.Itoa(w.Index+1), waves[w.Index], note)
	}
	row(" ", "total", total, "")
	tw.Flush()
	if rts := regionTallies(r, is); rts != nil {
		budget := "none apart from the rollout's"
		if b := r.Spec.RegionBudget; b != nil {
			budget = b.String() + " each"
		}
		fmt.Fprintf(out, "  by region (failure budget: %s):\n", budget)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, " \tregion\tsize\tsucceeded\tskipped\tfailed\tambiguous\tcancelled\tin-flight\tpending\t")
		for _, rt := range rts {
			t := rt.tally
			fmt.Fprintf(tw, " \t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", rt.Region, t.Size, t.Succeeded, t.Skipped, t.Failed, t.Ambiguous, t.Cancelled, t.InFlight, t.Pending)
		}
		tw.Flush()
	}
	adopted := 0
	for _, in := range is {
		if in.Adopted != "" {
			adopted++
		}
	}
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
		if _, seen := images(in); in.State == ledger.Failed && seen != "" && seen != targetImage(r, in) {
			// Not "img-old → img-old": the target was never installed.
			note = strings.TrimSpace(note + "; still on " + seen + ", target " + targetImage(r, in))
		}
		if in.Adopted != "" {
			note = strings.TrimSpace("adopted: " + in.Adopted + "; " + note)
		}
		fmt.Fprintf(out, "  %-14s %-5d %-10s %-6d %-38s %s\n", in.ID, in.Wave+1, in.State, in.Tries, in.RequestID, strings.TrimSuffix(note, ";"))
	}
	if r.Counters.Ambiguous > 0 {
		fmt.Fprintln(out, "  Ambiguous instances need a human: check them in the console, then `fleetreset retry-failed --ambiguous` only if they were NOT reset.")
	}
}

// ctlOpts are the options of pause, resume, approve and abort.
type ctlOpts struct {
	common
	reason    string
	ambiguous bool // retry-failed only (retryOpts)
}

func (o *ctlOpts) flags() []flagDef {
	return append(o.common.flags(), stringFlag(&o.reason, "reason", "", "why (shown in status, the UI and notifications)"))
}

func (o *ctlOpts) ctl() *ctlOpts { return o }

// retryOpts are retry-failed's: ctlOpts and --ambiguous.
type retryOpts struct{ ctlOpts }

func (o *retryOpts) flags() []flagDef {
	return append(o.ctlOpts.flags(), boolFlag(&o.ambiguous, "ambiguous", false, "also retry ambiguous instances (only after checking they were not reset)"))
}

// simpleCtl makes a command that calls the engine on one rollout.
func simpleCtl[P interface {
	options
	ctl() *ctlOpts
}](do func(ctx context.Context, env *Env, ctl *engine.Engine, id string, extra *ctlOpts) error) func(context.Context, *Env, P) error {
	return func(ctx context.Context, env *Env, o P) error {
		x := o.ctl()
		c, name, id := &x.common, x.name, x.arg(0)
		cn, err := c.open(ctx)
		if err != nil {
			return err
		}
		defer cn.Close()
		err = do(ctx, env, cn.controller(c.namespace, c.logger(env, true)), id, x)
		if errors.Is(err, engine.ErrNotChanged) {
			st, _, serr := cn.ledger.State(ctx, id)
			if serr != nil {
				// Not changed because there is nothing: say that.
				return &ExitError{Code: exitFailed, Err: fmt.Errorf("%s: %w", name, serr)}
			}
			return &ExitError{Code: exitFailed, Err: fmt.Errorf("%s: rollout %s is %s", name, id, st)}
		}
		return err
	}
}

var (
	pauseCmd = simpleCtl[*ctlOpts](func(ctx context.Context, env *Env, ctl *engine.Engine, id string, x *ctlOpts) error {
		if err := ctl.Pause(ctx, id, x.reason); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Rollout %s paused. Resume with: fleetreset resume %s\n", id, id)
		return nil
	})
	resumeCmd = simpleCtl[*ctlOpts](func(ctx context.Context, env *Env, ctl *engine.Engine, id string, x *ctlOpts) error {
		res, err := ctl.Resume(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Rollout %s resumed at wave %d (%d parked instances queued again).\n", id, res.Wave+1, len(res.Requeue))
		return nil
	})
	approveCmd = simpleCtl[*ctlOpts](func(ctx context.Context, env *Env, ctl *engine.Engine, id string, x *ctlOpts) error {
		res, err := ctl.Approve(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Rollout %s: gate after wave %d approved.\n", id, res.Wave+1)
		return nil
	})
	abortCmd = simpleCtl[*ctlOpts](func(ctx context.Context, env *Env, ctl *engine.Engine, id string, x *ctlOpts) error {
		n, err := ctl.Abort(ctx, id, x.reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Rollout %s aborted; %d reset(s) already in flight will finish and be verified.\n", id, n)
		return nil
	})
	retryFailedCmd = simpleCtl[*retryOpts](func(ctx context.Context, env *Env, ctl *engine.Engine, id string, x *ctlOpts) error {
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
	// NewImage is the image an instance runs after its reset: set only
	// when it runs its target (succeeded, skipped). A failed reset
	// installed nothing; the image the cloud showed then is SeenImage.
	NewImage  string `json:"new_image"`
	Target    string `json:"target_image"`
	SeenImage string `json:"seen_image,omitempty"`
	RequestID string `json:"request_id"`
	Attempts  int    `json:"attempts"`
	Resets    int    `json:"resets"`
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
		newImg, seen := images(in)
		rows = append(rows, ReportRow{Rollout: id, InstanceID: in.ID, Wave: in.Wave + 1, Zone: in.Zone, Outcome: string(in.State),
			OldImage: in.OldImage, NewImage: newImg, SeenImage: seen, Target: targetImage(r, in), RequestID: in.RequestID,
			Attempts: in.Tries, Resets: in.Resets, Adopted: in.Adopted, Code: in.Code, Error: in.Error,
			FirstTryAt: in.FirstTryAt, CalledAt: in.CalledAt, DoneAt: in.DoneAt})
	}
	return rows, nil
}

type reportOpts struct {
	common
	format string
}

func (o *reportOpts) flags() []flagDef {
	return append(o.common.flags(), enumFlag(&o.format, "format", "json", []string{"json", "csv"}, "print `json|csv`"))
}

func reportCmd(ctx context.Context, env *Env, o *reportOpts) error {
	c, format, id := &o.common, &o.format, o.arg(0)
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
		_ = w.Write([]string{"rollout", "instance_id", "wave", "zone", "outcome", "old_image", "new_image", "target_image", "request_id", "attempts", "resets", "adopted", "code", "error", "first_try_at", "called_at", "done_at", "seen_image"})
		ts := func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		}
		for _, r := range rows {
			_ = w.Write([]string{r.Rollout, r.InstanceID, strconv.Itoa(r.Wave), r.Zone, r.Outcome, r.OldImage, r.NewImage, r.Target, r.RequestID,
				strconv.Itoa(r.Attempts), strconv.Itoa(r.Resets), r.Adopted, r.Code, r.Error, ts(r.FirstTryAt), ts(r.CalledAt), ts(r.DoneAt), r.SeenImage})
		}
		w.Flush()
		return w.Error()
	}
	return &ExitError{Code: exitUsage, Err: fmt.Errorf("report: --format must be json or csv")}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
