// Package streams is the ledger's storage layout on JetStream: the entries
// in LEDGER, the signed checkpoints in LEDGER_CHECKPOINTS and the chain index
// in LEDGER_CHAINS, and reading them. It is private to the ledger service:
// everyone else asks the ledger's query API (pkg/ledger/client).
package streams

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/ledger/bundle"
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
	// ChainsStream is the chain index (chains.go): on ChainSubject(id),
	// the indexes of the entries of chain id; on ChainsMarkSubject, how far
	// the index is complete.
	ChainsStream      = "LEDGER_CHAINS"
	ChainsSubjects    = "ledger.chain.>"
	ChainsMarkSubject = "ledger.chains.indexed"
)

// readBytes bounds the bytes one pull asks for. A bound in messages would
// let a pull of bundles (up to 512 kB each) exceed what the subscription
// buffers, and the ordered consumer then drops and restarts: on this
// machine 1,000 messages per pull read a ledger of bundles 12 times slower
// than 8 MB per pull (decision 0028).
const readBytes = 8 << 20

// Read calls fn for every message of stream from sequence from (>= 1) up to
// the last sequence the stream had when Read started, in order. It returns
// that last sequence. An ordered consumer keeps the reading cheap for the
// server and restarts itself on gaps.
func Read(ctx context.Context, js jetstream.JetStream, stream string, from uint64, fn func(seq uint64, msg jetstream.Msg) error) (uint64, error) {
	return ReadTo(ctx, js, stream, from, 0, fn)
}

// ReadTo is Read up to sequence to at most (0: the last sequence when ReadTo
// started). It returns the last sequence it read up to.
func ReadTo(ctx context.Context, js jetstream.JetStream, stream string, from, to uint64, fn func(seq uint64, msg jetstream.Msg) error) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("opening stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading stream %s info: %w", stream, err)
	}
	last := info.State.LastSeq
	if to > 0 {
		last = min(last, to)
	}
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
	it, err := cons.Messages(jetstream.PullMaxBytes(readBytes))
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
		if seq > last {
			return last, nil
		}
		if err := fn(seq, msg); err != nil {
			return 0, err
		}
		if seq == last {
			return last, nil
		}
	}
}

// Entries returns the entries of every LEDGER message as verify.Entry, in
// stream order.
func Entries(ctx context.Context, js jetstream.JetStream) ([]verify.Entry, error) {
	var out []verify.Entry
	_, err := Read(ctx, js, EntriesStream, 1, func(_ uint64, msg jetstream.Msg) error {
		out = append(out, MessageEntries(msg.Headers(), msg.Data())...)
		return nil
	})
	return out, err
}

// MessageEntries returns the entries of a LEDGER message as a verifier
// reads them: the entries of a bundle with their stored leaf hashes, or one
// signed entry. A message that claims to be a bundle but does not decode
// is passed on as one entry without a signature, which the verifier names
// at its position.
func MessageEntries(h bundle.Header, data []byte) []verify.Entry {
	m, err := bundle.Read(h, data)
	if err != nil {
		return []verify.Entry{{Data: data}}
	}
	return verify.Entries(m)
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

// Verify reads the whole ledger and verifies it with v (see verify.Log),
// streaming it through a verify.Checker so that memory does not grow with
// the entries beyond the Merkle tree's hashes. The entries that the latest
// checkpoint covers are pinned by its signed root rather than checked one
// signature at a time (verify.Stream); should anything fail, the streams are
// read again with every signature checked, to name the first bad entry. It
// returns what verify returns, or an error for a stream that cannot be read.
//
// The checkpoints are read up to the last one that existed before the entries
// were read, so a checkpoint signed while Verify runs cannot cover entries it
// did not read. The key must come from a trusted place (the key file's .pub,
// or a value pinned by the operator), never from the streams being verified.
func Verify(ctx context.Context, js jetstream.JetStream, v *checkpoint.Verifier) (*verify.Result, error) {
	cps, err := js.Stream(ctx, CheckpointsStream)
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", CheckpointsStream, err)
	}
	info, err := cps.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading stream %s info: %w", CheckpointsStream, err)
	}
	cpLast := info.State.LastSeq
	var pinned int64
	if cpLast > 0 {
		m, err := cps.GetMsg(ctx, cpLast)
		if err != nil {
			return nil, fmt.Errorf("reading checkpoint %d: %w", cpLast, err)
		}
		if cp, err := v.Open(m.Data); err == nil {
			pinned = cp.Size
		}
	}
	return verify.Stream(v, pinned, func(c *verify.Checker) error {
		if _, err := Read(ctx, js, EntriesStream, 1, func(_ uint64, msg jetstream.Msg) error {
			for _, e := range MessageEntries(msg.Headers(), msg.Data()) {
				c.Entry(e)
			}
			return nil
		}); err != nil {
			return err
		}
		if cpLast > 0 {
			if _, err := ReadTo(ctx, js, CheckpointsStream, 1, cpLast, func(_ uint64, msg jetstream.Msg) error {
				c.Checkpoint(msg.Data())
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

// scanChain returns the entries of chain chainID among LEDGER messages from
// sequence from on, reading them all.
func scanChain(ctx context.Context, js jetstream.JetStream, chainID string, from uint64) ([]*entry.Entry, error) {
	var out []*entry.Entry
	_, err := Read(ctx, js, EntriesStream, from, func(seq uint64, msg jetstream.Msg) error {
		m, err := bundle.Read(msg.Headers(), msg.Data())
		if err != nil {
			return fmt.Errorf("LEDGER message %d: %w", seq, err)
		}
		for _, data := range m.Entries {
			e, err := entry.Unmarshal(data)
			if err != nil {
				return fmt.Errorf("LEDGER message %d: %w", seq, err)
			}
			if e.ChainID == chainID {
				out = append(out, e)
			}
		}
		return nil
	})
	return out, err
}
