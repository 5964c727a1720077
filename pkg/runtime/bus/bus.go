// Package bus is Rampart's event bus on NATS JetStream: it ensures the streams
// and key-value buckets the services share, publishes CloudEvents in binary
// mode with idempotent message ids and trace context, and runs durable pull
// consumers whose handlers decide every ack explicitly.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/rampartci/rampart/pkg/events"
)

// StreamName is the stream that captures every Rampart event (rampart.>).
const StreamName = "RAMPART"

// Bus publishes and consumes Rampart events over one NATS connection.
type Bus struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger
	tracer  trace.Tracer
	schemas *events.Schemas
}

// New returns a Bus on nc. The connection stays the caller's to close.
func New(nc *nats.Conn, logger *slog.Logger) (*Bus, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open JetStream: %w", err)
	}
	schemas, err := events.DefaultSchemas()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Bus{
		nc:      nc,
		js:      js,
		log:     logger,
		tracer:  otel.Tracer("github.com/rampartci/rampart/pkg/runtime/bus"),
		schemas: schemas,
	}, nil
}

// Conn is the underlying NATS connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream is the underlying JetStream context.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// StreamOptions configures the RAMPART stream.
type StreamOptions struct {
	// MaxAge bounds how long events are kept; 0 keeps them forever.
	MaxAge time.Duration
	// Replicas is 1 on the embedded default, 3 in a cluster.
	Replicas int
	// Duplicates is the window in which a repeated Nats-Msg-Id is dropped.
	Duplicates time.Duration
}

// EnsureStream creates the RAMPART stream, or updates it to opts. Updating
// takes the admin identity (natsauth.Admin): services use OpenStream.
func (b *Bus) EnsureStream(ctx context.Context, opts StreamOptions) (jetstream.Stream, error) {
	s, err := b.js.CreateOrUpdateStream(ctx, streamConfig(opts))
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", StreamName, err)
	}
	return s, nil
}

// OpenStream returns the RAMPART stream, first creating it with opts when it
// does not exist. It never changes an existing stream, so it needs only what
// every service identity may do (stream info and create); a stream
// configured otherwise than opts is logged and left as it is.
func (b *Bus) OpenStream(ctx context.Context, opts StreamOptions) (jetstream.Stream, error) {
	cfg := streamConfig(opts)
	s, err := b.js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = b.js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = b.js.Stream(ctx, StreamName) // created meanwhile by another service
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", StreamName, err)
	}
	if got := s.CachedInfo().Config; got.MaxAge != cfg.MaxAge || got.Replicas != cfg.Replicas {
		b.log.Warn("the RAMPART stream is configured otherwise than this service's options and is left as it is; changing it takes the admin identity",
			"max_age", got.MaxAge, "want_max_age", cfg.MaxAge, "replicas", got.Replicas, "want_replicas", cfg.Replicas)
	}
	return s, nil
}

func streamConfig(opts StreamOptions) jetstream.StreamConfig {
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Duplicates == 0 {
		opts.Duplicates = 2 * time.Minute
	}
	if opts.MaxAge > 0 && opts.Duplicates > opts.MaxAge {
		opts.Duplicates = opts.MaxAge
	}
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Every Rampart event, by kind and application",
		Subjects:    []string{events.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      opts.MaxAge,
		Replicas:    opts.Replicas,
		Duplicates:  opts.Duplicates,
	}
}

// EnsureKV creates the key-value bucket, or returns it when it exists.
func (b *Bus) EnsureKV(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if cfg.Storage == 0 {
		cfg.Storage = jetstream.FileStorage
	}
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("ensure key-value bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// ErrPoison marks a message that can never be handled: it is terminated with
// the reason and a copy goes to the dead-letter subject.
var ErrPoison = errors.New("poison message")

// Poison wraps err so the consumer terminates and dead-letters the message.
func Poison(err error) error { return fmt.Errorf("%w: %w", ErrPoison, err) }
