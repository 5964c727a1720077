package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/client"
)

// RunOptions shapes `rampart demo`.
type RunOptions struct {
	DataDir string
	Pause   time.Duration // each canary step's hold
	RPS     int           // user traffic through the router
	// Keep leaves the mesh and its console running after the demo until ctx
	// ends (Ctrl-C).
	Keep   bool
	Logger *slog.Logger
}

// timeline prints one line per event with the time since the demo started.
type timeline struct {
	mu    sync.Mutex
	out   io.Writer
	start time.Time
}

func (t *timeline) printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.out, "[%6.2fs] %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, args...))
}

func (t *timeline) section(title string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.out, "\n%s\n", title)
}

// A made-up AWS key pair in the real format: a secret scanner must find it,
// and it opens nothing. (AWS's documented example pair ends in EXAMPLE,
// which scanners rightly let through.)
const (
	demoKeyID  = "AKIAZ4QVN7T2X5MLR3PD"
	demoSecret = "q8Vd2Lk0pX7mR4tY9wB1nC6sE3hJ5gF0aZ2uK8oQ"
)

// describe says in a few words what an event means: its kind, the one-line
// description every Rampart tool uses, and for scans the top findings.
func describe(s Seen) string {
	ev := s.Event
	line := fmt.Sprintf("%-10s %s", events.KindOf(ev.Type()), events.Describe(ev))
	if sc, err := events.ScanOf(ev); err == nil && events.KindOf(ev.Type()) == events.KindScan {
		if sc.Signature != "" {
			line += ", signed"
		}
		for i, f := range sc.Findings {
			if i == 2 {
				break
			}
			if sc.TargetKind == "stage" { // DAST and contract findings: what broke says it best
				line += fmt.Sprintf("\n%23s%s %s", "", f.Severity, f.Title)
				continue
			}
			line += strings.TrimRight(fmt.Sprintf("\n%23s%s %s in %s %s", "", f.Severity, f.ID, f.Package, f.InstalledVersion), " ")
			if f.FixedVersion != "" {
				line += " (fixed in " + f.FixedVersion + ")"
			}
		}
	}
	return line
}

