package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/ledger/verify"
	"github.com/rampartci/rampart/pkg/ledger/witness"
)

// What the ledger does about storage it did not write (decision 0015):
//
//   - a message in LEDGER that is not the next entry this ledger signed (a
//     forged or replayed entry published on ledger.entries) is skipped: it
//     is not an entry, the entries after it keep their indexes, it is
//     reported as an anomaly, and recording goes on;
//   - a tree smaller than, or different from, one a witness holds (its own
//     checkpoint file in the data directory, and any --ledger-witness file)
//     means the streams were deleted, truncated or rewritten: the ledger
//     refuses to record (ErrUntrusted) unless the operator accepts a new log;
//   - entries missing from LEDGER (a limit set on the stream) cannot be
//     skipped: the ledger refuses to start (ErrTampered) naming how many.

// ErrUntrusted is returned by Run when the ledger's streams hold a smaller
// tree than, or a different tree from, a checkpoint it signed before and a
// witness kept: its streams were deleted, truncated or rebuilt. It refuses
// to record on top of them unless Options.AcceptNewLog is set.
var ErrUntrusted = errors.New("the ledger's streams do not extend the tree it signed before")

// Source is the CloudEvents source of the events the ledger publishes.
const Source = "/rampart/ledger"

// Anomaly rules the ledger reports.
const (
	RuleForeignMessage = "ledger-foreign-message"
	RuleNewLog         = "ledger-new-log"
)

// foreign is a LEDGER message that is not an entry of this ledger.
type foreign struct {
	seq    uint64
	digest string // hex SHA-256 of the data and signature header, shortened
	why    string
	at     int64 // the entry index the message sits before
}

// seqOf returns the LEDGER sequence of entry index: index+1 plus the
// skipped messages before it. skipped is ascending.
func seqOf(skipped []uint64, index uint64) uint64 {
	seq := index + 1
	for _, s := range skipped {
		if s > seq {
			break
		}
		seq++
	}
	return seq
}

// entrySeq is seqOf over the ledger's skipped messages.
func (l *Ledger) entrySeq(index int64) uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return seqOf(l.skipped, uint64(index))
}

// classify decides whether the LEDGER message data (with signature sig) is
// entry idx of this ledger. It returns the entry, or the reason it is not
// one. Signatures are checked when checkSig is set (entries a verified
// checkpoint does not vouch for yet).
func (l *Ledger) classify(idx int64, data []byte, sig string, checkSig bool) (*entry.Entry, string) {
	if checkSig {
		if err := l.verifier.CheckEntry(data, sig); err != nil {
			return nil, err.Error()
		}
	}
	e, err := entry.Unmarshal(data)
	if err != nil {
		return nil, err.Error()
	}
	if e.Index != uint64(idx) {
		return nil, fmt.Sprintf("it says index %d where entry %d is next", e.Index, idx)
	}
	return e, ""
}

// skip records LEDGER message seq as not an entry. Called by catchUp only,
// while the pipeline does not run.
func (l *Ledger) skip(seq uint64, msg jetstream.Msg, why string) {
	sum := sha256.New()
	sum.Write(msg.Data())
	sum.Write([]byte(msg.Headers().Get(entry.SignatureHeader)))
	f := foreign{seq: seq, digest: hex.EncodeToString(sum.Sum(nil))[:16], why: why, at: l.tree.Size()}
	l.mu.Lock()
	l.skipped = append(l.skipped, seq)
	l.skips = uint64(len(l.skipped))
	l.mu.Unlock()
	// The next append expects this message at the end of LEDGER.
	l.committedID = msg.Headers().Get(jetstream.MsgIDHeader)
	l.foreign = append(l.foreign, f)
	l.metrics.foreign.Inc()
	l.log.Error("LEDGER holds a message this ledger did not write; it is not an entry, recording continues",
		"seq", seq, "before_entry", f.at, "reason", why)
}

// missingEntries explains a LEDGER that jumps from the expected sequence
// want to got: messages were deleted.
func missingEntries(want, got uint64) error {
	if want == 1 {
		return fmt.Errorf("%w: the first %s entries are missing from LEDGER (the stream starts at message %s): "+
			"they were deleted or dropped by a limit set on the stream", ErrTampered, verify.Count(int64(got-1)), verify.Count(int64(got)))
	}
	return fmt.Errorf("%w: LEDGER messages %s to %s are missing: they were deleted", ErrTampered, verify.Count(int64(want)), verify.Count(int64(got-1)))
}

