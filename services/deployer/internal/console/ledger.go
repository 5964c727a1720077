package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/ledger/entry"
)

// maxID bounds a chain or rollout id in a request.
const maxID = 256

// readTimeout bounds what one page asks of another service.
const readTimeout = 10 * time.Second

// storyEvent is one event of a release as the timeline shows it.
type storyEvent struct {
	Index       uint64
	Time        time.Time
	Kind        string
	Description string
	Scan        *events.Scan
	Anomaly     *events.Anomaly
}

func (c *Console) ledgerClient() (*ledgerConn, error) {
	lc := c.ledger.Load()
	if lc == nil {
		return nil, fmt.Errorf("the ledger's address is %w (--ledger-url)", errNotConnected)
	}
	return lc, nil
}

// storyOf turns ledger entries into timeline events; entries that are not
// readable events are shown as such, never dropped.
func storyOf(entries []*entry.Entry) []storyEvent {
	out := make([]storyEvent, 0, len(entries))
	for _, e := range entries {
		s := storyEvent{Index: e.Index, Time: e.RecordedAt, Kind: string(e.Kind)}
		if e.Kind != entry.KindEvent {
			s.Description = "dead letter: " + e.Reason
			out = append(out, s)
			continue
		}
		evs, err := events.ParseStructured(e.Event)
		if err != nil || len(evs) != 1 {
			s.Description = "(event not readable)"
			out = append(out, s)
			continue
		}
		ev := evs[0]
		s.Kind, s.Description = events.KindOf(ev.Type()), events.Describe(ev)
		if !ev.Time().IsZero() {
			s.Time = ev.Time()
		}
		s.Scan, s.Anomaly = scanOf(ev), anomalyOf(ev)
		out = append(out, s)
	}
	return out
}

func scanOf(ev cloudevents.Event) *events.Scan {
	if events.KindOf(ev.Type()) != events.KindScan {
		return nil
	}
	if s, err := events.ScanOf(ev); err == nil {
		return &s
	}
	return nil
}

func anomalyOf(ev cloudevents.Event) *events.Anomaly {
	if a, err := events.AnomalyOf(ev); err == nil {
		return &a
	}
	return nil
}

