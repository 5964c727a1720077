// Package verdict builds the signed source verdicts: the shared shape of a
// commit scan's and a SARIF upload's verdict, and the SARIF upload itself.
// It imports no Trivy, so `rampart scan sarif` stays cheap to build.
package verdict

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/sarif"
)

// ErrUpload is wrapped by every error about an upload's content or target
// (a handler answers 400 with the message).
var ErrUpload = errors.New("invalid SARIF upload")

// Upload is a SARIF log about one commit, from a tool Rampart does not run
// itself (Semgrep, CodeQL, ZAP).
type Upload struct {
	Repository  string // e.g. github.com/acme/shop; optional
	SHA         string // the commit the tool analysed (full hash)
	App         string // application, for the event subject; optional
	PullRequest int    // optional
	SARIF       []byte
}

// Options say how a verdict is judged and signed.
type Options struct {
	Key         ed25519.PrivateKey
	Gate        *gate.Policy // nil: gate.Default()
	Source      string       // default /rampart/scanner
	Environment string       // default "source"
	TopFindings int          // default 20
	Now         time.Time    // judging time for waivers; zero: time.Now()
}

// SARIF parses the upload's SARIF strictly, judges its findings under
// the gate policy and returns the signed source verdict with the decision.
// The event id derives from the target and the SARIF bytes, so uploading the
// same results twice is one event.
func SARIF(u Upload, o Options) (cloudevents.Event, gate.Decision, error) {
	if !plumbing.IsHash(u.SHA) {
		return cloudevents.Event{}, gate.Decision{}, fmt.Errorf("%w: commit %q is not a full commit hash", ErrUpload, u.SHA)
	}
	log, err := sarif.Parse(bytes.NewReader(u.SARIF))
	if err != nil {
		return cloudevents.Event{}, gate.Decision{}, fmt.Errorf("%w: %w", ErrUpload, err)
	}
	if len(o.Key) != ed25519.PrivateKeySize {
		return cloudevents.Event{}, gate.Decision{}, errors.New("SARIF verdict: no Ed25519 verdict key")
	}
	pol := cmp.Or(o.Gate, gate.Default())
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	fs := log.Findings()
	dec := pol.Evaluate(fs, now)
	v := events.Scan{
		Target:        u.SHA,
		TargetKind:    "source",
		Environment:   cmp.Or(o.Environment, "source"),
		Outcome:       string(dec.Outcome),
		Reason:        Reason(append([]string{"SARIF from " + tools(log)}, dec.Reasons...)),
		Counts:        Counts(finding.Count(fs)),
		Findings:      Top(fs, cmp.Or(o.TopFindings, 20)),
		PolicyVersion: dec.PolicyVersion,
		Waivers:       dec.WaiverRecords(),
	}
	sum := sha256.Sum256(append([]byte(u.Repository+"\x00"+u.SHA+"\x00"+strconv.Itoa(u.PullRequest)+"\x00"), u.SARIF...))
	meta := events.Meta{ID: "sarif-verdict-" + hex.EncodeToString(sum[:12]), Source: cmp.Or(o.Source, "/rampart/scanner"), App: u.App}
	ev, err := events.SignScan(meta, v, o.Key)
	if err != nil {
		return cloudevents.Event{}, gate.Decision{}, fmt.Errorf("sign SARIF verdict: %w", err)
	}
	return ev, dec, nil
}

// tools names the tools of a log, e.g. "Semgrep OSS, ZAP".
func tools(l *sarif.Log) string {
	var names []string
	seen := map[string]bool{}
	for _, r := range *l.Runs {
		if n := *r.Tool.Driver.Name; !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "no tool runs"
	}
	out := names[0]
	for _, n := range names[1:] {
		out += ", " + n
	}
	return out
}

// Counts is finding.Counts as verdicts carry it: lower-case severities,
// non-zero only (as the image pipeline writes them).
func Counts(c finding.Counts) map[string]int {
	m := map[string]int{}
	for sev, n := range map[string]int{"critical": c.Critical, "high": c.High, "medium": c.Medium, "low": c.Low, "unknown": c.Unknown} {
		if n > 0 {
			m[sev] = n
		}
	}
	return m
}

// MaxReasons bounds the reasons spelled out in a verdict (the image
// pipeline uses the same bound); the findings and counts carry the rest.
const MaxReasons = 5

// Reason joins a decision's reasons into one line.
func Reason(rs []string) string {
	if len(rs) > MaxReasons {
		rs = append(rs[:MaxReasons:MaxReasons], fmt.Sprintf("and %d more", len(rs)-MaxReasons))
	}
	return strings.Join(rs, "; ")
}

// Top converts the n most severe findings for a verdict.
func Top(fs []finding.Finding, n int) []events.Finding {
	var out []events.Finding
	for _, f := range finding.Top(fs, n) {
		out = append(out, events.Finding{ID: f.ID, Package: f.Package, InstalledVersion: f.InstalledVersion,
			FixedVersion: f.FixedVersion, Severity: f.Severity.String(), Title: f.Title})
	}
	return out
}

// EventID derives a stable event id from the event it answers, so a
// redelivered input yields the same id and JetStream drops the repeat.
func EventID(kind, from string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + from))
	return kind + "-" + hex.EncodeToString(sum[:12])
}
