package cli_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/cmd/rampart/internal/replay"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

// storeReplayInput stores, in this order: e1 shop, e2 web, e3 shop, a dead
// letter, a message that is not an event, e4 web, e5 shop (sequences 1-7),
// and returns the stream timestamp of each sequence (index 0 unused).
func storeReplayInput(t *testing.T, m *mesh) []time.Time {
	t.Helper()
	pub := func(id, app string) {
		if _, err := m.bus.Publish(t.Context(), commit(t, id, app, "c-"+app)); err != nil {
			t.Fatal(err)
		}
	}
	pub("e1", "shop")
	pub("e2", "web")
	pub("e3", "shop")
	dl := nats.NewMsg(bus.DeadLetterSubject("deployer"))
	dl.Data = []byte("{}")
	dl.Header.Set(bus.HeaderDeadLetterReason, "unsupported schema version")
	if _, err := m.js.PublishMsg(t.Context(), dl); err != nil {
		t.Fatal(err)
	}
	if _, err := m.js.Publish(t.Context(), "rampart.commit.shop", []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	pub("e4", "web")
	pub("e5", "shop")
	s, err := m.js.Stream(t.Context(), bus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	ts := make([]time.Time, 8)
	for seq := uint64(1); seq <= 7; seq++ {
		msg, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		ts[seq] = msg.Time
	}
	return ts
}

func TestReplayDryRun(t *testing.T) {
	m := newMesh(t)
	ts := storeReplayInput(t, m)
	at := func(seq int) string { return ts[seq].UTC().Format(time.RFC3339Nano) }
	tests := []struct {
		name    string
		args    []string
		summary string
		ids     []string // events printed, in order
		notes   []string
	}{{
		name:    "everything in the last hour",
		args:    []string{"--since", "1h"},
		summary: "dry run: would replay 5 events from rampart.> since ",
		ids:     []string{"e1", "e2", "e3", "e4", "e5"},
		notes:   []string{"1 dead letter skipped", "1 invalid message skipped"},
	}, {
		name:    "a time window",
		args:    []string{"--since", at(2), "--until", at(6)},
		summary: "dry run: would replay 2 events from rampart.> since " + at(2) + " until " + at(6),
		ids:     []string{"e2", "e3"},
		notes:   []string{"1 dead letter skipped", "1 invalid message skipped"},
	}, {
		name:    "from a time to the end",
		args:    []string{"--since", at(4)},
		summary: "would replay 2 events",
		ids:     []string{"e4", "e5"},
		notes:   []string{"1 invalid message skipped"},
	}, {
		name:    "one subject",
		args:    []string{"--since", "7d", "--subject", "rampart.commit.web"},
		summary: "would replay 2 events from rampart.commit.web",
		ids:     []string{"e2", "e4"},
	}, {
		name:    "an empty window",
		args:    []string{"--since", at(7), "--until", ts[7].Add(time.Nanosecond).Format(time.RFC3339Nano), "--subject", "rampart.commit.web"},
		summary: "would replay 0 events",
	}, {
		name:    "a subject with no events",
		args:    []string{"--since", "1h", "--subject", "rampart.rollback.>"},
		summary: "would replay 0 events",
	}}
	idRE := regexp.MustCompile(` id=(\S+) `)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rampart(t, t.Context(), "", append([]string{"replay", "--dry-run", "--nats", m.url}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			var ids []string
			for _, match := range idRE.FindAllStringSubmatch(r.stdout, -1) {
				ids = append(ids, match[1])
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.ids) {
				t.Errorf("printed %v, want %v:\n%s", ids, tt.ids, r.stdout)
			}
			for _, w := range append([]string{tt.summary}, tt.notes...) {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, r.stdout)
				}
			}
			if !regexp.MustCompile(`events/s\)`).MatchString(r.stdout) {
				t.Errorf("no rate in %s", r.stdout)
			}
		})
	}
	if n := m.count(t, bus.StreamName, "rampart.>"); n != 7 {
		t.Errorf("a dry run changed RAMPART: %d messages", n)
	}
	if _, err := m.js.Stream(t.Context(), replay.Stream); err == nil {
		t.Errorf("a dry run created the %s stream", replay.Stream)
	}
}

