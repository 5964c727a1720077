package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/rampartci/rampart/pkg/runtime/bus"
)

func TestEventsPublish(t *testing.T) {
	m := newMesh(t)
	// A second source with the same id is another event: the ledger keys
	// events by source and id.
	bad := commit(t, "bad", "shop", "c1")
	bad.SetID("not-the-cdevent-id") // the CDEvent context.id no longer agrees
	tests := []struct {
		name       string
		input      string
		wantCode   int
		wantStored uint64 // RAMPART messages after the run
		wantOut    []string
		wantErr    []string
	}{{
		name:       "JSON lines",
		input:      jsonLines(t, commit(t, "l1", "shop", "c1"), commit(t, "l2", "shop", "c1"), commit(t, "l3", "web", "c2")),
		wantStored: 3,
		wantOut:    []string{"published 3 events to RAMPART: 3 new, 0 duplicates"},
	}, {
		name:       "JSON array batch",
		input:      jsonArray(t, commit(t, "a1", "shop", "c1"), commit(t, "a2", "web", "c2")),
		wantStored: 5,
		wantOut:    []string{"published 2 events to RAMPART: 2 new, 0 duplicates"},
	}, {
		name:       "single event, twice over",
		input:      structured(t, commit(t, "l1", "shop", "c1")),
		wantStored: 5,
		wantOut:    []string{"published 1 event to RAMPART: 0 new, 1 duplicate", "duplicate: l1 (stored as #1)"},
	}, {
		name:       "one invalid event in a batch publishes none",
		input:      jsonArray(t, commit(t, "b1", "shop", "c1"), bad, commit(t, "b3", "shop", "c1")),
		wantCode:   1,
		wantStored: 5,
		wantErr: []string{`invalid: event 2 (id "not-the-cdevent-id")`, `context.id "bad" differs from the CloudEvent id`,
			"1 of 3 events invalid", "published none"},
	}, {
		name:       "schema violation in JSON lines publishes none",
		input:      jsonLines(t, commit(t, "s1", "shop", "c1")) + schemaViolation + "\n",
		wantCode:   1,
		wantStored: 5,
		wantErr:    []string{`event 2 (id "s2")`, "dev.cdevents.change.merged.0.3.0: at /subject/content", "published none"},
	}, {
		name:       "undecodable input publishes none",
		input:      jsonLines(t, commit(t, "u1", "shop", "c1")) + `{"specversion":"1.0","id":"u2"` + "\n",
		wantCode:   1,
		wantStored: 5,
		wantErr:    []string{"standard input: malformed CloudEvent message: event 2", "unexpected EOF; published none"},
	}, {
		name:       "empty input",
		input:      "\n",
		wantCode:   1,
		wantStored: 5,
		wantErr:    []string{"no events in input"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rampart(t, t.Context(), tt.input, "events", "publish", "--nats", m.url, "-")
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if n := m.count(t, bus.StreamName, "rampart.>"); n != tt.wantStored {
				t.Errorf("RAMPART holds %d messages, want %d", n, tt.wantStored)
			}
		})
	}
}

// schemaViolation is a well-formed CloudEvent whose CDEvent breaks the
// change.merged schema: its subject content has a property the schema forbids.
const schemaViolation = `{"specversion":"1.0","id":"s2","source":"/test","type":"dev.cdevents.change.merged.0.3.0",` +
	`"datacontenttype":"application/json","data":{"context":{"specversion":"0.5.1","id":"s2","source":"/test",` +
	`"type":"dev.cdevents.change.merged.0.3.0","timestamp":"2026-11-26T17:00:00Z"},` +
	`"subject":{"id":"sha-s2","content":{"branch":"main"}}}}`

