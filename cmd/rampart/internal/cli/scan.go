package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/scanner/shiftleft"
)

func init() {
	register("scan sarif", "publish a source verdict on a SARIF file from another tool (Semgrep, CodeQL, ZAP)", runScanSARIF)
}

func runScanSARIF(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "scan sarif", "--commit SHA [--repo REPO] [--app APP] [--pr N] [--key FILE] [--gate FILE] [--nats URL] FILE|-\n\n"+
		"Reads a SARIF 2.1.0 log, judges its results under the gate policy (error-level results and\n"+
		"rules with security-severity >= 7.0 are High; others by level) and publishes the signed\n"+
		"source verdict for the commit. Prints the outcome and the blocking findings. The exit code is 0\n"+
		"once the verdict is published, blocked or not: the verdict is what gates the release.")
	sha := fs.String("commit", "", "full `SHA` of the commit the tool analysed (required)")
	repo := fs.String("repo", "", "`REPOSITORY` the commit belongs to, e.g. github.com/acme/shop")
	app := fs.String("app", "", "`APP` the verdict is about (its event subject)")
	pr := fs.Int("pr", 0, "pull request `N`, if the commit is a pull request's head")
	keyFile := fs.String("key", filepath.Join(".rampart", "scanner", "verdict.key"), "the scanner's verdict signing key `FILE` (rampart up writes it under its data directory)")
	gateFile := fs.String("gate", "", "gate policy `FILE` (YAML); default blocks on CRITICAL and HIGH")
	natsURL := natsURLFlag(fs)
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return fmt.Errorf("%w: want one SARIF FILE, or - for standard input; got %d arguments", errUsage, len(files))
	}
	if *sha == "" {
		return fmt.Errorf("%w: --commit is required", errUsage)
	}
	data, err := readInput(e.stdin, files[0])
	if err != nil {
		return err
	}
	// Never create a key here: a verdict signed by a fresh key is one no
	// deployer trusts.
	if _, err := os.Stat(*keyFile); err != nil {
		return fmt.Errorf("verdict key %s: %w (start `rampart up`, or pass --key)", *keyFile, err)
	}
	key, err := events.LoadOrCreateVerdictKey(*keyFile)
	if err != nil {
		return err
	}
	pol := shiftleft.DefaultPolicy()
	if *gateFile != "" {
		if pol, err = shiftleft.LoadPolicy(*gateFile); err != nil {
			return err
		}
	}
	ev, dec, err := shiftleft.SARIFVerdict(shiftleft.Upload{Repository: *repo, SHA: *sha, App: *app, PullRequest: *pr, SARIF: data},
		shiftleft.VerdictOptions{Key: key, Gate: pol})
	if errors.Is(err, shiftleft.ErrUpload) {
		return fmt.Errorf("%s: %w; published nothing", files[0], err)
	}
	if err != nil {
		return err
	}

	nc, err := connectNATS(*natsURL, "scan sarif")
	if err != nil {
		return err
	}
	defer nc.Close()
	b, err := bus.New(nc, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	if _, err := openEventStream(ctx, b.JetStream(), *natsURL); err != nil {
		return err
	}
	ack, err := b.Publish(ctx, ev)
	if err != nil {
		return err
	}
	dup := ""
	if ack.Duplicate {
		dup = " (already published)"
	}
	fmt.Fprintf(e.stdout, "%s: commit %s, %d blocking finding(s); verdict %s%s\n", dec.Outcome, *sha, len(dec.Blocking), ev.ID(), dup)
	for _, f := range dec.Blocking {
		fmt.Fprintf(e.stdout, "  %s %s %s %s\n", f.Severity, f.ID, f.Package, f.Title)
	}
	return nil
}
