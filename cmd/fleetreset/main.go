// Command fleetreset reinstalls the operating system of Tencent Cloud CVM
// fleets in staged waves. See README.md, or run `fleetreset help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // maintenance windows and CRON_TZ work in slim containers too

	"github.com/fleetreset/fleetreset/internal/cli"
)

func main() {
	// SIGTERM (docker stop, systemd, Kubernetes) is a request to stop like
	// Ctrl-C: every command ends its context and lets calls in flight
	// finish. A second signal, once the first one was seen, gets the
	// default behaviour and ends the process at once: the journal and the
	// ledger are built to survive that.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	env := &cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin, Interactive: isTerminal(os.Stderr) && isTerminal(os.Stdin)}
	code := cli.Main(ctx, env, os.Args[1:])
	stop()
	os.Exit(code)
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
