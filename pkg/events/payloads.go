package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
)

// Commit is a change that landed (or a pull request that was opened).
type Commit struct {
	Repository  string `json:"repository"` // e.g. "github.com/acme/shop"
	RepoURL     string `json:"repoUrl,omitempty"`
	SHA         string `json:"sha"`
	Ref         string `json:"ref,omitempty"`
	Author      string `json:"author,omitempty"`
	Message     string `json:"message,omitempty"`
	PullRequest int    `json:"pullRequest,omitempty"` // non-zero: a PR was opened
}

// NewCommit builds a change.merged event, or change.created for a pull request.
func NewCommit(m Meta, c Commit) (cloudevents.Event, error) {
	if c.Repository == "" || c.SHA == "" {
		return cloudevents.Event{}, errors.New("commit: repository and sha are required")
	}
	repo := Ref{ID: c.Repository, Source: c.RepoURL}
	if c.PullRequest != 0 {
		content := map[string]any{"repository": repo}
		if c.Message != "" {
			content["description"] = c.Message
		}
		return newEvent(m, TypeChangeCreated, fmt.Sprintf("%s/pull/%d", c.Repository, c.PullRequest), content, c)
	}
	return newEvent(m, TypeChangeMerged, c.SHA, map[string]any{"repository": repo}, c)
}

// CommitOf reads a commit event.
func CommitOf(ev cloudevents.Event) (Commit, error) {
	var c Commit
	_, err := decodeCustom(ev, &c, TypeChangeMerged, TypeChangeCreated)
	return c, err
}

// Artifact is an image pushed to a registry.
type Artifact struct {
	Purl       string `json:"purl"` // pkg:oci/name@sha256:...?repository_url=...
	Registry   string `json:"registry"`
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	Tag        string `json:"tag,omitempty"`
	User       string `json:"user,omitempty"`
	SBOMURI    string `json:"sbomUri,omitempty"`
}

// NewArtifactPushed builds an artifact.published event whose subject id is the purl.
func NewArtifactPushed(m Meta, a Artifact) (cloudevents.Event, error) {
	if a.Purl == "" || a.Digest == "" {
		return cloudevents.Event{}, errors.New("artifact: purl and digest are required")
	}
	content := map[string]any{}
	if a.User != "" {
		content["user"] = a.User
	}
	if a.SBOMURI != "" {
		content["sbom"] = map[string]string{"uri": a.SBOMURI}
	}
	return newEvent(m, TypeArtifactPublished, a.Purl, content, a)
}

// ArtifactOf reads an artifact-pushed event.
func ArtifactOf(ev cloudevents.Event) (Artifact, error) {
	var a Artifact
	_, err := decodeCustom(ev, &a, TypeArtifactPublished)
	return a, err
}

// Scan outcomes.
const (
	OutcomePass    = "pass"
	OutcomeBlocked = "blocked"
	OutcomeError   = "error"
)

// Finding is one vulnerability, secret or misconfiguration found by a scan.
type Finding struct {
	ID               string `json:"id"`
	Package          string `json:"package,omitempty"`
	InstalledVersion string `json:"installedVersion,omitempty"`
	FixedVersion     string `json:"fixedVersion,omitempty"`
	Severity         string `json:"severity"`
	Title            string `json:"title,omitempty"`
}

// Scan is a finished scan and the gate's verdict on it.
type Scan struct {
	Target        string         `json:"target"`     // artifact purl or commit sha
	TargetKind    string         `json:"targetKind"` // "image" or "source"
	Environment   string         `json:"environment"`
	Outcome       string         `json:"outcome"` // pass, blocked, error
	Reason        string         `json:"reason,omitempty"`
	Counts        map[string]int `json:"counts,omitempty"` // by severity
	Findings      []Finding      `json:"findings,omitempty"`
	SBOMRef       string         `json:"sbomRef,omitempty"`
	DBVersion     string         `json:"dbVersion,omitempty"`
	PolicyVersion string         `json:"policyVersion,omitempty"`
	// Waivers are the waivers the gate applied: findings that would have
	// blocked, accepted until the waiver expires.
	Waivers []Waiver `json:"waivers,omitempty"`
	// Attestations are DSSE envelopes (JSON) of in-toto statements about an
	// image verdict's target, signed with the same key: the vulnerability
	// scan (cosign vuln/v1, every finding) and the gate decision (SLSA
	// verification summary); see pkg/attest and decision 0024.
	Attestations []json.RawMessage `json:"attestations,omitempty"`
	// Signature is the scanner's Ed25519 signature over the verdict; see the
	// scanner for what it covers.
	Signature string `json:"signature,omitempty"`
}

