package ledger

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/ledger/internal/streams"
)

// waitIndexed polls until the chain index mark is n.
func waitIndexed(t testing.TB, js jetstream.JetStream, n int64) {
	t.Helper()
	natstest.CheckFor(t, 30*time.Second, 5*time.Millisecond, func() error {
		mark, err := streams.IndexMark(t.Context(), js)
		if err != nil {
			return err
		}
		if mark != n {
			return fmt.Errorf("chain index mark at %d, want %d", mark, n)
		}
		return nil
	})
}

// chainIDs returns the event ids of entries, for comparing chains.
func eventIDs(es []*entry.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.EventID)
	}
	return out
}

// wantChain is what a full scan of LEDGER finds for chainID.
func wantChain(t *testing.T, js jetstream.JetStream, chainID string) []string {
	t.Helper()
	raw, err := streams.Entries(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range raw {
		e, err := entry.Unmarshal(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		if e.ChainID == chainID {
			out = append(out, e.EventID)
		}
	}
	return out
}

func TestChainIndex(t *testing.T) {
	ns := natstest.Server(t, "")
	pub := natstest.Bus(t, ns)
	js := pub.JetStream()
	s := newSigner(t)
	in := startLedger(t, ns, s, Options{})

	// commitMsg puts an event in chain "chain-<last character of its id>".
	var msgs []*nats.Msg
	for i := range 40 {
		id := fmt.Sprintf("c-%02d", i)
		msgs = append(msgs, commitMsg(t, id, id))
	}
	publishAsync(t, js, msgs)
	waitCommitted(t, in.l, 40)
	waitIndexed(t, js, 40)

	check := func(t *testing.T, chainID string, want []string) {
		t.Helper()
		got, err := streams.Chain(t.Context(), js, chainID)
		if err != nil {
			t.Fatalf("Chain(%s): %v", chainID, err)
		}
		if !slices.Equal(eventIDs(got), want) {
			t.Fatalf("Chain(%s) = %v, want %v", chainID, eventIDs(got), want)
		}
	}
	t.Run("indexed", func(t *testing.T) {
		for _, c := range []string{"chain-0", "chain-7", "chain-x"} {
			check(t, c, wantChain(t, js, c))
		}
		check(t, "chain-3", []string{"c-03", "c-13", "c-23", "c-33"})
	})

	// A hard kill loses the last index publish; the restarted ledger
	// indexes what the mark does not cover, and more events.
	in.kill(t)
	in = startLedger(t, ns, s, Options{})
	publishAsync(t, js, []*nats.Msg{commitMsg(t, "c-43", "c-43"), commitMsg(t, "c-44", "c-44")})
	waitCommitted(t, in.l, 42)
	waitIndexed(t, js, 42)
	t.Run("after a restart", func(t *testing.T) {
		check(t, "chain-3", []string{"c-03", "c-13", "c-23", "c-33", "c-43"})
		check(t, "chain-4", wantChain(t, js, "chain-4"))
	})
	in.stop(t)

	// Entries past the mark are found by reading LEDGER from the mark on.
	// (Chain does not verify signatures, so a plain entry will do.)
	tail := &entry.Entry{Index: 42, RecordedAt: time.Now(), Subject: "rampart.commit.shop", StreamSeq: 1000,
		Kind: entry.KindEvent, EventID: "tail-3", Source: "/test", Type: "dev.cdevents.change.merged.0.3.0",
		ChainID: "chain-3", Event: []byte(`{}`)}
	data, err := entry.Marshal(tail)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), streams.EntriesSubject, data); err != nil {
		t.Fatal(err)
	}
	// And an index message pointing at another chain's entry is ignored.
	if _, err := js.Publish(t.Context(), streams.ChainSubject("chain-3"), streams.FormatIndexes([]int64{0, 3})); err != nil {
		t.Fatal(err)
	}
	t.Run("past the mark, with a wrong index message", func(t *testing.T) {
		check(t, "chain-3", []string{"c-03", "c-13", "c-23", "c-33", "c-43", "tail-3"})
	})
}

// TestChainWithoutIndex reads a LEDGER stream written before the index
// existed: Chain scans it.
func TestChainWithoutIndex(t *testing.T) {
	ns := natstest.Server(t, "")
	js := natstest.Bus(t, ns).JetStream()
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: streams.EntriesStream, Subjects: []string{streams.EntriesSubject}}); err != nil {
		t.Fatal(err)
	}
	for i, chain := range []string{"a", "b", "a"} {
		e := &entry.Entry{Index: uint64(i), RecordedAt: time.Now(), Subject: "rampart.commit.shop", StreamSeq: uint64(i + 1),
			Kind: entry.KindEvent, EventID: fmt.Sprint("e-", i), Source: "/test", Type: "dev.cdevents.change.merged.0.3.0",
			ChainID: chain, Event: []byte(`{}`)}
		data, err := entry.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(t.Context(), streams.EntriesSubject, data); err != nil {
			t.Fatal(err)
		}
	}
	got, err := streams.Chain(t.Context(), js, "a")
	if err != nil {
		t.Fatal(err)
	}
	if ids := eventIDs(got); !slices.Equal(ids, []string{"e-0", "e-2"}) {
		t.Fatalf("Chain(a) = %v, want [e-0 e-2]", ids)
	}
}

func TestChainSubject(t *testing.T) {
	tests := []struct{ id, want string }{
		{"rel-42", "ledger.chain.rel-42"},
		{"a.b*c>d e\tf", "ledger.chain.a_b_c_d_e_f"},
		{"ünïcode", "ledger.chain.ünïcode"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := streams.ChainSubject(tt.id); got != tt.want {
				t.Fatalf("ChainSubject(%q) = %q, want %q", tt.id, got, tt.want)
			}
		})
	}
}
