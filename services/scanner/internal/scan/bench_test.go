package scan_test

import (
	"context"
	"testing"
	"time"

	trivydb "github.com/aquasecurity/trivy-db/pkg/db"
	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy/pkg/cache"
	"github.com/aquasecurity/trivy/pkg/fanal/analyzer"
	"github.com/aquasecurity/trivy/pkg/fanal/applier"
	"github.com/aquasecurity/trivy/pkg/fanal/artifact"
	imageartifact "github.com/aquasecurity/trivy/pkg/fanal/artifact/image"
	"github.com/aquasecurity/trivy/pkg/fanal/image"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
	trivyscan "github.com/aquasecurity/trivy/pkg/scan"
	"github.com/aquasecurity/trivy/pkg/scan/langpkg"
	"github.com/aquasecurity/trivy/pkg/scan/local"
	"github.com/aquasecurity/trivy/pkg/scan/ospkg"
	"github.com/aquasecurity/trivy/pkg/types"
	"github.com/aquasecurity/trivy/pkg/vulnerability"
)

// directScan is the bare Trivy library call the service is measured
// against: the same pull, analyzers and detection, but no result
// conversion and no SBOM.
func directScan(ctx context.Context, ref string) (int, error) {
	imgOpts := ftypes.ImageOptions{
		ImageSources: ftypes.ImageSources{ftypes.RemoteImageSource},
		RegistryOptions: ftypes.RegistryOptions{
			Credentials: []ftypes.Credential{{Username: regUser, Password: regPass}},
		},
	}
	img, cleanup, err := image.NewContainerImage(ctx, ref, imgOpts)
	if err != nil {
		return 0, err
	}
	defer cleanup()
	c := cache.NewMemoryCache()
	defer c.Close()
	disabled := append(append([]analyzer.Type{}, analyzer.TypeLockfiles...), analyzer.TypeConfigFiles...)
	disabled = append(disabled, analyzer.TypeApkCommand, analyzer.TypeSecret, analyzer.TypeImageConfigSecret,
		analyzer.TypeLicenseFile, analyzer.TypeDpkgLicense, analyzer.TypePythonPkgEgg,
		analyzer.TypeHistoryDockerfile, analyzer.TypeExecutable, analyzer.TypeRpmArchive)
	art, err := imageartifact.NewArtifact(img, c, artifact.Option{
		DisabledAnalyzers: disabled, NoProgress: true, Offline: true, ImageOption: imgOpts,
	})
	if err != nil {
		return 0, err
	}
	svc := trivyscan.NewService(local.NewService(applier.NewApplier(c), ospkg.NewScanner(), langpkg.NewScanner(),
		vulnerability.NewClient(trivydb.Config{})), art)
	report, err := svc.ScanArtifact(ctx, types.ScanOptions{
		PkgTypes:            []string{types.PkgTypeOS, types.PkgTypeLibrary},
		PkgRelationships:    ftypes.Relationships,
		Scanners:            types.Scanners{types.VulnerabilityScanner},
		VulnSeveritySources: []dbtypes.SourceID{"auto"},
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range report.Results {
		n += len(r.Vulnerabilities)
	}
	return n, nil
}

func TestDirectScanAgreesWithService(t *testing.T) {
	n, err := directScan(context.Background(), env.vulnerable.Ref())
	if err != nil {
		t.Fatal(err)
	}
	res, err := newScanner(t, env.opts).ScanImage(context.Background(), env.vulnerable.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if n != len(res.Findings) {
		t.Errorf("direct Trivy call found %d vulnerabilities, the service %d", n, len(res.Findings))
	}
}

// BenchmarkScanImage alternates a scan through the service and a direct
// Trivy library call on the same image and reports both latencies and their
// ratio (service / direct).
func BenchmarkScanImage(b *testing.B) {
	ctx := context.Background()
	s := newScanner(b, env.opts)
	ref := env.vulnerable.Ref()
	var service, direct time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := s.ScanImage(ctx, ref); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := directScan(ctx, ref); err != nil {
			b.Fatal(err)
		}
		service += t1.Sub(t0)
		direct += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(service.Microseconds())/n, "service-µs/scan")
	b.ReportMetric(float64(direct.Microseconds())/n, "direct-µs/scan")
	b.ReportMetric(float64(service)/float64(direct), "ratio")
}

// BenchmarkScanSBOM measures the zero-day re-scan: matching a stored SBOM
// against the DB without pulling the image.
func BenchmarkScanSBOM(b *testing.B) {
	ctx := context.Background()
	s := newScanner(b, env.opts)
	res, err := s.ScanImage(ctx, env.vulnerable.Ref())
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for b.Loop() {
		if _, err := s.ScanSBOM(ctx, res.SBOM); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sboms/s")
}
