// Package sast finds security weaknesses in the Go sources of a checked-out
// tree: SQL built from strings, command and path injection, hard-coded
// credentials, weak crypto and the rest of gosec's rules
// (github.com/securego/gosec/v2), run in-process. It does not read other
// languages; their analysers' results arrive as SARIF (/hooks/sarif).
//
// Packages are loaded the way the go command sees them (go/packages, which
// runs `go list`), offline: the module cache the scanner has is all there is.
// A package whose imports cannot be resolved is still analysed with the type
// information that could be built, and the Report says so. Nothing is
// downloaded and no code of the tree is run: cgo is off, so no C compiler
// sees the sources, and the toolchain is the local one whatever go.mod asks.
package sast

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/securego/gosec/v2"
	"github.com/securego/gosec/v2/analyzers"
	"github.com/securego/gosec/v2/issue"
	"github.com/securego/gosec/v2/rules"
	"golang.org/x/tools/go/packages"

	"github.com/rampartci/rampart/pkg/policy/finding"
)

// Engine names the analyser and its version in reports.
const Engine = "gosec v2.30.0"

// Defaults for Options left zero.
const (
	DefaultTimeout  = 5 * time.Minute
	DefaultMaxFiles = 20_000
	DefaultMaxBytes = 200 << 20
)

// ErrLimit is wrapped when a tree is over Options.MaxFiles or MaxBytes.
var ErrLimit = errors.New("go sources over the SAST size limit")

// excluded are gosec's audit rules, which flag every use of a construct
// rather than a weakness (unsafe, an unchecked error): hundreds of LOW
// findings in any real tree, none of them a vulnerability.
var excluded = []string{"G103", "G104"}

// Options bound an analysis.
type Options struct {
	// Timeout bounds one tree's analysis (loading included); 0:
	// DefaultTimeout.
	Timeout time.Duration
	// MaxFiles and MaxBytes bound the Go files of a tree (vendor/ and
	// testdata/ excluded); 0: the defaults. A tree over either is not
	// analysed: Analyze returns ErrLimit.
	MaxFiles int
	MaxBytes int64
	// Go is the go command that loads packages; empty: "go" on PATH.
	Go string
	// ModCache is GOMODCACHE for loading; empty: the go command's own. It is
	// read only: modules missing from it are not downloaded.
	ModCache string
}

// Analyzer runs gosec over trees. It is safe for concurrent use.
type Analyzer struct {
	opts Options
}

// New finds the go command. Without one Go sources cannot be loaded with
// their types, so New fails and the caller decides (the commit scan runs
// without SAST and says so).
func New(opts Options) (*Analyzer, error) {
	opts.Timeout = cmp.Or(opts.Timeout, DefaultTimeout)
	opts.MaxFiles = cmp.Or(opts.MaxFiles, DefaultMaxFiles)
	opts.MaxBytes = cmp.Or(opts.MaxBytes, DefaultMaxBytes)
	goBin, err := exec.LookPath(cmp.Or(opts.Go, "go"))
	if err != nil {
		return nil, fmt.Errorf("SAST needs the go command to load packages: %w", err)
	}
	opts.Go = goBin
	return &Analyzer{opts: opts}, nil
}

// Report is what one tree's analysis found and covered.
type Report struct {
	Findings []finding.Finding
	Modules  int // go.mod files found
	Packages int // packages analysed
	Files    int // Go files analysed
	// Incomplete names what was analysed without full type information or
	// not at all, one line each: a module that did not load, a package with
	// imports missing from the module cache, Go files outside any module.
	Incomplete []string
	Duration   time.Duration
}

// Summary is one line for a verdict, e.g. "Go SAST (gosec v2.30.0): 12
// packages, 85 files; 1 incomplete: shop/db: missing module ...". It is
// empty for a tree without Go sources.
func (r Report) Summary() string {
	if r.Modules == 0 && r.Packages == 0 && len(r.Incomplete) == 0 {
		return ""
	}
	s := fmt.Sprintf("Go SAST (%s): %s, %s", Engine, count(r.Packages, "package"), count(r.Files, "file"))
	if n := len(r.Incomplete); n > 0 {
		s += fmt.Sprintf("; %d incomplete: %s", n, r.Incomplete[0])
		if n > 1 {
			s += fmt.Sprintf(" (and %d more)", n-1)
		}
	}
	return s
}

