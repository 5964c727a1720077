// Package compliance builds change-control reports from the ledger alone:
// for each change in a period (a release chain: commit → source scan →
// image scan → promotion → canary steps → release or rollback → page) what
// triggered it, the evidence at each gate, the rollback and its trigger and
// the page, each event with its ledger index; a period summary mapped to
// SOC 2 and ISO/IEC 27001:2022 controls; and the exceptions.
//
// Every statement is derived from ledger entries the report carries, each
// with its signature and an RFC 6962 inclusion proof against a checkpoint
// signed by the ledger key (decision 0025). Verify checks a report offline:
// the checkpoint signature, each entry's signature and proof, and that the
// report is exactly what Build derives from those entries, naming the first
// thing that differs.
package compliance

import (
	"time"

	"github.com/rampartci/rampart/pkg/events"

	"golang.org/x/mod/sumdb/tlog"
)

// Format names the JSON document's version.
const Format = "rampart.dev/compliance-report/v1"

// Report is a compliance report: the JSON document for tools and the model
// the HTML, Markdown and CSV are rendered from.
type Report struct {
	Format      string    `json:"format"`
	GeneratedAt time.Time `json:"generatedAt"` // when it was built; not evidence
	Period      Period    `json:"period"`
	Filter      Filter    `json:"filter"`
	Ledger      Ledger    `json:"ledger"`
	Coverage    Coverage  `json:"coverage"`
	Summary     Summary   `json:"summary"`
	Controls    []Control `json:"controls"`
	// Exceptions are what an auditor asks about: waivers, manual actions,
	// failed or unjudged steps, gaps in the ledger.
	Exceptions []Exception `json:"exceptions"`
	Changes    []Change    `json:"changes"`
	// Notes say what the ledger does not record, so the report cannot show.
	Notes []string `json:"notes"`
	// Entries are the ledger entries every statement above is derived from,
	// each with its proof; Verify checks them.
	Entries []ProvenEntry `json:"entries"`
}

// Period is the half-open interval [From, To) of the entries' recordedAt.
type Period struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Filter restricts the report to applications and environments; empty
// means all.
type Filter struct {
	Apps         []string `json:"apps,omitempty"`
	Environments []string `json:"environments,omitempty"`
}

// Ledger identifies the log and the signed checkpoint the proofs lead to.
type Ledger struct {
	URL string `json:"url,omitempty"` // where it was read; not evidence
	// Key is the verifier key the report was built with (note format).
	Key string `json:"key"`
	// Checkpoint is the signed checkpoint (note text and signature).
	Checkpoint string    `json:"checkpoint"`
	Size       int64     `json:"size"`
	Root       tlog.Hash `json:"root"`
}

// Coverage says which entries the period holds and whether the report
// carries every one of them.
type Coverage struct {
	// First and Last are the ledger indexes of the period's first and last
	// entries; both -1 when the period holds none.
	First int64 `json:"first"`
	Last  int64 `json:"last"`
	// Complete: every entry from First to Last is in the report, and the
	// entries just outside the period (or the log's ends) prove its bounds.
	Complete bool   `json:"complete"`
	Note     string `json:"note"`
}

// Summary counts the period's changes.
type Summary struct {
	Changes           int `json:"changes"`
	Released          int `json:"released"`
	RolledBack        int `json:"rolledBack"`
	BlockedAtSource   int `json:"blockedAtSource"`
	BlockedAtImage    int `json:"blockedAtImage"`
	InProgress        int `json:"inProgress"`
	Scans             int `json:"scans"`
	Anomalies         int `json:"anomalies"`
	Pages             int `json:"pages"`
	Exceptions        int `json:"exceptions"`
	EntriesInReport   int `json:"entriesInReport"`
	PolicyVersions    int `json:"policyVersions"`
	DatabaseVersions  int `json:"databaseVersions"`
	PromotionsNoCheck int `json:"promotionsWithoutPassingScan"`
}

