package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/compliance"
	"github.com/rampartci/rampart/cmd/rampart/internal/progress"
)

func init() {
	register("report compliance", "write a change-control report (SOC 2, ISO 27001) of a period from the ledger, with proofs", runReportCompliance)
	register("report verify", "check a compliance report's proofs offline against the ledger key", runReportVerify)
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x == "" {
			return errors.New("empty name")
		}
		*s = append(*s, x)
	}
	return nil
}

func runReportCompliance(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "report compliance", "[--since 30d] [--until TIME] [--app NAME]... [--env NAME]... [--out DIR | --format md|html|json|csv] [--server URL] [--key FILE]\n\n"+
		"Builds a change-control report from the ledger alone: for each change in the period\n"+
		"(commit → source scan → image scan → promotion → canary steps → release or rollback\n"+
		"→ page) its trigger, the evidence at each gate, the rollback and its trigger, each\n"+
		"event with its ledger index; a summary mapped to SOC 2 CC8.1, CC7.1, CC7.2 and\n"+
		"ISO/IEC 27001:2022 A.8.32, A.8.8, A.8.25/A.8.29, A.8.9; and the exceptions.\n"+
		"The ledger is checked against --key up to its latest signed checkpoint, and every\n"+
		"entry the report uses is carried with its signature and inclusion proof, so\n"+
		"`rampart report verify` can check the JSON offline.\n\n"+
		"With --out, writes "+compliance.FileHTML+", "+compliance.FileJSON+", "+compliance.FileMarkdown+" and\n"+
		compliance.FileCSV+" there; otherwise prints one --format.")
	server, ca := ledgerServerFlag(fs)
	keyFile := fs.String("key", defaultLedgerKey, "the ledger's verifier key `FILE` (the .pub beside the ledger key)")
	since := fs.String("since", "30d", "start of the period: a duration before now (7d, 2h) or a time (RFC 3339 or a date)")
	until := fs.String("until", "", "end of the period (excluded): a duration before now or a time; default now")
	var apps, envs stringList
	fs.Var(&apps, "app", "only this application (repeatable)")
	fs.Var(&envs, "env", "only this environment (repeatable)")
	out := fs.String("out", "", "write every format into `DIR`")
	format := fs.String("format", "md", "with no --out, the `format` to print: md, html, json or csv")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	now := time.Now()
	from, err := parseWhen("--since", *since, now)
	if err != nil {
		return err
	}
	to := now
	if *until != "" {
		if to, err = parseWhen("--until", *until, now); err != nil {
			return err
		}
	}
	if !from.Before(to) {
		return fmt.Errorf("%w: --since %s is not before --until %s", errUsage, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	render, ok := complianceFormats[*format]
	if !ok {
		return fmt.Errorf("%w: --format %q: want md, html, json or csv", errUsage, *format)
	}
	v, err := loadLedgerVerifier(*keyFile)
	if err != nil {
		return err
	}
	c, err := ledgerClient(*server, *ca)
	if err != nil {
		return err
	}
	bar := progress.New(e.stderr, "reading the ledger", "entries", 0) // nil, doing nothing, off a terminal
	r, err := compliance.Collect(ctx, c, v, compliance.Options{From: from, To: to, Filter: compliance.Filter{Apps: apps, Environments: envs}, Progress: bar.Set})
	bar.Done()
	if err != nil {
		return fmt.Errorf("building the report from the ledger at %s: %w", *server, err)
	}
	if *out == "" {
		var buf bytes.Buffer
		if err := render(&buf, r); err != nil {
			return err
		}
		_, err = e.stdout.Write(buf.Bytes())
		return err
	}
	paths, err := compliance.WriteFiles(*out, r)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d changes (%d released, %d rolled back, %d blocked), %d exceptions, %d ledger entries proven against checkpoint size %d\n",
		r.Summary.Changes, r.Summary.Released, r.Summary.RolledBack, r.Summary.BlockedAtSource+r.Summary.BlockedAtImage, r.Summary.Exceptions, len(r.Entries), r.Ledger.Size)
	for _, p := range paths {
		fmt.Fprintln(e.stdout, p)
	}
	return nil
}

// complianceFormats render a report.
var complianceFormats = map[string]func(w io.Writer, r *compliance.Report) error{
	"md":   compliance.WriteMarkdown,
	"html": compliance.WriteHTML,
	"csv":  compliance.WriteCSV,
	"json": compliance.WriteJSON,
}

func runReportVerify(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "report verify", "[--key FILE] REPORT.json\n\n"+
		"Checks a compliance report offline with the ledger's verifier key: the checkpoint's\n"+
		"signature, every entry's signature and its inclusion proof against the checkpoint's\n"+
		"root, and that each statement in the report is what its entries say (the report is\n"+
		"rebuilt from them and compared). Exits 1 naming the first entry or statement\n"+
		"that fails.")
	keyFile := fs.String("key", defaultLedgerKey, "the ledger's verifier key `FILE` (the .pub beside the ledger key)")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return fmt.Errorf("%w: want one REPORT.json; got %d arguments", errUsage, len(files))
	}
	v, err := loadLedgerVerifier(*keyFile)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		return err
	}
	res, err := compliance.Verify(data, v)
	if err != nil {
		return fmt.Errorf("%s does NOT verify: %w", files[0], err)
	}
	fmt.Fprintf(e.stdout, "report verified: %d ledger entries, each signed and included in the checkpoint of size %d (root %s) signed by %s; every statement re-derived from them\n",
		res.Entries, res.Checkpoint.Size, res.Checkpoint.Root, v.Key())
	fmt.Fprintf(e.stdout, "period %s to %s: %d changes, %d exceptions; %s\n", res.Report.Period.From.Format(time.RFC3339), res.Report.Period.To.Format(time.RFC3339),
		res.Report.Summary.Changes, res.Report.Summary.Exceptions, res.Report.Coverage.Note)
	return nil
}
