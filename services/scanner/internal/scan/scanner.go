// Package scan runs Trivy in-process: it pulls an image from its registry (or
// reads a stored SBOM), finds OS and language packages, matches them against
// the vulnerability DB and returns findings, counts by severity and a
// CycloneDX SBOM.
//
// Only the Trivy packages the job needs are imported (no pkg/commands, no
// Trivy CLI flags, no version check or telemetry).
package scan

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy/pkg/cache"
	"github.com/aquasecurity/trivy/pkg/fanal/analyzer"
	"github.com/aquasecurity/trivy/pkg/fanal/artifact"
	imageartifact "github.com/aquasecurity/trivy/pkg/fanal/artifact/image"
	sbomartifact "github.com/aquasecurity/trivy/pkg/fanal/artifact/sbom"
	"github.com/aquasecurity/trivy/pkg/fanal/image"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
	trivyscan "github.com/aquasecurity/trivy/pkg/scan"
	"github.com/aquasecurity/trivy/pkg/types"
	xhttp "github.com/aquasecurity/trivy/pkg/x/http"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/rampartci/rampart/services/scanner/internal/vulndb"
)

// Errors callers branch on. Any error from a scan means the artifact's
// outcome is "error", which blocks promotion like a finding would: a scan
// that did not complete never passes.
var (
	// ErrReference: the image reference does not parse.
	ErrReference = errors.New("invalid image reference")
	// ErrPull: the image manifest could not be fetched from its registry
	// (unreachable, unauthorized, unknown repository or digest).
	ErrPull = errors.New("image could not be pulled")
	// ErrScan: the image or SBOM was fetched but analysing or matching it
	// failed (including layer downloads and unreadable SBOMs).
	ErrScan = errors.New("scan failed")
)

// Registry holds how to reach one registry host.
type Registry struct {
	Username, Password string // basic auth
	Token              string // bearer token; takes precedence over basic auth
	// Insecure allows plain HTTP and unverified TLS. Loopback hosts
	// (127.0.0.1, localhost) are reached over plain HTTP regardless, as
	// go-containerregistry does.
	Insecure bool
}