// Control is one control an auditor asks about, with what the ledger shows.
type Control struct {
	Framework string `json:"framework"` // "SOC 2" or "ISO/IEC 27001:2022"
	ID        string `json:"id"`        // "CC8.1", "A.8.32"
	Title     string `json:"title"`
	// Status: "evidenced", "evidenced with exceptions" or "no activity".
	Status    string     `json:"status"`
	Statement string     `json:"statement"`
	Evidence  []Evidence `json:"evidence"`
	// Exceptions are indexes into Report.Exceptions.
	Exceptions []int `json:"exceptions,omitempty"`
}

// Evidence is one fact behind a control, pointing at ledger entries.
type Evidence struct {
	Text    string  `json:"text"`
	Change  string  `json:"change,omitempty"` // the change's chain id
	Indexes []int64 `json:"indexes"`
}

// Exception kinds.
const (
	ExceptionWaiver   = "waiver"
	ExceptionManual   = "manual action"
	ExceptionFailed   = "failed step"
	ExceptionUnjudged = "unjudged step"
	ExceptionGap      = "ledger gap"
	ExceptionUnacted  = "anomaly not acted on"
)

// Exception is something outside the normal path, listed rather than hidden.
type Exception struct {
	Kind    string  `json:"kind"`
	Text    string  `json:"text"`
	Change  string  `json:"change,omitempty"`
	Indexes []int64 `json:"indexes"`
}

// Change outcomes.
const (
	OutcomeReleased        = "released"
	OutcomeRolledBack      = "rolled back"
	OutcomeBlockedAtSource = "blocked at source scan"
	OutcomeBlockedAtImage  = "blocked at image scan"
	OutcomeScanError       = "scan error"
	OutcomeNotServed       = "never served by a stage"
	OutcomeInProgress      = "in progress"
	OutcomePassed          = "passed"
)