// Waiver is a waiver a verdict applied: one finding in one package accepted
// by its owner until it expires.
type Waiver struct {
	ID      string    `json:"id"`
	Package string    `json:"package,omitempty"`
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
	Reason  string    `json:"reason,omitempty"`
}

// cdOutcome maps a Rampart outcome to the CDEvents testsuiterun outcome.
var cdOutcome = map[string]string{OutcomePass: "success", OutcomeBlocked: "failure", OutcomeError: "error"}

// NewScanFinished builds a testsuiterun.finished event carrying a verdict.
func NewScanFinished(m Meta, s Scan) (cloudevents.Event, error) {
	outcome, ok := cdOutcome[s.Outcome]
	if !ok {
		return cloudevents.Event{}, fmt.Errorf("scan: outcome %q is not pass, blocked or error", s.Outcome)
	}
	if s.Target == "" || s.Environment == "" {
		return cloudevents.Event{}, errors.New("scan: target and environment are required")
	}
	content := map[string]any{
		"environment": Ref{ID: s.Environment},
		"testSuite":   map[string]string{"id": "rampart-" + s.TargetKind + "-scan", "name": "Rampart " + s.TargetKind + " scan"},
		"outcome":     outcome,
	}
	if sev := highestSeverity(s.Counts); sev != "" {
		content["severity"] = sev
	}
	if s.Reason != "" {
		content["reason"] = s.Reason
	}
	return newEvent(m, TypeTestSuiteFinished, s.Target, content, s)
}

// ScanOf reads a scan-finished event.
func ScanOf(ev cloudevents.Event) (Scan, error) {
	var s Scan
	_, err := decodeCustom(ev, &s, TypeTestSuiteFinished)
	return s, err
}

// highestSeverity returns the CDEvents severity of the worst non-zero count;
// counts are keyed by severity in any case (Trivy uses upper case).
func highestSeverity(counts map[string]int) string {
	worst := -1
	order := []string{"low", "medium", "high", "critical"}
	for k, n := range counts {
		if i := slices.Index(order, strings.ToLower(k)); n > 0 && i > worst {
			worst = i
		}
	}
	if worst < 0 {
		return ""
	}
	return order[worst]
}

// TestOutput is a report or SBOM a scan produced.
type TestOutput struct {
	Target     string `json:"target"`
	OutputType string `json:"outputType"` // report, log, other
	Format     string `json:"format"`     // media type, e.g. application/vnd.cyclonedx+json
	URI        string `json:"uri,omitempty"`
	ScanID     string `json:"scanId,omitempty"`
}

// NewTestOutput builds a testoutput.published event.
func NewTestOutput(m Meta, o TestOutput) (cloudevents.Event, error) {
	if o.OutputType == "" || o.Format == "" {
		return cloudevents.Event{}, errors.New("test output: outputType and format are required")
	}
	content := map[string]any{"outputType": o.OutputType, "format": o.Format}
	if o.URI != "" {
		content["uri"] = o.URI
	}
	if o.ScanID != "" {
		content["testCaseRun"] = map[string]string{"id": o.ScanID}
	}
	return newEvent(m, TypeTestOutputPublished, o.Target, content, o)
}

// TestOutputOf reads a testoutput.published event.
func TestOutputOf(ev cloudevents.Event) (TestOutput, error) {
	var o TestOutput
	_, err := decodeCustom(ev, &o, TypeTestOutputPublished)
	return o, err
}

// Promotion is the deployer's decision to roll an artifact out.
type Promotion struct {
	RolloutID   string `json:"rolloutId"`
	App         string `json:"app"`
	Environment string `json:"environment"`
	ArtifactID  string `json:"artifactId"`         // purl of the candidate
	Previous    string `json:"previous,omitempty"` // purl of the stable version
	Steps       []int  `json:"steps"`              // traffic weights in percent
	ScanID      string `json:"scanId,omitempty"`
}

