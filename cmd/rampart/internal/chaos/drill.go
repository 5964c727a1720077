package chaos

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/deployer/adminapi"
)

// Source is the CloudEvents source of drill results.
const Source = "/rampart/chaos"

// Mesh is the running mesh a drill acts on, through its public doors.
type Mesh struct {
	// Rollouts reads rollouts (the viewer's token); Faults injects
	// router faults (the chaos token).
	Rollouts, Faults *adminapi.Client
	// Bus is the admin's: it follows the drill's events and publishes the
	// result.
	Bus *bus.Bus
	// Ledger is the ledger's query API.
	Ledger *client.Client
	// Components kills the deployer, the watcher or the notifier (the host's kill
	// route, the chaos token); nil: no drill can kill.
	Components *Components
	// SIEMURL is the watcher's /hooks/siem and SIEMSecret its HMAC secret.
	SIEMURL, SIEMSecret string
	// HTTP carries the SIEM alert and the memory hook.
	HTTP *http.Client
	// PageWait is how long, after the rollback, pages may take to arrive
	// (default 20s); PageSettle how long to wait for an extra one once the
	// expected count is reached (default 1s).
	PageWait, PageSettle time.Duration
	Logger               *slog.Logger
	// Progress receives one line per stage of the drill (nil: none).
	Progress io.Writer
}

// Run runs one experiment: it waits for a live canary of the target,
// injects the fault, measures detection and rollback, counts the pages,
// checks the ledger, publishes the drill's result and returns it. Its
// error is for a drill that could not be run at all (no canary, the mesh
// unreachable); a drill whose expectation fails returns a result with
// Outcome failed and a nil error.
func (m *Mesh) Run(ctx context.Context, e Experiment) (events.Drill, error) {
	d := events.Drill{DrillID: newID(), Name: e.Name, App: e.Target.App, Stage: e.Target.Stage, Fault: e.Fault.Recorded(),
		FaultDetail: e.Fault.Detail(), ExpectRollbackWithinMs: time.Duration(e.Expect.RollbackWithin).Milliseconds(),
		ExpectPages: e.Expect.WantPages(), ExpectLedger: e.Expect.WantLedger(), DowntimeMs: time.Duration(e.Fault.Downtime).Milliseconds()}
	if e.Fault.Kill != "" && m.Components == nil {
		return d, fmt.Errorf("drill %s: killing the %s needs the host's kill route", e.Name, e.Fault.Kill)
	}
	ro, err := m.canary(ctx, e.Target)
	if err != nil {
		return d, err
	}
	d.RolloutID, d.Environment = ro.ID, ro.Environment
	m.printf("drill %s: canary %s of %s at %d%% (step %d of %d)", e.Name, ro.ID, ro.App, ro.Weight, ro.Step+1, len(ro.Steps))

	w, err := m.watch(ctx, ro)
	if err != nil {
		return d, err
	}
	defer w.stop()

	var reasons []string
	within := time.Duration(e.Expect.RollbackWithin)
	d.StartedAt = time.Now().UTC()
	deadline := d.StartedAt.Add(within)
	// back waits for the killed component; false when it is not back. A
	// component on the rollback's path must be back before the rollback's
	// deadline; the notifier, which only pages, within the page wait
	// after its downtime.
	backBy := deadline
	if !e.Fault.stopsRollback() {
		backBy = d.StartedAt.Add(time.Duration(e.Fault.Downtime) + m.pageWait())
	}
	back := func() bool {
		at, err := m.Components.back(ctx, e.Fault.Kill, backBy)
		if err != nil {
			reasons = append(reasons, err.Error())
			return false
		}
		ms := at.Sub(d.StartedAt).Milliseconds()
		d.RestartedInMs = &ms
		m.printf("drill %s: the %s runs again after %d ms", e.Name, e.Fault.Kill, ms)
		return true
	}
	up := true
	if e.Fault.Kill != "" {
		if _, err := m.Components.Kill(ctx, e.Fault.Kill, time.Duration(e.Fault.Downtime)); err != nil {
			return d, fmt.Errorf("drill %s: kill the %s: %w", e.Name, e.Fault.Kill, err)
		}
		m.printf("drill %s: killed the %s for %s", e.Name, e.Fault.Kill, time.Duration(e.Fault.Downtime))
		if e.Fault.throughKilled() {
			up = back()
		}
	}
	if up {
		if err := m.inject(ctx, e, ro, d.DrillID); err != nil {
			return d, fmt.Errorf("drill %s: inject %s: %w", e.Name, e.Fault.Kind, err)
		}
		if e.Fault.Kind == FaultHTTPErrors || e.Fault.Kind == FaultLatency {
			defer func() {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				if _, err := m.Faults.ClearFault(cctx, ro.App); err != nil {
					m.log().Warn("clear the drill's fault", "app", ro.App, "err", err)
				}
			}()
		}
		m.printf("drill %s: injected %s: %s", e.Name, e.Fault.Kind, e.Fault.ownDetail())
		if e.Fault.Kill != "" && !e.Fault.throughKilled() {
			up = back()
		}
	}
	if up {
		judged, err := m.judge(ctx, e, &d, w, ro, deadline)
		if err != nil {
			return d, err
		}
		reasons = append(reasons, judged...)
	}
	d.Outcome, d.Reason = events.DrillPassed, ""
	if len(reasons) > 0 {
		d.Outcome, d.Reason = events.DrillFailed, strings.Join(reasons, "; ")
	}
	d.FinishedAt = time.Now().UTC()
	ev, err := events.NewDrillFinished(events.Meta{ID: "drill-" + d.DrillID, Source: Source, Time: d.FinishedAt,
		ChainID: ro.ChainID, CausedBy: d.RollbackID, App: d.App}, d)
	if err != nil {
		return d, err
	}
	if _, err := m.Bus.Publish(ctx, ev); err != nil {
		return d, fmt.Errorf("drill %s: record the result: %w", e.Name, err)
	}
	m.printf("%s", d.Text())
	return d, nil
}