func TestEventsPublishFile(t *testing.T) {
	m := newMesh(t)
	path := filepath.Join(t.TempDir(), "events.json")
	if err := os.WriteFile(path, []byte(jsonArray(t, commit(t, "f1", "shop", "c1"))), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := rampart(t, t.Context(), "", "events", "publish", path, "--nats", m.url); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got := m.subjects(t, bus.StreamName); len(got) != 1 || got[0] != "rampart.commit.shop" {
		t.Fatalf("stored on %v", got)
	}
	r := rampart(t, t.Context(), "", "events", "publish", "--nats", m.url, filepath.Join(t.TempDir(), "missing.json"))
	if r.code != 1 || !strings.Contains(r.stderr, "missing.json: no such file") {
		t.Fatalf("missing file: exit %d: %s", r.code, r.stderr)
	}
}

func TestEventsPublishWithoutStream(t *testing.T) {
	m := newMesh(t)
	if err := m.js.DeleteStream(t.Context(), bus.StreamName); err != nil {
		t.Fatal(err)
	}
	r := rampart(t, t.Context(), structured(t, commit(t, "x", "shop", "c1")), "events", "publish", "--nats", m.url, "-")
	if r.code != 1 || !strings.Contains(r.stderr, "published 0 of 1 events, then event 1") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}

func TestEventsTail(t *testing.T) {
	m := newMesh(t)
	// Stored before any tail starts: only --since shows it.
	if _, err := m.bus.Publish(t.Context(), commit(t, "old", "shop", "c0")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant []string
	}{{
		name: "new events",
		want: []string{
			"rampart.commit.shop change.merged id=e1 chain=c1 app=shop",
			"rampart.commit.web change.merged id=e2 chain=c2 app=web",
			`rampart.deadletter.scanner DEAD-LETTER of=rampart.commit.shop#7 consumer=scanner reason="schema says no"`,
		},
		notWant: []string{"id=old"},
	}, {
		name:    "one subject",
		args:    []string{"--subject", "rampart.commit.web", "--since", "2000-01-01"},
		want:    []string{"#3 rampart.commit.web change.merged id=e2 chain=c2 app=web"},
		notWant: []string{"id=e1", "DEAD-LETTER", "id=old"},
	}, {
		name: "since",
		args: []string{"--since", "1h"},
		want: []string{"2026-11-26T17:00:00.000Z #1 rampart.commit.shop change.merged id=old chain=c0 app=shop", "id=e2"},
	}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, stop := background(t, append([]string{"events", "tail", "--nats", m.url}, tt.args...)...)
			waitFor(t, stderr, "(Ctrl-C to stop)")
			if i == 0 {
				// Published once, while the first tail runs; later tails see them
				// as stored events (or not at all, without --since).
				publishTailInput(t, m)
			}
			waitFor(t, stdout, tt.want[len(tt.want)-1])
			if code := stop(); code != 0 {
				t.Fatalf("tail exited %d: %s", code, stderr)
			}
			out := stdout.String()
			for _, w := range tt.want {
				if n := strings.Count(out, w); n != 1 {
					t.Errorf("tail shows %q %d times:\n%s", w, n, out)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("tail shows %q:\n%s", w, out)
				}
			}
		})
	}
}

func publishTailInput(t *testing.T, m *mesh) {
	t.Helper()
	for _, ev := range []struct{ id, app, chain string }{{"e1", "shop", "c1"}, {"e2", "web", "c2"}} {
		if _, err := m.bus.Publish(t.Context(), commit(t, ev.id, ev.app, ev.chain)); err != nil {
			t.Fatal(err)
		}
	}
	dl := nats.NewMsg(bus.DeadLetterSubject("scanner"))
	dl.Data = []byte("garbage")
	dl.Header.Set(bus.HeaderDeadLetterReason, "schema says no")
	dl.Header.Set(bus.HeaderOriginalSubject, "rampart.commit.shop")
	dl.Header.Set(bus.HeaderOriginalSequence, "7")
	dl.Header.Set(bus.HeaderConsumer, "scanner")
	if _, err := m.js.PublishMsg(t.Context(), dl); err != nil {
		t.Fatal(err)
	}
}
