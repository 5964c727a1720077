package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/cmd/rampart/internal/eventline"
	"github.com/rampartci/rampart/cmd/rampart/internal/mesh"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/service"
)

const eventsPublishUsage = `FILE|-

Publishes structured-mode CloudEvents JSON from FILE (or standard input for -):
a single event, a JSON array (the CloudEvents batch format) or JSON lines.
Every event is validated first; if any is invalid, none is published.`

const eventsTailUsage = `[--subject S] [--since DURATION|TIME]

Prints each event stored in the RAMPART stream as it arrives, one line each:
time, #sequence, subject, type, id, chainId and app; dead letters show their reason.
Stops on Ctrl-C.`

func init() {
	register("events publish", "validate and publish CloudEvents JSON (one, a batch or JSON lines)", runEventsPublish)
	register("events tail", "print events as they arrive, one line each", runEventsTail)
}

// natsFlags are the connection flags every operator command takes: the
// server and the admin identity.
type natsFlags struct {
	url    string
	id     natsauth.Identity
	caFile *string
	stderr io.Writer
}

// bindNATS binds --nats, --nats-nkey and --nats-creds on fs.
func bindNATS(e *env, fs *flag.FlagSet) *natsFlags {
	n := &natsFlags{id: natsauth.Identity{Name: natsauth.Admin}, stderr: e.stderr}
	fs.StringVar(&n.url, "nats", DefaultNATS, "NATS server `URL`")
	fs.StringVar(&n.id.NKeyFile, "nats-nkey", "", "nkey seed `FILE` of the admin identity (env "+service.EnvName("nats-nkey")+"; default "+defaultAdminKey+", written by rampart up)")
	fs.StringVar(&n.id.CredsFile, "nats-creds", "", ".creds `FILE` of the admin identity, instead of --nats-nkey (env "+service.EnvName("nats-creds")+")")
	n.caFile = bindCA(fs)
	return n
}

// defaultAdminKey is the admin identity `rampart up` writes in its default
// data directory (or admin.creds beside it, when there is one).
var defaultAdminKey = natsauth.KeyFile(mesh.NATSKeyDir(".rampart"), natsauth.Admin)

// identity is the admin identity from the flags, the environment or the
// default data directory, in that order.
func (n *natsFlags) identity() natsauth.Identity {
	id := n.id
	if id.IsZero() {
		id.NKeyFile, id.CredsFile = os.Getenv(service.EnvName("nats-nkey")), os.Getenv(service.EnvName("nats-creds"))
	}
	if id.IsZero() {
		id = mesh.Identity(mesh.NATSKeyDir(".rampart"), natsauth.Admin)
	}
	return id
}

// connect connects for the command name as the admin identity.
func (n *natsFlags) connect(name string) (*nats.Conn, error) {
	id := n.identity()
	auth, err := id.Options()
	if err != nil {
		return nil, fmt.Errorf("the admin identity (--nats-nkey, --nats-creds): %w; `rampart up` writes it to <data>/nats-keys/admin.nk", err)
	}
	trust, err := natsTrust(*n.caFile)
	if err != nil {
		return nil, err
	}
	auth = append(auth, trust)
	// A refused subject surfaces as a timeout of the request it was; say
	// what the server refused.
	refused := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		fmt.Fprintf(n.stderr, "rampart %s: NATS: %v\n", name, err)
	})
	nc, err := nats.Connect(n.url, append([]nats.Option{nats.Name("rampart " + name), nats.Timeout(5 * time.Second), refused}, auth...)...)
	if errors.Is(err, nats.ErrAuthorization) {
		return nil, fmt.Errorf("NATS at %s refused the identity in %s%s: it is not the admin identity of that server (`rampart up` writes it to <data>/nats-keys/admin.nk)", n.url, id.NKeyFile, id.CredsFile)
	}
	var unknownCA x509.UnknownAuthorityError
	if errors.As(err, &unknownCA) {
		return nil, fmt.Errorf("NATS at %s: its certificate is not signed by a CA this command trusts (--ca-file %q; `rampart up` writes <data>/tls/ca.crt): %w", n.url, *n.caFile, err)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s (is `rampart up` running?): %w", n.url, err)
	}
	return nc, nil
}

// connectEventStream connects for the command name and opens the RAMPART
// stream; the caller closes the connection.
func (n *natsFlags) connectEventStream(ctx context.Context, name string) (*nats.Conn, jetstream.Stream, error) {
	nc, err := n.connect(name)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err == nil {
		var s jetstream.Stream
		if s, err = openEventStream(ctx, js, n.url); err == nil {
			return nc, s, nil
		}
	}
	nc.Close()
	return nil, nil, err
}

// openEventStream returns the RAMPART stream, explaining its absence.
func openEventStream(ctx context.Context, js jetstream.JetStream, url string) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, bus.StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("NATS at %s has no %s stream: no Rampart service has started there", url, bus.StreamName)
	}
	if err != nil {
		return nil, fmt.Errorf("opening stream %s at %s: %w", bus.StreamName, url, err)
	}
	return s, nil
}

