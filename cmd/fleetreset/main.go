// Command fleetreset reinstalls the operating system of Tencent Cloud CVM
// fleets in staged waves. See README.md, or run `fleetreset help`.
package main

import (
	"context"
	"os"
	"os/signal"
	_ "time/tzdata" // maintenance windows and CRON_TZ work in slim containers too

	"github.com/fleetreset/fleetreset/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	env := &cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin, Interactive: isTerminal(os.Stderr) && isTerminal(os.Stdin)}
	code := cli.Main(ctx, env, os.Args[1:])
	stop()
	os.Exit(code)
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