func TestReplayUnderPrefix(t *testing.T) {
	m := newMesh(t)
	storeReplayInput(t, m)
	live := m.count(t, bus.StreamName, "rampart.>")

	r := rampart(t, t.Context(), "", "replay", "--nats", m.url, "--since", "1h", "--subject", "rampart.commit.>")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	prefix := regexp.MustCompile(`to (replay\.\d{8}T\d{6}_\d{3}Z)\.> \(stream REPLAY\)`).FindStringSubmatch(r.stdout)
	if prefix == nil || !strings.Contains(r.stdout, "replayed 5 events from rampart.commit.>") {
		t.Fatalf("summary: %s", r.stdout)
	}
	want := []string{"commit.shop", "commit.web", "commit.shop", "commit.web", "commit.shop"}
	for i := range want {
		want[i] = prefix[1] + "." + want[i]
	}
	if got := m.subjects(t, replay.Stream); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("REPLAY holds %v, want %v", got, want)
	}
	if n := m.count(t, bus.StreamName, "rampart.>"); n != live {
		t.Fatalf("a replay reached the live subjects: RAMPART holds %d messages, had %d", n, live)
	}
	// A copy is the same event, marked with where it came from.
	s, err := m.js.Stream(t.Context(), replay.Stream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetMsg(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.FromMsg(raw.Header, raw.Data)
	if err != nil || ev.ID() != "e2" || events.ChainID(ev) != "c-web" {
		t.Fatalf("copy decodes as %v, %v", ev, err)
	}
	if raw.Header.Get(replay.HeaderOf) != "rampart.commit.web" || raw.Header.Get(replay.HeaderSequence) != "2" {
		t.Fatalf("copy headers: %v", raw.Header)
	}

	// A second replay is a new set of copies, not duplicates of the first.
	r = rampart(t, t.Context(), "", "replay", "--nats", m.url, "--since", "1h", "--subject", "rampart.commit.shop")
	if r.code != 0 || strings.Contains(r.stdout, "duplicates") {
		t.Fatalf("second replay: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if n := m.count(t, replay.Stream, "replay.>"); n != 8 {
		t.Fatalf("REPLAY holds %d copies after two replays, want 5+3", n)
	}
}

func TestReplayToOtherPrefixes(t *testing.T) {
	m := newMesh(t)
	storeReplayInput(t, m)
	// A stream of the operator's own captures audit.>.
	if _, err := m.js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "AUDIT", Subjects: []string{"audit.>"}}); err != nil {
		t.Fatal(err)
	}
	r := rampart(t, t.Context(), "", "replay", "--nats", m.url, "--since", "1h", "--subject", "rampart.commit.web", "--to", "audit")
	if r.code != 0 || !strings.Contains(r.stdout, "replayed 2 events from rampart.commit.web") || !strings.Contains(r.stdout, "to audit.> (stream AUDIT)") {
		t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if got := m.subjects(t, "AUDIT"); fmt.Sprint(got) != "[audit.commit.web audit.commit.web]" {
		t.Fatalf("AUDIT holds %v", got)
	}

	// No stream captures scratch.>: copies go to core NATS subscribers.
	nc := natstest.Connect(t, m.ns)
	defer nc.Close()
	sub, err := nc.SubscribeSync("scratch.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	r = rampart(t, t.Context(), "", "replay", "--nats", m.url, "--since", "1h", "--subject", "rampart.commit.shop", "--to", "scratch.copies")
	if r.code != 0 || !strings.Contains(r.stderr, "no stream captures scratch.copies.>") {
		t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	for _, id := range []string{"e1", "e3", "e5"} {
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("core copy of %s: %v", id, err)
		}
		ev, err := events.FromMsg(msg.Header, msg.Data)
		if err != nil || ev.ID() != id || msg.Subject != "scratch.copies.commit.shop" {
			t.Fatalf("core copy on %s: %v %v", msg.Subject, ev, err)
		}
	}
}

func TestReplayToLiveSubjects(t *testing.T) {
	m := newMesh(t)
	storeReplayInput(t, m)
	// Within the duplicate window JetStream drops the copies: same ids.
	r := rampart(t, t.Context(), "", "replay", "--nats", m.url, "--since", "1h", "--to", "rampart")
	if r.code != 0 || !strings.Contains(r.stdout, "replayed 5 events") || !strings.Contains(r.stdout, "5 already there, dropped as duplicates") {
		t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if n := m.count(t, bus.StreamName, "rampart.>"); n != 7 {
		t.Fatalf("RAMPART holds %d messages, want the 7 it had", n)
	}

	// Events stored without a message id (another publisher) are not
	// duplicates to JetStream: the copies land on the live subjects, and the
	// replay stops at the end it saw when it started rather than chasing them.
	for _, id := range []string{"x1", "x2"} {
		msg, err := events.ToMsg("rampart.commit.api", commit(t, id, "api", "c-api"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.js.PublishMsg(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
	}
	// A future major version decodes but is not valid here: it is skipped,
	// never re-published to the live consumers.
	future := commit(t, "x3", "api", "c-api")
	future.SetType("dev.cdevents.change.merged.1.0.0")
	fmsg, err := events.ToMsg("rampart.commit.api", future)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.js.PublishMsg(t.Context(), fmsg); err != nil {
		t.Fatal(err)
	}
	r = rampart(t, t.Context(), "", "replay", "--nats", m.url, "--since", "1h", "--subject", "rampart.commit.api", "--to", "rampart")
	if r.code != 0 || !strings.Contains(r.stdout, "replayed 2 events from rampart.commit.api") || strings.Contains(r.stdout, "duplicates") ||
		!strings.Contains(r.stdout, "1 invalid message skipped") || !strings.Contains(r.stderr, "skipping #10 on rampart.commit.api: event x3: unsupported schema version") {
		t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	got := m.subjects(t, bus.StreamName)
	if want := "rampart.commit.api rampart.commit.api rampart.commit.api rampart.commit.api rampart.commit.api]"; !strings.HasSuffix(fmt.Sprint(got), want) || len(got) != 12 {
		t.Fatalf("RAMPART holds %v", got)
	}
}

func TestReplayRefusesBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no since", []string{}, "--since is required"},
		{"bad since", []string{"--since", "yesterday"}, `--since "yesterday" is neither a duration`},
		{"negative since", []string{"--since", "-1h"}, `--since "-1h": a duration counts back from now and cannot be negative`},
		{"future since", []string{"--since", "2999-01-01"}, "--since 2999-01-01T00:00:00Z is in the future"},
		{"bad until", []string{"--since", "1h", "--until", "soon"}, `--until "soon" is neither a duration`},
		{"until before since", []string{"--since", "1h", "--until", "2h"}, "is not after --since"},
		{"until equal to since", []string{"--since", "2026-01-01T00:00:00Z", "--until", "2026-01-01"}, "--until 2026-01-01T00:00:00Z is not after --since 2026-01-01T00:00:00Z"},
		{"subject outside the stream", []string{"--since", "1h", "--subject", "orders.>"}, `--subject "orders.>" is outside the RAMPART stream`},
		{"bad subject", []string{"--since", "1h", "--subject", "rampart.>.x"}, `--subject "rampart.>.x": > must be the last token`},
		{"prefix under rampart", []string{"--since", "1h", "--to", "rampart.replay"}, `--to "rampart.replay" is inside rampart.>`},
		{"prefix with a wildcard", []string{"--since", "1h", "--to", "replay.*"}, `--to "replay.*": wildcards are not allowed here`},
		{"empty prefix token", []string{"--since", "1h", "--to", "replay..x"}, `--to "replay..x": empty token`},
		{"stray argument", []string{"--since", "1h", "now"}, `unexpected argument "now"`},
		{"unknown flag", []string{"--since", "1h", "--from", "x"}, "flag provided but not defined: -from"},
		{"bad boolean", []string{"--dry-run=maybe", "--since", "1h"}, `invalid boolean value "maybe" for -dry-run`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Nothing listens on port 1: flags are checked before connecting.
			r := rampart(t, t.Context(), "", append([]string{"replay", "--nats", "nats://127.0.0.1:1"}, tt.args...)...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\nstderr: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, "rampart replay: usage: ") || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("stderr lacks %q:\n%s", tt.want, r.stderr)
			}
		})
	}
}

func TestOperatorCommandsRefuseBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"events", "publish"}, "want one FILE, or - for standard input; got 0 arguments"},
		{[]string{"events", "publish", "a.json", "b.json"}, "got 2 arguments"},
		{[]string{"events", "tail", "--since", "a while"}, `--since "a while" is neither a duration`},
		{[]string{"events", "tail", "--subject", "ledger.entries"}, `--subject "ledger.entries" is outside the RAMPART stream`},
		{[]string{"events", "tail", "--subject", "rampart.commit.sh*p"}, `wildcard inside token "sh*p"`},
		{[]string{"ledger", "show"}, "--chain is required"},
		{[]string{"ledger", "show", "--chain", "c1", "extra"}, `unexpected argument "extra"`},
		{[]string{"ledger", "verify", "--key"}, "flag needs an argument: -key"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			at := []string{"--nats", "nats://127.0.0.1:1"}
			if tt.args[0] == "ledger" { // the ledger commands are clients of its query API
				at = []string{"--server", "http://127.0.0.1:1"}
			}
			r := rampart(t, t.Context(), "", append(tt.args, at...)...)
			if tt.args[len(tt.args)-1] == "--key" {
				r = rampart(t, t.Context(), "", tt.args...)
			}
			if r.code != 2 || !strings.Contains(r.stderr, ": usage: ") || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s", r.code, tt.want, r.stderr)
			}
		})
	}
}

func TestOperatorCommandsHelp(t *testing.T) {
	for _, cmd := range [][]string{{"events", "publish"}, {"events", "tail"}, {"replay"}, {"ledger", "verify"}, {"ledger", "show"}} {
		t.Run(strings.Join(cmd, " "), func(t *testing.T) {
			r := rampart(t, t.Context(), "", append(cmd, "--help")...)
			where := "-nats URL"
			if cmd[0] == "ledger" {
				where = "-server URL"
			}
			if r.code != 0 || !strings.Contains(r.stdout, "Usage: rampart "+strings.Join(cmd, " ")) || !strings.Contains(r.stdout, where) {
				t.Fatalf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}
