package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/tasks"
)

type pruneOpts struct {
	common
	olderThan time.Duration
	keep      int
	dryRun    bool
}

func (o *pruneOpts) flags() []flagDef {
	return append(o.common.flags(),
		durationFlag(&o.olderThan, "older-than", ledger.DefaultRetention, "delete rollouts that finished longer ago than this"),
		intFlag(&o.keep, "keep", ledger.DefaultKeepPerSeries, "finished occurrences of each scheduled series kept whatever their age (0: none but the latest, which is always kept)"),
		boolFlag(&o.dryRun, "dry-run", false, "print what would be deleted and delete nothing"))
}

func pruneCmd(ctx context.Context, env *Env, o *pruneOpts) error {
	c, olderThan, keep, dryRun := &o.common, &o.olderThan, &o.keep, &o.dryRun
	if *olderThan <= 0 || *keep < 0 {
		return &ExitError{Code: exitUsage, Err: errors.New("prune: --older-than must be positive and --keep not negative")}
	}
	open := c.open
	if *dryRun {
		open = c.openReadOnly
	}
	cn, err := open(ctx)
	if err != nil {
		return err
	}
	defer cn.Close()
	opts := ledger.PruneOptions{OlderThan: *olderThan, KeepPerSeries: *keep, DryRun: *dryRun}
	if *keep == 0 {
		opts.KeepPerSeries = -1 // the ledger reads zero as its default
	}
	res, err := cn.ledger.Prune(ctx, opts)
	verb := "Deleted"
	if *dryRun {
		verb = "Would delete"
	}
	if len(res.Rollouts) > 0 {
		tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ROLLOUT\tSTATE\tFINISHED\tKEYS")
		for _, r := range res.Rollouts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", r.ID, r.State, humanTimeOf(r.FinishedAt), r.Keys)
		}
		tw.Flush()
	}
	if err != nil {
		fmt.Fprintf(env.Stdout, "%s %s (%s) before the error.\n", verb, plural(len(res.Rollouts), "rollout"), plural(res.Keys, "key"))
		return err
	}
	if len(res.Rollouts) == 0 && res.Keys == 0 {
		fmt.Fprintf(env.Stdout, "Nothing to prune: no finished rollout ended more than %s ago (series keep their last %d).\n", *olderThan, *keep)
		return nil
	}
	fmt.Fprintf(env.Stdout, "%s %s (%s).\n", verb, plural(len(res.Rollouts), "rollout"), plural(res.Keys, "key"))
	if *olderThan < tasks.Retention {
		// Task IDs outlive a rollout pruned this early.
		fmt.Fprintf(env.Stderr, "Note: asynq keeps a rollout's task IDs for %s after they ran; until then, a plan applied again under a pruned rollout's name would have its tasks refused as duplicates. Give it a new name.\n", tasks.Retention)
	}
	return nil
}
