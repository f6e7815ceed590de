// Command cubicle is Cubicle's one binary: the server (`cubicle serve`), the
// in-sandbox desktop agent (`cubicle agent`), administration (`cubicle
// keys`, `cubicle template`) and the client verbs that drive sandboxes and
// desktops (`cubicle create`, `cubicle screenshot`, `cubicle click`, ...).
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/jezek/xgb"

	"github.com/cubicle-dev/cubicle/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// xgb reports to a package logger of its own; our X code reports its
	// errors itself.
	xgb.Logger = log.New(io.Discard, "", 0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "agent":
			return runAgent(ctx, args[1:], os.Stderr)
		case "serve":
			return runServe(ctx, args[1:], os.Stdout, os.Stderr)
		case "mcp":
			return runMCP(ctx, args[1:], os.Stderr)
		case "keys":
			return runKeys(ctx, args[1:], os.Stdout, os.Stderr)
		case "template":
			return runTemplate(ctx, args[1:], os.Stdout, os.Stderr)
		case "sandbox-init":
			return runSandboxInit(args[1:])
		case "version", "--version":
			fmt.Println("cubicle", version)
			return 0
		}
	}
	return cli.Run(ctx, args, os.Stdin, os.Stdout, os.Stderr)
}
