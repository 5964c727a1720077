package ledger

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/bundle"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/ledger/verify"
	"github.com/rampartci/rampart/pkg/ledger/witness"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// These tests act as an admin would with an unrestricted NATS connection
// (the test server's): what NATS permissions refuse to the services, done
// anyway. Each must be detected and said in plain words (decision 0015).

// publishCommits publishes n commit events with ids prefix-0..n-1.
func publishCommits(t *testing.T, js jetstream.JetStream, prefix string, n int) {
	t.Helper()
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		id := fmt.Sprintf("%s-%d", prefix, i)
		msgs[i] = commitMsg(t, id, id)
	}
	publishAsync(t, js, msgs)
}

// ledgerAnomalies returns the ledger's anomalies in RAMPART.
func ledgerAnomalies(t *testing.T, js jetstream.JetStream) []events.Anomaly {
	t.Helper()
	var out []events.Anomaly
	_, err := streams.Read(t.Context(), js, bus.StreamName, 1, func(_ uint64, msg jetstream.Msg) error {
		if msg.Subject() != events.SubjectPrefix+"."+events.KindAnomaly+".ledger" {
			return nil
		}
		ev, err := events.FromMsg(msg.Headers(), msg.Data())
		if err != nil {
			return err
		}
		a, err := events.AnomalyOf(ev)
		if err != nil {
			return err
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// apiVerify verifies the ledger through its query API, as `rampart ledger
// verify` does.
func apiVerify(t *testing.T, l *Ledger, v *checkpoint.Verifier) (*verify.Result, error) {
	t.Helper()
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	c, err := client.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Verify(t.Context(), v)
}

// TestForgedEntryIsSkippedAndReported (D5): messages published on the
// ledger's subject by someone else (an entry signed with another key, a
// replayed entry of this ledger, garbage) never stop the ledger: each is
// skipped, reported as an anomaly (which the ledger records), and recording
// continues with the next index, also across a restart.
func TestForgedEntryIsSkippedAndReported(t *testing.T) {
	// Pages of the query API are read in one pass past the skipped
	// messages, as on a large ledger.
	defer func(old int64) { minStreamedPage = old }(minStreamedPage)
	minStreamedPage = 1
	ns := natstest.Server(t, "")
	pub := natstest.Bus(t, ns)
	s := newSigner(t)
	in := startLedger(t, ns, s, Options{})
	js := pub.JetStream()

	publishAsync(t, js, []*nats.Msg{commitMsg(t, "a-1", "a-1"), commitMsg(t, "a-2", "a-2")})
	waitCommitted(t, in.l, 2)

	forger := newSigner(t)
	fake := &entry.Entry{Index: 2, RecordedAt: time.Now(), Subject: "rampart.commit.shop", StreamSeq: 99,
		Kind: entry.KindEvent, EventID: "forged", Source: "/test", Type: events.TypeChangeMerged, Event: []byte(`{}`)}
	data, err := entry.Marshal(fake)
	if err != nil {
		t.Fatal(err)
	}
	// The bundle holding entry 0, as stored, is replayed.
	replayed, err := in.l.entries.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	n0 := in.l.lastMsg.Load() // LEDGER messages so far
	// A bundle from entry 2 with a MAC made with another key.
	leaves := bundle.EncodeLeaves([]tlog.Hash{tlog.RecordHash(data)})
	forgedBundle := &nats.Msg{Subject: streams.EntriesSubject, Data: bundle.Append(nil, data), Header: nats.Header{
		bundle.FirstHeader: []string{"2"}, bundle.LeavesHeader: []string{leaves}, bundle.MACHeader: []string{forger.BundleMAC(2, leaves)},
	}}
	for _, m := range []*nats.Msg{
		{Subject: streams.EntriesSubject, Data: data, Header: nats.Header{entry.SignatureHeader: []string{forger.SignEntry(data)}}},
		{Subject: streams.EntriesSubject, Data: replayed.Data, Header: nats.Header{
			bundle.FirstHeader:  []string{replayed.Header.Get(bundle.FirstHeader)},
			bundle.LeavesHeader: []string{replayed.Header.Get(bundle.LeavesHeader)},
			bundle.MACHeader:    []string{replayed.Header.Get(bundle.MACHeader)},
		}},
		{Subject: streams.EntriesSubject, Data: []byte("garbage")},
		forgedBundle,
	} {
		if _, err := js.PublishMsg(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	// The stream as stored names the first forged message.
	var ve *verify.Error
	if _, err := streams.Verify(t.Context(), js, s.Verifier()); !errors.As(err, &ve) || ve.Index != 2 || !errors.Is(err, verify.ErrEntrySignature) {
		t.Fatalf("streams.Verify error = %v, want a bad signature on message 3 (position 2)", err)
	}

	// The idle ledger finds them by itself and reports each; the four
	// anomalies are entries 2 to 5, and a-3 comes after them.
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := len(ledgerAnomalies(t, js)); n != 4 {
			return fmt.Errorf("%d anomalies", n)
		}
		return nil
	})
	publishAsync(t, js, []*nats.Msg{commitMsg(t, "a-3", "a-3")})
	waitCommitted(t, in.l, 7)
	select {
	case err := <-in.done:
		t.Fatalf("the ledger stopped: %v", err)
	default:
	}
	as := ledgerAnomalies(t, js)
	var descs []string
	for _, a := range as {
		if a.Target != events.TargetLedger || a.Rule != RuleForeignMessage || a.App != "ledger" {
			t.Errorf("anomaly %+v", a)
		}
		descs = append(descs, a.Description)
	}
	want := []string{
		fmt.Sprintf("LEDGER message %d, before entry 2, is not an entry this ledger wrote (bad entry signature: does not verify with the ledger key)", n0+1),
		fmt.Sprintf("LEDGER message %d, before entry 2, is not an entry this ledger wrote (it says first index 0 where entry 2 is next)", n0+2),
		fmt.Sprintf("LEDGER message %d, before entry 2, is not an entry this ledger wrote (bad entry signature: missing Rampart-Ledger-Signature)", n0+3),
		fmt.Sprintf("LEDGER message %d, before entry 2, is not an entry this ledger wrote (bundle MAC does not verify with the ledger key)", n0+4),
	}
	if len(descs) != len(want) {
		t.Fatalf("anomalies:\n%s\nwant %d", strings.Join(descs, "\n"), len(want))
	}
	for i, d := range descs {
		if !strings.HasPrefix(d, want[i]) || !strings.HasSuffix(d, "it is not counted as an entry and recording continues") {
			t.Errorf("anomaly %d = %q, want %q...", i, d, want[i])
		}
	}
	// Verification through the query API sees the real entries only.
	// check verifies the ledger through its API; forgedCP says a forged
	// checkpoint is in the stream, which the verifier must name.
	check := func(l *Ledger, forgedCP bool) {
		t.Helper()
		res, err := apiVerify(t, l, s.Verifier())
		switch {
		case forgedCP && !errors.Is(err, verify.ErrCheckpointSignature):
			t.Fatalf("API verify with a forged checkpoint = %v, want it named", err)
		case !forgedCP && (err != nil || res.Entries != 7):
			t.Fatalf("API verify = %+v, %v", res, err)
		}
		page, err := func() (*client.Entries, error) {
			srv := httptest.NewServer(l.Handler())
			defer srv.Close()
			c, _ := client.New(srv.URL, nil)
			return c.Entries(t.Context(), 0, -1)
		}()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, je := range page.Entries {
			e, err := entry.Unmarshal(je.Entry)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e.EventID)
		}
		if j := strings.Join(got, ","); !strings.HasPrefix(j, fmt.Sprintf("a-1,a-2,ledger-foreign:%d:", n0+1)) || !strings.HasSuffix(j, ",a-3") {
			t.Fatalf("entries %v", got)
		}
	}
	check(in.l, false)

	// A checkpoint someone else signed, published on the ledger's
	// checkpoint subject, is named by a verifier and ignored by a restart.
	forgedCP, err := forger.Sign(checkpoint.Checkpoint{Origin: forger.Name(), Size: 7, Root: [32]byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), streams.CheckpointsSubject, forgedCP); err != nil {
		t.Fatal(err)
	}
	check(in.l, true)

	// A restart skips them again, reports nothing new, and records on.
	in.stop(t)
	in = startLedger(t, ns, s, Options{})
	if in.l.Size() != 7 {
		t.Fatalf("restarted ledger has %d entries, want 7", in.l.Size())
	}
	if _, size := in.l.LatestCheckpoint(); size != 7 {
		t.Fatalf("restarted ledger's latest checkpoint is at %d, want its own at 7", size)
	}
	check(in.l, true)
	publishAsync(t, js, []*nats.Msg{commitMsg(t, "a-4", "a-4")})
	waitCommitted(t, in.l, 8)
	if n := len(ledgerAnomalies(t, js)); n != 4 {
		t.Fatalf("%d anomalies after the restart, want 4", n)
	}
}

// TestStreamsDeletedRefusesToRecord (D3): the LEDGER streams and two RAMPART
// events are deleted and the ledger restarted. Its checkpoint file (and a
// witness file) say the tree was larger: it refuses to record, naming both
// tree heads, and the API says why; a ledger rebuilt without the files into
// a larger tree is a fork. --ledger-accept-new-log takes the new log and
// reports it.
func TestStreamsDeletedRefusesToRecord(t *testing.T) {
	ns := natstest.Server(t, "")
	pub := natstest.Bus(t, ns)
	js := pub.JetStream()
	s := newSigner(t)
	dir := t.TempDir()
	state := witness.NewLatest(filepath.Join(dir, "ledger.checkpoint"))
	archive := witness.NewLog(filepath.Join(dir, "witness", "checkpoints"))
	opts := Options{Witnesses: []witness.Witness{state, archive}}

	in := startLedger(t, ns, s, opts)
	publishCommits(t, js, "d3", 7)
	waitCommitted(t, in.l, 7)
	in.stop(t)
	for _, w := range opts.Witnesses {
		if c, err := witness.Trusted(w, s.Verifier()); err != nil || c == nil || c.Size != 7 {
			t.Fatalf("%s holds %+v, %v; want size 7", w.Name(), c, err)
		}
	}

	deleteLedgerStreams(t, js)
	rampart, err := js.Stream(t.Context(), bus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{2, 5} {
		if err := rampart.DeleteMsg(t.Context(), seq); err != nil {
			t.Fatal(err)
		}
	}

	in = startLedger(t, ns, s, opts)
	err = in.stop(t)
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "tree shrank from 7 to 0: ") ||
		!strings.Contains(err.Error(), "file "+state.Path()) || !strings.Contains(err.Error(), "witness file ") ||
		!strings.Contains(err.Error(), "--ledger-accept-new-log") {
		t.Fatalf("Run = %v, want a refusal naming both heads and the flag", err)
	}
	resp := httptest.NewRecorder()
	in.l.Handler().ServeHTTP(resp, httptest.NewRequest(http.MethodGet, "/ledger/entries", nil))
	if resp.Code != http.StatusServiceUnavailable || !strings.Contains(resp.Body.String(), "it stopped: "+err.Error()) {
		t.Fatalf("API answered %d %q", resp.Code, resp.Body.String())
	}
	if size, _ := streamSize(t, js, streams.EntriesStream); size != 0 {
		t.Fatalf("the refusing ledger wrote %d entries", size)
	}

	// Without the files (a data directory lost too) the ledger records
	// the remaining five events and more into a larger tree: to the files
	// kept elsewhere that is a fork.
	nofiles := startLedger(t, ns, s, Options{})
	publishCommits(t, js, "more", 4)
	waitCommitted(t, nofiles.l, 9)
	nofiles.stop(t)
	in = startLedger(t, ns, s, opts)
	err = in.stop(t)
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "tree forked at size 7: ") {
		t.Fatalf("Run = %v, want a fork at size 7", err)
	}

	// The operator accepts the new log: it is reported, recorded, and the
	// files follow it.
	accept := opts
	accept.AcceptNewLog = true
	in = startLedger(t, ns, s, accept)
	waitCommitted(t, in.l, 10)
	as := ledgerAnomalies(t, js)
	if len(as) != 1 || as[0].Rule != RuleNewLog || !strings.Contains(as[0].Description, "the operator accepted a new log (--ledger-accept-new-log): tree forked at size 7") {
		t.Fatalf("anomalies %+v, want the new log reported", as)
	}
	in.stop(t)
	in = startLedger(t, ns, s, opts)
	if in.l.Size() != 10 {
		t.Fatalf("restart after accepting: %d entries, want 10", in.l.Size())
	}
}

// TestStreamLimitedReportsMissingEntries (D4): LEDGER updated to keep its
// last 100 messages (Discard Old) loses its first entries; the query API and
// a restart say how many are missing instead of blaming entry 0.
func TestStreamLimitedReportsMissingEntries(t *testing.T) {
	ns := natstest.Server(t, "")
	pub := natstest.Bus(t, ns)
	js := pub.JetStream()
	s := newSigner(t)
	in := startLedger(t, ns, s, Options{})
	publishCommits(t, js, "d4", 150)
	waitCommitted(t, in.l, 150)
	// A second LEDGER message, whatever bundles the first 150 made.
	publishCommits(t, js, "d4-more", 1)
	waitCommitted(t, in.l, 151)

	stream, err := js.Stream(t.Context(), streams.EntriesStream)
	if err != nil {
		t.Fatal(err)
	}
	// The limit drops the first message: a bundle of the first k entries.
	info, err := stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	m, err := bundle.Read(first.Header, first.Data)
	if err != nil || m.First != 0 {
		t.Fatalf("LEDGER message 1 = %+v, %v, want a bundle from entry 0", m, err)
	}
	k := len(m.Entries)
	cfg := info.Config
	cfg.MaxMsgs, cfg.Discard = int64(info.State.Msgs)-1, jetstream.DiscardOld
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("the first %d entries are missing from LEDGER (the stream now starts at message 2)", k)
	if _, err := apiVerify(t, in.l, s.Verifier()); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("API verify = %v, want %q", err, want)
	}
	// The stream as stored says it in the verifier's words.
	if _, err := streams.Verify(t.Context(), js, s.Verifier()); !errors.Is(err, verify.ErrEntriesMissing) ||
		!strings.Contains(err.Error(), fmt.Sprintf("ledger entry 0: the first %d entries are missing: the log starts at entry %d", k, k)) {
		t.Fatalf("streams.Verify = %v", err)
	}
	in.stop(t)
	in = startLedger(t, ns, s, Options{})
	if err := in.stop(t); !errors.Is(err, ErrTampered) ||
		!strings.Contains(err.Error(), fmt.Sprintf("the first %d entries are missing from LEDGER (the stream starts at message 2)", k)) {
		t.Fatalf("restart Run = %v", err)
	}
}

func deleteLedgerStreams(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	for _, name := range []string{streams.EntriesStream, streams.CheckpointsStream, streams.ChainsStream} {
		if err := js.DeleteStream(t.Context(), name); err != nil {
			t.Fatalf("deleting %s: %v", name, err)
		}
	}
}

func streamSize(t *testing.T, js jetstream.JetStream, name string) (uint64, error) {
	t.Helper()
	s, err := js.Stream(t.Context(), name)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(t.Context())
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
