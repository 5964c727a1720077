// Package ledger is the ledger service component: it records every message
// of the RAMPART stream, in stream order and exactly once, as an entry in
// the LEDGER stream, keeps the Merkle tree over the entries, and signs
// checkpoints of it into LEDGER_CHECKPOINTS. Entries are written in bundles
// (pkg/ledger/bundle, docs/decisions/0028-ledger-entry-bundles.md): the
// signed checkpoints, not signatures per entry, vouch for them.
//
// A pipeline of goroutines shares the work:
//   - the consumer handler (record.go) decides, in stream order, what each
//     RAMPART message becomes (an entry, a duplicate, poison) and gives the
//     entry its index;
//   - sign workers (publish.go, GOMAXPROCS of them) encode and hash entries
//     in parallel;
//   - the publisher (publish.go) gathers the entries, in index order, into
//     bundles and publishes them asynchronously with the expected last
//     LEDGER sequence and message id, so that consecutive bundles are
//     pipelined but can only be stored in order;
//   - the committer (commit.go) waits for each publish acknowledgement in
//     order, repairs failed publishes in place, adds committed entries to
//     the tree and acknowledges their RAMPART messages, once per bundle;
//   - the checkpointer (checkpoint.go) signs the tree at most once per
//     interval when it has grown, and once more on the way out.
//
// The LEDGER stream is the source of truth for progress: on start the tree,
// the duplicate index, the index of LEDGER messages and the RAMPART cursor
// are rebuilt from it (rebuild.go), and the durable consumer is re-created
// at the cursor. See docs/decisions/0001-ledger-cursor.md. What it trusts
// outside the streams (witnesses), and what it does about messages it did
// not write, is in trust.go (docs/decisions/0015-ledger-trust.md).
package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/ledger/tree"
	"github.com/rampartci/rampart/pkg/ledger/witness"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// Durable is the name of the ledger's consumer on the RAMPART stream.
const Durable = "ledger"

// ErrTampered is returned by Run when the LEDGER streams lost or changed
// what this ledger wrote: entries missing (deleted, or dropped by a limit on
// the stream), entries that do not match its latest checkpoint, an entry
// signed with its key that goes backwards. The ledger refuses to record on
// top of it. Messages someone else added (a forged or replayed entry, a
// checkpoint it did not sign) are skipped and reported instead (trust.go).
var ErrTampered = errors.New("ledger streams were written by someone else")

// Options configures a Ledger.
type Options struct {
	// CheckpointInterval is the most often a checkpoint is signed (default 1s).
	CheckpointInterval time.Duration
	// Window bounds the entries published but not yet acknowledged by
	// JetStream (default 512).
	Window int
	// Replicas of the LEDGER streams (default 1).
	Replicas int
	// PageSize bounds the entries one HTTP request returns (default 1000).
	PageSize int
	// ShutdownGrace bounds how long Run waits, after its context ends, for
	// in-flight entries to be acknowledged and the last checkpoint to be
	// signed (default 5s).
	ShutdownGrace time.Duration
	// Now is the clock for recordedAt (default time.Now).
	Now func() time.Time
	// Registerer receives the metrics (default: none registered).
	Registerer prometheus.Registerer
	// Witnesses receive every signed checkpoint; on start the rebuilt tree
	// must extend the latest checkpoint each holds (decision 0015).
	Witnesses []witness.Witness
	// AcceptNewLog takes streams that do not extend a witness's checkpoint
	// as a new log (reported as an anomaly) instead of refusing to record.
	AcceptNewLog bool
}