// Change is one release chain.
type Change struct {
	Chain       string `json:"chain"`
	App         string `json:"app,omitempty"`
	Environment string `json:"environment,omitempty"`
	// Kind is "commit" (a source change) or "image" (a pushed artifact).
	Kind     string    `json:"kind"`
	Subject  string    `json:"subject"`
	Version  string    `json:"version,omitempty"` // the image tag
	Outcome  string    `json:"outcome"`
	Trigger  Trigger   `json:"trigger"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Gates    []Gate    `json:"gates"`
	Rollout  *Rollout  `json:"rollout,omitempty"`
	Rollback *Rollback `json:"rollback,omitempty"`
	Page     *Page     `json:"page,omitempty"`
	// Interventions are the operators' actions on the change's rollout.
	Interventions []Intervention `json:"interventions,omitempty"`
	// NotServed is a stage that never served the change's candidate (its
	// deployment failed): the candidate was not checked there and went no
	// further.
	NotServed *NotServed `json:"notServed,omitempty"`
	Events    []Event    `json:"events"`
}

// NotServed is a failed stage deployment.
type NotServed struct {
	Index  int64     `json:"index"`
	At     time.Time `json:"at"`
	Stage  string    `json:"stage"`
	Reason string    `json:"reason"`
}

// Intervention is an operator's action on a rollout, as the deployer
// applied it.
type Intervention struct {
	Index  int64     `json:"index"`
	At     time.Time `json:"at"`
	Action string    `json:"action"` // pause, resume, promote or abort
	// Who is the role and the fingerprint of the credential that asked
	// ("operator sha256:…"); Via is "api" or "console".
	Who         string `json:"who"`
	Via         string `json:"via"`
	Reason      string `json:"reason,omitempty"`
	PhaseBefore string `json:"phaseBefore"`
	PhaseAfter  string `json:"phaseAfter"`
}

// Trigger is what started a change.
type Trigger struct {
	Index int64  `json:"index"`
	Text  string `json:"text"`
	// Who is the author of a commit or the user that pushed an image, as
	// the event recorded it; empty when it did not.
	Who string `json:"who,omitempty"`
}

// Gate is a scan verdict a change had to pass.
type Gate struct {
	Index         int64            `json:"index"`
	At            time.Time        `json:"at"`
	Kind          string           `json:"kind"` // "source" or "image"
	Outcome       string           `json:"outcome"`
	Reason        string           `json:"reason,omitempty"`
	Counts        map[string]int   `json:"counts"`
	DBVersion     string           `json:"dbVersion,omitempty"`
	PolicyVersion string           `json:"policyVersion,omitempty"`
	Signed        bool             `json:"signed"`
	Findings      []events.Finding `json:"findings,omitempty"`
	// Waivers are the waivers the gate applied, with owner and expiry.
	Waivers []events.Waiver `json:"waivers,omitempty"`
	// Waived is how many findings waivers accepted: the waivers recorded,
	// or, for a verdict that does not name them, what its reason states.
	Waived int `json:"waived,omitempty"`
}

// Rollout is the deployer's promotion and its canary steps.
type Rollout struct {
	ID            string    `json:"id"`
	PromotedIndex int64     `json:"promotedIndex"`
	PromotedAt    time.Time `json:"promotedAt"`
	Previous      string    `json:"previous,omitempty"`
	Steps         []int     `json:"steps"`
	// ScanIndex is the passing verdict the promotion acted on; -1 when the
	// chain holds none.
	ScanIndex   int64  `json:"scanIndex"`
	CanarySteps []Step `json:"canarySteps"`
	// ReleaseIndex is the release-completed entry, -1 when none.
	ReleaseIndex int64 `json:"releaseIndex"`
}

// Step is one canary traffic shift and what let it pass.
type Step struct {
	Index  int64     `json:"index"`
	At     time.Time `json:"at"`
	Weight int       `json:"weight"`
	// Held is how long the step held before the next event of the
	// rollout; Analysis says why it passed or did not.
	Held     string `json:"held"`
	Passed   bool   `json:"passed"`
	Analysis string `json:"analysis"`
}

// Rollback is a canary aborted, with what triggered it.
type Rollback struct {
	Index          int64     `json:"index"`
	At             time.Time `json:"at"`
	Trigger        string    `json:"trigger"` // "http-5xx-ratio observed 0.1 > threshold 0.02"
	Rule           string    `json:"rule"`
	Origin         string    `json:"origin"`
	Description    string    `json:"description,omitempty"`
	TrafficAtAbort int       `json:"trafficAtAbort"`
	// AnomalyIndex is the anomaly entry the rollback names, -1 when the
	// chain holds none.
	AnomalyIndex int64 `json:"anomalyIndex"`
	// Manual: an operator aborted it; Who is the credential that asked,
	// from the abort's intervention entry (empty when the chain holds
	// none, as before interventions were recorded).
	Manual bool   `json:"manual"`
	Who    string `json:"who,omitempty"`
}

// Page is on-call paged about a change.
type Page struct {
	Index    int64     `json:"index"`
	At       time.Time `json:"at"`
	Ticket   string    `json:"ticket"`
	DedupKey string    `json:"dedupKey"`
	Channels []string  `json:"channels,omitempty"`
	Text     string    `json:"text"`
}

// Event is one ledger entry of a change, as a line of its timeline.
type Event struct {
	Index      int64     `json:"index"`
	RecordedAt time.Time `json:"recordedAt"`
	Time       time.Time `json:"time"` // the event's own time
	Kind       string    `json:"kind"`
	Text       string    `json:"text"`
}

// ProvenEntry is a ledger entry with what proves it: the ledger's signature
// over the entry bytes and the inclusion proof of its leaf in the tree of
// the checkpoint's size.
type ProvenEntry struct {
	Index int64 `json:"index"`
	// Entry is the canonical entry bytes, verbatim (a JSON document kept as
	// a string so that no reformatting of the report changes them).
	Entry     string      `json:"entry"`
	Signature string      `json:"signature"`
	LeafHash  tlog.Hash   `json:"leafHash"`
	Proof     []tlog.Hash `json:"proof"`
}
