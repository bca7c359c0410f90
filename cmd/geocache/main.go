// Command geocache is geocache's one binary. Today it has one subcommand,
// demo; serve, status and bench follow as the server and replication land.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: geocache <command> [flags]

commands:
  demo    start three regions on this machine, narrate a tour, keep serving
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "demo":
		if err := demo(ctx, args[1:], stdout); err != nil {
			fmt.Fprintln(stderr, "geocache demo:", err)
			return 1
		}
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "geocache: unknown command %q\n\n%s", args[0], usage)
	return 2
}