// judge waits until deadline for the rollout to end, then checks the
// drill's expectations against what happened: its reasons to fail.
func (m *Mesh) judge(ctx context.Context, e Experiment, d *events.Drill, w *watcher, ro adminapi.Rollout, deadline time.Time) ([]string, error) {
	var reasons []string
	within := time.Duration(e.Expect.RollbackWithin)
	end := w.wait(ctx, deadline)
	if end.anomaly != nil {
		ms := end.anomaly.Time().Sub(d.StartedAt).Milliseconds()
		d.DetectedInMs, d.AnomalyID = &ms, end.anomaly.ID()
	}
	switch {
	case end.rollback != nil:
		ms := end.rollback.Time().Sub(d.StartedAt).Milliseconds()
		d.RolledBackInMs, d.RollbackID = &ms, end.rollback.ID()
		m.printf("drill %s: detected in %s, rolled back in %d ms", e.Name, msOrNever(d.DetectedInMs), ms)
		if ms > within.Milliseconds() {
			reasons = append(reasons, fmt.Sprintf("rolled back in %d ms, later than the expected %s", ms, within))
		}
	case end.release != nil:
		reasons = append(reasons, "the fault was not caught: the canary was released to 100%")
	case ctx.Err() != nil:
		return nil, ctx.Err()
	default:
		reasons = append(reasons, fmt.Sprintf("not rolled back within %s (detected: %s)", within, msOrNever(d.DetectedInMs)))
	}
	if end.rollback != nil {
		d.Pages = w.pages(ctx, d.ExpectPages, m.pageWait(), m.pageSettle())
		m.printf("drill %s: %d page(s)", e.Name, d.Pages)
		if d.Pages != d.ExpectPages {
			reasons = append(reasons, fmt.Sprintf("%d page(s), expected %d", d.Pages, d.ExpectPages))
		}
		if d.ExpectLedger {
			d.LedgerRecorded = m.inLedger(ctx, ro.ChainID, d.RollbackID, 20*time.Second)
			if !d.LedgerRecorded {
				reasons = append(reasons, "the ledger does not hold the rollback "+d.RollbackID)
			}
		}
	}
	return reasons, nil
}