func (c *Console) releasePage(w http.ResponseWriter, r *http.Request, role Role) {
	chain := r.PathValue("chain")
	d := pageData{Title: "Release " + chain, Nav: "rollouts", Role: role}
	if len(chain) > maxID || strings.ContainsFunc(chain, unicode.IsControl) {
		d.Error = fmt.Sprintf("chain id: want at most %d printable characters", maxID)
		c.render(w, http.StatusBadRequest, "release", d)
		return
	}
	lc, err := c.ledgerClient()
	if err != nil {
		d.Error = err.Error()
		c.render(w, http.StatusServiceUnavailable, "release", d)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
	defer cancel()
	entries, err := lc.c.Chain(ctx, chain)
	switch {
	case errors.Is(err, client.ErrNotFound):
		d.Error = "the ledger has no event of chain " + chain
		c.render(w, http.StatusNotFound, "release", d)
		return
	case err != nil:
		d.Error = "reading the ledger: " + err.Error()
		c.render(w, http.StatusBadGateway, "release", d)
		return
	}
	d.Data = struct {
		Chain  string
		Events []storyEvent
	}{chain, storyOf(entries)}
	c.render(w, http.StatusOK, "release", d)
}

// scanWindow is how many of the latest ledger entries the scans page reads.
const scanWindow = 2000

// maxScans is how many verdicts the scans page lists.
const maxScans = 50

func (c *Console) scansPage(w http.ResponseWriter, r *http.Request, role Role) {
	d := pageData{Title: "Scan verdicts", Nav: "scans", Role: role}
	lc, err := c.ledgerClient()
	if err != nil {
		d.Error = err.Error()
		c.render(w, http.StatusServiceUnavailable, "scans", d)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
	defer cancel()
	entries, err := latestEntries(ctx, lc.c, scanWindow)
	if err != nil {
		d.Error = "reading the ledger: " + err.Error()
		c.render(w, http.StatusBadGateway, "scans", d)
		return
	}
	var scans []storyEvent
	for _, s := range slices.Backward(storyOf(entries)) {
		if s.Scan != nil && len(scans) < maxScans {
			scans = append(scans, s)
		}
	}
	d.Data = scans
	c.render(w, http.StatusOK, "scans", d)
}

// latestEntries reads up to n of the ledger's latest entries, oldest first.
func latestEntries(ctx context.Context, lc *client.Client, n int64) ([]*entry.Entry, error) {
	head, err := lc.Entries(ctx, 0, 0)
	if err != nil {
		return nil, err
	}
	var out []*entry.Entry
	for from := max(head.Size-n, 0); from < head.Size; {
		page, err := lc.Entries(ctx, from, head.Size)
		if err != nil {
			return nil, err
		}
		for _, je := range page.Entries {
			e, err := entry.Unmarshal(je.Entry)
			if err != nil {
				return nil, fmt.Errorf("entry %d: %w", je.Index, err)
			}
			out = append(out, e)
		}
		if page.Next == nil || *page.Next <= from {
			break
		}
		from = *page.Next
	}
	return out, nil
}

// ledgerStatus is the ledger page.
type ledgerStatus struct {
	Size        int64
	Checkpoints int64
	Latest      *checkpoint.Checkpoint
	Unanchored  int64
	Verified    *verification
	CanVerify   bool
}

// verification is the outcome of the last "verify now".
type verification struct {
	At          time.Time
	Took        time.Duration
	Entries     int64
	Checkpoints int
	Unanchored  int64
	Root        string
	Err         string
}

func (c *Console) status(ctx context.Context) (ledgerStatus, error) {
	var st ledgerStatus
	c.mu.Lock()
	st.Verified = c.verified
	c.mu.Unlock()
	lc, err := c.ledgerClient()
	if err != nil {
		return st, err
	}
	st.CanVerify = lc.keyFile != ""
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	head, err := lc.c.Entries(ctx, 0, 0)
	if err != nil {
		return st, fmt.Errorf("reading the ledger: %w", err)
	}
	cps, err := lc.c.Checkpoints(ctx, 0, 0)
	if err != nil {
		return st, fmt.Errorf("reading the ledger's checkpoints: %w", err)
	}
	st.Size, st.Checkpoints, st.Unanchored = head.Size, cps.Count, head.Size
	note, err := lc.c.LatestCheckpoint(ctx)
	if err != nil {
		return st, fmt.Errorf("reading the latest checkpoint: %w", err)
	}
	if text, _, ok := strings.Cut(string(note), "\n\n"); ok {
		if cp, err := checkpoint.Parse(text + "\n"); err == nil {
			st.Latest, st.Unanchored = &cp, head.Size-cp.Size
		}
	}
	return st, nil
}

func (c *Console) ledgerPage(w http.ResponseWriter, r *http.Request, role Role) {
	d := pageData{Title: "Ledger", Nav: "ledger", Role: role}
	st, err := c.status(r.Context())
	if err != nil {
		d.Error = err.Error()
	}
	d.Data = st
	c.render(w, http.StatusOK, "ledger", d)
}

// verifyTimeout bounds "verify now".
const verifyTimeout = 2 * time.Minute

// verifyNow verifies the whole ledger against the trusted key and answers
// the ledger page's status section.
func (c *Console) verifyNow(w http.ResponseWriter, r *http.Request, role Role) {
	lc, err := c.ledgerClient()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if lc.keyFile == "" {
		writeError(w, http.StatusServiceUnavailable, "no trusted ledger key is configured (--ledger-key)")
		return
	}
	pub, err := os.ReadFile(lc.keyFile)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "the ledger key: "+err.Error())
		return
	}
	v, err := checkpoint.NewVerifier(strings.TrimSpace(string(pub)))
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "the ledger key: "+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), verifyTimeout)
	defer cancel()
	start := c.opts.Now()
	res, err := lc.c.Verify(ctx, v)
	ver := &verification{At: start, Took: time.Since(start).Round(time.Millisecond)}
	if err != nil {
		ver.Err = err.Error()
	} else {
		ver.Entries, ver.Checkpoints, ver.Unanchored, ver.Root = res.Entries, res.Checkpoints, res.Unanchored, res.Root.String()
	}
	c.mu.Lock()
	c.verified = ver
	c.mu.Unlock()
	st, err := c.status(r.Context())
	d := pageData{Role: role, Data: st}
	if err != nil {
		d.Error = err.Error()
	}
	html, err := c.fragment("ledger", "status", d)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"html": html})
}