// Run is `rampart demo`: the whole pipeline on the embedded default, with a
// live timeline on out. It returns an error when the pipeline does not do
// what the demo shows.
func Run(ctx context.Context, out io.Writer, opts RunOptions) error {
	tl := &timeline{out: out, start: time.Now()}
	fmt.Fprintln(out, "Rampart demo: commit-to-production on the embedded default, no human in the loop.")
	if err := os.RemoveAll(opts.DataDir); err != nil {
		return err
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return err
	}
	e, err := Start(ctx, Config{DataDir: opts.DataDir, Pause: opts.Pause, Interval: time.Second, Logger: opts.Logger,
		OnEvent: func(s Seen) { tl.printf("%s", describe(s)) }})
	if err != nil {
		return err
	}
	defer e.Close()
	tl.printf("%-10s NATS %s, HTTP %s, OCI registry %s", "up", e.Mesh.NATSURL, e.Mesh.HTTPURL(), e.Registry)
	tl.printf("%-10s %s/console/ (log in with the token in %s)", "console", e.Mesh.HTTPURL(), filepath.Join(opts.DataDir, "deployer", "operator.token"))

	const wait = 45 * time.Second
	tl.section("0. Shift left: a commit that adds a cloud key is scanned at source and blocked")
	sha, err := e.Commit(ctx, "shop-config", map[string]string{
		"README.md":       "# shop configuration\n",
		"deploy/prod.env": "REGION=eu-west-1\nAWS_ACCESS_KEY_ID=" + demoKeyID + "\nAWS_SECRET_ACCESS_KEY=" + demoSecret + "\n",
	})
	if err != nil {
		return err
	}
	if v, err := e.WaitVerdict(ctx, sha, wait); err != nil {
		return err
	} else if v.Outcome != events.OutcomeBlocked {
		return fmt.Errorf("the commit with a cloud key got %s, want blocked", v.Outcome)
	}

	tl.section("1. v1 is pushed: one Medium, which the gate lets through; checked in staging, promoted, stepped to 100%")
	_, _, v1, err := e.PushAndWait(ctx, Image{Version: "v1", Medium: true}, wait)
	if err != nil {
		return err
	}
	if end, err := e.WaitEnd(ctx, v1, wait); err != nil {
		return err
	} else if events.KindOf(end.Event.Type()) != events.KindRelease {
		return fmt.Errorf("v1 was rolled back: %s", describe(end))
	}

	e.StartTraffic(opts.RPS)
	tl.printf("%-10s users: %d requests/s to the app through the local router at http://%s/", "traffic", opts.RPS, e.Router)

	tl.section("2. v2 fails 10% of its requests: canary at 5%, the watcher sees it, traffic goes back to v1, on-call is paged")
	_, _, v2, err := e.PushAndWait(ctx, Image{Version: "v2", FailRatio: 0.1, Medium: true}, wait)
	if err != nil {
		return err
	}
	end, err := e.WaitEnd(ctx, v2, wait)
	if err != nil {
		return err
	}
	rb, err := events.RollbackOf(end.Event)
	if err != nil {
		return fmt.Errorf("v2 was released despite failing requests")
	}
	if w, _ := e.Mesh.Deployer.Weight(App); w != 0 {
		return fmt.Errorf("canary weight %d%% after the rollback", w)
	}
	if _, _, err := e.rec.wait(ctx, wait, 0, func(s Seen) bool {
		p, err := events.PageOf(s.Event)
		return err == nil && p.RolloutID == rb.RolloutID
	}); err != nil {
		return fmt.Errorf("no page for the rollback: %w", err)
	}
	report := filepath.Join(opts.DataDir, "reports", rb.RolloutID+".md")
	if err := waitUntil(ctx, wait, "the rollback report", func() bool { _, err := os.Stat(report); return err == nil }); err != nil {
		return err
	}
	tl.printf("%-10s the PagerDuty stand-in holds %d incident(s); dedup key %s", "pagerduty", len(e.pager.incidents()), rb.RolloutID)

	tl.section("3. v3 carries a vulnerable openssl: the scan blocks it, it is never promoted")
	v3, verdict, _, err := e.PushAndWait(ctx, Image{Version: "v3", Vulnerable: true}, wait)
	if err != nil {
		return err
	}
	if verdict.Outcome != events.OutcomeBlocked {
		return fmt.Errorf("v3's verdict is %s, want blocked", verdict.Outcome)
	}
	if err := e.neverPromoted(ctx, v3, wait); err != nil {
		return fmt.Errorf("despite its blocked verdict: %w", err)
	}
	tl.printf("%-10s v3 never reached the router; %s still serves", "gate", e.work.stable.Version())

	tl.section("4. v4 renames a field its frontend reads (its spec still promises it): staging's contract test stops it before production")
	v4, err := e.PushToStaging(ctx, Image{Version: "v4", PriceField: "cost"}, wait)
	if err != nil {
		return err
	}
	if v4.Image.Outcome != events.OutcomePass || v4.Stage.Outcome != events.OutcomeBlocked {
		return fmt.Errorf("v4: image verdict %s, staging verdict %s (%s); want pass, then blocked", v4.Image.Outcome, v4.Stage.Outcome, v4.Stage.Reason)
	}
	if err := e.StoppedInStaging(ctx, v4, wait); err != nil {
		return err
	}
	tl.printf("%-10s v4 stopped in staging, never promoted to the production canary; %s still serves", "gate", e.work.stable.Version())

	tl.section("5. The ledger: every event, tamper-evident")
	res, err := e.verifyLedger(ctx)
	if err != nil {
		return err
	}
	tl.printf("%-10s %d entries and %d signed checkpoints verified (RFC 6962 tree, Ed25519 note signatures)", "verified", res.entries, res.checkpoints)

	tl.section("6. The compliance report of this run, from the ledger alone, every statement with its proof")
	cve := ""
	if len(verdict.Findings) > 0 {
		cve = verdict.Findings[0].ID
	}
	cr, paths, err := e.writeComplianceReport(ctx, tl.start.Add(-time.Second), sha, cve)
	if err != nil {
		return err
	}
	tl.printf("%-10s %d changes: %d released, %d rolled back, %d blocked; SOC 2 CC8.1 CC7.1 CC7.2, ISO 27001 A.8.32 A.8.8 A.8.25 A.8.29 A.8.9; %d entries proven",
		"report", cr.Summary.Changes, cr.Summary.Released, cr.Summary.RolledBack, cr.Summary.BlockedAtSource+cr.Summary.BlockedAtImage, len(cr.Entries))

	tl.section("7. What if Medium had blocked too? The same history, re-judged from the ledger (rampart replay --policy)")
	if _, err := e.whatIf(ctx, out, "v1", "v2"); err != nil {
		return err
	}
	ok, failed := e.traffic.ok.Load(), e.traffic.failed.Load()
	fmt.Fprintf(out, "\nDone in %.1fs. Since v1 went live, users saw %d answers, %d of them errors (%.2f%%): v2's seconds at 5%%.\n",
		time.Since(tl.start).Seconds(), ok+failed, failed, 100*float64(failed)/float64(max(ok+failed, 1)))
	fmt.Fprintf(out, "Rollback report: %s\n", report)
	fmt.Fprintf(out, "Compliance report: %s (JSON %s); check it offline: rampart report verify --key %s %s\n",
		paths[1], paths[0], LedgerKeyFile(opts.DataDir), paths[0])
	if opts.Keep {
		fmt.Fprintf(out, "\nThe console stays at %s/console/ (CA %s); press Ctrl-C to stop.\n", e.Mesh.HTTPURL(), e.Mesh.CAFile)
		<-ctx.Done()
	}
	return nil
}

type ledgerResult struct {
	entries     int64
	checkpoints int
}

// verifyLedger waits until the ledger has recorded everything published so
// far and a checkpoint covers it, then verifies the whole ledger.
func (e *Env) verifyLedger(ctx context.Context) (ledgerResult, error) {
	v, err := e.ledgerVerifier()
	if err != nil {
		return ledgerResult{}, err
	}
	c, err := client.New(e.Mesh.HTTPURL(), e.Mesh.HTTPClient)
	if err != nil {
		return ledgerResult{}, err
	}
	var res ledgerResult
	var last error
	err = waitUntil(ctx, 20*time.Second, "the ledger to record and checkpoint every event", func() bool {
		r, err := c.Verify(ctx, v)
		if last = err; err != nil || r.Unanchored != 0 || r.Entries < int64(e.rec.len()) {
			return false
		}
		res = ledgerResult{entries: r.Entries, checkpoints: r.Checkpoints}
		return true
	})
	if err != nil && last != nil {
		return res, fmt.Errorf("ledger verify: %w", last)
	}
	return res, err
}

// waitConsumed waits until the durable consumer has handled everything in
// the stream so far.
func (e *Env) waitConsumed(ctx context.Context, durable string, timeout time.Duration) error {
	js, err := jetstream.New(e.nc)
	if err != nil {
		return err
	}
	return waitUntil(ctx, timeout, "the "+durable+" to handle every event", func() bool {
		c, err := js.Consumer(ctx, "RAMPART", durable)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
}