func (o *Options) defaults() {
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = time.Second
	}
	if o.Window <= 0 {
		o.Window = 512
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.PageSize <= 0 {
		o.PageSize = 1000
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Ledger records the RAMPART stream. Create it with New, then call Run once.
type Ledger struct {
	bus      *bus.Bus
	js       jetstream.JetStream // own context: async publish limits for LEDGER
	entries  jetstream.Stream
	cps      jetstream.Stream
	signer   *checkpoint.Signer
	verifier *checkpoint.Verifier
	opts     Options
	log      *slog.Logger
	metrics  *metrics

	// tree holds the committed entries (acknowledged by JetStream).
	tree *tree.Tree

	mu       sync.RWMutex
	chains   map[string][]int64 // chainId → committed entry indexes
	latestCP []byte             // latest signed checkpoint note
	cpSize   int64              // its size
	// segs are the LEDGER messages that hold committed entries, in order:
	// a bundle, or one signed entry of the format before bundles (decision
	// 0028). The query API finds entry i's message in it.
	segs []segment
	// skipped are the LEDGER sequences, ascending, of messages that are
	// not entries (trust.go). Changed only by catchUp, while the pipeline
	// does not run.
	skipped []uint64
	// lastMsg is the LEDGER sequence of the last message committed or
	// skipped: the end of LEDGER as far as this process knows it.
	lastMsg atomic.Uint64

	// foreign messages found by catchUp and not reported yet.
	foreign []foreign
	// stopped is why Run returned with an error (a string), for the API.
	stopped atomic.Value

	// Owned by the consumer handler (and by rebuild and rollback while it
	// does not run).
	next    uint64            // index of the next entry
	lastSeq uint64            // RAMPART sequence of the last message handled
	dedup   map[string]uint64 // CloudEvent source + "\x00" + id → entry index

	// Owned by the publisher (and by rebuild and rollback while it does not
	// run): the message id and LEDGER sequence of the last message
	// published.
	prevID string
	pubSeq uint64
	// bundlesInFlight counts bundles published and not committed yet; the
	// committer signals committedBundle after each.
	bundlesInFlight atomic.Int64
	committedBundle chan struct{}

	// Owned by the committer: the last committed entry.
	committedSeq uint64 // its RAMPART sequence
	committedID  string // its message id

	// The pipeline, made anew by each record: handler → toSign (sign
	// workers) and toPublish (publisher, in handler order) → inflight
	// (committer), one bundle at a time.
	toSign    chan *pending
	toPublish chan *pending
	inflight  chan *bundleMsg
	// The chain index queue (chains.go), filled by the committer and
	// catchUp and emptied by indexLoop.
	idxMu     sync.Mutex
	idxQueue  []chainRef
	idxFrom   int64 // entries below this index were indexed by an earlier process
	idxSize   int64 // committed size when idxQueue was last appended to
	idxMarked int64 // size of the last published mark

	// published is the index after the last entry the publisher started
	// to publish; with the committed size it tells whether LEDGER may hold
	// messages of this process that are not committed yet.
	published  atomic.Int64
	sendMu     sync.RWMutex // held by the handler; taken to close toSign and toPublish
	sendClosed bool
	ready      atomic.Bool
	// signedHook, if set, is called with the size of each checkpoint once
	// it is stored (benchmarks time publish-to-checkpoint with it).
	signedHook atomic.Pointer[func(size int64)]
}

// New returns a Ledger that consumes through b and signs with signer.
func New(b *bus.Bus, signer *checkpoint.Signer, opts Options, logger *slog.Logger) (*Ledger, error) {
	opts.defaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(b.Conn(),
		jetstream.WithPublishAsyncMaxPending(opts.Window),
		jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("opening JetStream for the ledger: %w", err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Ledger{
		bus:      b,
		js:       js,
		signer:   signer,
		verifier: signer.Verifier(),
		opts:     opts,
		log:      logger.With("component", "ledger"),
		metrics:  m,
		tree:     tree.New(),
		chains:   map[string][]int64{},
		dedup:    map[string]uint64{},

		committedBundle: make(chan struct{}, 1),
	}, nil
}

// Ready reports whether the ledger has rebuilt its state and is consuming.
func (l *Ledger) Ready() bool { return l.ready.Load() }

// Size returns the number of committed entries.
func (l *Ledger) Size() int64 { return l.tree.Size() }

// LatestCheckpoint returns the latest signed checkpoint and its size, or nil.
func (l *Ledger) LatestCheckpoint() ([]byte, int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.latestCP, l.cpSize
}

// EnsureStreams creates the LEDGER, LEDGER_CHECKPOINTS and LEDGER_CHAINS
// streams, or updates them to this configuration: file storage, no limits,
// and neither messages nor the whole stream can be deleted.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, replicas int) (entries, cps jetstream.Stream, err error) {
	cfg := func(name, subject, desc string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subject},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardNew,
			Replicas:    max(replicas, 1),
			DenyDelete:  true,
			DenyPurge:   true,
			// Entries carry their leaf hash as message id only so that the
			// server can enforce the expected last message id; duplicate
			// detection is not needed beyond a retried publish, so keep the
			// server's id memory small.
			Duplicates: 5 * time.Second,
		}
	}
	entries, err = js.CreateOrUpdateStream(ctx, cfg(streams.EntriesStream, streams.EntriesSubject, "Rampart ledger entries: bundles of entries (one signed entry per message before bundles)"))
	if err != nil {
		return nil, nil, fmt.Errorf("ensuring stream %s: %w", streams.EntriesStream, err)
	}
	cps, err = js.CreateOrUpdateStream(ctx, cfg(streams.CheckpointsStream, streams.CheckpointsSubject, "Rampart ledger signed checkpoints"))
	if err != nil {
		return nil, nil, fmt.Errorf("ensuring stream %s: %w", streams.CheckpointsStream, err)
	}
	chains := cfg(streams.ChainsStream, streams.ChainsSubjects, "Rampart ledger chain index: entry indexes by chain id (a convenience for readers, not verified)")
	chains.Subjects = append(chains.Subjects, streams.ChainsMarkSubject)
	if _, err := js.CreateOrUpdateStream(ctx, chains); err != nil {
		return nil, nil, fmt.Errorf("ensuring stream %s: %w", streams.ChainsStream, err)
	}
	return entries, cps, nil
}

// Run rebuilds the ledger's state from its streams, then records RAMPART
// messages until ctx ends or a fatal problem (ErrTampered) occurs. On the way
// out it lets in-flight entries commit and signs a last checkpoint, within
// Options.ShutdownGrace.
func (l *Ledger) Run(ctx context.Context) (err error) {
	defer func() { l.setStopped(err) }()
	l.entries, l.cps, err = EnsureStreams(ctx, l.js, l.opts.Replicas)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := l.rebuild(ctx); err != nil {
		return err
	}
	l.log.Info("ledger state rebuilt", "entries", l.tree.Size(), "cursor", l.lastSeq, "skipped", len(l.skipped), "took", time.Since(start))
	if err := l.checkWitnesses(ctx); err != nil {
		return err
	}
	l.syncWitnesses()
	l.reportForeign(ctx)
	l.warnExpired(ctx)
	for {
		err := l.record(ctx)
		if !errors.Is(err, errStale) {
			return err
		}
		// LEDGER holds messages this process did not write: entries signed
		// with its key (a previous incarnation whose last publishes landed
		// late, or an overlapping replica), or messages someone else
		// published on its subject. What is committed here is still a
		// prefix of LEDGER: roll back what was in flight and read the rest,
		// skipping what is not an entry.
		l.log.Warn("LEDGER has messages this process did not write; catching up", "committed", l.tree.Size(), "err", err)
		l.rollback()
		if err := l.catchUp(ctx, l.tree.Size()); err != nil {
			return err
		}
		l.reportForeign(ctx)
	}
}

// syncWitnesses hands the latest checkpoint to the witnesses that do not
// hold it yet: on first start with witnesses, and after a new log was
// accepted.
func (l *Ledger) syncWitnesses() {
	cp, _ := l.LatestCheckpoint()
	if cp == nil {
		return
	}
	for _, w := range l.opts.Witnesses {
		if held, err := w.Latest(); err == nil && bytes.Equal(held, cp) {
			continue
		}
		if err := w.Add(cp); err != nil {
			l.metrics.witnessErrors.Inc()
			l.log.Error("handing the checkpoint to a witness", "witness", w.Name(), "err", err)
		}
	}
}

// record runs the consumer, the committer and the checkpointer until ctx
// ends (nil), LEDGER turns out to be ahead of this process (errStale), or a
// fatal problem occurs.
func (l *Ledger) record(ctx context.Context) error {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The committer outlives runCtx by up to ShutdownGrace so that entries
	// already published can still be committed.
	commitCtx, stopCommit := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCommit()

	l.sendMu.Lock()
	l.toSign = make(chan *pending, l.opts.Window)
	l.toPublish = make(chan *pending, l.opts.Window)
	l.inflight = make(chan *bundleMsg, l.opts.Window)
	l.sendClosed = false
	l.sendMu.Unlock()
	// The publisher stops when the committer does: nothing would read what
	// it hands on.
	pubCtx, stopPub := context.WithCancel(commitCtx)
	defer stopPub()
	commitDone := make(chan error, 1)
	go func() {
		err := l.commitLoop(commitCtx)
		stopPub()
		if err != nil {
			cancel(err)
		}
		commitDone <- err
	}()
	var stages sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		stages.Go(l.signLoop)
	}
	stages.Go(func() {
		if err := l.publishLoop(pubCtx); err != nil {
			cancel(err)
		}
	})
	var cpWG sync.WaitGroup
	cpWG.Go(func() { l.checkpointLoop(runCtx, cancel) })
	cpWG.Go(func() { l.indexLoop(runCtx) })

	stopConsumer, err := l.consume(runCtx)
	if err != nil {
		cancel(err)
	} else {
		l.ready.Store(true)
		<-runCtx.Done()
		l.ready.Store(false)
		// Stop at once: unacknowledged messages are redelivered later, and
		// a restart repositions at the LEDGER cursor anyway.
		stopConsumer()
	}
	// The handler's context is cancelled, so a handler blocked on a full
	// channel returns and releases sendMu. Closing the handler's channels
	// lets the sign workers finish and the publisher hand on what is
	// already queued, then close inflight.
	l.sendMu.Lock()
	l.sendClosed = true
	close(l.toSign)
	close(l.toPublish)
	l.sendMu.Unlock()
	cpWG.Wait()

	grace := time.NewTimer(l.opts.ShutdownGrace)
	defer grace.Stop()
	var commitErr error
	select {
	case commitErr = <-commitDone:
	case <-grace.C:
		stopCommit()
		commitErr = <-commitDone
	}
	// The committer has returned, so the publisher stops too; after it, no
	// goroutine of this record touches the state that rollback resets.
	stopPub()
	stages.Wait()
	for range l.inflight {
		// Entries the committer gave up on; rollback forgets them.
	}
	if commitErr == nil {
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), l.opts.ShutdownGrace)
		if err := l.signCheckpoint(fctx); err != nil {
			l.log.Warn("signing the last checkpoint", "err", err)
		}
		if err := l.publishChainIndex(fctx); err != nil {
			l.log.Warn("publishing the chain index", "err", err)
		}
		fcancel()
	}
	if cause := context.Cause(runCtx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	return nil
}

