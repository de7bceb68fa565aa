package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/fleetreset/fleetreset/ledger"
	"github.com/fleetreset/fleetreset/tasks"
)

func pruneCmd(ctx context.Context, env *Env, args []string) error {
	fs, c := newFlags(env, "prune", "[flags]", "Delete every key of the finished (completed or aborted) rollouts that ended longer ago than --older-than: records, counters, waves, instances, claims. A rollout that is not finished is never touched; a scheduled series keeps its last --keep finished occurrences and always its latest. Workers do the same every hour (worker --retention)")
	olderThan := fs.Duration("older-than", ledger.DefaultRetention, "delete rollouts that finished longer ago than this")
	keep := fs.Int("keep", ledger.DefaultKeepPerSeries, "finished occurrences of each scheduled series kept whatever their age (0: none but the latest, which is always kept)")
	dryRun := fs.Bool("dry-run", false, "print what would be deleted and delete nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
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
