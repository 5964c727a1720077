// Package report is the rollback report: what was rolled back, why, and the
// story of the release from its first event to the rollback, read from the
// ledger. It renders as JSON (for machines: PagerDuty's custom_details, the
// CLI's --format json) and Markdown (for people), and is stored in a
// JetStream key-value bucket and optionally as files.
package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// FormatVersion is the version of the report's JSON shape; it changes when a
// field changes meaning or disappears.
const FormatVersion = 1

// Report is one rollback, explained.
type Report struct {
	FormatVersion int    `json:"formatVersion"`
	RolloutID     string `json:"rolloutId"`
	App           string `json:"app"`
	Environment   string `json:"environment"`
	// RolledBackAt is the rollback event's time.
	RolledBackAt    time.Time `json:"rolledBackAt"`
	RollbackEventID string    `json:"rollbackEventId"`
	// TrafficAtAbort is the canary's share of traffic, in percent, when it
	// was aborted.
	TrafficAtAbort int           `json:"trafficAtAbort"`
	Versions       Versions      `json:"versions"`
	Trigger        Trigger       `json:"trigger"`
	Timeline       []Step        `json:"timeline"`
	Scans          []ScanSummary `json:"scans"`
	Ledger         LedgerInfo    `json:"ledger"`
	GeneratedAt    time.Time     `json:"generatedAt"`
}

// Versions are the two versions of the rollout.
type Versions struct {
	// From is the version rolled back (the canary).
	From Version `json:"from"`
	// To is the version traffic returned to (the stable release).
	To Version `json:"to"`
}

// Version is an artifact, by its package URL and, when that is an OCI purl,
// its parts.
type Version struct {
	Artifact   string `json:"artifact"`
	Digest     string `json:"digest,omitempty"`
	Repository string `json:"repository,omitempty"`
	Tag        string `json:"tag,omitempty"`
}

// Trigger is the anomaly that caused the rollback.
type Trigger struct {
	AnomalyID   string    `json:"anomalyId,omitempty"`
	Rule        string    `json:"rule"`
	Origin      string    `json:"origin"`
	Target      string    `json:"target,omitempty"`
	Description string    `json:"description,omitempty"`
	Observed    *float64  `json:"observed,omitempty"`
	Threshold   *float64  `json:"threshold,omitempty"`
	DetectedAt  time.Time `json:"detectedAt"`
}

// Step is one event of the release, in ledger order.
type Step struct {
	// LedgerIndex is the event's entry in the ledger; nil when the ledger
	// had not recorded it when the report was built.
	LedgerIndex *uint64 `json:"ledgerIndex"`
	// Time is when the event happened (its CloudEvents time).
	Time time.Time `json:"time"`
	// RecordedAt is when the ledger recorded it.
	RecordedAt *time.Time `json:"recordedAt,omitempty"`
	Kind       string     `json:"kind"`
	Type       string     `json:"type"`
	EventID    string     `json:"eventId"`
	Source     string     `json:"source"`
	Summary    string     `json:"summary"`
}

// ScanSummary is one scan of the release.
type ScanSummary struct {
	EventID       string           `json:"eventId"`
	LedgerIndex   *uint64          `json:"ledgerIndex"`
	Time          time.Time        `json:"time"`
	Target        string           `json:"target"`
	TargetKind    string           `json:"targetKind"`
	Outcome       string           `json:"outcome"`
	Reason        string           `json:"reason,omitempty"`
	Counts        map[string]int   `json:"counts"`
	Findings      int              `json:"findings"`
	TopFindings   []events.Finding `json:"topFindings,omitempty"`
	DBVersion     string           `json:"dbVersion,omitempty"`
	PolicyVersion string           `json:"policyVersion,omitempty"`
}

// LedgerInfo says where the timeline came from and whether it is whole.
type LedgerInfo struct {
	ChainID string `json:"chainId"`
	// RollbackIndex is the rollback event's ledger entry.
	RollbackIndex *uint64 `json:"rollbackIndex"`
	// Complete is true when the ledger held the rollback event itself, so
	// the timeline has every event of the chain up to it.
	Complete bool   `json:"complete"`
	Note     string `json:"note,omitempty"`
}

// maxTopFindings bounds the findings listed per scan; the counts cover all.
const maxTopFindings = 5

// Input is what a report is built from.
type Input struct {
	// Rollback is the rollback event.
	Rollback cloudevents.Event
	// Chain holds the ledger entries of the rollback's chain in ledger
	// order, as ledgerclient.Chain returns them.
	Chain []*entry.Entry
	// Now is when the report is built.
	Now time.Time
}

// ErrNotRollback is returned by Build for an event that is not a rollback.
var ErrNotRollback = errors.New("not a rollback event")

