// Package incident records the notifier's open incidents, one per rollout,
// in a JetStream key-value bucket. Every change is a create-only write or a
// compare-and-swap on the entry's revision, so a redelivered rollback, or a
// second notifier replica handling a duplicate, can never page twice: only
// the holder of an incident's claim acts on it, and what it has done (paged,
// posted, published) is recorded before it lets go.
package incident

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/services/notifier/internal/report"
)

// Bucket holds the open incidents, keyed like the reports (report.Key).
const Bucket = "RAMPART_INCIDENTS"

// KVConfig is the bucket's configuration.
func KVConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Rampart notifier: incidents by rollout id, and what has been sent for each",
		History:     10,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
}

// Incident is what the notifier has done about one rollback. The zero time
// means "not yet".
type Incident struct {
	RolloutID string `json:"rolloutId"`
	// RollbackEventID is the rollback event that opened the incident.
	RollbackEventID string `json:"rollbackEventId"`
	// Holder is the notifier instance working on the incident, and
	// HeldSince when it took it; empty when nobody is.
	Holder    string    `json:"holder,omitempty"`
	HeldSince time.Time `json:"heldSince,omitzero"`
	// ReportedAt is when the report was stored.
	ReportedAt time.Time `json:"reportedAt,omitzero"`
	// PagedAt is when PagerDuty accepted the trigger for DedupKey.
	PagedAt   time.Time `json:"pagedAt,omitzero"`
	DedupKey  string    `json:"dedupKey,omitempty"`
	TicketURI string    `json:"ticketUri,omitempty"`
	// PostedAt is when Slack accepted the report.
	PostedAt time.Time `json:"postedAt,omitzero"`
	// PublishedAt is when the page event PageEventID was published.
	PublishedAt time.Time `json:"publishedAt,omitzero"`
	PageEventID string    `json:"pageEventId,omitempty"`
	// CompletedAt is when every step was done; nothing more is sent.
	CompletedAt time.Time `json:"completedAt,omitzero"`
	// LastError is why the last holder let go without completing.
	LastError string `json:"lastError,omitempty"`
}

var (
	// ErrCompleted is returned by Claim for an incident whose notifications
	// were all sent.
	ErrCompleted = errors.New("incident already notified")
	// ErrHeld is returned by Claim while another instance holds a fresh
	// claim on the incident.
	ErrHeld = errors.New("incident is being handled by another notifier")
	// ErrLost is returned by Claim.Update when the claim was taken over
	// (its lease ran out and another instance claimed the incident).
	ErrLost = errors.New("claim on incident lost")
)

// Store claims and updates incidents.
type Store struct {
	kv    jetstream.KeyValue
	lease time.Duration
	now   func() time.Time
}

// NewStore keeps incidents in kv. A claim older than lease is presumed
// abandoned (its holder crashed) and may be taken over.
func NewStore(kv jetstream.KeyValue, lease time.Duration, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{kv: kv, lease: lease, now: now}
}

// Claim is a held incident.
type Claim struct {
	store    *Store
	key      string
	rev      uint64
	Incident Incident
}

// Get returns the incident of a rollout, or nil when there is none.
func (s *Store) Get(ctx context.Context, rolloutID string) (*Incident, error) {
	e, err := s.kv.Get(ctx, report.Key(rolloutID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read incident %s: %w", rolloutID, err)
	}
	var inc Incident
	if err := json.Unmarshal(e.Value(), &inc); err != nil {
		return nil, fmt.Errorf("decode incident %s: %w", rolloutID, err)
	}
	return &inc, nil
}

// Claim takes the incident of rolloutID for holder, creating it for the
// rollback event eventID if it does not exist. It fails with ErrCompleted
// when everything was sent, and ErrHeld while someone else holds it.
func (s *Store) Claim(ctx context.Context, rolloutID, eventID, holder string) (*Claim, error) {
	key := report.Key(rolloutID)
	// A lost race re-reads and decides again; a few rounds are plenty since
	// every round that loses means another instance made progress.
	for range 5 {
		now := s.now().UTC()
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			inc := Incident{RolloutID: rolloutID, RollbackEventID: eventID, Holder: holder, HeldSince: now}
			rev, err := s.kv.Create(ctx, key, encode(inc))
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("create incident %s: %w", rolloutID, err)
			}
			return &Claim{store: s, key: key, rev: rev, Incident: inc}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read incident %s: %w", rolloutID, err)
		}
		var inc Incident
		if err := json.Unmarshal(e.Value(), &inc); err != nil {
			return nil, fmt.Errorf("decode incident %s: %w", rolloutID, err)
		}
		if !inc.CompletedAt.IsZero() {
			return nil, fmt.Errorf("%w: rollout %s at %s", ErrCompleted, rolloutID, inc.CompletedAt.Format(time.RFC3339))
		}
		if inc.Holder != "" && inc.Holder != holder && now.Sub(inc.HeldSince) < s.lease {
			return nil, fmt.Errorf("%w: rollout %s held by %s since %s", ErrHeld, rolloutID, inc.Holder, inc.HeldSince.Format(time.RFC3339))
		}
		inc.Holder, inc.HeldSince = holder, now
		rev, err := s.kv.Update(ctx, key, encode(inc), e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("claim incident %s: %w", rolloutID, err)
		}
		return &Claim{store: s, key: key, rev: rev, Incident: inc}, nil
	}
	return nil, fmt.Errorf("%w: rollout %s changed under every attempt to claim it", ErrHeld, rolloutID)
}

// Update applies fn to the incident and writes it if nobody else has since
// the claim's last write; otherwise it fails with ErrLost and the claim must
// be dropped. A claim whose holder keeps writing renews its lease.
func (c *Claim) Update(ctx context.Context, fn func(*Incident)) error {
	next := c.Incident
	fn(&next)
	next.HeldSince = c.store.now().UTC()
	rev, err := c.store.kv.Update(ctx, c.key, encode(next), c.rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("%w: rollout %s", ErrLost, c.Incident.RolloutID)
	}
	if err != nil {
		return fmt.Errorf("update incident %s: %w", c.Incident.RolloutID, err)
	}
	c.rev, c.Incident = rev, next
	return nil
}

// Complete records that every notification was sent and lets go.
func (c *Claim) Complete(ctx context.Context) error {
	return c.Update(ctx, func(inc *Incident) {
		inc.CompletedAt = c.store.now().UTC()
		inc.Holder, inc.LastError = "", ""
	})
}

// Release lets go without completing, recording why, so that the next
// delivery (here or on another replica) can claim it at once.
func (c *Claim) Release(ctx context.Context, reason string) error {
	return c.Update(ctx, func(inc *Incident) {
		inc.Holder, inc.LastError = "", reason
	})
}

func encode(inc Incident) []byte {
	b, err := json.Marshal(inc)
	if err != nil {
		panic(fmt.Sprintf("encode incident: %v", err)) // only strings and times: cannot fail
	}
	return b
}
