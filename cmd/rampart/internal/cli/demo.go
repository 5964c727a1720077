package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/demo"
)

func init() {
	register("demo", "run the whole pipeline on the embedded default, with a live timeline", runDemo)
}

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "demo", "[--data DIR] [--pause DURATION] [--rps N] [--keep]")
	opts := demo.RunOptions{}
	fs.StringVar(&opts.DataDir, "data", ".rampart/demo", "data directory for the demo's mesh; emptied at start, kept afterwards for inspection")
	fs.DurationVar(&opts.Pause, "pause", 3*time.Second, "how long each canary step holds")
	fs.IntVar(&opts.RPS, "rps", 400, "user requests per second through the router")
	fs.BoolVar(&opts.Keep, "keep", false, "after the demo, keep the mesh and its web console running until Ctrl-C")
	verbose := fs.Bool("v", false, "also print the services' logs")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if opts.Pause < 2*time.Second || opts.RPS < 20 || opts.RPS > 2000 {
		return fmt.Errorf("%w: --pause must be at least 2s (two analysis intervals) and --rps within 20..2000", errUsage)
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(e.stderr, nil))
	}
	return demo.Run(ctx, e.stdout, opts)
}
