package replay_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/rampartci/rampart/cmd/rampart/internal/replay"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, natstest.LeakOptions...)
}

// window is a RAMPART stream holding n messages: commit events, except
// the dead letters and the invalid messages at the sequences named.
type window struct {
	bus  *bus.Bus
	src  jetstream.Stream
	msgs []*nats.Msg // msgs[i] is stored at sequence i+1
}

func storeWindow(t testing.TB, n int, dead, invalid []int) *window {
	t.Helper()
	ns := natstest.Server(t, "")
	w := &window{bus: natstest.Bus(t, ns)}
	js := w.bus.JetStream()
	for seq := 1; seq <= n; seq++ {
		ev, err := events.NewCommit(events.Meta{ID: fmt.Sprintf("e%d", seq), Source: "/test", ChainID: "rel-1", App: "shop"},
			events.Commit{Repository: "github.com/acme/shop", SHA: "abc123"})
		if err != nil {
			t.Fatal(err)
		}
		m, err := events.ToMsg(events.SubjectOf(ev), ev)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case slices.Contains(dead, seq):
			m = nats.NewMsg(bus.DeadLetterSubject("deployer"))
			m.Data = []byte("{}")
		case slices.Contains(invalid, seq) && seq%2 == 0:
			m.Data = []byte("not an event") // FromMsg refuses it
		case slices.Contains(invalid, seq):
			m.Header.Set("ce-id", "other") // decodes, but Validate refuses it
		}
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		w.msgs = append(w.msgs, m)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		t.Fatal("publishing timed out")
	}
	var err error
	if w.src, err = js.Stream(t.Context(), bus.StreamName); err != nil {
		t.Fatal(err)
	}
	return w
}

// expect is what reading the window one message at a time, decoding and
// validating each, finds: the sequences of the valid events and a notice
// for each invalid one.
func (w *window) expect() (valid []uint64, notices []string, st replay.Stats) {
	for i, m := range w.msgs {
		seq := uint64(i + 1)
		if m.Subject != "rampart.commit.shop" {
			st.DeadLetters++
			continue
		}
		ev, err := events.FromMsg(m.Header, m.Data)
		if err == nil {
			err = events.Validate(ev)
		}
		if err != nil {
			st.Invalid++
			notices = append(notices, fmt.Sprintf("skipping #%d on %s: %v", seq, m.Subject, err))
			continue
		}
		st.Events++
		valid = append(valid, seq)
	}
	return valid, notices, st
}

// TestRunKeepsStreamOrder reads a window of many chunks on parallel workers
// and checks that events, notices and progress come in stream order, each
// invalid message named by its sequence with the error reading it alone
// gives.
func TestRunKeepsStreamOrder(t *testing.T) {
	const n = 1000
	w := storeWindow(t, n, []int{130, 777}, []int{1, 63, 64, 65, 128, 500, 999, n})
	wantValid, wantNotices, want := w.expect()
	var visited []uint64
	var notices []string
	var progress []uint64
	st, err := replay.Run(t.Context(), w.bus.Conn(), w.src, replay.Options{
		Since:  time.Now().Add(-time.Hour),
		DryRun: true,
		Visit: func(m jetstream.Msg) error {
			meta, err := m.Metadata()
			if err != nil {
				return err
			}
			visited = append(visited, meta.Sequence.Stream)
			return nil
		},
		Notice: func(s string) { notices = append(notices, s) },
		Progress: func(read, total uint64) {
			if total != n {
				t.Errorf("progress %d of %d, want of %d", read, total, n)
			}
			progress = append(progress, read)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != want.Events || st.Invalid != want.Invalid || st.DeadLetters != want.DeadLetters {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	if !slices.Equal(visited, wantValid) {
		t.Errorf("visited %d events, want %d; first difference at %d", len(visited), len(wantValid), firstDiff(visited, wantValid))
	}
	if !slices.Equal(notices, wantNotices) {
		t.Errorf("notices:\n%q\nwant:\n%q", notices, wantNotices)
	}
	for i, r := range progress {
		if r != uint64(i+1) {
			t.Fatalf("progress %d at message %d", r, i+1)
		}
	}
	if len(progress) != n {
		t.Errorf("progress told %d times, want %d", len(progress), n)
	}
}

func firstDiff(a, b []uint64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestRunStops checks that a replay stops at the event where Visit fails or
// where the context is cancelled, handing on nothing read ahead after it.
func TestRunStops(t *testing.T) {
	const n, at = 600, 300
	w := storeWindow(t, n, nil, nil)
	errVisit := errors.New("visit failed")
	for _, tt := range []struct {
		name  string
		visit func(cancel context.CancelFunc) error
		want  error
		text  string
		done  int // st.Events
	}{
		{"visit fails", func(context.CancelFunc) error { return errVisit }, errVisit, "visit failed", at - 1},
		{"cancelled", func(cancel context.CancelFunc) error { cancel(); return nil }, context.Canceled, fmt.Sprintf("stopped after %d events", at), at},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			visits := 0
			st, err := replay.Run(ctx, w.bus.Conn(), w.src, replay.Options{
				Since:  time.Now().Add(-time.Hour),
				DryRun: true,
				Visit: func(jetstream.Msg) error {
					if visits++; visits == at {
						return tt.visit(cancel)
					}
					return nil
				},
			})
			if !errors.Is(err, tt.want) || err == nil || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("Run = %v, want %v (%q)", err, tt.want, tt.text)
			}
			if visits != at || st.Events != tt.done {
				t.Errorf("%d visits, %d events, want %d and %d", visits, st.Events, at, tt.done)
			}
		})
	}
}
