package cli_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/cmd/rampart/internal/cli"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

// result is what one run of the command line produced.
type result struct {
	code           int
	stdout, stderr string
}

// rampart runs the command line args with stdin and returns what it wrote.
func rampart(t *testing.T, ctx context.Context, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Main(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// lockedBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// background runs a long-lived command (events tail) until the returned stop
// is called; stop returns its exit code.
func background(t *testing.T, args ...string) (stdout, stderr *lockedBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stdout, stderr = &lockedBuffer{}, &lockedBuffer{}
	done := make(chan int, 1)
	go func() { done <- cli.Main(ctx, args, strings.NewReader(""), stdout, stderr) }()
	stopped := false
	var code int
	stop = func() int {
		if !stopped {
			stopped = true
			cancel()
			code = <-done
		}
		return code
	}
	t.Cleanup(func() { stop() })
	return stdout, stderr, stop
}

// waitFor polls until w has written want.
func waitFor(t *testing.T, w interface{ String() string }, want string) {
	t.Helper()
	natstest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if s := w.String(); !strings.Contains(s, want) {
			return &missing{want: want, got: s}
		}
		return nil
	})
}

type missing struct{ want, got string }

func (m *missing) Error() string { return "no " + m.want + " in:\n" + m.got }

// mesh is a real JetStream server with the RAMPART stream.
type mesh struct {
	ns  *server.Server
	url string
	bus *bus.Bus
	js  jetstream.JetStream
}

func newMesh(t *testing.T) *mesh {
	t.Helper()
	ns := natstest.Server(t, "")
	b := natstest.Bus(t, ns)
	// The commands connect as the identity in RAMPART_NATS_NKEY: here the
	// test's, allowed everything (the admin's limits are tested in
	// TestOperatorIdentity and in the natsauth package).
	t.Setenv("RAMPART_NATS_NKEY", natstest.Identity(t, ns, natstest.Tester).NKeyFile)
	return &mesh{ns: ns, url: ns.ClientURL(), bus: b, js: b.JetStream()}
}

// count is the number of messages stream holds on subject filter.
func (m *mesh) count(t *testing.T, stream, filter string) uint64 {
	t.Helper()
	s, err := m.js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// subjects lists the subjects of every message stream holds, in order.
func (m *mesh) subjects(t *testing.T, stream string) []string {
	t.Helper()
	s, err := m.js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		msg, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("%s #%d: %v", stream, seq, err)
		}
		out = append(out, msg.Subject)
	}
	return out
}

// commit is a valid commit event of app in chain.
func commit(t *testing.T, id, app, chain string) cloudevents.Event {
	t.Helper()
	ev, err := events.NewCommit(events.Meta{ID: id, Source: "/test", App: app, ChainID: chain,
		Time: time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC)},
		events.Commit{Repository: "github.com/acme/" + app, SHA: "sha-" + id})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// structured is ev in structured-mode JSON.
func structured(t *testing.T, ev cloudevents.Event) string {
	t.Helper()
	b, err := events.Structured(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// jsonLines is evs as JSON lines.
func jsonLines(t *testing.T, evs ...cloudevents.Event) string {
	t.Helper()
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(structured(t, ev))
		b.WriteByte('\n')
	}
	return b.String()
}

// jsonArray is evs as a CloudEvents JSON batch.
func jsonArray(t *testing.T, evs ...cloudevents.Event) string {
	t.Helper()
	parts := make([]string, len(evs))
	for i, ev := range evs {
		parts[i] = structured(t, ev)
	}
	return "[\n" + strings.Join(parts, ",\n") + "\n]\n"
}
