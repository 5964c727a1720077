// Package shiftleft is the scanner's source checks as the rampart command
// runs them outside the scanner service: the pre-commit secret scan and the
// verdict on a SARIF file from another tool. It only re-exports
// internal/source packages (Go forbids another module from importing
// them directly) and pulls in none of Trivy beyond its secret scanner.
package shiftleft

import (
	"github.com/rampartci/rampart/services/scanner/internal/gate"
	"github.com/rampartci/rampart/services/scanner/internal/source/secrets"
	"github.com/rampartci/rampart/services/scanner/internal/source/verdict"
)

// Secret scanning: Trivy's built-in rules plus a high-entropy check.
type (
	SecretScanner = secrets.Scanner
	SecretFinding = secrets.Finding
)

// HighEntropyRuleID names the findings of the entropy check.
const HighEntropyRuleID = secrets.HighEntropyRuleID

// NewSecretScanner returns the secret scanner commit scans use.
func NewSecretScanner() *SecretScanner { return secrets.New() }

// SARIF verdicts.
type (
	Upload         = verdict.Upload
	VerdictOptions = verdict.Options
	Decision       = gate.Decision
	Policy         = gate.Policy
)

// ErrUpload is wrapped by errors about a SARIF upload's content or target.
var ErrUpload = verdict.ErrUpload

// SARIFVerdict parses a SARIF 2.1.0 log strictly and returns the signed
// source verdict on its findings (see verdict.SARIF).
var SARIFVerdict = verdict.SARIF

// LoadPolicy reads a gate policy file (block_on, ignore_unfixed, waivers).
func LoadPolicy(path string) (*Policy, error) { return gate.LoadFile(path) }

// DefaultPolicy blocks on Critical and High findings.
func DefaultPolicy() *Policy { return gate.Default() }