// NewPromoted builds a rampart-release.promoted event.
func NewPromoted(m Meta, p Promotion) (cloudevents.Event, error) {
	if p.RolloutID == "" || p.App == "" || p.Environment == "" || p.ArtifactID == "" || len(p.Steps) == 0 {
		return cloudevents.Event{}, errors.New("promotion: rolloutId, app, environment, artifactId and steps are required")
	}
	content := map[string]any{"environment": Ref{ID: p.Environment}, "artifactId": p.ArtifactID, "steps": p.Steps}
	if p.Previous != "" {
		content["previous"] = p.Previous
	}
	return newEvent(m, TypeReleasePromoted, p.RolloutID, content, p)
}

// PromotionOf reads a promoted event.
func PromotionOf(ev cloudevents.Event) (Promotion, error) {
	var p Promotion
	_, err := decodeCustom(ev, &p, TypeReleasePromoted)
	return p, err
}

// CanaryStep is one traffic shift of a rollout.
type CanaryStep struct {
	RolloutID   string `json:"rolloutId"`
	App         string `json:"app"`
	Environment string `json:"environment"`
	ArtifactID  string `json:"artifactId"`
	Stable      string `json:"stable,omitempty"`
	Step        int    `json:"step"`   // 0-based index into the rollout's steps
	Weight      int    `json:"weight"` // canary traffic in percent
}

// NewCanaryStepped builds a rampart-canary.stepped event.
func NewCanaryStepped(m Meta, s CanaryStep) (cloudevents.Event, error) {
	if s.RolloutID == "" || s.App == "" || s.Environment == "" || s.ArtifactID == "" {
		return cloudevents.Event{}, errors.New("canary step: rolloutId, app, environment and artifactId are required")
	}
	if s.Weight < 0 || s.Weight > 100 || s.Step < 0 {
		return cloudevents.Event{}, fmt.Errorf("canary step: weight %d must be within 0..100 and step %d not negative", s.Weight, s.Step)
	}
	content := map[string]any{"environment": Ref{ID: s.Environment}, "artifactId": s.ArtifactID, "step": s.Step, "weight": s.Weight}
	return newEvent(m, TypeCanaryStepped, s.RolloutID, content, s)
}

// CanaryStepOf reads a canary-step event.
func CanaryStepOf(ev cloudevents.Event) (CanaryStep, error) {
	var s CanaryStep
	_, err := decodeCustom(ev, &s, TypeCanaryStepped)
	return s, err
}

