// Package contract guards a repository's API contract: it finds the OpenAPI
// spec a commit carries, diffs it against the spec of the live release with
// oasdiff, and reports each breaking change as a finding.
//
// The live release's spec is the spec of the last commit of the repository
// whose source verdict passed; Store keeps one per repository.
package contract

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/oasdiff/oasdiff/checker"
	"github.com/oasdiff/oasdiff/diff"
	"github.com/oasdiff/oasdiff/load"

	"github.com/rampartci/rampart/pkg/policy/finding"
)

// DefaultPaths are where a repository's spec is looked for, in order.
var DefaultPaths = []string{"openapi.yaml", "openapi.json"}

// ErrInvalidSpec is wrapped when a spec does not load as OpenAPI.
var ErrInvalidSpec = errors.New("invalid OpenAPI spec")

// Spec is one revision of a repository's OpenAPI document.
type Spec struct {
	Repository string // e.g. github.com/acme/shop
	SHA        string // the commit it was read from
	Path       string // path in the repository, slash-separated
	Data       []byte // the document as committed
}

// MaxSpecSize bounds the spec read from a checkout (bytes).
const MaxSpecSize = 16 << 20

// Find reads the first of paths (relative, slash-separated) that exists in
// the checkout at dir. found is false when none does.
func Find(dir string, paths []string) (p string, data []byte, found bool, err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", nil, false, fmt.Errorf("open checkout: %w", err)
	}
	defer root.Close()
	for _, p := range paths {
		clean := path.Clean(p)
		// os.Root refuses paths that leave the checkout, symlinks included.
		fi, err := root.Stat(filepath.FromSlash(clean))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, false, fmt.Errorf("look for spec %s: %w", clean, err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if fi.Size() > MaxSpecSize {
			return "", nil, false, fmt.Errorf("spec %s: %d bytes, more than %d", clean, fi.Size(), MaxSpecSize)
		}
		data, err := root.ReadFile(filepath.FromSlash(clean))
		if err != nil {
			return "", nil, false, fmt.Errorf("read spec %s: %w", clean, err)
		}
		return clean, data, true, nil
	}
	return "", nil, false, nil
}

// Break is one breaking change between two specs.
type Break struct {
	ID        string // oasdiff's rule id, e.g. response-success-status-removed
	Level     checker.Level
	Operation string // e.g. GET
	Path      string // e.g. /orders/{id}
	Text      string // what changed, as oasdiff words it
}

// String is "GET /orders/{id}: removed the success response with the status `200` [response-success-status-removed]".
func (b Break) String() string {
	where := strings.TrimSpace(b.Operation + " " + b.Path)
	if where == "" {
		return fmt.Sprintf("%s [%s]", b.Text, b.ID)
	}
	return fmt.Sprintf("%s: %s [%s]", where, b.Text, b.ID)
}

// Diff returns the breaking changes from base (the live release's spec) to
// revision (the commit's), as oasdiff's `breaking` command reports them:
// level ERR (breaks clients) and WARN (may break some). Specs load with
// in-document $refs only: external references are not followed, since a
// spec from a commit must not make the scanner read files or URLs.
func Diff(base, revision Spec) ([]Break, error) {
	s1, err := loadSpec(base)
	if err != nil {
		return nil, err
	}
	s2, err := loadSpec(revision)
	if err != nil {
		return nil, err
	}
	d, sources, err := diff.GetWithOperationsSourcesMap(diff.NewConfig(), s1, s2)
	if err != nil {
		return nil, fmt.Errorf("diff %s@%s against %s@%s: %w", revision.Path, short(revision.SHA), base.Path, short(base.SHA), err)
	}
	changes := checker.CheckBackwardCompatibility(checker.NewConfig(checker.GetAllChecks()), d, sources)
	l := checker.NewDefaultLocalizer()
	var out []Break
	for _, c := range changes {
		if !c.IsBreaking() {
			continue
		}
		out = append(out, Break{
			ID:        c.GetId(),
			Level:     c.GetLevel(),
			Operation: c.GetOperation(),
			Path:      c.GetPath(),
			Text:      strings.Join(strings.Fields(c.GetUncolorizedText(l)), " "),
		})
	}
	return out, nil
}

// loadSpec parses a spec with a fresh loader (oasdiff's advice: loaders
// cache documents by name) that refuses external references.
func loadSpec(s Spec) (*load.SpecInfo, error) {
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	info, err := load.NewSpecInfoFromData(loader, s.Data, s.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s@%s: %w", ErrInvalidSpec, s.Path, short(s.SHA), err)
	}
	return info, nil
}

// Findings turns breaks into findings: an ERR-level break is High (it blocks
// under the default policy), a WARN-level one Medium (reported, not blocking).
// Package is the place, as for other source findings: the spec file and the
// operation ("openapi.yaml GET /orders/{id}"), so gate reasons and waivers
// name the break; Target is the spec file. The id is prefixed so waivers can
// name an API rule: "openapi/response-success-status-removed".
func Findings(breaks []Break, revision Spec) []finding.Finding {
	var out []finding.Finding
	for _, b := range breaks {
		sev := finding.Medium
		if b.Level == checker.ERR {
			sev = finding.High
		}
		out = append(out, finding.Finding{
			ID:       "openapi/" + b.ID,
			Package:  strings.TrimSpace(revision.Path + " " + b.Operation + " " + b.Path), // the place: spec file and operation
			Severity: sev,
			Title:    b.String(),
			Target:   revision.Path,
		})
	}
	return out
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
