package hooks

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/rampartci/rampart/pkg/runtime/webhook"
)

// AlertmanagerMessage is Alertmanager's webhook payload, version 4.
type AlertmanagerMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   uint64            `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Alert is one alert of an Alertmanager notification.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Alert statuses.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

var fingerprintRE = regexp.MustCompile(`^[0-9A-Za-z]{1,64}$`)

// wireAlert is Alert as sent: times are read by hand so that an error names
// the field.
type wireAlert struct {
	Alert
	StartsAt string `json:"startsAt"`
	EndsAt   string `json:"endsAt"`
}

// ParseAlertmanager decodes a version 4 notification. Alertmanager owns the
// format and adds fields over time, so unknown fields are ignored; what the
// watcher reads is checked: the version, each alert's status, labels and
// start, and the fingerprint. An alert without a fingerprint (Alertmanager
// before 0.19) gets one derived from its labels.
func ParseAlertmanager(body []byte) (*AlertmanagerMessage, error) {
	var wire struct {
		AlertmanagerMessage
		Alerts []wireAlert `json:"alerts"`
	}
	if err := decode(body, &wire, false); err != nil {
		return nil, err
	}
	m := wire.AlertmanagerMessage
	if m.Version != "4" {
		return nil, fmt.Errorf("%w: version %q, want \"4\"", webhook.ErrMalformed, m.Version)
	}
	if wire.Alerts == nil {
		return nil, fmt.Errorf("%w: alerts is missing", webhook.ErrMalformed)
	}
	m.Alerts = make([]Alert, len(wire.Alerts))
	for i, w := range wire.Alerts {
		a := w.Alert
		at := fmt.Sprintf("alerts[%d]", i)
		var err error
		if a.StartsAt, err = parseTime(at+".startsAt", w.StartsAt); err != nil {
			return nil, err
		}
		if w.EndsAt != "" {
			if a.EndsAt, err = parseTime(at+".endsAt", w.EndsAt); err != nil {
				return nil, err
			}
		}
		switch {
		case a.Status != StatusFiring && a.Status != StatusResolved:
			return nil, fmt.Errorf("%w: %s.status %q is not firing or resolved", webhook.ErrMalformed, at, a.Status)
		case len(a.Labels) == 0:
			return nil, fmt.Errorf("%w: %s.labels is missing", webhook.ErrMalformed, at)
		case a.Fingerprint == "":
			a.Fingerprint = LabelsFingerprint(a.Labels)
		case !fingerprintRE.MatchString(a.Fingerprint):
			return nil, fmt.Errorf("%w: %s.fingerprint %q is not 1 to 64 letters and digits", webhook.ErrMalformed, at, a.Fingerprint)
		}
		m.Alerts[i] = a
	}
	return &m, nil
}

// LabelsFingerprint is a stable hash of a label set: 16 hex digits.
func LabelsFingerprint(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, k := range names {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(labels[k]))
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