// consume (re)creates the ledger's durable consumer on RAMPART at the
// LEDGER cursor and runs the handler on what it delivers, one message at a
// time, until the returned stop is called. The consumer acknowledges all
// messages up to the one acknowledged (AckAll): the committer acknowledges
// the last message of each stored bundle, so one acknowledgement covers a
// bundle; messages that become no entry are acknowledged at once.
func (l *Ledger) consume(ctx context.Context) (stop func(), err error) {
	js := l.bus.JetStream()
	// The start of a durable cannot be changed in place; LEDGER, not the
	// consumer, is the record of the position (decision 0001).
	if err := js.DeleteConsumer(ctx, bus.StreamName, Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("reposition consumer %s: %w", Durable, err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, bus.StreamName, jetstream.ConsumerConfig{
		Durable:        Durable,
		FilterSubjects: []string{events.SubjectPrefix + ".>"},
		AckPolicy:      jetstream.AckAllPolicy,
		AckWait:        30 * time.Second,
		MaxAckPending:  4 * l.opts.Window,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    l.lastSeq + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s: %w", Durable, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(l.opts.Window))
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", Durable, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			msg, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return
			}
			if err != nil {
				if !errors.Is(err, nats.ErrConnectionClosed) {
					l.log.Warn("consume", "err", err)
				}
				// Missed heartbeats and the like pass; a closed connection
				// or a deleted consumer does not: do not spin on it.
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			meta, err := msg.Metadata()
			if err != nil {
				l.log.Error("message without JetStream metadata", "err", err)
				continue
			}
			next := l.next
			err = l.handle(ctx, msg, meta)
			l.settle(ctx, msg, meta, err, l.next != next)
		}
	})
	return func() { it.Stop(); wg.Wait() }, nil
}