// Analyze loads the Go packages of every module under dir and runs gosec's
// rules and analysers on them. Errors are ctx's (the timeout included) or
// ErrLimit; what could not be loaded is listed in Report.Incomplete.
func (a *Analyzer) Analyze(parent context.Context, dir string) (Report, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(parent, a.opts.Timeout)
	defer cancel()
	var rep Report
	roots, loose, err := a.survey(ctx, dir)
	if err != nil {
		return rep, err
	}
	rep.Modules = len(roots)
	if loose > 0 {
		rep.Incomplete = append(rep.Incomplete, fmt.Sprintf("%d Go files outside any module not analysed", loose))
	}

	g := newGosec()
	env := a.env(dir)
	seen := map[string]bool{}
	for _, root := range roots {
		pkgs, err := packages.Load(&packages.Config{
			Context: ctx,
			Mode:    gosec.LoadMode,
			Dir:     root,
			Env:     env,
		}, "./...")
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("Go SAST of %s (timeout %s): %w", rel(dir, root), a.opts.Timeout, context.Cause(ctx))
		}
		if err != nil {
			rep.Incomplete = append(rep.Incomplete, fmt.Sprintf("module %s not loaded: %s", rel(dir, root), firstLine(err.Error())))
			continue
		}
		for _, p := range pkgs {
			if p.Name == "" || seen[p.ID] {
				continue
			}
			seen[p.ID] = true
			if len(p.Errors) > 0 {
				rep.Incomplete = append(rep.Incomplete, fmt.Sprintf("%s: %s", p.PkgPath, firstLine(p.Errors[0].Msg)))
			}
			if err := check(g, p); err != nil {
				rep.Incomplete = append(rep.Incomplete, fmt.Sprintf("%s not analysed: %v", p.PkgPath, err))
				continue
			}
			rep.Packages++
			rep.Files += len(p.Syntax)
			if err := ctx.Err(); err != nil {
				return rep, fmt.Errorf("Go SAST of %s (timeout %s): %w", rel(dir, root), a.opts.Timeout, context.Cause(ctx))
			}
		}
	}
	issues, _, _ := g.Report()
	for _, is := range issues {
		if f, ok := Finding(dir, is); ok {
			rep.Findings = append(rep.Findings, f)
		}
	}
	finding.Sort(rep.Findings)
	rep.Duration = time.Since(start)
	return rep, nil
}

// newGosec is an analyser with every rule and SSA analyser but the audit
// ones, test files and generated files skipped, and #nosec comments
// ignored: a finding is accepted through a gate waiver, which has an owner
// and an expiry, not by a comment in the change under review.
func newGosec() *gosec.Analyzer {
	conf := gosec.NewConfig()
	conf.SetGlobal(gosec.Nosec, "true")
	g := gosec.NewAnalyzer(conf, false, true, false, 1, log.New(io.Discard, "", 0))
	g.LoadRules(rules.Generate(false, rules.NewRuleFilter(true, excluded...)).RulesInfo())
	g.LoadAnalyzers(analyzers.Generate(false, analyzers.NewAnalyzerFilter(true, excluded...)).AnalyzersInfo())
	return g
}

// check runs the rules and, on a well-typed package, the SSA analysers. A
// rule that panics on odd code costs that package, not the scan.
func check(g *gosec.Analyzer, p *packages.Package) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gosec panicked: %v", r)
		}
	}()
	g.CheckRules(p)
	if !p.IllTyped && p.Types != nil && p.TypesInfo != nil {
		g.CheckAnalyzers(p)
	}
	return nil
}