func runEventsPublish(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "events publish", eventsPublishUsage)
	conn := bindNATS(e, fs)
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return fmt.Errorf("%w: want one FILE, or - for standard input; got %d arguments", errUsage, len(files))
	}
	name := files[0]
	data, err := readInput(e.stdin, name)
	if err != nil {
		return err
	}
	if name == "-" {
		name = "standard input"
	}
	evs, err := events.ParseStructured(data)
	if err != nil {
		return fmt.Errorf("%s: %w; published none", name, err)
	}
	var invalid []string
	for i, ev := range evs {
		if err := events.Validate(ev); err != nil {
			invalid = append(invalid, fmt.Sprintf("event %d (id %q): %v", i+1, ev.ID(), err))
		}
	}
	if len(invalid) > 0 {
		for _, s := range invalid {
			fmt.Fprintf(e.stderr, "invalid: %s\n", s)
		}
		return fmt.Errorf("%s: %d of %d events invalid, first %s; published none", name, len(invalid), len(evs), invalid[0])
	}

	nc, err := conn.connect("events publish")
	if err != nil {
		return err
	}
	defer nc.Close()
	b, err := bus.New(nc, nil)
	if err != nil {
		return err
	}
	var dups []string
	for i, ev := range evs {
		ack, err := b.Publish(ctx, ev)
		if err != nil {
			return fmt.Errorf("published %d of %d events, then event %d: %w (publishing the same input again is safe: events are de-duplicated by id)", i, len(evs), i+1, err)
		}
		if ack.Duplicate {
			dups = append(dups, fmt.Sprintf("%s (stored as #%d)", ev.ID(), ack.Sequence))
		}
	}
	fmt.Fprintf(e.stdout, "published %s to %s: %d new, %s\n", nouns(len(evs), "event", "events"), bus.StreamName, len(evs)-len(dups), nouns(len(dups), "duplicate", "duplicates"))
	for _, d := range dups {
		fmt.Fprintf(e.stdout, "duplicate: %s\n", d)
	}
	return nil
}

// parseInterspersed parses flags before and after the positional arguments
// ("events publish FILE --nats URL"), which it returns; "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// nouns is n with the noun in singular or plural: "1 event", "2 events".
func nouns[N int | int64](n N, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// readInput reads the file name, or r when name is "-".
func readInput(r io.Reader, name string) ([]byte, error) {
	if name == "-" {
		data, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		return data, nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	return data, nil
}

func runEventsTail(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "events tail", eventsTailUsage)
	conn := bindNATS(e, fs)
	subject := fs.String("subject", events.SubjectPrefix+".>", "only events on subjects matching `S` (NATS wildcards)")
	sinceArg := fs.String("since", "", "start with the events stored since `DURATION` ago (90s, 2h, 7d) or since a time (RFC 3339); default: only new events")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if err := checkEventSubject("--subject", *subject); err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{*subject}, DeliverPolicy: jetstream.DeliverNewPolicy}
	from := "new events"
	if *sinceArg != "" {
		since, err := parseWhen("--since", *sinceArg, time.Now())
		if err != nil {
			return err
		}
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
		from = "events since " + since.UTC().Format(time.RFC3339)
	}

	nc, s, err := conn.connectEventStream(ctx, "events tail")
	if err != nil {
		return err
	}
	defer nc.Close()
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("reading %s: %w", bus.StreamName, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("reading %s: %w", bus.StreamName, err)
	}
	defer it.Stop()
	fmt.Fprintf(e.stderr, "tailing %s on %s from %s (Ctrl-C to stop)\n", *subject, conn.url, from)
	var last uint64 // stream sequence of the last line printed
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", bus.StreamName, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("message on %s without stream metadata: %w", msg.Subject(), err)
		}
		// Stream order is the contract: a message seen again after the
		// ordered consumer recreated itself is not printed twice.
		if meta.Sequence.Stream <= last {
			continue
		}
		last = meta.Sequence.Stream
		line, err := formatMsg(msg)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintln(e.stdout, line); err != nil {
			return err
		}
	}
}

// formatMsg is the eventline of a message read from a stream.
func formatMsg(msg jetstream.Msg) (string, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return "", fmt.Errorf("message on %s without stream metadata: %w", msg.Subject(), err)
	}
	return eventline.Format(eventline.Message{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data(),
		Sequence: meta.Sequence.Stream, Stored: meta.Timestamp}), nil
}

// checkEventSubject checks that a subject filter given as flag is a valid
// NATS subject inside the RAMPART stream (rampart.>).
func checkEventSubject(flagName, s string) error {
	if err := checkSubject(s, true); err != nil {
		return fmt.Errorf("%w: %s %q: %v", errUsage, flagName, s, err)
	}
	if first, _, _ := strings.Cut(s, "."); first != events.SubjectPrefix {
		return fmt.Errorf("%w: %s %q is outside the %s stream, which holds %s.>", errUsage, flagName, s, bus.StreamName, events.SubjectPrefix)
	}
	return nil
}

// checkSubject checks NATS subject syntax: non-empty tokens without white
// space; with wildcards allowed, "*" as a whole token and ">" as the last.
func checkSubject(s string, wildcards bool) error {
	if s == "" {
		return errors.New("empty subject")
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return errors.New("empty token")
		case strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return errors.New("white space in a subject")
		case !wildcards && strings.ContainsAny(t, "*>"):
			return errors.New("wildcards are not allowed here")
		case t == ">" && i != len(toks)-1:
			return errors.New("> must be the last token")
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return fmt.Errorf("wildcard inside token %q", t)
		}
	}
	return nil
}
