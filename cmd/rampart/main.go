// Command rampart runs the embedded mesh and operates a running one.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rampartci/rampart/cmd/rampart/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
