package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/ledger/verify"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// instance is one running ledger process, with its own connection so that a
// test can kill it hard.
type instance struct {
	l      *Ledger
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
}

func startLedger(t testing.TB, ns *server.Server, s *checkpoint.Signer, opts Options) *instance {
	t.Helper()
	nc := natstest.Connect(t, ns)
	b, err := bus.New(nc, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = 50 * time.Millisecond
	}
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 2 * time.Second
	}
	l, err := New(b, s, opts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{l: l, nc: nc, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- l.Run(ctx) }()
	natstest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		select {
		case err := <-in.done:
			in.done <- err
			return nil
		default:
		}
		if !l.Ready() {
			return errors.New("ledger not ready")
		}
		return nil
	})
	t.Cleanup(func() { in.stop(t) })
	return in
}

// stop cancels the ledger and returns what Run returned.
func (in *instance) stop(t testing.TB) error {
	t.Helper()
	in.cancel()
	select {
	case err := <-in.done:
		in.done <- err
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("ledger did not stop")
		return nil
	}
}

// kill simulates a crash: the connection drops with publishes in flight and
// nothing is flushed.
func (in *instance) kill(t testing.TB) {
	t.Helper()
	in.nc.Close()
	in.stop(t)
}

func newSigner(t testing.TB) *checkpoint.Signer {
	t.Helper()
	s, _, err := checkpoint.GenerateSigner(checkpoint.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// commitMsg is a valid commit event as a binary-mode message with its
// Nats-Msg-Id set to msgID, in chain "chain-<last character of id>".
func commitMsg(t testing.TB, id, msgID string) *nats.Msg {
	t.Helper()
	return chainMsg(t, id, msgID, "chain-"+id[len(id)-1:])
}

// chainMsg is commitMsg in chain chainID.
func chainMsg(t testing.TB, id, msgID, chainID string) *nats.Msg {
	t.Helper()
	ev, err := events.NewCommit(events.Meta{
		ID: id, Source: "/test", ChainID: chainID, App: "shop",
		Time: time.Date(2025, 11, 26, 0, 0, 0, 0, time.UTC),
	}, events.Commit{Repository: "github.com/acme/shop", SHA: "abc123"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := events.ToMsg(events.SubjectOf(ev), ev)
	if err != nil {
		t.Fatal(err)
	}
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	return m
}

// publishAsync publishes msgs in order and waits for all acknowledgements.
// A full async window waits up to 10s for room instead of nats.go's default
// 200ms: on a loaded machine (-race, other tests) the server can fall that
// far behind, and the test is about the ledger, not about the publisher.
func publishAsync(t testing.TB, js jetstream.JetStream, msgs []*nats.Msg) {
	t.Helper()
	for _, m := range msgs {
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(10*time.Second)); err != nil {
			t.Errorf("publish: %v", err)
			return
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Error("publishes not acknowledged")
	}
}

// waitCommitted polls until the ledger has n entries and a checkpoint of them.
// The deadline is generous: under -race on two cores shared with other
// builds, 10,000 events have taken more than 30 s.
func waitCommitted(t testing.TB, l *Ledger, n int64) {
	t.Helper()
	natstest.CheckFor(t, 90*time.Second, 5*time.Millisecond, func() error {
		if _, size := l.LatestCheckpoint(); size != n || l.Size() != n {
			return fmt.Errorf("ledger has %d entries, checkpoint at %d, want %d", l.Size(), size, n)
		}
		return nil
	})
}

// readLog reads and verifies the whole ledger.
func readLog(t testing.TB, js jetstream.JetStream, v *checkpoint.Verifier) ([]*entry.Entry, error) {
	t.Helper()
	raw, err := streams.Entries(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	cps, err := streams.Checkpoints(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	_, verr := verify.Log(raw, cps, v)
	out := make([]*entry.Entry, 0, len(raw))
	for _, r := range raw {
		if e, err := entry.Unmarshal(r.Data); err == nil {
			out = append(out, e)
		}
	}
	return out, verr
}

func TestKillAndRestartRecordsEachEventOnce(t *testing.T) {
	const n = 10_000
	ns := natstest.Server(t, "")
	pub := natstest.Bus(t, ns)
	s := newSigner(t)

	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		id := fmt.Sprintf("ev-%05d", i)
		msgs[i] = commitMsg(t, id, id)
	}
	published := make(chan struct{})
	go func() {
		defer close(published)
		publishAsync(t, pub.JetStream(), msgs)
	}()

	// Kill the ledger twice while events stream in, each time once it has
	// made some progress.
	in := startLedger(t, ns, s, Options{})
	for _, progress := range []int64{1500, 5000} {
		natstest.CheckFor(t, 90*time.Second, time.Millisecond, func() error {
			if in.l.Size() < progress {
				return fmt.Errorf("%d entries", in.l.Size())
			}
			return nil
		})
		in.kill(t)
		in = startLedger(t, ns, s, Options{})
	}
	<-published
	waitCommitted(t, in.l, n)

	got, err := readLog(t, pub.JetStream(), s.Verifier())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	// The streaming verifier that the CLI runs agrees.
	res, err := streams.Verify(t.Context(), pub.JetStream(), s.Verifier())
	if err != nil || res.Entries != n || res.Latest == nil || res.Latest.Size != n {
		t.Fatalf("streams.Verify = %+v, %v; want %d entries, all checkpointed", res, err, n)
	}
	if len(got) != n {
		t.Fatalf("ledger has %d entries, want %d", len(got), n)
	}
	for i, e := range got {
		if want := fmt.Sprintf("ev-%05d", i); e.EventID != want || e.StreamSeq != uint64(i+1) {
			t.Fatalf("entry %d records %s at seq %d, want %s at seq %d", i, e.EventID, e.StreamSeq, want, i+1)
		}
	}
}

func TestDuplicateEventsStoredOnce(t *testing.T) {
	ns := natstest.Server(t, "")
	pub := natstest.Bus(t, ns)
	s := newSigner(t)
	in := startLedger(t, ns, s, Options{})
	js := pub.JetStream()

	tests := []struct {
		name  string
		msgs  []*nats.Msg
		total int64 // entries after this step
	}{
		// The second copy is dropped by JetStream's duplicate window.
		{"same message id", []*nats.Msg{commitMsg(t, "dup-1", "dup-1"), commitMsg(t, "dup-1", "dup-1")}, 1},
		// Different message ids: both copies are in RAMPART, one entry.
		{"different message id", []*nats.Msg{commitMsg(t, "dup-2", "dup-2"), commitMsg(t, "dup-2", "dup-2-replay")}, 2},
		// A replay long after (outside the duplicate window, as if by
		// `rampart replay`) of an already recorded event.
		{"replay of an old event", []*nats.Msg{commitMsg(t, "dup-1", "replay-1")}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := in.l.metrics.duplicates
			_ = before
			publishAsync(t, js, tt.msgs)
			waitCommitted(t, in.l, tt.total)
		})
	}
	// The same holds across a restart: the duplicate index is rebuilt.
	in.stop(t)
	in = startLedger(t, ns, s, Options{})
	publishAsync(t, js, []*nats.Msg{commitMsg(t, "dup-2", "after-restart"), commitMsg(t, "new-3", "new-3")})
	waitCommitted(t, in.l, 3)
	// All six RAMPART messages were handled (the last one is recorded).
	got, err := readLog(t, js, s.Verifier())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.EventID)
	}
	if strings.Join(ids, ",") != "dup-1,dup-2,new-3" {
		t.Fatalf("recorded events %v, want dup-1,dup-2,new-3", ids)
	}
}

func TestMalformedMessageIsDeadLetteredAndRecorded(t *testing.T) {
	ns := natstest.Server(t, "")
	pub := natstest.Bus(t, ns)
	s := newSigner(t)
	in := startLedger(t, ns, s, Options{})
	js := pub.JetStream()

	bad := &nats.Msg{Subject: "rampart.x.y", Data: []byte("not a cloudevent"), Header: nats.Header{}}
	// A binary-mode message whose ce-* headers claim an event the binding
	// does not read (CloudEvents 0.3).
	claims := commitMsg(t, "claims-1", "claims-1")
	claims.Subject = "rampart.x.z"
	claims.Header.Set("ce-specversion", "0.3")
	// Published one by one, each acknowledged before the next: the dead
	// letter of an earlier bad message can land in RAMPART between them, so
	// their sequences come from the acknowledgements, never from counting.
	var seqs []uint64
	for _, m := range []*nats.Msg{bad, commitMsg(t, "after-1", "after-1"), claims} {
		ack, err := js.PublishMsg(t.Context(), m)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	badSeq, claimsSeq := strconv.FormatUint(seqs[0], 10), strconv.FormatUint(seqs[2], 10)
	// Entries: the event after the bad messages, then the dead letters that
	// the bus published for the bad ones.
	waitCommitted(t, in.l, 3)

	got, err := readLog(t, js, s.Verifier())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	dead := map[string]*entry.Entry{}
	for _, e := range got {
		if e.Kind == entry.KindDeadLetter {
			dead[e.OriginalSubject] = e
		}
	}
	dl := dead["rampart.x.y"]
	if dl == nil {
		t.Fatalf("no dead-letter entry for rampart.x.y in %d entries", len(got))
	}
	if string(dl.Data) != "not a cloudevent" || dl.Subject != bus.DeadLetterSubject(Durable) || !strings.Contains(dl.Reason, "CloudEvent") {
		t.Fatalf("dead-letter entry = %+v", dl)
	}
	// The entry keeps what the bus adds besides the reason and subject.
	wantHeaders := map[string][]string{bus.HeaderOriginalSequence: {badSeq}, bus.HeaderConsumer: {Durable}}
	if !reflect.DeepEqual(dl.Headers, wantHeaders) {
		t.Fatalf("dead-letter headers = %v, want %v", dl.Headers, wantHeaders)
	}
	// The binary-mode one keeps what it claimed to be.
	dl = dead["rampart.x.z"]
	if dl == nil {
		t.Fatalf("no dead-letter entry for rampart.x.z in %d entries", len(got))
	}
	for name, want := range map[string]string{
		"ce-specversion": "0.3", "ce-id": "claims-1", "ce-source": "/test", "ce-type": events.TypeChangeMerged,
		bus.HeaderOriginalSequence: claimsSeq, bus.HeaderConsumer: Durable,
	} {
		if v := dl.Headers[name]; len(v) != 1 || v[0] != want {
			t.Errorf("dead-letter header %s = %q, want %q", name, v, want)
		}
	}
	for name := range dl.Headers {
		if strings.HasPrefix(strings.ToLower(name), "nats-") || name == bus.HeaderDeadLetterReason || name == bus.HeaderOriginalSubject {
			t.Errorf("dead-letter entry keeps header %s", name)
		}
	}
	// The bad message itself was terminated: the consumer has nothing pending.
	cons, err := js.Consumer(t.Context(), bus.StreamName, Durable)
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		info, err := cons.Info(t.Context())
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("consumer has %d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	// And the consumer keeps going.
	publishAsync(t, js, []*nats.Msg{commitMsg(t, "after-2", "after-2")})
	waitCommitted(t, in.l, 4)
}

func TestHTTPAPI(t *testing.T) {
	ns := natstest.Server(t, "")
	pub := natstest.Bus(t, ns)
	s := newSigner(t)
	in := startLedger(t, ns, s, Options{PageSize: 3})
	js := pub.JetStream()
	var msgs []*nats.Msg
	for i := range 7 {
		id := fmt.Sprintf("h-%d", i)
		msgs = append(msgs, commitMsg(t, id, id))
	}
	publishAsync(t, js, msgs)
	waitCommitted(t, in.l, 7)
	srv := httptest.NewServer(in.l.Handler())
	t.Cleanup(srv.Close)

	tests := []struct {
		path     string
		status   int
		contains string
	}{
		{"/ledger/entries?from=2&to=4", 200, `"index":3`},
		{"/ledger/entries", 200, `"next":3`},
		{"/ledger/entries?chainId=chain-1", 400, "GET /ledger/chains/{chain}"},
		{"/ledger/chains/chain-1", 200, `"eventId":"h-1"`},
		{"/ledger/chains/chain-1?from=2", 200, `"entries":[]`},
		{"/ledger/chains/chain-9", 404, `no ledger entry has chainId "chain-9"`},
		{"/ledger/chains/chain%01", 400, "not printable"},
		{"/ledger/chains/" + strings.Repeat("c", 1025), 400, "longer than 1024"},
		{"/ledger/chains/chain-1?from=-1", 400, "parameter from"},
		{"/ledger/chains/chain-1?limit=0", 400, "between 1 and 3"},
		{"/ledger/checkpoints", 200, `"checkpoints":["rampart.ledger\n`},
		{"/ledger/checkpoints?from=0&to=0", 200, `"checkpoints":[]`},
		{"/ledger/checkpoints?to=9999", 400, "beyond the checkpoint count"},
		{"/ledger/entries?from=x", 400, "parameter from"},
		{"/ledger/entries?from=5&to=4", 400, "after to"},
		{"/ledger/entries?to=99", 400, "beyond the ledger size 7"},
		{"/ledger/entries?limit=4", 400, "between 1 and 3"},
		{"/ledger/checkpoint", 200, "rampart.ledger\n7\n"},
		{"/ledger/key", 200, s.VerifierKey()},
		{"/ledger/proof/inclusion?index=3&size=7", 200, `"proof":[`},
		{"/ledger/proof/inclusion?index=3", 200, `"size":7`},
		{"/ledger/proof/inclusion?index=7", 400, "not below size 7"},
		{"/ledger/proof/inclusion", 400, "parameter index: required"},
		{"/ledger/proof/inclusion?index=1&size=8", 400, "beyond the ledger size"},
		{"/ledger/proof/consistency?from=3&to=7", 200, `"fromRoot"`},
		{"/ledger/proof/consistency?from=0", 400, "at least 1"},
		{"/ledger/proof/consistency?from=-1", 400, "non-negative"},
		{"/ledger/proof/consistency?from=5&to=4", 400, "after to"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body strings.Builder
			if _, err := fmt.Fprint(&body, readAll(t, resp)); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || !strings.Contains(body.String(), tt.contains) {
				t.Fatalf("GET %s = %d %q, want %d containing %q", tt.path, resp.StatusCode, body.String(), tt.status, tt.contains)
			}
		})
	}
}

// TestClient reads the ledger through pkg/ledger/client against the real
// handler: what the notifier and the CLI do.
func TestClient(t *testing.T) {
	ns := natstest.Server(t, "")
	pub := natstest.Bus(t, ns)
	s := newSigner(t)
	in := startLedger(t, ns, s, Options{PageSize: 2})
	var msgs []*nats.Msg
	for i := range 7 {
		id := fmt.Sprintf("c-%d", i)
		msgs = append(msgs, chainMsg(t, id, id, []string{"even", "odd"}[i%2]))
	}
	publishAsync(t, pub.JetStream(), msgs)
	waitCommitted(t, in.l, 7)
	srv := httptest.NewServer(in.l.Handler())
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Pages of two: the chain of four comes back whole and in order.
	es, err := c.Chain(t.Context(), "even")
	if err != nil || fmt.Sprint(eventIDs(es)) != "[c-0 c-2 c-4 c-6]" {
		t.Fatalf("Chain(even) = %v, %v", eventIDs(es), err)
	}
	if _, err := c.Chain(t.Context(), "none"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Chain(none) error = %v, want ErrNotFound", err)
	}
	res, err := c.Verify(t.Context(), s.Verifier())
	if err != nil || res.Entries != 7 || res.Checkpoints == 0 || res.Latest == nil || res.Latest.Size != 7 {
		t.Fatalf("Verify = %+v, %v", res, err)
	}
	// Bundled entries carry no signature: with another key, the first
	// checkpoint is what fails.
	var ve *verify.Error
	if _, err := c.Verify(t.Context(), newSigner(t).Verifier()); !errors.As(err, &ve) || ve.Checkpoint != 0 || !errors.Is(err, verify.ErrCheckpointSignature) {
		t.Fatalf("Verify with another key = %v, want checkpoint 0 named", err)
	}
	cp, err := c.LatestCheckpoint(t.Context())
	if err != nil || !strings.HasPrefix(string(cp), "rampart.ledger\n7\n") {
		t.Fatalf("LatestCheckpoint = %q, %v", cp, err)
	}
	if key, err := c.Key(t.Context()); err != nil || key != s.VerifierKey() {
		t.Fatalf("Key = %q, %v", key, err)
	}
	p, err := c.InclusionProof(t.Context(), 3, -1)
	if err != nil || p.Size != 7 {
		t.Fatalf("InclusionProof = %+v, %v", p, err)
	}

	// A stopped ledger answers 503 rather than a prefix it no longer
	// records after.
	in.stop(t)
	var se *client.StatusError
	if _, err := c.Chain(t.Context(), "even"); !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable {
		t.Fatalf("Chain from a stopped ledger: %v, want 503", err)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}
