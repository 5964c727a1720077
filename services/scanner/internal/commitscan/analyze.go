package commitscan

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"

	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy/pkg/cache"
	"github.com/aquasecurity/trivy/pkg/fanal/analyzer"
	"github.com/aquasecurity/trivy/pkg/fanal/artifact"
	fsartifact "github.com/aquasecurity/trivy/pkg/fanal/artifact/local"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
	"github.com/aquasecurity/trivy/pkg/fanal/walker"
	"github.com/aquasecurity/trivy/pkg/iac/rego"
	"github.com/aquasecurity/trivy/pkg/misconf"
	trivyscan "github.com/aquasecurity/trivy/pkg/scan"
	"github.com/aquasecurity/trivy/pkg/types"

	// The analyzers a source scan runs register themselves on import. (In
	// the scanner binary internal/vulndb's pkg/scan/local registers every
	// analyzer anyway; analyzerOption disables the ones not wanted here.)
	_ "github.com/aquasecurity/trivy/pkg/fanal/analyzer/config/dockerfile"
	_ "github.com/aquasecurity/trivy/pkg/fanal/analyzer/config/k8s"
	_ "github.com/aquasecurity/trivy/pkg/fanal/analyzer/config/terraform"
	_ "github.com/aquasecurity/trivy/pkg/fanal/analyzer/language/golang/mod"
	_ "github.com/aquasecurity/trivy/pkg/fanal/analyzer/language/nodejs/npm"

	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/services/scanner/internal/vulndb"
	"github.com/rampartci/rampart/services/scanner/secrets"
)

// analyzer runs Trivy over a checked-out tree: lock files matched against the
// vulnerability DB, and Dockerfile, Kubernetes and Terraform files checked
// against Trivy's misconfiguration checks. Secrets are found by the secrets
// package (the same scanner `rampart precommit` runs), not by Trivy's secret
// analyzer, so both agree.
type treeScanner struct {
	db      *vulndb.DB
	misconf misconf.ScannerOption // nil RegoScanner: misconfiguration scanning is off
	secrets *secrets.Scanner
	logger  *slog.Logger
}

// newTreeScanner prepares Trivy's Rego engine with the checks compiled into the
// binary (github.com/aquasecurity/trivy-checks, embedded): Trivy's CLI would
// first try to download a newer checks bundle from ghcr.io and falls back to
// these; a source scan never reaches out. Loading and compiling the checks
// takes a moment, so it is done once.
func newTreeScanner(db *vulndb.DB, disableMisconf bool, logger *slog.Logger) (*treeScanner, error) {
	a := &treeScanner{db: db, secrets: secrets.New(), logger: logger}
	if disableMisconf {
		return a, nil
	}
	opt := misconf.ScannerOption{
		Namespaces:     rego.BuiltinNamespaces(),
		RegoErrorLimit: 10, // Trivy's CLI default
	}
	rs, err := misconf.InitRegoScanner(opt)
	if err != nil {
		return nil, fmt.Errorf("load Trivy's embedded misconfiguration checks: %w", err)
	}
	opt.RegoScanner = rs
	a.misconf = opt
	return a, nil
}

// wantedConfig are the IaC formats a source scan checks (besides the lock
// files of every ecosystem Trivy reads).
var wantedConfig = []analyzer.Type{analyzer.TypeDockerfile, analyzer.TypeKubernetes, analyzer.TypeTerraform}

// disabledAnalyzers is every analyzer type Trivy knows except lock files and
// wantedConfig: no OS packages (a repository is not an image), no installed
// packages or binaries, no Trivy secret analyzer (see treeScanner), no licenses.
func (a *treeScanner) disabledAnalyzers() []analyzer.Type {
	var all []analyzer.Type
	all = append(all, analyzer.TypeOSes...)
	all = append(all, analyzer.TypeLanguages...)
	all = append(all, analyzer.TypeIndividualPkgs...)
	all = append(all, analyzer.TypeConfigFiles...)
	all = append(all, analyzer.TypeSecret, analyzer.TypeLicenseFile, analyzer.TypeExecutable,
		analyzer.TypeHistoryDockerfile, analyzer.TypeRpmArchive, analyzer.TypeRedHatContentManifestType,
		analyzer.TypeRedHatDockerfileType)
	keep := slices.Clone(analyzer.TypeLockfiles)
	if a.misconf.RegoScanner != nil {
		keep = append(keep, wantedConfig...)
	}
	var disabled []analyzer.Type
	for _, t := range all {
		if !slices.Contains(keep, t) && !slices.Contains(disabled, t) {
			disabled = append(disabled, t)
		}
	}
	return disabled
}

