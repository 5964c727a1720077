package imagescan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// Buckets the scanner keeps on JetStream.
const (
	// SBOMBucket is the object store of CycloneDX SBOMs, keyed by digest.
	SBOMBucket = "RAMPART_SBOMS"
	// CacheBucket holds scan results keyed by digest and DB version
	// (scan.CacheKey).
	CacheBucket = "RAMPART_SCANS"
	// TargetsBucket holds, per application, the artifacts that are live
	// and in flight: what a zero-day re-scan looks at.
	TargetsBucket = "RAMPART_SCAN_TARGETS"
)

// SBOMRef is the URI of a stored SBOM, as verdicts and SBOM events cite it.
func SBOMRef(digest string) string { return "nats-object://" + SBOMBucket + "/" + digest }

// sbomStore keeps SBOMs in a JetStream object store.
type sbomStore struct{ obj jetstream.ObjectStore }

func openSBOMStore(ctx context.Context, b *bus.Bus, replicas int) (*sbomStore, error) {
	obj, err := b.JetStream().CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      SBOMBucket,
		Description: "CycloneDX SBOMs of scanned images, by digest, for zero-day re-scans",
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("ensure object store %s: %w", SBOMBucket, err)
	}
	return &sbomStore{obj: obj}, nil
}

// put stores the SBOM of digest and returns its reference.
func (s *sbomStore) put(ctx context.Context, digest string, sbom []byte) (string, error) {
	if _, err := s.obj.PutBytes(ctx, digest, sbom); err != nil {
		return "", fmt.Errorf("store SBOM of %s: %w", digest, err)
	}
	return SBOMRef(digest), nil
}

// errNoSBOM: no SBOM is stored for the digest (it was scanned before SBOMs
// were kept, or the scan failed).
var errNoSBOM = errors.New("no stored SBOM")

func (s *sbomStore) get(ctx context.Context, digest string) ([]byte, error) {
	b, err := s.obj.GetBytes(ctx, digest)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("SBOM of %s: %w", digest, errNoSBOM)
	}
	if err != nil {
		return nil, fmt.Errorf("read SBOM of %s: %w", digest, err)
	}
	return b, nil
}

// cachedScan is what one scan of a digest against one DB version found.
// The verdict is re-judged from it on each use, so a changed gate policy or
// an expired waiver applies to cached scans too.
type cachedScan struct {
	Digest    string            `json:"digest"`
	DBVersion string            `json:"dbVersion"`
	OS        string            `json:"os,omitempty"`
	Packages  int               `json:"packages"`
	Findings  []finding.Finding `json:"findings"`
	SBOMRef   string            `json:"sbomRef"`
	ScannedAt time.Time         `json:"scannedAt"`
}

// verdictCache is the KV bucket of scans by digest and DB version.
type verdictCache struct{ kv jetstream.KeyValue }

func openVerdictCache(ctx context.Context, b *bus.Bus, replicas int) (*verdictCache, error) {
	kv, err := b.EnsureKV(ctx, jetstream.KeyValueConfig{Bucket: CacheBucket, History: 1,
		Description: "Rampart scan results by image digest and vulnerability DB version", Replicas: max(replicas, 1)})
	if err != nil {
		return nil, err
	}
	return &verdictCache{kv: kv}, nil
}

func (c *verdictCache) get(ctx context.Context, key string) (cachedScan, bool, error) {
	e, err := c.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return cachedScan{}, false, nil
	}
	if err != nil {
		return cachedScan{}, false, fmt.Errorf("read cached scan %s: %w", key, err)
	}
	var s cachedScan
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return cachedScan{}, false, fmt.Errorf("decode cached scan %s: %w", key, err)
	}
	return s, true, nil
}

func (c *verdictCache) put(ctx context.Context, key string, s cachedScan) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode scan of %s: %w", s.Digest, err)
	}
	if _, err := c.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("cache scan %s: %w", key, err)
	}
	return nil
}
