package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	notifier "github.com/rampartci/rampart/services/notifier/app"
)

func init() {
	register("report rollback", "print the report of a rolled-back rollout (Markdown or JSON)", runReportRollback)
}

func runReportRollback(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "report rollback", "ROLLOUT-ID [--format md|json]\n\n"+
		"Prints the rollback report the notifier stored for the rollout: app, environment,\n"+
		"the versions, the trigger with its values and thresholds, the traffic at abort,\n"+
		"the release's timeline from the ledger (with each event's ledger index) and its scans.")
	natsURL := natsURLFlag(fs)
	format := fs.String("format", notifier.FormatMarkdown, "output `format`: md (Markdown) or json")
	ids, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return fmt.Errorf("%w: want one ROLLOUT-ID; got %d arguments", errUsage, len(ids))
	}
	if *format != notifier.FormatMarkdown && *format != notifier.FormatJSON {
		return fmt.Errorf("%w: --format %q: want md or json", errUsage, *format)
	}
	nc, err := connectNATS(*natsURL, "report rollback")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	out, err := notifier.ReadReport(ctx, js, ids[0], *format)
	if errors.Is(err, notifier.ErrNoReport) {
		return fmt.Errorf("%w at %s; the notifier stores one when it handles the rollback of that rollout (see `rampart events tail` for rollback events)", err, *natsURL)
	}
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(out)
	return err
}