// analyze scans the tree at dir (a checkout; .git is skipped) and returns its
// findings and the DB version the lock files were matched against.
func (a *treeScanner) analyze(ctx context.Context, dir string) ([]finding.Finding, vulndb.Version, error) {
	secretFindings, err := a.scanSecrets(ctx, dir)
	if err != nil {
		return nil, vulndb.Version{}, err
	}

	c := cache.NewMemoryCache()
	defer c.Close()
	opt := artifact.Option{
		DisabledAnalyzers:    a.disabledAnalyzers(),
		NoProgress:           true,
		Offline:              true, // never reach out (e.g. to Maven Central)
		MisconfScannerOption: a.misconf,
		WalkerOption:         walker.Option{SkipDirs: []string{".git"}},
	}
	art, err := fsartifact.NewArtifact(dir, c, walker.NewFS(), opt)
	if err != nil {
		return nil, vulndb.Version{}, fmt.Errorf("prepare Trivy filesystem scan: %w", err)
	}
	backend := a.db.Backend(c)
	scanners := types.Scanners{types.VulnerabilityScanner}
	if a.misconf.RegoScanner != nil {
		scanners = append(scanners, types.MisconfigScanner)
	}
	report, err := trivyscan.NewService(backend, art).ScanArtifact(ctx, types.ScanOptions{
		PkgTypes:            []string{types.PkgTypeLibrary},
		PkgRelationships:    ftypes.Relationships,
		Scanners:            scanners,
		VulnSeveritySources: []dbtypes.SourceID{"auto"}, // without it every finding is UNKNOWN
	})
	if err != nil {
		return nil, vulndb.Version{}, fmt.Errorf("Trivy filesystem scan: %w", err)
	}
	return append(secretFindings, reportFindings(report)...), backend.Version(), nil
}

// scanSecrets runs the secrets scanner over every regular file of the tree.
// Files are opened through an os.Root of the checkout, so no path, not
// even one swapped for a symlink between the walk and the open, reads
// outside it.
func (a *treeScanner) scanSecrets(ctx context.Context, dir string) ([]finding.Finding, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("scan for secrets: %w", err)
	}
	defer root.Close()
	tree := root.FS()
	var out []finding.Finding
	err = fs.WalkDir(tree, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			// .git is not the tree; node_modules and the like are skipped
			// by Trivy's patterns anyway, so do not walk them.
			if d.Name() == ".git" || (path != "." && a.secrets.SkipsDir(path)) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // symlinks may point outside the checkout
		}
		f, err := tree.Open(path)
		if err != nil {
			return err
		}
		found, err := a.secrets.Scan(path, f)
		f.Close()
		if err != nil {
			return err
		}
		for _, s := range found {
			out = append(out, SecretFinding(s))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan for secrets: %w", err)
	}
	return out, nil
}

// SecretFinding is a secret as a scanner finding. Source findings are "in"
// a place in the tree, so the file and line stand where an image finding has
// its package: verdicts, gate reasons and waivers (id + package) then name
// the exact spot, e.g. "aws-access-key-id (CRITICAL) in deploy/creds.env:2".
func SecretFinding(s secrets.Finding) finding.Finding {
	where := fmt.Sprintf("%s:%d", s.Path, s.Line)
	return finding.Finding{
		ID:       s.RuleID,
		Package:  where,
		Severity: severityOf(s.Severity),
		Title:    "secret: " + s.Title,
		Target:   where,
	}
}

// reportFindings converts Trivy's report: vulnerabilities in lock files and
// failed misconfiguration checks.
func reportFindings(report types.Report) []finding.Finding {
	var out []finding.Finding
	for _, r := range report.Results {
		for _, v := range r.Vulnerabilities {
			f := finding.Finding{
				ID:               v.VulnerabilityID,
				Package:          v.PkgName,
				InstalledVersion: v.InstalledVersion,
				FixedVersion:     v.FixedVersion,
				Severity:         severityOf(v.Severity),
				Title:            v.Title,
				Target:           r.Target,
			}
			if v.PkgIdentifier.PURL != nil {
				f.PURL = v.PkgIdentifier.PURL.String()
			}
			out = append(out, f)
		}
		for _, m := range r.Misconfigurations {
			if m.Status != types.MisconfStatusFailure {
				continue
			}
			target := r.Target
			if m.CauseMetadata.StartLine > 0 {
				target = fmt.Sprintf("%s:%d", r.Target, m.CauseMetadata.StartLine)
			}
			// e.g. "dockerfile: Image user should not be 'root': Specify at
			// least 1 USER command in Dockerfile with non-root user as argument"
			title := strings.ToLower(string(r.Type)) + ": " + m.Title
			if m.Message != "" {
				title += ": " + m.Message
			}
			out = append(out, finding.Finding{
				ID:       m.ID,
				Package:  target, // the place, as for secrets
				Severity: severityOf(m.Severity),
				Title:    title,
				Target:   target,
			})
		}
	}
	return out
}

func severityOf(name string) finding.Severity {
	s, err := finding.ParseSeverity(name)
	if err != nil {
		return finding.Unknown
	}
	return s
}
