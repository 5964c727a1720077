package scan

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/aquasecurity/trivy/pkg/report/cyclonedx"
	"github.com/aquasecurity/trivy/pkg/types"

	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/services/scanner/internal/vulndb"
)

// sbomToolVersion is the tool version recorded in the SBOMs the scanner
// writes (Trivy's CycloneDX marshaler names the tool "trivy").
const sbomToolVersion = "0.74.0"

// Result is what one scan found.
type Result struct {
	Ref    string // the reference scanned; empty for SBOM scans
	Digest string // manifest digest the reference resolved to, sha256:…

	// OS is the detected distribution, e.g. "alpine 3.22.1"; empty if none.
	OS string
	// Packages is the number of packages found (OS and language).
	Packages int

	// Findings holds every vulnerability, most severe first (finding.Sort).
	Findings []finding.Finding
	Counts   finding.Counts

	// SBOM is a CycloneDX JSON inventory of the packages found, without
	// vulnerabilities, so it stays true when the DB changes and can be
	// re-scanned later with ScanSBOM.
	SBOM []byte

	// DBVersion is the vulnerability DB the findings came from.
	DBVersion vulndb.Version
	Duration  time.Duration
}

// Top returns the n most severe findings.
func (r *Result) Top(n int) []finding.Finding { return finding.Top(r.Findings, n) }

// newResult converts Trivy's report into a Result (without an SBOM).
func newResult(report types.Report, version vulndb.Version) *Result {
	res := &Result{DBVersion: version}
	if dist := report.Metadata.OS; dist != nil && dist.Detected() {
		res.OS = fmt.Sprintf("%s %s", dist.Family, dist.Name)
	}
	for _, r := range report.Results {
		res.Packages += len(r.Packages)
		for _, v := range r.Vulnerabilities {
			sev, err := finding.ParseSeverity(v.Severity)
			if err != nil {
				sev = finding.Unknown
			}
			f := finding.Finding{
				ID:               v.VulnerabilityID,
				Package:          v.PkgName,
				InstalledVersion: v.InstalledVersion,
				FixedVersion:     v.FixedVersion,
				Severity:         sev,
				Title:            v.Title,
				Target:           r.Target,
			}
			if v.PkgIdentifier.PURL != nil {
				f.PURL = v.PkgIdentifier.PURL.String()
			}
			res.Findings = append(res.Findings, f)
		}
	}
	finding.Sort(res.Findings)
	res.Counts = finding.Count(res.Findings)
	return res
}

// inventorySBOM writes the report as CycloneDX JSON with the vulnerabilities
// left out.
func inventorySBOM(ctx context.Context, report types.Report) ([]byte, error) {
	inv := report
	inv.Results = make(types.Results, len(report.Results))
	for i, r := range report.Results {
		r.Vulnerabilities = nil
		inv.Results[i] = r
	}
	var buf bytes.Buffer
	if err := cyclonedx.NewWriter(&buf, sbomToolVersion).Write(ctx, inv); err != nil {
		return nil, fmt.Errorf("write CycloneDX SBOM: %w", err)
	}
	return buf.Bytes(), nil
}
