// Command geocache is geocache's one binary: serve runs a node that speaks
// the Redis protocol, demo narrates a three-region tour on this machine,
// version prints the build. Test tools live in commands of their own
// (cmd/geocache-chaos), out of the binary that runs in production.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
)

const usage = `usage: geocache <command> [flags]

commands:
  serve   run a node: Redis protocol (RESP), replication, metrics ('geocache serve -h')
  demo    start three regions on this machine, narrate a tour, keep serving
  cert    create a CA and node certificates for mutual TLS ('geocache cert -h')
  version print the version
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
	case "serve":
		return serveCmd(ctx, args[1:], stdout, stderr)
	case "cert":
		return certCmd(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "geocache", version())
		return 0
	case "demo":
		err := demo(ctx, args[1:], stdout)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "geocache demo: %v\nRun 'geocache demo -h' for the flags.\n", strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
			return 2
		}
		fmt.Fprintln(stderr, "geocache demo:", err)
		return 1
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "geocache: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// version is the module version of the binary (a tag for go install
// ...@version, "(devel)" for a local build) with the VCS revision when
// recorded, and the Go version.
func version() string {
	v := "(devel)"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v + " " + runtime.Version()
	}
	if bi.Main.Version != "" {
		v = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
		if s.Key == "vcs.modified" && s.Value == "true" {
			v += "+dirty"
		}
	}
	return v + " " + bi.GoVersion
}
