package hooks

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/webhook"
)

// SignatureHeader carries a SIEM alert's signature: "sha256=" and the hex
// HMAC-SHA256 of the body under the shared secret (webhook.Sign).
const SignatureHeader = "X-Rampart-Signature"

// SIEMAlert is the alert a SIEM posts to /hooks/siem. The format is
// Rampart's, so decoding is strict: unknown fields are an error.
type SIEMAlert struct {
	// ID is the SIEM's id of the alert; a redelivery carries the same one.
	ID  string `json:"id"`
	App string `json:"app"`
	// Severity is info, low, medium, high or critical.
	Severity   string    `json:"severity"`
	Title      string    `json:"title"`
	OccurredAt time.Time `json:"occurredAt"`
	// Optional context.
	Description string `json:"description,omitempty"`
	Environment string `json:"environment,omitempty"`
	Source      string `json:"source,omitempty"` // the SIEM or rule that raised it
	URL         string `json:"url,omitempty"`
	// Digest, when given, names the image version the alert is about
	// (sha256:…); an alert naming another digest than the canary's is not
	// about the canary.
	Digest string            `json:"digest,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// SIEM severities.
var siemSeverities = []string{"info", "low", "medium", "high", "critical"}

var (
	siemIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	digestRE = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
)

// ParseSIEM decodes and validates a SIEM alert.
func ParseSIEM(body []byte) (*SIEMAlert, error) {
	var wire struct {
		SIEMAlert
		OccurredAt string `json:"occurredAt"`
	}
	if err := decode(body, &wire, true); err != nil {
		return nil, err
	}
	a := wire.SIEMAlert
	var err error
	if wire.OccurredAt != "" {
		if a.OccurredAt, err = parseTime("occurredAt", wire.OccurredAt); err != nil {
			return nil, err
		}
	}
	appErr := events.CheckName("app", a.App)
	switch {
	case a.ID == "":
		return nil, fmt.Errorf("%w: id is required", webhook.ErrMalformed)
	case !siemIDRE.MatchString(a.ID):
		return nil, fmt.Errorf("%w: id must be 1 to 128 letters, digits or ._:-", webhook.ErrMalformed)
	case a.App == "":
		return nil, fmt.Errorf("%w: app is required", webhook.ErrMalformed)
	case appErr != nil:
		return nil, fmt.Errorf("%w: %w", webhook.ErrMalformed, appErr)
	case a.Severity == "":
		return nil, fmt.Errorf("%w: severity is required", webhook.ErrMalformed)
	case !slices.Contains(siemSeverities, a.Severity):
		return nil, fmt.Errorf("%w: severity %q is not one of %s", webhook.ErrMalformed, a.Severity, strings.Join(siemSeverities, ", "))
	case strings.TrimSpace(a.Title) == "":
		return nil, fmt.Errorf("%w: title is required", webhook.ErrMalformed)
	case a.OccurredAt.IsZero():
		return nil, fmt.Errorf("%w: occurredAt is required (RFC 3339)", webhook.ErrMalformed)
	case a.Digest != "" && !digestRE.MatchString(a.Digest):
		return nil, fmt.Errorf("%w: digest %q is not sha256:<64 hex>", webhook.ErrMalformed, a.Digest)
	}
	return &a, nil
}
