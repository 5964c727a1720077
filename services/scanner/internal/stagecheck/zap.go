package stagecheck

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/webhook"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/sarif"
	"github.com/rampartci/rampart/services/scanner/internal/commitscan/verdict"
)

// ZAPPath is where ZAP reports are posted.
const ZAPPath = "/hooks/zap"

// MaxZAPReport bounds a report's size.
const MaxZAPReport = 32 << 20

// Routes mounts the ZAP hook.
func (c *Checker) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+ZAPPath, c.serveZAP)
}

// ZAPAnswer is the JSON body of a 202 from the ZAP hook.
type ZAPAnswer struct {
	ID        string            `json:"id"` // the verdict event's id
	Outcome   gate.Outcome      `json:"outcome"`
	Blocking  []finding.Finding `json:"blocking,omitempty"`
	Duplicate bool              `json:"duplicate,omitempty"`
}

// errReport is wrapped by every error about the report's content (400).
var errReport = errors.New("invalid ZAP report")

// serveZAP takes a ZAP report, its traditional JSON or SARIF, about the
// candidate running in a stage:
//
//	POST /hooks/zap?app=<app>&stage=<stage>&artifact=<purl>
//	Authorization: Bearer <token>
//
// and publishes a signed verdict of target kind "dast" on its findings,
// judged by the gate and its waivers. A blocking one stops the candidate:
// the deployer halts its rollout if it has left the stage already. A
// passing one promotes nothing; that is the stage's own verdict's job.
// Answers: 202 with a ZAPAnswer; 401; 400 with the reason (unknown app or
// stage, an artifact not of the app, a malformed report); 413; 503 when no
// token is configured or publishing failed. Nothing is published from a
// failed request.
func (c *Checker) serveZAP(w http.ResponseWriter, r *http.Request) {
	if c.opts.ZAPToken == "" {
		http.Error(w, "ZAP hook is not configured", http.StatusServiceUnavailable)
		return
	}
	if err := (webhook.Auth{Bearer: c.opts.ZAPToken}).Verify(r.Header); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rampart"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	body, err := webhook.ReadBody(r, MaxZAPReport)
	switch {
	case errors.Is(err, webhook.ErrTooLarge):
		http.Error(w, fmt.Sprintf("body larger than %d bytes", MaxZAPReport), http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	appName, stageName, artifact := q.Get("app"), q.Get("stage"), q.Get("artifact")
	if err := events.CheckName("app", appName); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	app, ok := c.opts.Policy.Current().App(appName)
	if !ok {
		http.Error(w, fmt.Sprintf("no application %q in the policy", appName), http.StatusBadRequest)
		return
	}
	stage, ok := app.Stage(stageName)
	if !ok {
		http.Error(w, fmt.Sprintf("application %s has no pre-production stage %q", appName, stageName), http.StatusBadRequest)
		return
	}
	oci, err := events.ParseOCI(artifact)
	if err != nil || oci.RepositoryURL != app.Image {
		http.Error(w, fmt.Sprintf("artifact %q is not an image of %s (%s)", artifact, appName, app.Image), http.StatusBadRequest)
		return
	}
	fs, err := ZAPFindings(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	dec := c.opts.Gate.Evaluate(fs, c.opts.Now())
	v := events.Scan{Target: artifact, TargetKind: TargetDAST, Environment: stage.Environment, Outcome: string(dec.Outcome),
		Reason: verdict.Reason(append([]string{"ZAP report on " + stage.Name}, dec.Reasons...)), Counts: verdict.Counts(finding.Count(fs)),
		Findings: verdict.Top(fs, c.opts.TopFindings), PolicyVersion: dec.PolicyVersion}
	sum := sha256.Sum256(append([]byte(appName+"\x00"+stageName+"\x00"+artifact+"\x00"), body...))
	meta := events.Meta{ID: "zap-verdict-" + hex.EncodeToString(sum[:12]), Source: c.opts.Source, Time: c.opts.Now(), App: appName}
	ev, err := events.SignScan(meta, v, c.opts.Key)
	if err != nil {
		c.log.Error("sign ZAP verdict", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	ack, err := c.opts.Publisher.Publish(r.Context(), ev)
	switch {
	case errors.Is(err, bus.ErrTooLarge):
		http.Error(w, "the verdict is larger than the event bus accepts: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		c.log.Error("publish ZAP verdict", "app", appName, "err", err)
		http.Error(w, "could not publish the verdict; retry", http.StatusServiceUnavailable)
		return
	}
	c.log.Info("ZAP verdict", "app", appName, "stage", stageName, "artifact", artifact, "outcome", dec.Outcome, "findings", len(fs))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(ZAPAnswer{ID: ev.ID(), Outcome: dec.Outcome, Blocking: dec.Blocking, Duplicate: ack != nil && ack.Duplicate})
}

// zapReport is the part of ZAP's traditional JSON report read here.
type zapReport struct {
	Program string `json:"@programName"`
	Site    *[]struct {
		Name   string `json:"@name"`
		Alerts []struct {
			PluginID   string `json:"pluginid"`
			Name       string `json:"name"`
			Alert      string `json:"alert"`
			RiskCode   string `json:"riskcode"`
			Confidence string `json:"confidence"`
			CWE        string `json:"cweid"`
			Instances  []struct {
				URI    string `json:"uri"`
				Method string `json:"method"`
				Param  string `json:"param"`
			} `json:"instances"`
		} `json:"alerts"`
	} `json:"site"`
}

// zapRisk maps ZAP's riskcode to a severity; 0 (informational) is no finding.
var zapRisk = map[string]finding.Severity{"1": finding.Low, "2": finding.Medium, "3": finding.High}

// ZAPFindings reads a ZAP report: SARIF (ZAP's sarif-json report) through
// the SARIF reader, or ZAP's traditional JSON report. Informational alerts
// and alerts ZAP marks false positives (confidence 0) are not findings.
func ZAPFindings(body []byte) ([]finding.Finding, error) {
	var head map[string]json.RawMessage
	if err := json.Unmarshal(body, &head); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object: %v", errReport, err)
	}
	if _, ok := head["runs"]; ok {
		log, err := sarif.ParseBytes(body)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errReport, err)
		}
		return log.Findings(), nil
	}
	if _, ok := head["site"]; !ok {
		return nil, fmt.Errorf("%w: neither SARIF (runs) nor ZAP's JSON report (site)", errReport)
	}
	var rep zapReport
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("%w: %v", errReport, err)
	}
	var out []finding.Finding
	for i, site := range *rep.Site {
		for j, a := range site.Alerts {
			at := fmt.Sprintf("site[%d].alerts[%d]", i, j)
			if a.PluginID == "" {
				return nil, fmt.Errorf("%w: %s: pluginid is required", errReport, at)
			}
			if _, err := strconv.Atoi(a.RiskCode); err != nil || len(a.RiskCode) != 1 || a.RiskCode > "3" {
				return nil, fmt.Errorf("%w: %s: riskcode %q is not 0 to 3", errReport, at, a.RiskCode)
			}
			sev, ok := zapRisk[a.RiskCode]
			if !ok || a.Confidence == "0" {
				continue
			}
			name := strings.TrimSpace(cmp.Or(a.Name, a.Alert, "ZAP alert "+a.PluginID))
			places := map[string]bool{}
			for _, in := range a.Instances {
				where := in.URI
				if u, err := url.Parse(in.URI); err == nil && u.Path != "" {
					where = u.Path
				}
				places[strings.TrimSpace(in.Method+" "+where)] = true
			}
			if len(places) == 0 {
				places[site.Name] = true
			}
			for p := range places {
				out = append(out, finding.Finding{ID: "zap-" + a.PluginID, Package: p, Target: p, Severity: sev,
					Title: "ZAP: " + name + cweSuffix(a.CWE)})
			}
		}
	}
	finding.Sort(out)
	return out, nil
}

func cweSuffix(id string) string {
	if id == "" || id == "-1" || id == "0" {
		return ""
	}
	return " (CWE-" + id + ")"
}
