package vulndb

import (
	"context"

	trivydb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy/pkg/cache"
	"github.com/aquasecurity/trivy/pkg/fanal/applier"
	trivyscan "github.com/aquasecurity/trivy/pkg/scan"
	"github.com/aquasecurity/trivy/pkg/scan/langpkg"
	"github.com/aquasecurity/trivy/pkg/scan/local"
	"github.com/aquasecurity/trivy/pkg/scan/ospkg"
	"github.com/aquasecurity/trivy/pkg/types"
	"github.com/aquasecurity/trivy/pkg/vulnerability"
)

// Backend is Trivy's local detection (OS and language packages matched
// against this DB) holding a read lease on the DB only while it matches,
// not while layers are pulled or a repository is walked, so a slow
// registry or a large clone never holds up a DB reload (and the scans
// queued behind it). Image scans and commit scans both detect through it.
// One Backend serves one scan: it records the DB version that scan read.
type Backend struct {
	db      *DB
	next    trivyscan.Backend
	version Version
}

var _ trivyscan.Backend = (*Backend)(nil)

// Backend returns a detection backend over the artifacts Trivy put in c.
func (d *DB) Backend(c cache.Cache) *Backend {
	return &Backend{db: d, next: local.NewService(applier.NewApplier(c), ospkg.NewScanner(),
		langpkg.NewScanner(), vulnerability.NewClient(trivydb.Config{}))}
}

// Scan implements Trivy's scan.Backend under a read lease.
func (b *Backend) Scan(ctx context.Context, target, artifactKey string, blobKeys []string, opts types.ScanOptions) (types.ScanResponse, error) {
	v, release, err := b.db.Acquire()
	if err != nil {
		return types.ScanResponse{}, err
	}
	defer release()
	b.version = v
	return b.next.Scan(ctx, target, artifactKey, blobKeys, opts)
}

// Version is the DB version the last Scan read (zero before one ran).
func (b *Backend) Version() Version { return b.version }