// reportForeign publishes an anomaly for each foreign message found by
// catchUp that no earlier process reported (its anomaly is not recorded
// yet), then forgets them.
func (l *Ledger) reportForeign(ctx context.Context) {
	found := l.foreign
	l.foreign = nil
	for _, f := range found {
		id := "ledger-foreign:" + strconv.FormatUint(f.seq, 10) + ":" + f.digest
		if _, done := l.dedup[Source+"\x00"+id]; done {
			continue
		}
		l.alert(ctx, id, RuleForeignMessage, fmt.Sprintf(
			"LEDGER message %d, before entry %d, is not an entry this ledger wrote (%s): it was published by someone else on the ledger's subject; it is not counted as an entry and recording continues",
			f.seq, f.at, f.why))
	}
}

// alert publishes an anomaly about the ledger itself. It is recorded like
// any other event; a failure to publish is logged (the log line and the
// metrics already tell).
func (l *Ledger) alert(ctx context.Context, id, rule, description string) {
	ev, err := events.NewAnomaly(events.Meta{ID: id, Source: Source, App: "ledger"}, events.Anomaly{
		Target: events.TargetLedger, App: "ledger", Environment: l.signer.Name(), Rule: rule,
		Origin: "ledger", Description: description, DetectedAt: l.opts.Now().UTC(),
	})
	if err == nil {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, err = l.bus.Publish(pctx, ev)
		cancel()
	}
	if err != nil {
		l.log.Error("publishing a ledger anomaly", "rule", rule, "id", id, "err", err)
		return
	}
	l.log.Warn("ledger anomaly published", "rule", rule, "id", id, "description", description)
}

// checkWitnesses compares the rebuilt tree with the latest checkpoint each
// witness holds: the tree must extend it. With Options.AcceptNewLog a
// mismatch is logged and reported as an anomaly and the tree is taken as a
// new log; otherwise Run refuses to record (ErrUntrusted).
func (l *Ledger) checkWitnesses(ctx context.Context) error {
	size, root, err := l.tree.Root()
	if err != nil {
		return err
	}
	cur := checkpoint.Checkpoint{Origin: l.signer.Name(), Size: size, Root: root}
	var problems []error
	for _, w := range l.opts.Witnesses {
		trusted, err := witness.Trusted(w, l.verifier)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if trusted == nil {
			continue
		}
		var proof tlog.TreeProof
		if trusted.Size > 0 && trusted.Size < size {
			if proof, err = l.tree.ConsistencyProof(trusted.Size, size); err != nil {
				return err
			}
		}
		if err := verify.Extends(*trusted, cur, proof, w.Name()); err != nil {
			problems = append(problems, err)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	err = errors.Join(problems...)
	if !l.opts.AcceptNewLog {
		return fmt.Errorf("%w: %w; refusing to record: restore the LEDGER streams, or start a new log with --ledger-accept-new-log", ErrUntrusted, err)
	}
	l.log.Error("the ledger's streams do not extend the tree it signed before; accepting them as a new log (--ledger-accept-new-log)", "err", err)
	l.alert(ctx, "ledger-new-log:"+strconv.FormatInt(size, 10)+":"+base64.RawURLEncoding.EncodeToString(root[:8]), RuleNewLog,
		"the operator accepted a new log (--ledger-accept-new-log): "+err.Error())
	return nil
}

// witnessCheckpoint hands a newly signed checkpoint to every witness. A
// witness that fails is logged and counted; the checkpoint is in
// LEDGER_CHECKPOINTS either way.
func (l *Ledger) witnessCheckpoint(signed []byte) {
	for _, w := range l.opts.Witnesses {
		if err := w.Add(signed); err != nil {
			l.metrics.witnessErrors.Inc()
			l.log.Error("handing the checkpoint to a witness", "witness", w.Name(), "err", err)
		}
	}
}

// setStopped records why the ledger is not recording, for the query API.
func (l *Ledger) setStopped(err error) {
	if err != nil {
		l.stopped.Store(err.Error())
	}
}

// StoppedReason says why Run returned with an error, or "".
func (l *Ledger) StoppedReason() string {
	s, _ := l.stopped.Load().(string)
	return s
}
