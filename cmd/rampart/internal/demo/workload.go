package demo

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	deployer "github.com/rampartci/rampart/services/deployer/app"
)

// workload runs demo versions in the application's two slots and its
// staging stage: deploying an artifact pulls its image config from the
// registry and starts a version that behaves as the image's labels say.
type workload struct {
	stable, canary, staging *Slot

	mu       sync.Mutex
	versions map[string]*version // by artifact, so a redeploy keeps its state
}

func newWorkload() (*workload, error) {
	stable, err := NewSlot()
	if err != nil {
		return nil, err
	}
	canary, err := NewSlot()
	if err != nil {
		stable.Close()
		return nil, err
	}
	staging, err := NewSlot()
	if err != nil {
		stable.Close()
		canary.Close()
		return nil, err
	}
	return &workload{stable: stable, canary: canary, staging: staging, versions: map[string]*version{}}, nil
}

func (w *workload) close() {
	w.stable.Close()
	w.canary.Close()
	w.staging.Close()
}

// Deploy implements the deployer's Workload.
func (w *workload) Deploy(ctx context.Context, _ policy.App, slot deployer.Slot, artifact string) error {
	v, err := w.version(ctx, artifact)
	if err != nil {
		return err
	}
	switch slot {
	case deployer.SlotStable:
		w.stable.Run(v)
	case deployer.SlotCanary:
		w.canary.Run(v)
	case deployer.StageSlot(Staging):
		w.staging.Run(v)
	default:
		return fmt.Errorf("no slot %q", slot)
	}
	return nil
}

func (w *workload) version(ctx context.Context, artifact string) (*version, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if v, ok := w.versions[artifact]; ok {
		return v, nil
	}
	oci, err := events.ParseOCI(artifact)
	if err != nil {
		return nil, err
	}
	ref, err := name.NewDigest(oci.Ref(), name.Insecure)
	if err != nil {
		return nil, fmt.Errorf("image reference: %w", err)
	}
	img, err := remote.Image(ref, remote.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config of %s: %w", ref, err)
	}
	labels := cfg.Config.Labels
	ratio := 0.0
	if s := labels[LabelFailRatio]; s != "" {
		if ratio, err = strconv.ParseFloat(s, 64); err != nil {
			return nil, fmt.Errorf("label %s=%q: %w", LabelFailRatio, s, err)
		}
	}
	v := newVersion(labels[LabelVersion], ratio, labels[LabelPriceField])
	w.versions[artifact] = v
	return v, nil
}

var _ deployer.Workload = (*workload)(nil)