// Analysis is what the watcher measured while one canary step was live: for
// each metric rule, the worst reading and how it was judged. It is the
// evidence a step passed on, recorded so that a what-if can judge the step
// again under other thresholds (decision 0024).
type Analysis struct {
	RolloutID   string    `json:"rolloutId"`
	App         string    `json:"app"`
	Environment string    `json:"environment"`
	ArtifactID  string    `json:"artifactId"`
	Step        int       `json:"step"`
	Weight      int       `json:"weight"`
	Provider    string    `json:"provider"`
	Readings    int       `json:"readings"` // metric reads during the step
	Metrics     []Metric  `json:"metrics"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
}

// Metric is one rule's worst reading during a step.
type Metric struct {
	Rule      string  `json:"rule"` // http-5xx-ratio, memory-ratio
	Observed  float64 `json:"observed"`
	Threshold float64 `json:"threshold"`
	Result    string  `json:"result"`   // pass, breach, nodata (never read)
	Readings  int     `json:"readings"` // readings with data
}

// NewCanaryAnalyzed builds a rampart-canary.analyzed event.
func NewCanaryAnalyzed(m Meta, a Analysis) (cloudevents.Event, error) {
	if a.RolloutID == "" || a.App == "" || a.Environment == "" || a.ArtifactID == "" {
		return cloudevents.Event{}, errors.New("analysis: rolloutId, app, environment and artifactId are required")
	}
	if a.Weight < 0 || a.Weight > 100 || a.Step < 0 {
		return cloudevents.Event{}, fmt.Errorf("analysis: weight %d must be within 0..100 and step %d not negative", a.Weight, a.Step)
	}
	content := map[string]any{"environment": Ref{ID: a.Environment}, "artifactId": a.ArtifactID, "step": a.Step, "weight": a.Weight}
	return newEvent(m, TypeCanaryAnalyzed, a.RolloutID, content, a)
}

// AnalysisOf reads a canary-analyzed event.
func AnalysisOf(ev cloudevents.Event) (Analysis, error) {
	var a Analysis
	_, err := decodeCustom(ev, &a, TypeCanaryAnalyzed)
	return a, err
}

// Release is a rollout that reached 100%.
type Release struct {
	RolloutID   string `json:"rolloutId"`
	App         string `json:"app"`
	Environment string `json:"environment"`
	ArtifactID  string `json:"artifactId"`
	Previous    string `json:"previous,omitempty"` // empty: first deployment
}

// NewReleaseCompleted builds service.deployed (first release of the app in the
// environment) or service.upgraded.
func NewReleaseCompleted(m Meta, r Release) (cloudevents.Event, error) {
	if r.RolloutID == "" || r.App == "" || r.Environment == "" || r.ArtifactID == "" {
		return cloudevents.Event{}, errors.New("release: rolloutId, app, environment and artifactId are required")
	}
	typ := TypeServiceUpgraded
	if r.Previous == "" {
		typ = TypeServiceDeployed
	}
	content := map[string]any{"environment": Ref{ID: r.Environment}, "artifactId": r.ArtifactID}
	return newEvent(m, typ, r.App, content, r)
}

// ReleaseOf reads a release-completed event.
func ReleaseOf(ev cloudevents.Event) (Release, error) {
	var r Release
	_, err := decodeCustom(ev, &r, TypeServiceDeployed, TypeServiceUpgraded)
	return r, err
}

// Anomaly is something wrong with a live release: a metric over its threshold,
// a firing alert, a SIEM alert or a new CVE in a live digest.
type Anomaly struct {
	// Target is what the anomaly is against: TargetCanary (a live canary: the
	// deployer aborts it), TargetRelease (the live stable release: the
	// deployer rolls back to the previous clean one or pages), or TargetNone
	// (nothing live matched: recorded, not acted on), or TargetLedger (the
	// ledger's own record was tampered with: nothing to roll back, the
	// operator is told).
	Target      string    `json:"target"`
	App         string    `json:"app"`
	Environment string    `json:"environment"`
	ArtifactID  string    `json:"artifactId,omitempty"`
	RolloutID   string    `json:"rolloutId,omitempty"`
	Rule        string    `json:"rule"`   // e.g. "http-5xx-ratio", "memory-ratio", "siem", "alertmanager", "cve"
	Origin      string    `json:"origin"` // prometheus, scrape, alertmanager, siem, scanner
	Description string    `json:"description"`
	Observed    *float64  `json:"observed,omitempty"`
	Threshold   *float64  `json:"threshold,omitempty"`
	DetectedAt  time.Time `json:"detectedAt"`
}

// Anomaly targets.
const (
	TargetCanary  = "canary"
	TargetRelease = "release"
	TargetNone    = "none"
	// TargetLedger: an anomaly in the ledger itself (a message in its
	// stream it did not write, a new log accepted by the operator). App
	// is "ledger".
	TargetLedger = "ledger"
)

// NewAnomaly builds an incident.detected event.
func NewAnomaly(m Meta, a Anomaly) (cloudevents.Event, error) {
	if a.App == "" || a.Environment == "" || a.Rule == "" {
		return cloudevents.Event{}, errors.New("anomaly: app, environment and rule are required")
	}
	if a.Target != TargetCanary && a.Target != TargetRelease && a.Target != TargetNone && a.Target != TargetLedger {
		return cloudevents.Event{}, fmt.Errorf("anomaly: target %q is not canary, release, none or ledger", a.Target)
	}
	content := map[string]any{"environment": Ref{ID: a.Environment}, "service": Ref{ID: a.App}}
	if a.Description != "" {
		content["description"] = a.Description
	}
	if a.ArtifactID != "" {
		content["artifactId"] = a.ArtifactID
	}
	return newEvent(m, TypeIncidentDetected, a.App+"/"+a.Rule, content, a)
}

// AnomalyOf reads an anomaly event.
func AnomalyOf(ev cloudevents.Event) (Anomaly, error) {
	var a Anomaly
	_, err := decodeCustom(ev, &a, TypeIncidentDetected)
	return a, err
}

// Rollback is a canary aborted and traffic returned to the stable version.
type Rollback struct {
	RolloutID      string  `json:"rolloutId"`
	App            string  `json:"app"`
	Environment    string  `json:"environment"`
	ArtifactID     string  `json:"artifactId"` // the version traffic returned to
	From           string  `json:"from"`       // the version rolled back
	TrafficAtAbort int     `json:"trafficAtAbort"`
	Trigger        Anomaly `json:"trigger"`
	AnomalyID      string  `json:"anomalyId,omitempty"`
}

// NewRollback builds a service.rolledback event.
func NewRollback(m Meta, r Rollback) (cloudevents.Event, error) {
	if r.RolloutID == "" || r.App == "" || r.Environment == "" || r.ArtifactID == "" {
		return cloudevents.Event{}, errors.New("rollback: rolloutId, app, environment and artifactId are required")
	}
	content := map[string]any{"environment": Ref{ID: r.Environment}, "artifactId": r.ArtifactID}
	return newEvent(m, TypeServiceRolledBack, r.App, content, r)
}

// RollbackOf reads a rollback event.
func RollbackOf(ev cloudevents.Event) (Rollback, error) {
	var r Rollback
	_, err := decodeCustom(ev, &r, TypeServiceRolledBack)
	return r, err
}

// Page is on-call paged about an incident.
type Page struct {
	App         string   `json:"app"`
	Environment string   `json:"environment"`
	TicketURI   string   `json:"ticketUri"` // the PagerDuty incident
	DedupKey    string   `json:"dedupKey"`
	Description string   `json:"description"`
	RolloutID   string   `json:"rolloutId,omitempty"`
	ArtifactID  string   `json:"artifactId,omitempty"`
	Channels    []string `json:"channels,omitempty"`
}

// NewPage builds an incident.reported event.
func NewPage(m Meta, p Page) (cloudevents.Event, error) {
	if p.App == "" || p.Environment == "" || p.TicketURI == "" || p.DedupKey == "" {
		return cloudevents.Event{}, errors.New("page: app, environment, ticketUri and dedupKey are required")
	}
	content := map[string]any{"environment": Ref{ID: p.Environment}, "service": Ref{ID: p.App}, "ticketURI": p.TicketURI}
	if p.Description != "" {
		content["description"] = p.Description
	}
	if p.ArtifactID != "" {
		content["artifactId"] = p.ArtifactID
	}
	return newEvent(m, TypeIncidentReported, p.DedupKey, content, p)
}

// PageOf reads a page event.
func PageOf(ev cloudevents.Event) (Page, error) {
	var p Page
	_, err := decodeCustom(ev, &p, TypeIncidentReported)
	return p, err
}

// StageDeployment is a candidate deployed to a pre-production stage of its
// application (staging), where it is checked before it goes further. The
// CDEvent is environment.modified: the stage's environment now runs
// ArtifactID at URL.
type StageDeployment struct {
	App         string `json:"app"`
	Stage       string `json:"stage"`       // the stage's name in rampart.yaml, e.g. "staging"
	Environment string `json:"environment"` // the stage's environment id
	ArtifactID  string `json:"artifactId"`  // purl of the candidate
	URL         string `json:"url"`         // where the stage serves it
	// VerdictID is the passing verdict that admitted the candidate: the
	// image scan for the first stage, the previous stage's verdict after.
	VerdictID string `json:"verdictId"`
	// Failed says why the stage never served the candidate (its workload's
	// progress deadline passed); empty for a candidate the stage serves. A
	// failed deployment is not checked, and the candidate goes no further.
	Failed string `json:"failed,omitempty"`
}

// NewStageDeployed builds an environment.modified event for a stage
// deployment.
func NewStageDeployed(m Meta, s StageDeployment) (cloudevents.Event, error) {
	if s.App == "" || s.Stage == "" || s.Environment == "" || s.ArtifactID == "" || s.URL == "" || s.VerdictID == "" {
		return cloudevents.Event{}, errors.New("stage deployment: app, stage, environment, artifactId, url and verdictId are required")
	}
	return newEvent(m, TypeEnvironmentModified, s.Environment, map[string]any{"name": s.Stage, "uri": s.URL}, s)
}

// StageDeploymentOf reads a stage-deployment event.
func StageDeploymentOf(ev cloudevents.Event) (StageDeployment, error) {
	var s StageDeployment
	_, err := decodeCustom(ev, &s, TypeEnvironmentModified)
	return s, err
}
