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

// EnsureStream creates the RAMPART stream, or updates it to opts. It is safe
// to call from every service at start-up.
func (b *Bus) EnsureStream(ctx context.Context, opts StreamOptions) (jetstream.Stream, error) {
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Duplicates == 0 {
		opts.Duplicates = 2 * time.Minute
	}
	if opts.MaxAge > 0 && opts.Duplicates > opts.MaxAge {
		opts.Duplicates = opts.MaxAge
	}
	s, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Every Rampart event, by kind and application",
		Subjects:    []string{events.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      opts.MaxAge,
		Replicas:    opts.Replicas,
		Duplicates:  opts.Duplicates,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", StreamName, err)
	}
	return s, nil
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
