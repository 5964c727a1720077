package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// AppTargets is what one application has live and in flight, as learnt
// from the deployer's promote, release and rollback events.
type AppTargets struct {
	App         string   `json:"app"`
	Environment string   `json:"environment"`
	Live        *Tracked `json:"live,omitempty"`
	InFlight    *Tracked `json:"inFlight,omitempty"`
}

// Tracked is one artifact of an application.
type Tracked struct {
	Artifact  string    `json:"artifact"` // purl, as the deployer names it
	RolloutID string    `json:"rolloutId,omitempty"`
	ChainID   string    `json:"chainId,omitempty"`
	EventID   string    `json:"eventId,omitempty"` // the event that made it live or in flight
	Since     time.Time `json:"since"`
}

// targetStore is the KV bucket of AppTargets by application name.
type targetStore struct{ kv jetstream.KeyValue }

func openTargetStore(ctx context.Context, b *bus.Bus) (*targetStore, error) {
	kv, err := b.EnsureKV(ctx, jetstream.KeyValueConfig{Bucket: TargetsBucket, History: 5,
		Description: "Artifacts live and in flight per application, for zero-day re-scans"})
	if err != nil {
		return nil, err
	}
	return &targetStore{kv: kv}, nil
}

// update applies f to app's targets with compare-and-swap, so two scanner
// replicas never lose each other's writes; a conflict is returned for the
// delivery to be retried.
func (s *targetStore) update(ctx context.Context, app string, f func(*AppTargets)) error {
	var t AppTargets
	var rev uint64
	e, err := s.kv.Get(ctx, app)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		t.App = app
	case err != nil:
		return fmt.Errorf("read targets of %s: %w", app, err)
	default:
		if err := json.Unmarshal(e.Value(), &t); err != nil {
			return fmt.Errorf("decode targets of %s: %w", app, err)
		}
		rev = e.Revision()
	}
	f(&t)
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode targets of %s: %w", app, err)
	}
	if rev == 0 {
		_, err = s.kv.Create(ctx, app, b)
	} else {
		_, err = s.kv.Update(ctx, app, b, rev)
	}
	if err != nil {
		return fmt.Errorf("write targets of %s: %w", app, err)
	}
	return nil
}

// all lists every application's targets.
func (s *targetStore) all(ctx context.Context) ([]AppTargets, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list targets: %w", err)
	}
	var out []AppTargets
	for key := range lister.Keys() {
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read targets of %s: %w", key, err)
		}
		var t AppTargets
		if err := json.Unmarshal(e.Value(), &t); err != nil {
			return nil, fmt.Errorf("decode targets of %s: %w", key, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// Targets lists what every application has live and in flight.
func (p *Pipeline) Targets(ctx context.Context) ([]AppTargets, error) { return p.targets.all(ctx) }

// Track is the targets consumer's handler. A promotion puts its candidate
// in flight (and its previous version live, if nothing was known yet); a
// completed release makes its artifact live and ends the flight; a rollback
// makes the version traffic returned to live and ends the flight.
func (p *Pipeline) Track(ctx context.Context, d bus.Delivery) error {
	ev := d.Event
	tracked := func(artifact, rollout string) *Tracked {
		return &Tracked{Artifact: artifact, RolloutID: rollout, ChainID: events.ChainID(ev), EventID: ev.ID(), Since: ev.Time().UTC()}
	}
	var app string
	var apply func(*AppTargets)
	switch events.KindOf(ev.Type()) {
	case events.KindPromote:
		pr, err := events.PromotionOf(ev)
		if err != nil {
			return bus.Poison(err)
		}
		app = pr.App
		apply = func(t *AppTargets) {
			t.Environment = pr.Environment
			t.InFlight = tracked(pr.ArtifactID, pr.RolloutID)
			if t.Live == nil && pr.Previous != "" {
				t.Live = &Tracked{Artifact: pr.Previous, ChainID: events.ChainID(ev), EventID: ev.ID(), Since: ev.Time().UTC()}
			}
		}
	case events.KindRelease:
		r, err := events.ReleaseOf(ev)
		if err != nil {
			return bus.Poison(err)
		}
		app = r.App
		apply = func(t *AppTargets) {
			t.Environment = r.Environment
			t.Live = tracked(r.ArtifactID, r.RolloutID)
			if t.InFlight != nil && (t.InFlight.RolloutID == r.RolloutID || t.InFlight.Artifact == r.ArtifactID) {
				t.InFlight = nil
			}
		}
	case events.KindRollback:
		r, err := events.RollbackOf(ev)
		if err != nil {
			return bus.Poison(err)
		}
		app = r.App
		apply = func(t *AppTargets) {
			t.Environment = r.Environment
			t.Live = tracked(r.ArtifactID, r.RolloutID)
			if t.InFlight != nil && (t.InFlight.RolloutID == r.RolloutID || t.InFlight.Artifact == r.From) {
				t.InFlight = nil
			}
		}
	default:
		return nil
	}
	if err := p.targets.update(ctx, app, apply); err != nil {
		return err
	}
	p.log.Debug("release targets updated", "app", app, "event", ev.ID(), "type", ev.Type())
	return nil
}
