package imagescan

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/kv"
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
type targetStore struct{ kv *kv.Store[AppTargets] }

func openTargetStore(ctx context.Context, b *bus.Bus, replicas int) (*targetStore, error) {
	bucket, err := b.EnsureKV(ctx, jetstream.KeyValueConfig{Bucket: TargetsBucket, History: 5,
		Description: "Artifacts live and in flight per application, for zero-day re-scans", Replicas: max(replicas, 1)})
	if err != nil {
		return nil, err
	}
	return &targetStore{kv: kv.New[AppTargets](bucket)}, nil
}

// update applies f to app's targets with compare-and-swap, so two scanner
// replicas never lose each other's writes; a lost race re-reads and applies
// f again.
func (s *targetStore) update(ctx context.Context, app string, f func(*AppTargets)) error {
	_, _, err := s.kv.Update(ctx, app, func(t *AppTargets, exists bool) (bool, error) {
		if !exists {
			t.App = app
		}
		f(t)
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("targets of %s: %w", app, err)
	}
	return nil
}

// all lists every application's targets.
func (s *targetStore) all(ctx context.Context) ([]AppTargets, error) {
	var out []AppTargets
	for e, err := range s.kv.List(ctx, "") {
		if err != nil {
			return nil, fmt.Errorf("list targets: %w", err)
		}
		out = append(out, e.Value)
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
	// landed makes artifact live; the flight of its rollout, or of the
	// artifact that was flying, is over.
	landed := func(env, artifact, rollout, flying string) func(*AppTargets) {
		return func(t *AppTargets) {
			t.Environment = env
			t.Live = tracked(artifact, rollout)
			if t.InFlight != nil && (t.InFlight.RolloutID == rollout || t.InFlight.Artifact == flying) {
				t.InFlight = nil
			}
		}
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
				t.Live = tracked(pr.Previous, "")
			}
		}
	case events.KindRelease:
		r, err := events.ReleaseOf(ev)
		if err != nil {
			return bus.Poison(err)
		}
		app, apply = r.App, landed(r.Environment, r.ArtifactID, r.RolloutID, r.ArtifactID)
	case events.KindRollback:
		r, err := events.RollbackOf(ev)
		if err != nil {
			return bus.Poison(err)
		}
		app, apply = r.App, landed(r.Environment, r.ArtifactID, r.RolloutID, r.From)
	default:
		return nil
	}
	if err := p.targets.update(ctx, app, apply); err != nil {
		return err
	}
	p.log.Debug("release targets updated", "app", app, "event", ev.ID(), "type", ev.Type())
	return nil
}