// survey finds the module roots under dir and counts the Go files, against
// the size limits. Directories the go command ignores (vendor, testdata,
// names starting with . or _) are skipped; loose counts Go files outside
// any module.
func (a *Analyzer) survey(ctx context.Context, dir string) (roots []string, loose int, err error) {
	var files int
	var size int64
	var inModule []string // roots, deepest last, for the "outside any module" count
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != dir && (name == "vendor" || name == "testdata" || name == "node_modules" ||
				strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			if _, err := os.Lstat(filepath.Join(path, "go.mod")); err == nil {
				roots = append(roots, path)
				inModule = append(inModule, path)
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(name, ".go") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files++
		size += info.Size()
		if files > a.opts.MaxFiles || size > a.opts.MaxBytes {
			return fmt.Errorf("%w: more than %d files or %d bytes", ErrLimit, a.opts.MaxFiles, a.opts.MaxBytes)
		}
		if !slices.ContainsFunc(inModule, func(root string) bool { return within(root, path) }) {
			loose++
		}
		return nil
	})
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, 0, fmt.Errorf("Go SAST: %w", context.Cause(ctx))
		}
		return nil, 0, fmt.Errorf("Go SAST: %w", err)
	}
	return roots, loose, nil
}

// env is the go command's environment for loading a tree: offline
// (GOPROXY=off, no checksum database), the local toolchain whatever go.mod
// asks (no toolchain download), no cgo (no C compiler over the tree's
// sources), the tree's own go.work or none, and no GOFLAGS of the scanner's.
func (a *Analyzer) env(dir string) []string {
	work := "off"
	if _, err := os.Lstat(filepath.Join(dir, "go.work")); err == nil {
		work = filepath.Join(dir, "go.work")
	}
	env := append(os.Environ(),
		"GOPROXY=off", "GOSUMDB=off", "GOTOOLCHAIN=local", "GO111MODULE=on", "CGO_ENABLED=0",
		"GOFLAGS=-buildvcs=false", "GOWORK="+work)
	if a.opts.ModCache != "" {
		env = append(env, "GOMODCACHE="+a.opts.ModCache)
	}
	return env
}

// Finding converts a gosec issue in a file under dir: the place stands
// where an image finding has its package, as for secrets, so waivers name
// the exact spot ("G202" in "db/users.go:42"), and the title carries the
// CWE. Issues outside dir (generated cgo files) are dropped.
func Finding(dir string, is *issue.Issue) (finding.Finding, bool) {
	path := rel(dir, is.File)
	if path == "" || strings.HasPrefix(path, "../") {
		return finding.Finding{}, false
	}
	line, _, _ := strings.Cut(is.Line, "-") // a range "12-14" starts at 12
	where := path + ":" + line
	title := "sast: " + firstLine(is.What)
	var tags []string
	if is.Cwe != nil && is.Cwe.ID != "" {
		tags = append(tags, "CWE-"+is.Cwe.ID)
	}
	tags = append(tags, "confidence "+is.Confidence.String())
	return finding.Finding{
		ID:       is.RuleID,
		Package:  where,
		Severity: Severity(is),
		Title:    title + " [" + strings.Join(tags, ", ") + "]",
		Target:   where,
	}, true
}

// injection are the CWEs of OWASP's injection class gosec reports: SQL
// (89), OS command (78), cross-site scripting (79), code (94).
var injection = []string{"89", "78", "79", "94"}

// Severity maps gosec's severity and confidence to the scanner's:
// gosec's LOW, MEDIUM and HIGH are LOW, MEDIUM and HIGH; an injection
// (see injection) that gosec is at least MEDIUM confident of is HIGH, as
// the OWASP Top 10 ranks it (gosec rates string-built SQL MEDIUM); a
// finding gosec is only LOW confident of is at most MEDIUM, so a guess
// (a variable merely named "password") is reported but does not block.
func Severity(is *issue.Issue) finding.Severity {
	s := map[issue.Score]finding.Severity{issue.Low: finding.Low, issue.Medium: finding.Medium, issue.High: finding.High}[is.Severity]
	if is.Cwe != nil && slices.Contains(injection, is.Cwe.ID) && is.Confidence >= issue.Medium {
		s = max(s, finding.High)
	}
	if is.Confidence < issue.Medium {
		s = min(s, finding.Medium)
	}
	return s
}

func within(root, path string) bool {
	r, err := filepath.Rel(root, path)
	return err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator))
}

// rel is path relative to dir with forward slashes; "" when it cannot be.
func rel(dir, path string) string {
	r, err := filepath.Rel(dir, path)
	if err != nil {
		return ""
	}
	return filepath.ToSlash(r)
}

// count is e.g. "1 package" or "3 packages".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
