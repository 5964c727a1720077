package hooks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"time"
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

// ParseAlertmanager decodes a version 4 notification. Alertmanager owns the
// format and adds fields over time, so unknown fields are ignored; what the
// watcher reads is checked: the version, each alert's status, labels and
// start, and the fingerprint. An alert without a fingerprint (Alertmanager
// before 0.19) gets one derived from its labels, as Alertmanager derives it.
func ParseAlertmanager(body []byte) (*AlertmanagerMessage, error) {
	var m AlertmanagerMessage
	if err := decodeOne(body, &m, false); err != nil {
		return nil, err
	}
	if m.Version != "4" {
		return nil, fmt.Errorf("%w: version %q, want \"4\"", ErrMalformed, m.Version)
	}
	if m.Alerts == nil {
		return nil, fmt.Errorf("%w: alerts is missing", ErrMalformed)
	}
	for i := range m.Alerts {
		a := &m.Alerts[i]
		at := fmt.Sprintf("alerts[%d]", i)
		if a.Status != StatusFiring && a.Status != StatusResolved {
			return nil, fmt.Errorf("%w: %s.status %q is not firing or resolved", ErrMalformed, at, a.Status)
		}
		if len(a.Labels) == 0 {
			return nil, fmt.Errorf("%w: %s.labels is missing", ErrMalformed, at)
		}
		if a.StartsAt.IsZero() {
			return nil, fmt.Errorf("%w: %s.startsAt is missing", ErrMalformed, at)
		}
		switch {
		case a.Fingerprint == "":
			a.Fingerprint = LabelsFingerprint(a.Labels)
		case !fingerprintRE.MatchString(a.Fingerprint):
			return nil, fmt.Errorf("%w: %s.fingerprint %q is not 1 to 64 letters and digits", ErrMalformed, at, a.Fingerprint)
		}
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

// decodeOne decodes exactly one JSON object from body into v; strict also
// rejects fields v does not have.
func decodeOne(body []byte, v any, strict bool) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return fmt.Errorf("%w: empty body", ErrMalformed)
	}
	if body[0] != '{' {
		return fmt.Errorf("%w: body is not a JSON object", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	return nil
}
