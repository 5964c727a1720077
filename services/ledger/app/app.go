// Package app is the ledger service as a component: the same in its own
// binary and inside `rampart up`.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/witness"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/services/ledger/internal/ledger"
)

// Options configures the ledger service.
type Options struct {
	// KeyFile holds the ledger's signing key; it is generated on first start
	// and its verifier key written beside it (KeyFile + ".pub").
	KeyFile string
	// Origin names the log in its checkpoints.
	Origin string
	// CheckpointInterval is the most often a checkpoint is signed.
	CheckpointInterval time.Duration
	// CheckpointFile keeps the latest checkpoint the ledger signed, outside
	// its streams (default: ledger.checkpoint beside KeyFile). On start the
	// ledger refuses streams holding a smaller or different tree.
	CheckpointFile string
	// Witnesses are files each signed checkpoint is appended to (C2SP
	// signed notes, each followed by an empty line), checked like
	// CheckpointFile on start.
	Witnesses []string
	// AcceptNewLog starts recording on streams that do not extend the
	// checkpoints kept outside them (a new log), reporting it as an
	// anomaly, instead of refusing. Remove it once the new log is signed.
	AcceptNewLog bool
	// Replicas of the LEDGER streams (0 or 1 embedded, 3 in a cluster).
	Replicas int
}

// BindFlags registers the options as flags.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.KeyFile, "ledger-key", o.KeyFile, "file holding the ledger's signing key (created on first start)")
	fs.StringVar(&o.Origin, "ledger-origin", o.Origin, "origin line of the ledger's checkpoints")
	fs.DurationVar(&o.CheckpointInterval, "checkpoint-interval", o.CheckpointInterval, "most often a checkpoint is signed")
	fs.IntVar(&o.Replicas, "ledger-replicas", o.Replicas, "replicas of the LEDGER streams (1 embedded, 3 in a cluster)")
	o.BindTrustFlags(fs)
}

// BindTrustFlags registers the options about the checkpoints kept outside
// the ledger's streams; `rampart up` binds them too.
func (o *Options) BindTrustFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.CheckpointFile, "ledger-checkpoint-file", o.CheckpointFile, "file keeping the latest checkpoint the ledger signed (default: ledger.checkpoint beside --ledger-key)")
	fs.Func("ledger-witness", "append every signed checkpoint to this `FILE` and refuse to record on a tree that does not extend its last one (repeatable)", func(v string) error {
		if v == "" {
			return errors.New("empty file name")
		}
		o.Witnesses = append(o.Witnesses, v)
		return nil
	})
	fs.BoolVar(&o.AcceptNewLog, "ledger-accept-new-log", o.AcceptNewLog, "record on LEDGER streams that do not extend the checkpoint file and witnesses (a new log; reported as an anomaly); remove once the new log is signed")
}

// DefaultCheckpointInterval is how often, at most, the ledger signs a
// checkpoint by default. Entries are written in bundles without signatures
// of their own (decision 0028), so this bounds how long a recorded event
// waits before a signature covers it.
const DefaultCheckpointInterval = 100 * time.Millisecond

// DefaultOptions keeps the key and the checkpoint file under dir.
func DefaultOptions(dir string) Options {
	return Options{KeyFile: dir + "/ledger.key", CheckpointFile: dir + "/ledger.checkpoint", Origin: "rampart.ledger", CheckpointInterval: DefaultCheckpointInterval}
}

// App runs the ledger inside a service host.
type App struct {
	opts   Options
	ledger *ledger.Ledger
	cancel context.CancelFunc
	done   chan struct{} // closed when the ledger's Run returns
	err    error         // what Run returned; read after done is closed
}

// withDefaults fills the options left zero from DefaultOptions, so that a
// caller sets only what it cares about; the key file has no default.
func (o Options) withDefaults() Options {
	d := DefaultOptions("")
	if o.Origin == "" {
		o.Origin = d.Origin
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = d.CheckpointInterval
	}
	if o.CheckpointFile == "" && o.KeyFile != "" {
		o.CheckpointFile = filepath.Join(filepath.Dir(o.KeyFile), "ledger.checkpoint")
	}
	return o
}

// New returns the ledger service configured by opts, whose zero fields
// other than KeyFile take their defaults.
func New(opts Options) (*App, error) {
	opts = opts.withDefaults()
	if opts.KeyFile == "" {
		return nil, errors.New("ledger: --ledger-key is required")
	}
	if opts.CheckpointInterval < 10*time.Millisecond {
		return nil, fmt.Errorf("ledger: --checkpoint-interval %s is below 10ms", opts.CheckpointInterval)
	}
	if r := opts.Replicas; r != 0 && r != 1 && r != 3 && r != 5 {
		return nil, fmt.Errorf("ledger: --ledger-replicas %d: want 1, 3 or 5", r)
	}
	return &App{opts: opts}, nil
}

// Name implements service.Component.
func (a *App) Name() string { return "ledger" }

// Start loads (or creates) the signing key and starts recording.
func (a *App) Start(ctx context.Context, deps service.Deps) error {
	signer, created, err := checkpoint.LoadOrCreateSigner(a.opts.KeyFile, a.opts.Origin)
	if err != nil {
		return err
	}
	if created {
		deps.Logger.Info("generated ledger signing key", "file", a.opts.KeyFile, "verifier", signer.VerifierKey())
	}
	witnesses := []witness.Witness{witness.NewLatest(a.opts.CheckpointFile)}
	for _, f := range a.opts.Witnesses {
		witnesses = append(witnesses, witness.NewLog(f))
	}
	a.ledger, err = ledger.New(deps.Bus, signer, ledger.Options{
		CheckpointInterval: a.opts.CheckpointInterval,
		Replicas:           a.opts.Replicas,
		Registerer:         deps.Registerer,
		Witnesses:          witnesses,
		AcceptNewLog:       a.opts.AcceptNewLog,
	}, deps.Logger)
	if err != nil {
		return err
	}
	// The ledger outlives the start-up context: it stops on Stop.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	// Messages the server gives up on become dead letters, so the trail
	// records them too.
	if err := deps.Bus.RecordMaxDeliveries(runCtx); err != nil {
		cancel()
		return err
	}
	a.done = make(chan struct{})
	go func() {
		defer close(a.done)
		if a.err = a.ledger.Run(runCtx); a.err != nil {
			deps.Logger.Error("ledger stopped", "err", a.err)
		}
	}()
	return nil
}

// Stop ends recording; in-flight entries commit and a last checkpoint is signed.
func (a *App) Stop(ctx context.Context) error {
	if a.cancel == nil {
		return nil
	}
	a.cancel()
	select {
	case <-a.done:
		return a.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Routes serves the ledger's query API under /ledger/.
func (a *App) Routes(mux *http.ServeMux) { mux.Handle("/ledger/", a.ledger.Handler()) }

// Ready implements service.ReadyChecker.
func (a *App) Ready(context.Context) error {
	select {
	case <-a.done:
		return fmt.Errorf("ledger stopped: %v", a.err)
	default:
	}
	if !a.ledger.Ready() {
		return errors.New("rebuilding state from LEDGER")
	}
	return nil
}
