package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/cmd/rampart/internal/progress"
	"github.com/rampartci/rampart/cmd/rampart/internal/replay"
	"github.com/rampartci/rampart/pkg/events"
)

const replayUsage = `--since DURATION|TIME [--until DURATION|TIME] [--subject S] [--to PREFIX] [--dry-run]
       rampart replay --policy FILE [--policy FILE] [--since …] [--until …] [--server URL] [--json]

Reads the events the RAMPART stream stored in a time window, in order, and
re-publishes each under a prefix that replaces its leading "rampart" token:
by default replay.<now>, kept in the REPLAY stream and never seen by live
consumers. --to rampart re-publishes onto the live subjects (the ledger records
an event once, whatever is re-published). Dead letters are not replayed.
DURATION is before now (90s, 2h, 7d); TIME is RFC 3339 or a date (2026-11-26, UTC).

With --policy, a what-if instead: nothing is re-published. The history is read
from the ledger (--server, default the whole ledger) and every recorded image
verdict is judged again under the candidate gate policy (block_on, waivers), from
the findings its vulnerability attestation lists, and every recorded canary step
analysis and rollback under the candidate rampart.yaml's thresholds (a file with apps:). It
prints each release as it happened beside how it would have ended, and why;
--json prints the same as JSON.`

func init() {
	register("replay", "re-publish (or print) the events of a time window under a replay prefix", runReplay)
}

func runReplay(ctx context.Context, e *env, args []string) error {
	now := time.Now()
	fs := newFlags(e, "replay", replayUsage)
	conn := bindNATS(e, fs)
	sinceArg := fs.String("since", "", "replay events stored since `DURATION|TIME` (required)")
	untilArg := fs.String("until", "", "replay events stored before `DURATION|TIME` (default: up to the last event stored when the replay starts)")
	subject := fs.String("subject", events.SubjectPrefix+".>", "replay only events on subjects matching `S` (NATS wildcards)")
	to := fs.String("to", "", "re-publish under `PREFIX` (default "+replay.Prefix+".<UTC time>; \"rampart\" means the live subjects)")
	dryRun := fs.Bool("dry-run", false, "print the events instead of re-publishing them")
	var policies []string
	fs.Func("policy", "what-if: judge recorded history under the gate policy or rampart.yaml in `FILE` (repeatable: one of each)", func(v string) error {
		policies = append(policies, v)
		return nil
	})
	server := fs.String("server", defaultServer, "what-if: the ledger's HTTP `URL` (rampart up serves it)")
	asJSON := fs.Bool("json", false, "what-if: print the report as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if len(policies) > 0 {
		if *to != "" || *dryRun || *subject != events.SubjectPrefix+".>" {
			return fmt.Errorf("%w: --policy (what-if) reads the ledger and re-publishes nothing: --to, --dry-run and --subject do not apply", errUsage)
		}
		return runWhatIf(ctx, e, whatIfArgs{policies: policies, since: *sinceArg, until: *untilArg, server: *server, ca: *conn.caFile, json: *asJSON}, now)
	}
	if *asJSON {
		return fmt.Errorf("%w: --json is for a what-if (--policy)", errUsage)
	}
	o := replay.Options{Subject: *subject, To: *to, DryRun: *dryRun,
		Notice: func(s string) { fmt.Fprintf(e.stderr, "replay: %s\n", s) }}
	if *sinceArg == "" {
		return fmt.Errorf("%w: --since is required: a duration before now (90s, 2h, 7d) or a time (RFC 3339)", errUsage)
	}
	var err error
	if o.Since, err = parseWhen("--since", *sinceArg, now); err != nil {
		return err
	}
	if o.Since.After(now) {
		return fmt.Errorf("%w: --since %s is in the future", errUsage, o.Since.UTC().Format(time.RFC3339))
	}
	if *untilArg != "" {
		if o.Until, err = parseWhen("--until", *untilArg, now); err != nil {
			return err
		}
		if !o.Until.After(o.Since) {
			return fmt.Errorf("%w: --until %s is not after --since %s", errUsage,
				o.Until.UTC().Format(time.RFC3339Nano), o.Since.UTC().Format(time.RFC3339Nano))
		}
	}
	if err := checkEventSubject("--subject", o.Subject); err != nil {
		return err
	}
	if o.To == "" {
		o.To = replay.DefaultPrefix(now)
	}
	if err := checkReplayPrefix(o.To); err != nil {
		return err
	}
	if o.DryRun {
		o.Visit = func(msg jetstream.Msg) error {
			line, err := formatMsg(msg)
			if err == nil {
				_, err = fmt.Fprintln(e.stdout, line)
			}
			return err
		}
	}

	nc, src, err := conn.connectEventStream(ctx, "replay")
	if err != nil {
		return err
	}
	defer nc.Close()
	bar := progress.New(e.stderr, "replay", "events", 0) // nil, drawing nothing, unless stderr is a terminal
	o.Progress = func(read, total uint64) { bar.Set(int64(read), int64(total)) }
	st, err := replay.Run(ctx, nc, src, o)
	bar.Done()
	if err != nil {
		return err
	}
	printReplay(e, o, st)
	return nil
}

// checkReplayPrefix accepts "rampart" (the live subjects) and any literal
// subject prefix outside rampart.> (replay.CheckPrefix).
func checkReplayPrefix(p string) error {
	if err := checkSubject(p, false); err != nil {
		return fmt.Errorf("%w: --to %q: %v", errUsage, p, err)
	}
	if errors.Is(replay.CheckPrefix(p), replay.ErrLivePrefix) {
		return fmt.Errorf("%w: --to %q is inside %s.>, where live consumers would take the copies for new events; use --to %s to re-publish onto the live subjects, or a prefix outside %s.>",
			errUsage, p, events.SubjectPrefix, events.SubjectPrefix, events.SubjectPrefix)
	}
	return nil
}

// printReplay prints what a replay did, on one line.
func printReplay(e *env, o replay.Options, st replay.Stats) {
	window := "since " + o.Since.UTC().Format(time.RFC3339Nano)
	if !o.Until.IsZero() {
		window += " until " + o.Until.UTC().Format(time.RFC3339Nano)
	}
	verb := "replayed"
	if o.DryRun {
		verb = "dry run: would replay"
	}
	rate := float64(st.Events) / max(st.Elapsed.Seconds(), 1e-9)
	fmt.Fprintf(e.stdout, "%s %s from %s %s to %s in %s (%.0f events/s)", verb, nouns(st.Events, "event", "events"), o.Subject, window, st.Destination,
		st.Elapsed.Round(time.Millisecond), rate)
	var notes []string
	if st.Duplicates > 0 {
		notes = append(notes, fmt.Sprintf("%d already there, dropped as duplicates", st.Duplicates))
	}
	if st.DeadLetters > 0 {
		notes = append(notes, nouns(st.DeadLetters, "dead letter", "dead letters")+" skipped")
	}
	if st.Invalid > 0 {
		notes = append(notes, nouns(st.Invalid, "invalid message", "invalid messages")+" skipped")
	}
	if len(notes) > 0 {
		fmt.Fprintf(e.stdout, "; %s", strings.Join(notes, ", "))
	}
	fmt.Fprintln(e.stdout)
}
