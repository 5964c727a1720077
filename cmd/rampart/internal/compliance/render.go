package compliance

import (
	"bytes"
	"embed"
	"encoding/csv"
	"fmt"
	htmltemplate "html/template"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/rampartci/rampart/pkg/events"
)

//go:embed templates
var templates embed.FS

var funcs = map[string]any{
	"time":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") },
	"date":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"counts": countsText,
	"idx":    indexesText,
	"name":   changeName,
	"short":  short,
	"upper":  strings.ToUpper,
	"slug": func(s string) string {
		return strings.NewReplacer(" ", "-", "/", "-", ".", "-").Replace(strings.ToLower(s))
	},
	"md":    mdCell,
	"join":  strings.Join,
	"steps": func(s []int) string { return percents(s) },
	"exc":   func(r *Report, i int) Exception { return r.Exceptions[i] },
	"blocked": func(g Gate) bool {
		return g.Outcome == events.OutcomeBlocked
	},
	"fix": func(f events.Finding) string {
		if f.FixedVersion == "" {
			return "no fix"
		}
		return "fixed in " + f.FixedVersion
	},
	"leaf":   func(p ProvenEntry) string { return p.LeafHash.String() },
	"proofn": func(p ProvenEntry) int { return len(p.Proof) },
	"proof": func(p ProvenEntry) string {
		parts := make([]string, len(p.Proof))
		for i, h := range p.Proof {
			parts[i] = h.String()
		}
		return strings.Join(parts, " ")
	},
}

var (
	htmlTemplate = htmltemplate.Must(htmltemplate.New("report.html.tmpl").Funcs(funcs).ParseFS(templates, "templates/report.html.tmpl"))
	mdTemplate   = texttemplate.Must(texttemplate.New("report.md.tmpl").Funcs(funcs).ParseFS(templates, "templates/report.md.tmpl"))
)

// WriteHTML writes r as one self-contained HTML page (styles embedded, no
// scripts, nothing fetched) that prints well.
func WriteHTML(w io.Writer, r *Report) error { return htmlTemplate.Execute(w, r) }

// WriteJSON writes r as the JSON document Verify checks.
func WriteJSON(w io.Writer, r *Report) error {
	b, err := Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// The files WriteFiles writes.
const (
	FileJSON     = "compliance-report.json"
	FileHTML     = "compliance-report.html"
	FileMarkdown = "compliance-report.md"
	FileCSV      = "compliance-changes.csv"
)

// WriteFiles writes r in every format into dir and returns the paths, the
// JSON first.
func WriteFiles(dir string, r *Report) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, f := range []struct {
		name  string
		write func(io.Writer, *Report) error
	}{{FileJSON, WriteJSON}, {FileHTML, WriteHTML}, {FileMarkdown, WriteMarkdown}, {FileCSV, WriteCSV}} {
		var buf bytes.Buffer
		if err := f.write(&buf, r); err != nil {
			return nil, fmt.Errorf("rendering %s: %w", f.name, err)
		}
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// WriteMarkdown writes r as Markdown.
func WriteMarkdown(w io.Writer, r *Report) error { return mdTemplate.Execute(w, r) }

// CSVHeader is the first line of WriteCSV.
var CSVHeader = []string{"chain", "app", "environment", "kind", "subject", "version", "outcome", "trigger", "triggered_by",
	"started", "finished", "gates", "policy_versions", "db_versions", "rollout", "steps", "rollback_trigger", "page", "ledger_indexes"}

// WriteCSV writes one line per change.
func WriteCSV(w io.Writer, r *Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, c := range r.Changes {
		var gates, policies, dbs, steps, idx []string
		for _, g := range c.Gates {
			gates = append(gates, fmt.Sprintf("%s %s (%s)", g.Kind, g.Outcome, countsText(g.Counts)))
			policies = appendNew(policies, g.PolicyVersion)
			dbs = appendNew(dbs, g.DBVersion)
		}
		rollout, rollback, page := "", "", ""
		if ro := c.Rollout; ro != nil {
			rollout = ro.ID
			for _, s := range ro.CanarySteps {
				steps = append(steps, strconv.Itoa(s.Weight)+"%")
			}
		}
		if rb := c.Rollback; rb != nil {
			rollback = rb.Trigger
		}
		if c.Page != nil {
			page = c.Page.Ticket
		}
		for _, e := range c.Events {
			idx = append(idx, strconv.FormatInt(e.Index, 10))
		}
		rec := []string{c.Chain, c.App, c.Environment, c.Kind, c.Subject, c.Version, c.Outcome, c.Trigger.Text, c.Trigger.Who,
			c.Started.Format(time.RFC3339Nano), c.Finished.Format(time.RFC3339Nano), strings.Join(gates, "; "), strings.Join(policies, " "),
			strings.Join(dbs, " "), rollout, strings.Join(steps, " "), rollback, page, strings.Join(idx, " ")}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	if s == "" {
		return list
	}
	return append(list, s)
}

func indexesText(idx []int64) string {
	parts := make([]string, len(idx))
	for i, x := range idx {
		parts[i] = strconv.FormatInt(x, 10)
	}
	return strings.Join(parts, ", ")
}

func percents(steps []int) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = strconv.Itoa(s) + "%"
	}
	return strings.Join(parts, " → ")
}

// mdCell makes s safe inside a Markdown table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(s)
}