// Options configures a Scanner.
type Options struct {
	// Registries maps a registry host (host:port as in image references) to
	// its credentials. Credentials are only ever sent to their own host.
	Registries map[string]Registry

	// LayerCacheDir, when set, keeps Trivy's per-layer analysis on disk
	// there (Trivy's fs cache), so layers shared between images are analysed
	// once. Empty: each scan analyses in memory and keeps nothing.
	LayerCacheDir string

	// MaxImageSize rejects larger images (compressed layers, bytes); 0 = no
	// limit.
	MaxImageSize int64

	// TempDir holds SBOMs while they are re-scanned; empty = os.TempDir().
	TempDir string

	// Timeout bounds one image scan, pull included; 0 = DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout bounds an image scan when Options.Timeout is not set.
const DefaultTimeout = 5 * time.Minute

// userAgent is sent to registries.
const userAgent = "rampart-scanner (trivy/0.74.0)"

// Scanner scans images and SBOMs against the open vulnerability DB. It is
// safe for concurrent use.
type Scanner struct {
	db         *vulndb.DB
	opts       Options
	logger     *slog.Logger
	layerCache cache.Cache // nil: a fresh memory cache per scan
}

// New returns a Scanner reading vulnerabilities from db. The caller keeps
// ownership of db and closes it after the Scanner.
func New(db *vulndb.DB, opts Options, logger *slog.Logger) (*Scanner, error) {
	if db == nil {
		return nil, errors.New("new scanner: no vulnerability DB")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	routeTrivyLogs(logger)
	s := &Scanner{db: db, opts: opts, logger: logger}
	if opts.LayerCacheDir != "" {
		c, err := cache.NewFSCache(opts.LayerCacheDir)
		if err != nil {
			return nil, fmt.Errorf("open layer cache in %s: %w", opts.LayerCacheDir, err)
		}
		s.layerCache = c
	}
	return s, nil
}

// Close releases the layer cache. The vulnerability DB stays open.
func (s *Scanner) Close() error {
	if s.layerCache == nil {
		return nil
	}
	if err := s.layerCache.Close(); err != nil {
		return fmt.Errorf("close layer cache: %w", err)
	}
	return nil
}

// ScanImage pulls ref (host/repo:tag or host/repo@sha256:…) from its registry
// and scans its OS and language packages. The returned error wraps
// ErrReference, ErrPull or ErrScan, or is the caller's context error. A
// registry that does not answer within Options.Timeout is ErrPull.
func (s *Scanner) ScanImage(parent context.Context, ref string) (*Result, error) {
	start := time.Now()
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("scan %q: %w: %w", ref, ErrReference, err)
	}
	host := parsed.Context().RegistryStr()

	ctx, cancel := context.WithTimeout(parent, cmp.Or(s.opts.Timeout, DefaultTimeout))
	defer cancel()
	// go-containerregistry, as Trivy calls it, sends registry requests with
	// a background context; this transport ties them to ctx so a hung
	// registry cannot stall a scan past its deadline.
	ctx = xhttp.WithTransport(ctx, ctxTransport{
		ctx:  ctx,
		base: xhttp.NewTransport(xhttp.Options{Insecure: s.opts.Registries[host].Insecure, UserAgent: userAgent}),
	})
	fail := func(sentinel error, what string, err error) (*Result, error) {
		if perr := parent.Err(); perr != nil {
			return nil, fmt.Errorf("%s %s: %w", what, ref, perr)
		}
		return nil, fmt.Errorf("%s %s: %w: %w", what, ref, sentinel, err)
	}

	imgOpts := ftypes.ImageOptions{
		ImageSources:    ftypes.ImageSources{ftypes.RemoteImageSource},
		RegistryOptions: s.registryOptions(host),
		MaxImageSize:    s.opts.MaxImageSize,
	}
	img, cleanup, err := image.NewContainerImage(ctx, ref, imgOpts)
	if err != nil {
		return fail(ErrPull, "pull", err)
	}
	defer cleanup()

	digest := ""
	if rd := img.RepoDigests(); len(rd) > 0 {
		if d, err := name.NewDigest(rd[0]); err == nil {
			digest = d.DigestStr()
		}
	}

	c, closeCache := s.cacheForScan()
	defer closeCache()
	opt := artifactOption(imageDisabledAnalyzers())
	opt.ImageOption = imgOpts
	art, err := imageartifact.NewArtifact(img, c, opt)
	if err != nil {
		return fail(ErrScan, "prepare", err)
	}
	report, version, err := s.run(ctx, art, c)
	if err != nil {
		return fail(ErrScan, "scan", err)
	}

	res := newResult(report, version)
	if res.SBOM, err = inventorySBOM(ctx, report); err != nil {
		return fail(ErrScan, "scan", err)
	}
	res.Ref, res.Digest, res.Duration = ref, digest, time.Since(start)
	s.logger.Debug("image scanned", "image", ref, "digest", digest, "findings", len(res.Findings),
		"critical", res.Counts.Critical, "high", res.Counts.High, "db_version", version.String(), "duration", res.Duration)
	return res, nil
}

// ScanSBOM matches the packages listed in a CycloneDX (or SPDX) SBOM against
// the DB without pulling anything: the zero-day re-scan of stored SBOMs. The
// result's SBOM is the input, unchanged. Errors wrap ErrScan.
func (s *Scanner) ScanSBOM(ctx context.Context, sbom []byte) (*Result, error) {
	start := time.Now()
	// Trivy's SBOM artifact reads from a file.
	f, err := os.CreateTemp(s.opts.TempDir, "rampart-sbom-*.json")
	if err != nil {
		return nil, fmt.Errorf("scan SBOM: %w: stage SBOM: %w", ErrScan, err)
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(sbom)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("scan SBOM: %w: stage SBOM: %w", ErrScan, werr)
	}

	c, closeCache := s.cacheForScan()
	defer closeCache()
	art, err := sbomartifact.NewArtifact(f.Name(), c, artifactOption(nil))
	if err != nil {
		return nil, fmt.Errorf("scan SBOM: %w: %w", ErrScan, err)
	}
	report, version, err := s.run(ctx, art, c)
	if err != nil {
		return nil, fmt.Errorf("scan SBOM: %w: %w", ErrScan, err)
	}
	res := newResult(report, version)
	res.SBOM, res.Duration = sbom, time.Since(start)
	return res, nil
}

// run is Trivy's own scan pipeline: inspect the artifact into the cache
// (pulling and analysing layers), then apply its layers and detect
// vulnerabilities in OS and language packages. It returns the DB version the
// detection read.
func (s *Scanner) run(ctx context.Context, art artifact.Artifact, c cache.Cache) (types.Report, vulndb.Version, error) {
	backend := s.db.Backend(c)
	report, err := trivyscan.NewService(backend, art).ScanArtifact(ctx, scanOptions)
	return report, backend.Version(), err
}

// scanOptions asks for vulnerabilities in OS and language packages with every
// dependency relationship, as `trivy image --scanners vuln` does. The
// severity source must be given: Trivy's CLI defaults it to "auto" (the
// advisory's vendor, then NVD, then the DB's own), and without it every
// finding comes back UNKNOWN.
var scanOptions = types.ScanOptions{
	PkgTypes:            []string{types.PkgTypeOS, types.PkgTypeLibrary},
	PkgRelationships:    ftypes.Relationships,
	Scanners:            types.Scanners{types.VulnerabilityScanner},
	VulnSeveritySources: []dbtypes.SourceID{"auto"},
}

func artifactOption(disabled []analyzer.Type) artifact.Option {
	return artifact.Option{
		DisabledAnalyzers: disabled,
		NoProgress:        true,
		Offline:           true, // never reach out (e.g. Maven Central for jar metadata)
	}
}

// imageDisabledAnalyzers mirrors `trivy image --scanners vuln`: no lock files
// (an image ships what was built, not its build inputs), no secrets (in
// files or in the image config), IaC or license files, no Dockerfile
// history, no apk command replay, no executable hashing for Rekor, no RPM
// archives.
//
// Two more are off so that concurrent scans are race-free. Trivy keeps one
// instance of each analyzer per process, and NewArtifact calls Init on it,
// which writes its fields while other scans may be reading them: the Python
// .egg archive analyzer (zipped eggs; installed packages are still found
// through their egg-info and dist-info metadata by python-pkg) and the dpkg
// license analyzer (licenses are not scanned). The image-config secret
// analyzer likewise rewrites Trivy's global secret rules on construction.
func imageDisabledAnalyzers() []analyzer.Type {
	var d []analyzer.Type
	d = append(d, analyzer.TypeLockfiles...)
	d = append(d, analyzer.TypeConfigFiles...)
	d = append(d,
		analyzer.TypeApkCommand,
		analyzer.TypeSecret,
		analyzer.TypeImageConfigSecret,
		analyzer.TypeLicenseFile,
		analyzer.TypeDpkgLicense,
		analyzer.TypePythonPkgEgg,
		analyzer.TypeHistoryDockerfile,
		analyzer.TypeExecutable,
		analyzer.TypeRpmArchive,
	)
	return d
}

// registryOptions returns the credentials for host only.
func (s *Scanner) registryOptions(host string) ftypes.RegistryOptions {
	r, ok := s.opts.Registries[host]
	if !ok {
		return ftypes.RegistryOptions{}
	}
	ro := ftypes.RegistryOptions{Insecure: r.Insecure, RegistryToken: r.Token}
	if r.Username != "" || r.Password != "" {
		ro.Credentials = []ftypes.Credential{{Username: r.Username, Password: r.Password}}
	}
	return ro
}

// cacheForScan returns the shared layer cache, or a memory cache that lives
// for one scan.
func (s *Scanner) cacheForScan() (cache.Cache, func()) {
	if s.layerCache != nil {
		return s.layerCache, func() {}
	}
	c := cache.NewMemoryCache()
	return c, func() { _ = c.Close() }
}

// CacheKey is the key a scan result is cached under: the image digest and
// the DB contents it was matched against, so a digest is scanned again only
// when the DB changes. It only uses characters valid in a NATS KV key,
// e.g. "sha256_fea8….db_0e03…".
func CacheKey(digest string, db vulndb.Version) string {
	d := db.Digest
	if len(d) > 32 {
		d = d[:32]
	}
	return strings.Replace(digest, ":", "_", 1) + ".db_" + d
}
