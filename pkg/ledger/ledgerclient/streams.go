// Package ledgerclient reads the ledger's JetStream streams: the entries in
// LEDGER and the signed checkpoints in LEDGER_CHECKPOINTS. The ledger service
// uses it to rebuild its state on start; the rampart CLI uses it for
// `rampart ledger verify` and `rampart ledger show --chain`.
package ledgerclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/ledger/verify"
)

// The ledger's streams and subjects.
const (
	EntriesStream      = "LEDGER"
	EntriesSubject     = "ledger.entries"
	CheckpointsStream  = "LEDGER_CHECKPOINTS"
	CheckpointsSubject = "ledger.checkpoints"
)

// readBatch is how many messages one pull asks for.
const readBatch = 1000

// Read calls fn for every message of stream from sequence from (>= 1) up to
// the last sequence the stream had when Read started, in order. It returns
// that last sequence. An ordered consumer keeps the reading cheap for the
// server and restarts itself on gaps.
func Read(ctx context.Context, js jetstream.JetStream, stream string, from uint64, fn func(seq uint64, msg jetstream.Msg) error) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("opening stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading stream %s info: %w", stream, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 || last < max(from, 1) {
		return last, nil
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = from
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("reading stream %s: %w", stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(readBatch))
	if err != nil {
		return 0, fmt.Errorf("reading stream %s: %w", stream, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return 0, fmt.Errorf("reading stream %s: %w", stream, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return 0, fmt.Errorf("reading stream %s: %w", stream, err)
		}
		seq := meta.Sequence.Stream
		if err := fn(seq, msg); err != nil {
			return 0, err
		}
		if seq >= last {
			return last, nil
		}
	}
}

// Entries returns every LEDGER message as a verify.Entry, in stream order.
func Entries(ctx context.Context, js jetstream.JetStream) ([]verify.Entry, error) {
	var out []verify.Entry
	_, err := Read(ctx, js, EntriesStream, 1, func(_ uint64, msg jetstream.Msg) error {
		out = append(out, verify.Entry{Data: msg.Data(), Signature: msg.Headers().Get(entry.SignatureHeader)})
		return nil
	})
	return out, err
}

// Checkpoints returns every signed checkpoint, in stream order.
func Checkpoints(ctx context.Context, js jetstream.JetStream) ([][]byte, error) {
	var out [][]byte
	_, err := Read(ctx, js, CheckpointsStream, 1, func(_ uint64, msg jetstream.Msg) error {
		out = append(out, msg.Data())
		return nil
	})
	return out, err
}

// LatestCheckpoint returns the last signed checkpoint, or nil when none has
// been written.
func LatestCheckpoint(ctx context.Context, js jetstream.JetStream) ([]byte, error) {
	s, err := js.Stream(ctx, CheckpointsStream)
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", CheckpointsStream, err)
	}
	m, err := s.GetLastMsgForSubject(ctx, CheckpointsSubject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading latest checkpoint: %w", err)
	}
	return m.Data, nil
}

// Verify reads the whole ledger and verifies it with v (see verify.Log).
// The key must come from a trusted place (the key file's .pub, or a value
// pinned by the operator), never from the streams being verified.
func Verify(ctx context.Context, js jetstream.JetStream, v *checkpoint.Verifier) (*verify.Result, error) {
	entries, err := Entries(ctx, js)
	if err != nil {
		return nil, err
	}
	cps, err := Checkpoints(ctx, js)
	if err != nil {
		return nil, err
	}
	return verify.Log(entries, cps, v)
}

// Chain returns the entries whose chainId is chainID, in ledger order. It
// reads the whole LEDGER stream and does not verify signatures; run Verify
// for that.
func Chain(ctx context.Context, js jetstream.JetStream, chainID string) ([]*entry.Entry, error) {
	var out []*entry.Entry
	_, err := Read(ctx, js, EntriesStream, 1, func(seq uint64, msg jetstream.Msg) error {
		e, err := entry.Unmarshal(msg.Data())
		if err != nil {
			return fmt.Errorf("LEDGER message %d: %w", seq, err)
		}
		if e.ChainID == chainID {
			out = append(out, e)
		}
		return nil
	})
	return out, err
}
