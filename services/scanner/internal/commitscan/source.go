// Package commitscan scans a commit before anything is built from it: it clones
// the repository at the commit (go-git), finds secrets (Trivy's secret rules
// plus a high-entropy check, see package secrets), misconfigured Dockerfile,
// Kubernetes and Terraform files (Trivy's embedded checks), vulnerable lock
// files (Trivy against the scanner's vulnerability DB), weaknesses in Go
// code such as SQL built from request input (gosec, see package sast) and
// breaking changes to the OpenAPI contract (oasdiff, against the live
// release's spec).
//
// Service wires that to the bus: it handles commit events, applies the gate
// policy, publishes the signed source verdict, keeps the live spec, and
// reports back on GitHub. It also serves /hooks/sarif, which turns results of
// other tools (Semgrep, CodeQL, ZAP) into a source verdict.
package commitscan

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/contract"
	"github.com/rampartci/rampart/services/scanner/internal/vulndb"
	"github.com/rampartci/rampart/services/scanner/sast"
)

// Errors callers branch on. Either means the verdict is "error", which
// blocks like a finding: a commit that was not scanned never passes.
var (
	// ErrCheckout: the repository could not be cloned or the commit is not
	// in it.
	ErrCheckout = errors.New("commit could not be checked out")
	// ErrScan: the checkout was there but a scanner failed on it (including
	// an OpenAPI spec that does not parse).
	ErrScan = errors.New("source scan failed")
)

