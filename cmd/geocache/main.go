// Command geocache is geocache's one binary. Today it has one subcommand,
// demo; serve, status and bench follow as the server and replication land.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage: geocache <command> [flags]

commands:
  demo    run a short narrated tour of the cache on this machine
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "demo":
		if err := demo(args[1:], stdout); err != nil {
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
