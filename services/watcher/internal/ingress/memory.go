package ingress

import (
	"sync"
	"time"
)

// alertMemory remembers the anomaly each alert became. Alertmanager re-sends
// a firing alert every repeat interval and a webhook may be delivered many
// times; a delivery of an alert already acted on is the same decision, even
// when what is live has changed since (the canary it stopped has been rolled
// back, so the alert now matches nothing live).
type alertMemory struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	decided map[string]decision // by alert key: fingerprint+startsAt, or SIEM id
}

type decision struct {
	id string
	at time.Time
}

func newAlertMemory(ttl time.Duration, max int) *alertMemory {
	return &alertMemory{ttl: ttl, max: max, decided: map[string]decision{}}
}

// lookup returns the anomaly id an alert became, if it was seen within the ttl.
func (m *alertMemory) lookup(key string, now time.Time) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.decided[key]
	if !ok || now.Sub(d.at) > m.ttl {
		return "", false
	}
	return d.id, true
}

// remember records the anomaly an alert became, dropping expired entries
// (and, past max, the oldest) so memory stays bounded.
func (m *alertMemory) remember(key, id string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.decided) >= m.max {
		var oldest string
		for k, d := range m.decided {
			if now.Sub(d.at) > m.ttl {
				delete(m.decided, k)
				continue
			}
			if oldest == "" || d.at.Before(m.decided[oldest].at) {
				oldest = k
			}
		}
		if len(m.decided) >= m.max {
			delete(m.decided, oldest)
		}
	}
	m.decided[key] = decision{id: id, at: now}
}
