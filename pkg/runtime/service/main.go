package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Main is the whole main function of a single-service binary: it parses the
// host's flags and the service's own (bind registers them), builds the
// component, runs it until SIGINT or SIGTERM, and returns the exit code.
func Main(name string, bind func(fs *flag.FlagSet), build func(logger *slog.Logger) (Component, error)) int {
	opts := DefaultOptions("rampart-" + name)
	opts.NATS.Name = name // its replies arrive under natsauth.InboxPrefix(name)
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	opts.BindFlags(fs)
	if bind != nil {
		bind(fs)
	}
	if err := ParseFlags(fs, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", name)
	comp, err := build(logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, opts, logger, comp); err != nil {
		logger.Error("stopped", "err", err)
		return 1
	}
	return 0
}