// canary waits for a progressing rollout of the target with traffic on
// its canary.
func (m *Mesh) canary(ctx context.Context, t Target) (adminapi.Rollout, error) {
	deadline := time.Now().Add(time.Duration(t.Wait))
	for {
		list, err := m.Rollouts.List(ctx)
		if err != nil {
			return adminapi.Rollout{}, fmt.Errorf("list rollouts: %w", err)
		}
		for _, r := range list {
			if r.App == t.App && (t.Stage == "" || r.Environment == t.Stage) && r.Phase == adminapi.PhaseProgressing && r.Weight > 0 {
				return r, nil
			}
		}
		if time.Now().After(deadline) {
			return adminapi.Rollout{}, fmt.Errorf("no live canary of %s%s within %s", t.App, stageText(t.Stage), time.Duration(t.Wait))
		}
		select {
		case <-ctx.Done():
			return adminapi.Rollout{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// inject starts the fault.
func (m *Mesh) inject(ctx context.Context, e Experiment, ro adminapi.Rollout, drillID string) error {
	f := e.Fault
	switch f.Kind {
	case FaultHTTPErrors, FaultLatency:
		req := adminapi.Fault{ErrorRatio: f.Ratio, For: time.Duration(f.For).String()}
		if f.Latency != 0 {
			req.Latency = time.Duration(f.Latency).String()
		}
		_, err := m.Faults.InjectFault(ctx, ro.App, req)
		return err
	case FaultMemory:
		return m.post(ctx, f.Hook, nil, nil)
	case FaultSIEM:
		return m.siem(ctx, f, ro, drillID, time.Duration(e.Expect.RollbackWithin))
	}
	return fmt.Errorf("no fault kind %q", f.Kind)
}

// siem sends the watcher a SIEM alert about the canary's application, signed
// as the SIEM would. An alert that comes before the watcher has the canary
// live is recorded against nothing live (its anomaly id ends in ":none"):
// then a new alert is sent, within the drill's time, until one lands on the
// rollout.
func (m *Mesh) siem(ctx context.Context, f Fault, ro adminapi.Rollout, drillID string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for attempt := 1; ; attempt++ {
		body, err := json.Marshal(map[string]any{
			"id": fmt.Sprintf("chaos-%s-%d", drillID, attempt), "app": ro.App, "environment": ro.Environment, "severity": f.Severity,
			"title": "Chaos drill: injected SIEM alert", "occurredAt": time.Now().UTC(), "source": "rampart-chaos",
		})
		if err != nil {
			return err
		}
		mac := hmac.New(sha256.New, []byte(m.SIEMSecret))
		mac.Write(body)
		headers := map[string]string{"Content-Type": "application/json", "X-Rampart-Signature": "sha256=" + hex.EncodeToString(mac.Sum(nil))}
		var resp struct {
			Published  []string `json:"published"`
			Duplicates []string `json:"duplicates"`
			Ignored    []string `json:"ignored"`
		}
		if err := m.post(ctx, m.SIEMURL, body, headers, &resp); err != nil {
			return err
		}
		for _, id := range append(resp.Published, resp.Duplicates...) {
			if strings.HasSuffix(id, ":"+ro.ID) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the watcher did not take the alert for the live canary %s (anomalies %v, ignored %v)", ro.ID, resp.Published, resp.Ignored)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (m *Mesh) post(ctx context.Context, target string, body []byte, headers map[string]string, out ...any) error {
	code, raw, err := send(ctx, m.HTTP, http.MethodPost, target, body, headers)
	if err != nil {
		return err
	}
	if code >= 300 {
		if u, err := url.Parse(target); err == nil {
			target = u.Redacted()
		}
		return fmt.Errorf("POST %s: %d %s: %s", target, code, http.StatusText(code), raw)
	}
	if len(out) > 0 {
		return json.Unmarshal(raw, out[0])
	}
	return nil
}

// send makes one request with hc (default: a 30s timeout) and returns the
// answer's status and body (at most 1 MiB, trimmed).
func send(ctx context.Context, hc *http.Client, method, url string, body []byte, headers map[string]string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, bytes.TrimSpace(raw), err
}

// inLedger polls the ledger for the rollback in the release's chain.
func (m *Mesh) inLedger(ctx context.Context, chainID, eventID string, timeout time.Duration) bool {
	if chainID == "" || eventID == "" {
		return false
	}
	deadline := time.Now().Add(timeout)
	for {
		chain, err := m.Ledger.Chain(ctx, chainID)
		if err == nil {
			for _, en := range chain {
				if en.EventID == eventID {
					return true
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// watcher follows the bus for the drill's rollout: its anomaly, its end,
// its pages.
type watcher struct {
	rollout string
	cc      jetstream.ConsumeContext

	mu      sync.Mutex
	changed chan struct{}
	seen    outcome
	paged   int
}

// outcome is what happened to the canary.
type outcome struct {
	anomaly, rollback, release *cloudevents.Event
}

func (m *Mesh) watch(ctx context.Context, ro adminapi.Rollout) (*watcher, error) {
	w := &watcher{rollout: ro.ID, changed: make(chan struct{})}
	subj := func(kind string) string { return events.SubjectPrefix + "." + kind + "." + ro.App }
	from := time.Now()
	cons, err := m.Bus.JetStream().OrderedConsumer(ctx, bus.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj(events.KindAnomaly), subj(events.KindRollback), subj(events.KindRelease), subj(events.KindPage)},
		// From now: whatever the fault causes comes after.
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from,
	})
	if err != nil {
		return nil, fmt.Errorf("follow the bus: %w", err)
	}
	w.cc, err = cons.Consume(func(msg jetstream.Msg) {
		ev, err := events.FromMsg(msg.Headers(), msg.Data())
		if err != nil {
			return
		}
		w.see(ev)
	})
	if err != nil {
		return nil, fmt.Errorf("follow the bus: %w", err)
	}
	return w, nil
}

func (w *watcher) see(ev cloudevents.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch events.KindOf(ev.Type()) {
	case events.KindAnomaly:
		if a, err := events.AnomalyOf(ev); err == nil && a.RolloutID == w.rollout && w.seen.anomaly == nil {
			w.seen.anomaly = &ev
		}
	case events.KindRollback:
		if r, err := events.RollbackOf(ev); err == nil && r.RolloutID == w.rollout && w.seen.rollback == nil {
			w.seen.rollback = &ev
		}
	case events.KindRelease:
		if r, err := events.ReleaseOf(ev); err == nil && r.RolloutID == w.rollout {
			w.seen.release = &ev
		}
	case events.KindPage:
		if p, err := events.PageOf(ev); err == nil && p.DedupKey == w.rollout {
			w.paged++
		}
	default:
		return
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// wait returns once the rollout ended or the deadline passed.
func (w *watcher) wait(ctx context.Context, deadline time.Time) outcome {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		w.mu.Lock()
		o, ch := w.seen, w.changed
		w.mu.Unlock()
		if o.rollback != nil || o.release != nil {
			return o
		}
		select {
		case <-ch:
		case <-t.C:
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.seen
		case <-ctx.Done():
			return o
		}
	}
}

// pages counts the rollout's pages: it waits up to wait for want of them,
// then settle more for any extra.
func (w *watcher) pages(ctx context.Context, want int, wait, settle time.Duration) int {
	deadline := time.Now().Add(wait)
	for {
		w.mu.Lock()
		n, ch := w.paged, w.changed
		w.mu.Unlock()
		left := time.Until(deadline)
		if n >= want {
			left = settle
		}
		if left <= 0 {
			return n
		}
		t := time.NewTimer(left)
		select {
		case <-ch:
			t.Stop()
			if n >= want {
				continue // an extra page: count it, settle again
			}
		case <-t.C:
			if n >= want {
				return n
			}
		case <-ctx.Done():
			t.Stop()
			return n
		}
	}
}

func (w *watcher) stop() { w.cc.Stop() }

func (m *Mesh) pageWait() time.Duration {
	if m.PageWait > 0 {
		return m.PageWait
	}
	return 20 * time.Second
}

func (m *Mesh) pageSettle() time.Duration {
	if m.PageSettle > 0 {
		return m.PageSettle
	}
	return time.Second
}

func (m *Mesh) log() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

func (m *Mesh) printf(format string, args ...any) {
	if m.Progress != nil {
		fmt.Fprintf(m.Progress, format+"\n", args...)
	}
}

func msOrNever(p *int64) string {
	if p == nil {
		return "never"
	}
	return fmt.Sprintf("%d ms", *p)
}

func stageText(s string) string {
	if s == "" {
		return ""
	}
	return " in " + s
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ErrFailed is returned by RunFile when a drill failed.
var ErrFailed = errors.New("chaos drill failed")

// RunFile runs every experiment of f once, in order, and returns their
// results; the error wraps ErrFailed when any failed.
func (m *Mesh) RunFile(ctx context.Context, f *File) ([]events.Drill, error) {
	var out []events.Drill
	var failed []string
	for _, e := range f.Experiments {
		d, err := m.Run(ctx, e)
		if err != nil {
			return out, err
		}
		out = append(out, d)
		if d.Outcome == events.DrillFailed {
			failed = append(failed, e.Name)
		}
	}
	if len(failed) > 0 {
		return out, fmt.Errorf("%w: %s", ErrFailed, strings.Join(failed, ", "))
	}
	return out, nil
}
