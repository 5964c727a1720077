package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	notifier "github.com/rampartci/rampart/services/notifier/app"
)

func init() {
	register("report rollback", "print the report of a rolled-back rollout (Markdown or JSON)", runReportRollback)
}

func runReportRollback(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "report rollback", "ROLLOUT-ID [--format md|json] [--server URL]\n\n"+
		"Prints the rollback report the notifier stored for the rollout: app, environment,\n"+
		"the versions, the trigger with its values and thresholds, the traffic at abort,\n"+
		"the release's timeline from the ledger (with each event's ledger index) and its scans.")
	server := fs.String("server", defaultServer, "the notifier's HTTP `URL` (rampart up serves it)")
	ca := bindCA(fs)
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
	base, err := url.Parse(*server)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("%w: --server %q is not an http(s) URL", errUsage, *server)
	}
	u := strings.TrimSuffix(base.String(), "/") + notifier.ReportPath + url.PathEscape(ids[0]) + "?format=" + *format
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	hc, err := httpClient(*ca, 30*time.Second)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("reach the notifier at %s (is `rampart up` running?): %w", *server, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read the report: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		_, err = e.stdout.Write(body)
		return err
	case http.StatusNotFound:
		return fmt.Errorf("%s; the notifier stores one when it handles the rollback of that rollout (see `rampart events tail` for rollback events)", bytes.TrimSpace(body))
	}
	return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
}
