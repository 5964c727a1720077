package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rampartci/rampart/pkg/events/embedded"
	"github.com/rampartci/rampart/pkg/runtime/service"
	deployer "github.com/rampartci/rampart/services/deployer/app"
	ledger "github.com/rampartci/rampart/services/ledger/app"
	notifier "github.com/rampartci/rampart/services/notifier/app"
	scanner "github.com/rampartci/rampart/services/scanner/app"
	watcher "github.com/rampartci/rampart/services/watcher/app"
)

func init() {
	register("up", "run the embedded mesh: NATS JetStream and all five services in one process", runUp)
}

func runUp(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "up", "[--data DIR] [--nats-listen ADDR | --nats URL] [--http ADDR]")
	data := fs.String("data", ".rampart", "data directory: JetStream store and the ledger's key; survives restarts")
	listen := fs.String("nats-listen", embedded.DefaultListen, "address of the embedded NATS server (loopback only)")
	natsURL := fs.String("nats", "", "connect to this NATS server instead of embedding one")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	opts := service.DefaultOptions("rampart-up")
	fs.StringVar(&opts.HTTPAddr, "http", opts.HTTPAddr, "HTTP address for /healthz, /readyz, /metrics and the services' routes")
	fs.DurationVar(&opts.Stream.MaxAge, "stream-max-age", opts.Stream.MaxAge, "how long the RAMPART stream keeps events (0: forever)")
	lopts := ledger.DefaultOptions("")
	fs.DurationVar(&lopts.CheckpointInterval, "checkpoint-interval", lopts.CheckpointInterval, "most often the ledger signs a checkpoint")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, *logLevel)
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	if err := os.MkdirAll(filepath.Join(*data, "ledger"), 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	lopts.KeyFile = filepath.Join(*data, "ledger", "ledger.key")

	start := time.Now()
	if *natsURL == "" {
		ns, err := embedded.Start(embedded.Options{Listen: *listen, StoreDir: filepath.Join(*data, "nats")})
		if err != nil {
			return err
		}
		defer func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		}()
		opts.NATSURL = ns.ClientURL()
	} else {
		opts.NATSURL = *natsURL
	}

	led, err := ledger.New(lopts)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	comps := []service.Component{led, scanner.New(), deployer.New(), watcher.New(), notifier.New()}
	h, err := service.Start(ctx, opts, logger, comps...)
	if err != nil {
		return err
	}
	names := make([]string, len(comps))
	for i, c := range comps {
		names[i] = c.Name()
	}
	fmt.Fprintf(e.stdout, "rampart is up in %s\n", time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(e.stdout, "  NATS      %s%s\n", opts.NATSURL, map[bool]string{true: " (embedded, data in " + *data + ")", false: ""}[*natsURL == ""])
	fmt.Fprintf(e.stdout, "  HTTP      http://%s  (/healthz /readyz /metrics /ledger/)\n", h.HTTPAddr())
	fmt.Fprintf(e.stdout, "  services  %s\n", strings.Join(names, ", "))
	fmt.Fprintf(e.stdout, "  ledger    verifier key %s.pub\n", lopts.KeyFile)
	fmt.Fprintln(e.stdout, "Press Ctrl-C to stop.")

	werr := h.Wait(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	serr := h.Shutdown(sctx)
	if err := errors.Join(werr, serr); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "rampart stopped cleanly")
	return nil
}