// ScannerOptions configures a Scanner.
type ScannerOptions struct {
	// DB is the vulnerability DB lock files are matched against (opened once
	// per process by the caller). Required.
	DB *vulndb.DB
	// WorkDir holds checkouts while they are scanned; empty: os.TempDir().
	WorkDir string
	// SpecPaths are where the OpenAPI spec is looked for, first found wins;
	// empty: contract.DefaultPaths (openapi.yaml, openapi.json).
	SpecPaths []string
	// Specs holds the live spec of each repository. Nil: no contract check.
	Specs contract.Store
	// CloneAuth authenticates clones (e.g. go-git's http.BasicAuth with a
	// token); nil for public repositories.
	CloneAuth transport.AuthMethod
	// AllowLocal permits file:// and plain paths as repository URLs. Only
	// tests and the demo set it: a URL from a webhook must not make the
	// scanner read repositories on its own disk.
	AllowLocal bool
	// DisableMisconf turns off IaC checks (they need Trivy's Rego engine,
	// which takes a second or two to load at start-up).
	DisableMisconf bool
	// DisableSAST turns off the Go static analysis (package sast).
	DisableSAST bool
	// SAST bounds the Go static analysis (its own timeout, within Timeout,
	// and the size of the Go sources). Without a go command on PATH (or at
	// SAST.Go) the scanner runs without SAST, logs it once, and every
	// verdict of a tree with Go sources says so.
	SAST sast.Options
	// Timeout bounds one commit scan, clone included; 0: DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout bounds a commit scan when ScannerOptions.Timeout is 0.
const DefaultTimeout = 10 * time.Minute

// Scanner scans commits. It is safe for concurrent use.
type Scanner struct {
	opts    ScannerOptions
	tree    *treeScanner
	sast    *sast.Analyzer // nil: SAST is off
	sastOff string         // why sast is nil, when it was wanted
	logger  *slog.Logger
}

// NewScanner loads Trivy's misconfiguration checks (unless disabled) and
// returns a Scanner.
func NewScanner(opts ScannerOptions, logger *slog.Logger) (*Scanner, error) {
	if opts.DB == nil {
		return nil, errors.New("source scanner: no vulnerability DB")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if len(opts.SpecPaths) == 0 {
		opts.SpecPaths = contract.DefaultPaths
	}
	tree, err := newTreeScanner(opts.DB, opts.DisableMisconf, logger)
	if err != nil {
		return nil, err
	}
	s := &Scanner{opts: opts, tree: tree, logger: logger}
	if !opts.DisableSAST {
		if s.sast, err = sast.New(opts.SAST); err != nil {
			s.sastOff = err.Error()
			logger.Warn("source scans run without Go SAST", "err", err)
		}
	}
	return s, nil
}

// Result is what a commit scan found.
type Result struct {
	Commit events.Commit
	// Findings: secrets, misconfigurations, vulnerable lock file entries and
	// API breaks, most severe first.
	Findings []finding.Finding
	Counts   finding.Counts
	// DBVersion is the vulnerability DB the lock files were matched against.
	DBVersion vulndb.Version
	// Spec is the OpenAPI spec the commit carries; nil when it has none.
	Spec *contract.Spec
	// Base is the live spec the commit's was diffed against; nil when no
	// spec was stored for the repository yet.
	Base *contract.Spec
	// Breaks are the breaking changes from Base to Spec.
	Breaks []contract.Break
	// SAST is what the Go static analysis covered; Findings hold what it
	// found. Zero when SAST is off.
	SAST sast.Report
	// Notes say what the scan did not cover (Go packages analysed without
	// their types, SAST off); verdicts carry them next to the gate's reasons.
	Notes    []string
	Duration time.Duration
}

// ScanCommit clones c's repository at c.SHA and scans the tree. Errors wrap
// ErrCheckout or ErrScan, or are ctx's.
func (s *Scanner) ScanCommit(parent context.Context, c events.Commit) (Result, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(parent, cmp.Or(s.opts.Timeout, DefaultTimeout))
	defer cancel()
	fail := func(sentinel error, err error) (Result, error) {
		if perr := parent.Err(); perr != nil {
			return Result{}, fmt.Errorf("scan %s@%s: %w", c.Repository, c.SHA, perr)
		}
		return Result{}, fmt.Errorf("scan %s@%s: %w: %w", c.Repository, c.SHA, sentinel, err)
	}

	dir, err := os.MkdirTemp(s.opts.WorkDir, "rampart-source-*")
	if err != nil {
		return fail(ErrScan, err)
	}
	defer os.RemoveAll(dir)
	if err := s.checkout(ctx, c, dir); err != nil {
		return fail(ErrCheckout, err)
	}

	res := Result{Commit: c}
	res.Findings, res.DBVersion, err = s.tree.analyze(ctx, dir)
	if err != nil {
		return fail(ErrScan, err)
	}
	if err := s.analyzeGo(ctx, dir, &res); err != nil {
		return fail(ErrScan, err)
	}
	if err := s.checkContract(ctx, c, dir, &res); err != nil {
		return fail(ErrScan, err)
	}
	finding.Sort(res.Findings)
	res.Counts = finding.Count(res.Findings)
	res.Duration = time.Since(start)
	s.logger.Debug("commit scanned", "repository", c.Repository, "sha", c.SHA, "findings", len(res.Findings),
		"critical", res.Counts.Critical, "high", res.Counts.High, "breaks", len(res.Breaks), "duration", res.Duration)
	return res, nil
}

// analyzeGo runs the Go static analysis. A tree over the size limit or an
// analysis past its timeout fails the scan (an unscanned commit never
// passes); packages that loaded without their dependencies were analysed
// with what there was, and the verdict's notes say which.
func (s *Scanner) analyzeGo(ctx context.Context, dir string, res *Result) error {
	if s.sast == nil {
		if s.sastOff != "" && hasGo(dir) {
			res.Notes = append(res.Notes, "Go sources not analysed: "+s.sastOff)
		}
		return nil
	}
	rep, err := s.sast.Analyze(ctx, dir)
	if err != nil {
		return err
	}
	res.SAST = rep
	res.Findings = append(res.Findings, rep.Findings...)
	if sum := rep.Summary(); sum != "" {
		res.Notes = append(res.Notes, sum)
	}
	return nil
}

// hasGo reports whether the tree has a go.mod at its root or any .go file.
func hasGo(dir string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil || found:
			return filepath.SkipAll
		case d.IsDir() && d.Name() == ".git":
			return filepath.SkipDir
		case !d.IsDir() && (d.Name() == "go.mod" || filepath.Ext(d.Name()) == ".go"):
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// checkContract diffs the commit's spec against the live one.
func (s *Scanner) checkContract(ctx context.Context, c events.Commit, dir string, res *Result) error {
	p, data, found, err := contract.Find(dir, s.opts.SpecPaths)
	if err != nil || !found {
		return err
	}
	res.Spec = &contract.Spec{Repository: c.Repository, SHA: c.SHA, Path: p, Data: data}
	if s.opts.Specs == nil {
		return nil
	}
	base, found, err := s.opts.Specs.Live(ctx, c.Repository)
	if err != nil || !found {
		return err
	}
	res.Base = &base
	if res.Breaks, err = contract.Diff(base, *res.Spec); err != nil {
		return err
	}
	res.Findings = append(res.Findings, contract.Findings(res.Breaks, *res.Spec)...)
	return nil
}

// checkout clones the repository into dir and checks out c.SHA. A commit
// that no branch or tag reaches (a pull request's head, refs/pull/N/head) is
// fetched by its ref.
func (s *Scanner) checkout(ctx context.Context, c events.Commit, dir string) error {
	if !plumbing.IsHash(c.SHA) {
		return fmt.Errorf("%q is not a full commit hash", c.SHA)
	}
	u, err := s.cloneURL(c)
	if err != nil {
		return err
	}
	repo, err := git.PlainCloneContext(ctx, dir, false, &git.CloneOptions{
		URL:        u,
		Auth:       s.opts.CloneAuth,
		NoCheckout: true,
		Tags:       git.NoTags,
	})
	if err != nil {
		return fmt.Errorf("clone %s: %w", redact(u), err)
	}
	hash := plumbing.NewHash(c.SHA)
	if _, err := repo.CommitObject(hash); errors.Is(err, plumbing.ErrObjectNotFound) && c.Ref != "" {
		spec := config.RefSpec("+" + c.Ref + ":refs/rampart/scan")
		if err := spec.Validate(); err != nil {
			return fmt.Errorf("fetch %s: %w", c.Ref, err)
		}
		err := repo.FetchContext(ctx, &git.FetchOptions{RefSpecs: []config.RefSpec{spec}, Auth: s.opts.CloneAuth, Tags: git.NoTags})
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
			return fmt.Errorf("fetch %s from %s: %w", c.Ref, redact(u), err)
		}
	}
	if _, err := repo.CommitObject(hash); err != nil {
		return fmt.Errorf("commit %s in %s: %w", c.SHA, redact(u), err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return err
	}
	if err := wt.Checkout(&git.CheckoutOptions{Hash: hash, Force: true}); err != nil {
		return fmt.Errorf("check out %s: %w", c.SHA, err)
	}
	return nil
}

// cloneURL is the commit's RepoURL, or https://<repository>. Local URLs are
// refused unless AllowLocal is set.
func (s *Scanner) cloneURL(c events.Commit) (string, error) {
	raw := c.RepoURL
	if raw == "" {
		if c.Repository == "" {
			return "", errors.New("commit names no repository")
		}
		raw = "https://" + c.Repository
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("repository URL: %w", err)
	}
	switch {
	case slices.Contains([]string{"https", "http", "ssh"}, u.Scheme):
		return raw, nil
	case (u.Scheme == "file" || u.Scheme == "") && s.opts.AllowLocal:
		return raw, nil
	}
	return "", fmt.Errorf("repository URL %s: scheme %q is not allowed", redact(raw), u.Scheme)
}

// redact drops credentials from a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