// Build makes the report. When the chain does not contain the rollback event
// (the ledger is behind or was not reachable), the report says so and lists
// the rollback without a ledger index.
func Build(in Input) (*Report, error) {
	rb, err := events.RollbackOf(in.Rollback)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotRollback, err)
	}
	chainID := events.ChainID(in.Rollback)
	r := &Report{
		FormatVersion:   FormatVersion,
		RolloutID:       rb.RolloutID,
		App:             rb.App,
		Environment:     rb.Environment,
		RolledBackAt:    in.Rollback.Time().UTC(),
		RollbackEventID: in.Rollback.ID(),
		TrafficAtAbort:  rb.TrafficAtAbort,
		Versions:        Versions{From: versionOf(rb.From), To: versionOf(rb.ArtifactID)},
		Trigger: Trigger{
			AnomalyID:   rb.AnomalyID,
			Rule:        rb.Trigger.Rule,
			Origin:      rb.Trigger.Origin,
			Target:      rb.Trigger.Target,
			Description: rb.Trigger.Description,
			Observed:    rb.Trigger.Observed,
			Threshold:   rb.Trigger.Threshold,
			DetectedAt:  rb.Trigger.DetectedAt.UTC(),
		},
		Timeline:    []Step{},
		Scans:       []ScanSummary{},
		Ledger:      LedgerInfo{ChainID: chainID},
		GeneratedAt: in.Now.UTC(),
	}

	// The chain as far as the rollback: later events (the page this report
	// leads to, a retried rollback) would make the report depend on when it
	// was built.
	entries := in.Chain
	for i, e := range entries {
		if e.Kind == entry.KindEvent && e.EventID == in.Rollback.ID() {
			entries = entries[:i+1]
			idx := e.Index
			r.Ledger.RollbackIndex = &idx
			r.Ledger.Complete = true
			break
		}
	}
	for _, e := range entries {
		if e.Kind != entry.KindEvent {
			continue
		}
		evs, err := events.ParseStructured(e.Event)
		if err != nil || len(evs) != 1 {
			// The ledger recorded it, so it was a CloudEvent; a reader
			// that cannot decode it still shows that it was there.
			r.Timeline = append(r.Timeline, stepOf(e, nil, "(event not readable: "+errText(err)+")"))
			continue
		}
		ev := evs[0]
		r.Timeline = append(r.Timeline, stepOf(e, &ev, events.Describe(ev)))
		if events.KindOf(ev.Type()) == events.KindScan {
			if s, err := scanSummary(e, ev); err == nil {
				r.Scans = append(r.Scans, s)
			}
		}
	}
	if !r.Ledger.Complete {
		r.Timeline = append(r.Timeline, stepOf(nil, &in.Rollback, events.Describe(in.Rollback)))
		switch {
		case chainID == "":
			r.Ledger.Note = "the rollback event has no chainId, so the release's other events cannot be found"
		default:
			r.Ledger.Note = fmt.Sprintf("the ledger had not recorded the rollback event when the report was built; %d earlier events of the chain were found", len(r.Timeline)-1)
		}
	}
	return r, nil
}

func errText(err error) string {
	if err == nil {
		return "not one event"
	}
	return err.Error()
}

// stepOf makes a timeline step from a ledger entry (nil: not recorded) and
// its event (nil: not decodable).
func stepOf(e *entry.Entry, ev *cloudevents.Event, summary string) Step {
	s := Step{Summary: summary}
	if e != nil {
		idx, rec := e.Index, e.RecordedAt.UTC()
		s.LedgerIndex, s.RecordedAt = &idx, &rec
		s.EventID, s.Source, s.Type, s.Time = e.EventID, e.Source, e.Type, rec
		s.Kind = events.KindOf(e.Type)
	}
	if ev != nil {
		s.EventID, s.Source, s.Type, s.Time = ev.ID(), ev.Source(), ev.Type(), ev.Time().UTC()
		s.Kind = events.KindOf(ev.Type())
	}
	return s
}

func versionOf(purl string) Version {
	v := Version{Artifact: purl}
	if o, err := events.ParseOCI(purl); err == nil {
		v.Digest, v.Repository, v.Tag = o.Digest, o.RepositoryURL, o.Tag
	}
	return v
}

func scanSummary(e *entry.Entry, ev cloudevents.Event) (ScanSummary, error) {
	s, err := events.ScanOf(ev)
	if err != nil {
		return ScanSummary{}, err
	}
	idx := e.Index
	sum := ScanSummary{
		EventID:       ev.ID(),
		LedgerIndex:   &idx,
		Time:          ev.Time().UTC(),
		Target:        s.Target,
		TargetKind:    s.TargetKind,
		Outcome:       s.Outcome,
		Reason:        s.Reason,
		Counts:        map[string]int{},
		Findings:      len(s.Findings),
		DBVersion:     s.DBVersion,
		PolicyVersion: s.PolicyVersion,
	}
	for k, n := range s.Counts {
		sum.Counts[strings.ToLower(k)] += n
	}
	sum.TopFindings = topFindings(s.Findings, maxTopFindings)
	return sum, nil
}

// JSON is the report as indented JSON with a final newline: the bytes that
// are stored, written to <rollout>.json and printed by the CLI.
func (r *Report) JSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encode rollback report %s: %w", r.RolloutID, err)
	}
	return buf.Bytes(), nil
}

// Parse reads a report's JSON.
func Parse(b []byte) (*Report, error) {
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode rollback report: %w", err)
	}
	if r.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("rollback report format version %d, this Rampart reads %d", r.FormatVersion, FormatVersion)
	}
	return &r, nil
}
