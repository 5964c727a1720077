package events

import (
	"errors"
	"fmt"
	"strings"
)

// CloudEvents types of the events Rampart emits (CDEvents v0.5.1 where one
// exists, Rampart's own dev.cdeventsx types otherwise).
const (
	TypeChangeMerged        = "dev.cdevents.change.merged.0.3.0"
	TypeChangeCreated       = "dev.cdevents.change.created.0.4.0"
	TypeArtifactPublished   = "dev.cdevents.artifact.published.0.3.0"
	TypeTestSuiteFinished   = "dev.cdevents.testsuiterun.finished.0.3.0"
	TypeTestOutputPublished = "dev.cdevents.testoutput.published.0.3.0"
	TypeReleasePromoted     = "dev.cdeventsx.rampart-release.promoted.0.1.0"
	TypeCanaryStepped       = "dev.cdeventsx.rampart-canary.stepped.0.1.0"
	TypeCanaryAnalyzed      = "dev.cdeventsx.rampart-canary.analyzed.0.1.0"
	TypeServiceDeployed     = "dev.cdevents.service.deployed.0.3.0"
	TypeServiceUpgraded     = "dev.cdevents.service.upgraded.0.3.0"
	TypeIncidentDetected    = "dev.cdevents.incident.detected.0.3.0"
	TypeServiceRolledBack   = "dev.cdevents.service.rolledback.0.3.0"
	TypeIncidentReported    = "dev.cdevents.incident.reported.0.3.0"
	// TypeEnvironmentModified: a pre-production stage (staging) now runs a
	// candidate; see StageDeployment.
	TypeEnvironmentModified = "dev.cdevents.environment.modified.0.3.0"
)

// Kinds: the second token of a Rampart NATS subject, rampart.<kind>.<app>.
const (
	KindCommit     = "commit"
	KindArtifact   = "artifact"
	KindScan       = "scan"
	KindTestOutput = "testoutput"
	KindPromote    = "promote"
	KindCanaryStep = "canarystep"
	KindAnalysis   = "analysis"
	KindRelease    = "release"
	KindAnomaly    = "anomaly"
	KindRollback   = "rollback"
	KindPage       = "page"
	// KindStage: a candidate deployed to a pre-production stage, to be
	// checked there before it is promoted further.
	KindStage = "stage"
	// KindExternal carries valid CDEvents of types Rampart does not act on
	// (a build or pipeline run from another tool); the ledger records them.
	KindExternal = "external"
	// KindDeadLetter carries copies of messages a consumer terminated.
	KindDeadLetter = "deadletter"
)

// kindByName maps a type's name (without version) to its kind.
var kindByName = map[string]string{
	"dev.cdevents.change.merged":                 KindCommit,
	"dev.cdevents.change.created":                KindCommit,
	"dev.cdevents.artifact.published":            KindArtifact,
	"dev.cdevents.testsuiterun.finished":         KindScan,
	"dev.cdevents.testoutput.published":          KindTestOutput,
	"dev.cdeventsx.rampart-release.promoted":     KindPromote,
	"dev.cdeventsx.rampart-canary.stepped":       KindCanaryStep,
	"dev.cdeventsx.rampart-canary.analyzed":      KindAnalysis,
	"dev.cdevents.service.deployed":              KindRelease,
	"dev.cdevents.service.upgraded":              KindRelease,
	"dev.cdevents.incident.detected":             KindAnomaly,
	"dev.cdevents.service.rolledback":            KindRollback,
	"dev.cdevents.incident.reported":             KindPage,
	"dev.cdeventsx.rampart-drill.finished":       KindDrill,
	"dev.cdeventsx.rampart-intervention.applied": KindIntervention,
	"dev.cdevents.environment.modified":          KindStage,
}

// knownVersion is the version of each type name Rampart reads.
var knownVersion = map[string]string{}

func init() {
	for _, t := range []string{
		TypeChangeMerged, TypeChangeCreated, TypeArtifactPublished, TypeTestSuiteFinished,
		TypeTestOutputPublished, TypeReleasePromoted, TypeCanaryStepped, TypeServiceDeployed,
		TypeServiceUpgraded, TypeIncidentDetected, TypeServiceRolledBack, TypeIncidentReported,
		TypeDrillFinished, TypeCanaryAnalyzed, TypeEnvironmentModified, TypeInterventionApplied,
	} {
		name, version, _ := SplitType(t)
		knownVersion[name] = version
	}
}

// ErrUnsupportedVersion is returned for an event whose type or CDEvents spec
// version has a major version this code does not read. Consumers terminate
// such messages rather than guess at their meaning.
var ErrUnsupportedVersion = errors.New("unsupported schema version")

// SplitType splits "dev.cdevents.change.merged.0.3.0" into its name and its
// semantic version.
func SplitType(t string) (name, version string, err error) {
	// The version is what follows the third dot from the end; found
	// without splitting, as every event read pays for it.
	cut := len(t)
	for range 3 {
		if cut = strings.LastIndexByte(t[:cut], '.'); cut < 0 {
			return "", "", fmt.Errorf("type %q has no version suffix", t)
		}
	}
	name, version = t[:cut], t[cut+1:]
	for p := range strings.SplitSeq(version, ".") {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return "", "", fmt.Errorf("type %q does not end in a version MAJOR.MINOR.PATCH", t)
		}
	}
	return name, version, nil
}

// compatible reports whether version a can be read by code written for b.
// Per semantic versioning, in 0.x every minor version may break.
func compatible(a, b string) bool {
	majorA, restA, _ := strings.Cut(a, ".")
	majorB, restB, _ := strings.Cut(b, ".")
	if majorA != majorB {
		return false
	}
	minorA, _, _ := strings.Cut(restA, ".")
	minorB, _, _ := strings.Cut(restB, ".")
	return majorA != "0" || minorA == minorB
}

// CheckVersion checks that a type Rampart knows by name comes in a version
// it reads. Types Rampart does not know pass: they are recorded, not read.
func CheckVersion(t string) error {
	name, version, err := SplitType(t)
	if err != nil {
		return err
	}
	if want, ok := knownVersion[name]; ok && !compatible(version, want) {
		return fmt.Errorf("%w: %s is version %s, this Rampart reads %s", ErrUnsupportedVersion, name, version, want)
	}
	return nil
}

func checkSpecVersion(v string) error {
	if strings.Count(v, ".") != 2 || !compatible(v, CDEventsVersion) {
		return fmt.Errorf("%w: CDEvents spec version %q, this Rampart reads %s", ErrUnsupportedVersion, v, CDEventsVersion)
	}
	return nil
}

// KindOf returns the subject kind for a CloudEvents type: Rampart's own kinds
// for the types it acts on, KindExternal for any other.
func KindOf(t string) string {
	name, _, err := SplitType(t)
	if err != nil {
		return KindExternal
	}
	if k, ok := kindByName[name]; ok {
		return k
	}
	return KindExternal
}
