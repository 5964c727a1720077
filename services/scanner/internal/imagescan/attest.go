package imagescan

import (
	"context"
	"encoding/json"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/rampartci/rampart/pkg/attest"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/pkg/policy/gate"
)

// trivyModule is the scanner library whose version the vuln attestation
// names.
const trivyModule = "github.com/aquasecurity/trivy"

var trivyVersion = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == trivyModule {
				return d.Version
			}
		}
	}
	return "unknown"
})

// attestations signs what an image verdict says as in-toto statements: the
// scan with every finding (cosign vuln/v1; absent when the image was not
// scanned) and the gate decision (SLSA verification summary) that names the
// policy and the scan it read. They travel in the verdict (decision 0024).
func (p *Pipeline) attestations(ctx context.Context, meta events.Meta, img image, c *cachedScan, dec gate.Decision) ([]json.RawMessage, error) {
	subj := attest.Subject{Name: repository(img.ref), Digest: img.digest}
	var out []json.RawMessage
	var vuln json.RawMessage
	if c != nil {
		v := attest.Vuln{
			Invocation: attest.Invocation{URI: p.opts.Source, EventID: meta.CausedBy},
			Scanner: attest.Scanner{URI: "pkg:golang/" + trivyModule + "@" + trivyVersion(), Version: strings.TrimPrefix(trivyVersion(), "v"),
				DB:     attest.DB{URI: "trivy-db", Version: c.DBVersion},
				Result: attest.Result{Counts: counts(finding.Count(c.Findings)), Findings: attestFindings(c.Findings)}},
			Metadata: attest.Metadata{ScanStartedOn: c.ScannedAt, ScanFinishedOn: c.ScannedAt},
		}
		var err error
		if vuln, err = p.signer.Vuln(ctx, subj, v); err != nil {
			return nil, err
		}
		out = append(out, vuln)
	}
	g := p.opts.Gate
	vsa, err := p.signer.Summary(ctx, attest.Summary{Subject: subj, Verifier: p.opts.Source, ResourceURI: img.purl,
		Passed: dec.Outcome == gate.Pass, Time: p.opts.Now().UTC(), PolicyURI: g.URI, PolicyDigest: g.Digest(), Input: vuln})
	if err != nil {
		return nil, err
	}
	return append(out, vsa), nil
}

// repository is host/repository of a host/repository@digest reference.
func repository(ref string) string {
	name, _, _ := strings.Cut(ref, "@")
	return name
}

// attestFindings is every finding, most severe first.
func attestFindings(fs []finding.Finding) []attest.Finding {
	out := make([]attest.Finding, 0, len(fs))
	for _, f := range finding.Top(fs, -1) {
		out = append(out, attest.Finding{ID: f.ID, Package: f.Package, InstalledVersion: f.InstalledVersion,
			FixedVersion: f.FixedVersion, Severity: f.Severity.String(), Title: f.Title})
	}
	return out
}
