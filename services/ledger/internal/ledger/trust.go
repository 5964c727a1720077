package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/bundle"
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

// segment is a LEDGER message that holds committed entries: the index of
// its first entry and its sequence.
type segment struct {
	first int64
	seq   uint64
}

// addSegment records that LEDGER message seq holds the entries from first
// on; called in LEDGER order.
func (l *Ledger) addSegment(first int64, seq uint64) {
	l.mu.Lock()
	l.segs = append(l.segs, segment{first: first, seq: seq})
	l.mu.Unlock()
}

// segmentOf returns position k in segs of the message holding entry index
// (a committed entry).
func segmentOf(segs []segment, index int64) int {
	return sort.Search(len(segs), func(k int) bool { return segs[k].first > index }) - 1
}

// entrySeq returns the LEDGER sequence of the message holding committed
// entry index and the index of that message's first entry.
func (l *Ledger) entrySeq(index int64) (seq uint64, first int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	k := segmentOf(l.segs, index)
	if k < 0 {
		return 0, 0
	}
	return l.segs[k].seq, l.segs[k].first
}

// classify decides whether LEDGER message m holds the entries from idx on
// of this ledger. It returns the entries, or the reason it holds none. A
// bundle must carry this ledger's MAC and hold entries whose bytes match
// the leaf hashes the MAC covers; a signed entry (the format before
// bundles) has its signature checked when checkSig is set (entries a
// verified checkpoint does not vouch for yet).
func (l *Ledger) classify(idx int64, m bundle.Message, checkSig bool) ([]*entry.Entry, string) {
	if m.First >= 0 {
		if !l.signer.CheckBundleMAC(m.First, bundle.EncodeLeaves(m.Leaves), m.MAC) {
			return nil, "bundle MAC does not verify with the ledger key"
		}
		if m.First != idx {
			return nil, fmt.Sprintf("it says first index %d where entry %d is next", m.First, idx)
		}
		for i, data := range m.Entries {
			if tlog.RecordHash(data) != m.Leaves[i] {
				return nil, fmt.Sprintf("entry %d does not match the leaf hash its bundle stores", m.First+int64(i))
			}
		}
	} else if checkSig {
		if err := l.verifier.CheckEntry(m.Entries[0], m.Signature); err != nil {
			return nil, err.Error()
		}
	}
	out := make([]*entry.Entry, len(m.Entries))
	for i, data := range m.Entries {
		e, err := entry.Unmarshal(data)
		if err != nil {
			return nil, err.Error()
		}
		if pos, ok := entry.Position(e.Index); !ok || pos != idx+int64(i) {
			return nil, fmt.Sprintf("it says index %d where entry %d is next", e.Index, idx+int64(i))
		}
		out[i] = e
	}
	return out, ""
}

// skip records LEDGER message seq as not an entry. Called by catchUp only,
// while the pipeline does not run.
func (l *Ledger) skip(seq uint64, msg jetstream.Msg, why string) {
	sum := sha256.New()
	sum.Write(msg.Data())
	sum.Write([]byte(msg.Headers().Get(entry.SignatureHeader)))
	sum.Write([]byte(msg.Headers().Get(bundle.MACHeader)))
	f := foreign{seq: seq, digest: hex.EncodeToString(sum.Sum(nil))[:16], why: why, at: l.tree.Size()}
	l.mu.Lock()
	l.skipped = append(l.skipped, seq)
	l.mu.Unlock()
	l.lastMsg.Store(seq)
	// The next append expects this message at the end of LEDGER.
	l.committedID = msg.Headers().Get(jetstream.MsgIDHeader)
	l.foreign = append(l.foreign, f)
	l.metrics.foreign.Inc()
	l.log.Error("LEDGER holds a message this ledger did not write; it is not an entry, recording continues",
		"seq", seq, "before_entry", f.at, "reason", why)
}

// missingEntries explains a LEDGER that jumps from the expected sequence
// want to got: messages were deleted. next is the index of the next entry
// expected and at the index of the first entry message got holds (-1 when
// it does not say).
func missingEntries(want, got uint64, next, at int64) error {
	if want == 1 {
		if at < 0 {
			at = countOf(got - 1)
		}
		return fmt.Errorf("%w: the first %s entries are missing from LEDGER (the stream starts at message %s): "+
			"they were deleted or dropped by a limit set on the stream", ErrTampered, verify.Count(at), verify.Count(countOf(got)))
	}
	entries := ""
	if at > next {
		entries = fmt.Sprintf(" (entries %s to %s)", verify.Count(next), verify.Count(at-1))
	}
	return fmt.Errorf("%w: LEDGER messages %s to %s are missing%s: they were deleted", ErrTampered, verify.Count(countOf(want)), verify.Count(countOf(got-1)), entries)
}

// firstIndex is the index of the first entry LEDGER message m says it
// holds, -1 when it does not decode (err) or say.
func firstIndex(m bundle.Message, err error) int64 {
	if err != nil {
		return -1
	}
	if m.First >= 0 {
		return m.First
	}
	e, err := entry.Unmarshal(m.Entries[0])
	if err != nil {
		return -1
	}
	if pos, ok := entry.Position(e.Index); ok {
		return pos
	}
	return -1
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
