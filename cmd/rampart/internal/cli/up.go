package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/mesh"
	"github.com/rampartci/rampart/cmd/rampart/internal/progress"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/embedded"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/service"
	ledgerapp "github.com/rampartci/rampart/services/ledger/app"
)

func init() {
	register("up", "run the embedded mesh: NATS JetStream and all five services in one process", runUp)
}

func runUp(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "up", "[--data DIR] [--nats-listen ADDR | --nats URL [--nats-ca FILE] [--nats-cert FILE --nats-key FILE]] [--http ADDR] [--plain-http] [--policy FILE]")
	opts := mesh.Options{Service: service.DefaultOptions("rampart-up")}
	fs.StringVar(&opts.DataDir, "data", ".rampart", "data directory: JetStream store, keys, webhook secrets, reports; survives restarts")
	fs.StringVar(&opts.NATSListen, "nats-listen", embedded.DefaultListen, "address of the embedded NATS server (loopback only)")
	fs.StringVar(&opts.NATSURL, "nats", "", "connect to this NATS server instead of embedding one")
	fs.StringVar(&opts.Service.HTTPAddr, "http", opts.Service.HTTPAddr, "HTTP address for /healthz, /readyz, /metrics and the services' routes")
	fs.BoolVar(&opts.Service.InsecureListen, "insecure-listen", false, "allow a non-loopback --http address in plain HTTP (only behind a TLS-terminating proxy)")
	// TLS: the embedded NATS server always requires it, with certificates
	// generated in <data>/tls; the HTTP listener serves HTTPS with them
	// unless --plain-http, or with --tls-cert/--tls-key of your own.
	plainHTTP := fs.Bool("plain-http", false, "serve plain HTTP instead of HTTPS with the generated certificate (loopback only, unless --insecure-listen)")
	fs.StringVar(&opts.Service.TLSCertFile, "tls-cert", "", "PEM certificate of the HTTPS listener instead of the generated one (with --tls-key)")
	fs.StringVar(&opts.Service.TLSKeyFile, "tls-key", "", "PEM private key of --tls-cert")
	opts.Service.NATSTLS.BindFlags(fs) // with --nats: --nats-ca, --nats-cert, --nats-key
	fs.DurationVar(&opts.Service.Stream.MaxAge, "stream-max-age", opts.Service.Stream.MaxAge, "how long the RAMPART stream keeps events (0: forever)")
	fs.DurationVar(&opts.Ledger.CheckpointInterval, "checkpoint-interval", ledgerapp.DefaultCheckpointInterval, "most often the ledger signs a checkpoint")
	opts.Ledger.BindTrustFlags(fs) // --ledger-checkpoint-file, --ledger-witness, --ledger-accept-new-log
	replicas := fs.Int("replicas", 1, "replicas of every stream, key-value bucket and object store: 1 on one server, 3 or 5 on a --nats cluster")
	policyFile := fs.String("policy", "", "rampart.yaml: the applications to deliver (none without it)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
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
	opts.HTTPS = !*plainHTTP
	if opts.NATSURL == "" && !opts.Service.NATSTLS.IsZero() {
		return fmt.Errorf("%w: --nats-ca, --nats-cert and --nats-key are for an external server (--nats); the embedded one uses <data>/tls", errUsage)
	}
	if *plainHTTP && opts.Service.TLSCertFile != "" {
		return fmt.Errorf("%w: --plain-http and --tls-cert: choose one", errUsage)
	}
	if r := *replicas; r != 1 && r != 3 && r != 5 {
		return fmt.Errorf("%w: --replicas %d: want 1, 3 or 5", errUsage, r)
	}
	if *replicas != 1 && opts.NATSURL == "" {
		return fmt.Errorf("%w: --replicas %d needs a cluster (--nats URL): the embedded server is one node", errUsage, *replicas)
	}
	opts.Service.Stream.Replicas = *replicas
	opts.Ledger.Replicas, opts.Scanner.Replicas, opts.Deployer.Replicas, opts.Notifier.Replicas = *replicas, *replicas, *replicas, *replicas
	if err := opts.Service.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *policyFile != "" {
		store, err := policy.NewStore(*policyFile)
		if err != nil {
			return err
		}
		opts.Policy = store
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	start := time.Now()
	// On a terminal, what the start waits for: the embedded server, then
	// the stream, each service's connection and each service.
	bar := progress.New(e.stderr, "rampart up", "steps", int64(2+2*len(natsauth.Services())))
	bar.Step("NATS, keys and certificates")
	opts.Service.Starting = bar.Step
	m, err := mesh.Start(ctx, opts, logger)
	bar.Done()
	if err != nil {
		return err
	}
	where := ""
	if m.NATS != nil {
		where = " (embedded, data in " + opts.DataDir + ")"
	}
	fmt.Fprintf(e.stdout, "rampart is up in %s\n", time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(e.stdout, "  NATS      %s%s\n", m.NATSURL, where)
	fmt.Fprintf(e.stdout, "  identity  one NATS nkey per service and admin.nk for operator commands in %s (server.conf: the same for an external server)\n", m.NATSKeyDir)
	fmt.Fprintf(e.stdout, "  HTTP      %s  (/healthz /readyz /metrics /ledger/ /deployer/ /hooks/)\n", m.HTTPURL())
	fmt.Fprintf(e.stdout, "  TLS       CA %s signed the NATS and HTTPS certificates in %s; rampart commands trust it (--ca-file)\n", m.CAFile, m.TLSDir)
	fmt.Fprintln(e.stdout, "  services  ledger, scanner, deployer, watcher, notifier")
	fmt.Fprintf(e.stdout, "  ledger    verifier key %s\n", filepath.Join(opts.DataDir, "ledger", "ledger.key.pub"))
	fmt.Fprintf(e.stdout, "  scanner   verdict key %s.pub\n", m.ScannerKeyFile)
	// Where the credentials are, never what they are.
	in := func(dir string, names ...string) string {
		for i, n := range names {
			names[i] = filepath.Join(opts.DataDir, dir, n)
		}
		return strings.Join(names, " ")
	}
	fmt.Fprintf(e.stdout, "  operator  %s  (rampart rollout reads them)\n", in("deployer", "viewer.token", "operator.token"))
	fmt.Fprintf(e.stdout, "  chaos     %s  (rampart chaos run reads it: it only injects faults)\n", in("deployer", "chaos.token"))
	fmt.Fprintf(e.stdout, "  console   %s/console/  (log in with one of those tokens)\n", m.HTTPURL())
	fmt.Fprintf(e.stdout, "  webhooks  %s\n", in("scanner", "registry.token", "github.secret", "gitlab.token", "sarif.token"))
	fmt.Fprintf(e.stdout, "            %s\n", in("watcher", "alertmanager.token", "siem.secret"))
	fmt.Fprintln(e.stdout, "Press Ctrl-C to stop.")

	werr := m.Host.Wait(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), opts.Service.ShutdownTimeout)
	defer cancel()
	if err := errors.Join(werr, m.Shutdown(sctx)); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "rampart stopped cleanly")
	return nil
}
