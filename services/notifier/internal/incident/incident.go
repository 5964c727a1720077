// Package incident records the notifier's open incidents, one per rollout,
// in a JetStream key-value bucket. Every change is a create-only write or a
// compare-and-swap on the entry's revision, so a redelivered rollback, or a
// second notifier replica handling a duplicate, can never page twice: only
// the holder of an incident's claim acts on it, and what it has done (paged,
// posted, published) is recorded before it lets go.
package incident

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/runtime/kv"
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
	// Lease names the notifier instance working on the incident and until
	// when; empty when nobody is.
	kv.Lease
	// PagedAt is when PagerDuty accepted the page for DedupKey, sent from
	// the rollback event alone.
	PagedAt   time.Time `json:"pagedAt,omitzero"`
	DedupKey  string    `json:"dedupKey,omitempty"`
	TicketURI string    `json:"ticketUri,omitempty"`
	// PublishedAt is when the page event PageEventID was published.
	PublishedAt time.Time `json:"publishedAt,omitzero"`
	PageEventID string    `json:"pageEventId,omitempty"`
	// ReportedAt is when the report was stored.
	ReportedAt time.Time `json:"reportedAt,omitzero"`
	// ReportPagedAt is when PagerDuty accepted the report on the same
	// incident (same dedup key).
	ReportPagedAt time.Time `json:"reportPagedAt,omitzero"`
	// PostedAt is when Slack accepted the report.
	PostedAt time.Time `json:"postedAt,omitzero"`
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
	kv    *kv.Store[Incident]
	lease time.Duration
	now   func() time.Time
}

// NewStore keeps incidents in bucket. A claim not renewed for lease is
// presumed abandoned (its holder crashed) and may be taken over.
func NewStore(bucket jetstream.KeyValue, lease time.Duration, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{kv: kv.New[Incident](bucket), lease: lease, now: now}
}

// Claim is a held incident.
type Claim struct {
	store    *Store
	entry    kv.Entry[Incident]
	Incident Incident
}

// Get returns the incident of a rollout, or nil when there is none.
func (s *Store) Get(ctx context.Context, rolloutID string) (*Incident, error) {
	e, err := s.kv.Get(ctx, report.Key(rolloutID))
	if errors.Is(err, kv.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("incident %s: %w", rolloutID, err)
	}
	return &e.Value, nil
}

// Claim takes the incident of rolloutID for holder, creating it for the
// rollback event eventID if it does not exist. It fails with ErrCompleted
// when everything was sent, and ErrHeld while someone else holds it.
func (s *Store) Claim(ctx context.Context, rolloutID, eventID, holder string) (*Claim, error) {
	e, _, err := s.kv.Update(ctx, report.Key(rolloutID), func(inc *Incident, exists bool) (bool, error) {
		now := s.now().UTC()
		if !exists {
			*inc = Incident{RolloutID: rolloutID, RollbackEventID: eventID}
		}
		if !inc.CompletedAt.IsZero() {
			return false, fmt.Errorf("%w: rollout %s at %s", ErrCompleted, rolloutID, inc.CompletedAt.Format(time.RFC3339))
		}
		if inc.HeldByOther(holder, now) {
			return false, fmt.Errorf("%w: rollout %s held by %s until %s", ErrHeld, rolloutID, inc.Holder, inc.Until.Format(time.RFC3339))
		}
		inc.Take(holder, now, s.lease)
		return true, nil
	})
	if errors.Is(err, kv.ErrConflict) {
		return nil, fmt.Errorf("%w: rollout %s changed under every attempt to claim it", ErrHeld, rolloutID)
	}
	if err != nil {
		return nil, fmt.Errorf("claim incident: %w", err)
	}
	return &Claim{store: s, entry: e, Incident: e.Value}, nil
}

// Update applies fn to the incident and writes it if nobody else has since
// the claim's last write; otherwise it fails with ErrLost and the claim must
// be dropped. A claim whose holder keeps writing renews its lease.
func (c *Claim) Update(ctx context.Context, fn func(*Incident)) error {
	next := c.entry
	next.Value = c.Incident
	fn(&next.Value)
	if next.Value.Holder != "" {
		next.Value.Take(next.Value.Holder, c.store.now().UTC(), c.store.lease)
	}
	e, err := c.store.kv.Put(ctx, next)
	if errors.Is(err, kv.ErrConflict) {
		return fmt.Errorf("%w: rollout %s", ErrLost, c.Incident.RolloutID)
	}
	if err != nil {
		return fmt.Errorf("update incident: %w", err)
	}
	c.entry, c.Incident = e, e.Value
	return nil
}

// Complete records that every notification was sent and lets go.
func (c *Claim) Complete(ctx context.Context) error {
	return c.Update(ctx, func(inc *Incident) {
		inc.CompletedAt = c.store.now().UTC()
		inc.Free()
		inc.LastError = ""
	})
}

// Release lets go without completing, recording why, so that the next
// delivery (here or on another replica) can claim it at once.
func (c *Claim) Release(ctx context.Context, reason string) error {
	return c.Update(ctx, func(inc *Incident) {
		inc.Free()
		inc.LastError = reason
	})
}