// report is the part of the notifier's rollback report (JSON, format
// version 1) the console shows.
type report struct {
	FormatVersion  int       `json:"formatVersion"`
	RolloutID      string    `json:"rolloutId"`
	App            string    `json:"app"`
	Environment    string    `json:"environment"`
	RolledBackAt   time.Time `json:"rolledBackAt"`
	TrafficAtAbort int       `json:"trafficAtAbort"`
	Versions       struct {
		From struct {
			Artifact string `json:"artifact"`
			Tag      string `json:"tag"`
		} `json:"from"`
		To struct {
			Artifact string `json:"artifact"`
			Tag      string `json:"tag"`
		} `json:"to"`
	} `json:"versions"`
	Trigger struct {
		Rule        string    `json:"rule"`
		Origin      string    `json:"origin"`
		Description string    `json:"description"`
		Observed    *float64  `json:"observed"`
		Threshold   *float64  `json:"threshold"`
		DetectedAt  time.Time `json:"detectedAt"`
	} `json:"trigger"`
	Timeline []struct {
		LedgerIndex *uint64   `json:"ledgerIndex"`
		Time        time.Time `json:"time"`
		Kind        string    `json:"kind"`
		Description string    `json:"description"`
	} `json:"timeline"`
}

// maxReport bounds a report the console reads.
const maxReport = 4 << 20

func (c *Console) reportPage(w http.ResponseWriter, r *http.Request, role Role) {
	id := r.PathValue("rollout")
	d := pageData{Title: "Rollback report " + id, Nav: "rollouts", Role: role}
	if len(id) > maxID || strings.ContainsFunc(id, unicode.IsControl) {
		d.Error = fmt.Sprintf("rollout id: want at most %d printable characters", maxID)
		c.render(w, http.StatusBadRequest, "report", d)
		return
	}
	nc := c.notifier.Load()
	if nc == nil {
		d.Error = "the notifier's address is " + errNotConnected.Error() + " (--notifier-url)"
		c.render(w, http.StatusServiceUnavailable, "report", d)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, nc.base+"/notifier/reports/"+url.PathEscape(id)+"?format=json", nil)
	if err != nil {
		d.Error = err.Error()
		c.render(w, http.StatusBadRequest, "report", d)
		return
	}
	resp, err := nc.hc.Do(req)
	if err != nil {
		d.Error = "reaching the notifier: " + err.Error()
		c.render(w, http.StatusBadGateway, "report", d)
		return
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReport))
	if err != nil || resp.StatusCode != http.StatusOK {
		d.Error = fmt.Sprintf("the notifier answered %s: %s", resp.Status, strings.TrimSpace(string(raw)))
		code := http.StatusBadGateway
		if resp.StatusCode == http.StatusNotFound {
			code = http.StatusNotFound
		}
		c.render(w, code, "report", d)
		return
	}
	var rep report
	if err := json.Unmarshal(raw, &rep); err != nil {
		d.Error = "the notifier's report is not readable: " + err.Error()
		c.render(w, http.StatusBadGateway, "report", d)
		return
	}
	d.Data = rep
	c.render(w, http.StatusOK, "report", d)
}