// settle acknowledges what the handler made of msg: entries (queued) are
// acknowledged by the committer with their bundle; poison is dead-lettered
// (retried until it is stored or the ledger stops) and acknowledged; a
// duplicate is acknowledged. Acknowledging past entries still in flight is
// harmless: LEDGER, not the ack floor, is the cursor.
func (l *Ledger) settle(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, herr error, queued bool) {
	switch {
	case herr == nil:
		if queued {
			return
		}
	case errors.Is(herr, bus.ErrPoison):
		for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
			err := l.bus.DeadLetter(ctx, Durable, msg, herr.Error())
			if err == nil {
				break
			}
			l.log.Error("dead-letter failed; retrying", "seq", meta.Sequence.Stream, "err", err)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
		}
	default:
		return // stopping: redelivered to the next consumer
	}
	if err := msg.Ack(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		l.log.Debug("ack", "seq", meta.Sequence.Stream, "err", err)
	}
}

// rollback forgets the entries that were handled but not committed, so the
// handler state again describes the committed prefix.
func (l *Ledger) rollback() {
	size := l.tree.Size()
	l.published.Store(size)
	next := entry.IndexOf(size)
	for k, i := range l.dedup {
		if i >= next {
			delete(l.dedup, k)
		}
	}
	l.next = next
	l.lastSeq = l.committedSeq
	l.prevID = l.committedID
	l.pubSeq = l.lastMsg.Load()
	l.bundlesInFlight.Store(0)
}

// warnExpired logs when RAMPART has already dropped (by age) messages after
// the cursor: they can never be recorded.
func (l *Ledger) warnExpired(ctx context.Context) {
	s, err := l.bus.JetStream().Stream(ctx, bus.StreamName)
	if err != nil {
		return
	}
	info, err := s.Info(ctx)
	if err != nil {
		return
	}
	if first := info.State.FirstSeq; info.State.Msgs > 0 && first > l.lastSeq+1 {
		l.log.Error("RAMPART messages expired before the ledger recorded them",
			"from", l.lastSeq+1, "to", first-1, "count", first-1-l.lastSeq)
		l.metrics.expired.Add(float64(first - 1 - l.lastSeq))
		l.lastSeq = first - 1 // gone: nothing to wait for
	}
}
