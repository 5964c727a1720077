package scan_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rampartci/rampart/pkg/policy/finding"
	"github.com/rampartci/rampart/services/scanner/internal/scan"
	"github.com/rampartci/rampart/services/scanner/internal/vulndb"
	"github.com/rampartci/rampart/services/scanner/sampleimage"
)

// The vulnerability DB is process-global, so the whole test binary shares one
// fixture DB and one registry, set up in TestMain.
var env struct {
	cacheDir   string
	db         *vulndb.DB
	reg        *sampleimage.Registry
	vulnerable sampleimage.Pushed
	clean      sampleimage.Pushed
	opts       scan.Options
}

const (
	regUser = "ci"
	regPass = "s3cret"
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := run(m) // its defers stop the registry and close the DB first
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func run(m *testing.M) int {
	cache, err := os.MkdirTemp("", "scan-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(cache)
	env.cacheDir = cache
	if err := vulndb.Build(cache, time.Date(2026, 8, 13, 0, 0, 0, 0, time.UTC)); err != nil {
		fmt.Fprintln(os.Stderr, "build fixture DB:", err)
		return 1
	}
	env.db, err = vulndb.Open(cache, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open fixture DB:", err)
		return 1
	}
	defer env.db.Close()

	env.reg = sampleimage.StartRegistry(sampleimage.RegistryOptions{Username: regUser, Password: regPass})
	defer env.reg.Close()
	env.opts = scan.Options{Registries: map[string]scan.Registry{
		env.reg.Host: {Username: regUser, Password: regPass},
	}}
	// The first Scanner replaces Trivy's buffering default logger, which is
	// not safe for concurrent use; do it before any test calls Trivy directly.
	first, err := scan.New(env.db, env.opts, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	first.Close()

	ctx := context.Background()
	if env.vulnerable, err = env.reg.BuildAndPush(ctx, "team/app", "vulnerable", sampleimage.VulnerableAlpine()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if env.clean, err = env.reg.BuildAndPush(ctx, "team/app", "clean", sampleimage.CleanAlpine()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func newScanner(tb testing.TB, opts scan.Options) *scan.Scanner {
	tb.Helper()
	s, err := scan.New(env.db, opts, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("scan.New: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func findingIDs(fs []finding.Finding) []string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.ID+" "+f.Package)
	}
	return ids
}

func TestScanVulnerableImage(t *testing.T) {
	s := newScanner(t, env.opts)
	res, err := s.ScanImage(context.Background(), env.vulnerable.Ref())
	if err != nil {
		t.Fatalf("ScanImage: %v", err)
	}

	if res.Digest != env.vulnerable.Digest {
		t.Errorf("Digest = %q, want %q", res.Digest, env.vulnerable.Digest)
	}
	if res.OS != "alpine 3.22.1" {
		t.Errorf("OS = %q", res.OS)
	}
	if res.DBVersion != env.db.Version() {
		t.Errorf("DBVersion = %v, want %v", res.DBVersion, env.db.Version())
	}

	// The Critical openssl CVE comes first, on both packages built from openssl.
	top := res.Top(2)
	for _, f := range top {
		if f.ID != sampleimage.CriticalOpenSSL || f.Severity != finding.Critical ||
			f.InstalledVersion != "3.5.1-r0" || f.FixedVersion != "3.5.4-r0" {
			t.Errorf("top finding = %+v, want %s Critical 3.5.1-r0 -> 3.5.4-r0", f, sampleimage.CriticalOpenSSL)
		}
	}
	if got := []string{top[0].Package, top[1].Package}; !slices.Equal(got, []string{"libcrypto3", "libssl3"}) {
		t.Errorf("critical packages = %v, want libcrypto3, libssl3", got)
	}

	// The Go module in the binary is found through its build info.
	var xnet *finding.Finding
	for i, f := range res.Findings {
		if f.ID == sampleimage.HighXNet {
			xnet = &res.Findings[i]
		}
	}
	if xnet == nil {
		t.Fatalf("no %s in %v", sampleimage.HighXNet, findingIDs(res.Findings))
	}
	if xnet.Package != "golang.org/x/net" || xnet.InstalledVersion != "v0.15.0" || xnet.Severity != finding.High ||
		xnet.Target != "usr/local/bin/app" || xnet.PURL != "pkg:golang/golang.org/x/net@v0.15.0" {
		t.Errorf("x/net finding = %+v", *xnet)
	}

	want := finding.Counts{Critical: 2, High: 1, Medium: 3, Low: 2}
	if res.Counts != want {
		t.Errorf("Counts = %+v, want %+v; findings %v", res.Counts, want, findingIDs(res.Findings))
	}

	var bom struct {
		BOMFormat  string `json:"bomFormat"`
		Components []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"components"`
		Vulnerabilities []any `json:"vulnerabilities"`
	}
	if err := json.Unmarshal(res.SBOM, &bom); err != nil {
		t.Fatalf("SBOM is not JSON: %v", err)
	}
	if bom.BOMFormat != "CycloneDX" || len(bom.Components) < 16 || len(bom.Vulnerabilities) != 0 {
		t.Errorf("SBOM: format %q, %d components, %d vulnerabilities", bom.BOMFormat, len(bom.Components), len(bom.Vulnerabilities))
	}
}

func TestScanCleanImage(t *testing.T) {
	s := newScanner(t, env.opts)
	res, err := s.ScanImage(context.Background(), env.clean.Ref())
	if err != nil {
		t.Fatalf("ScanImage: %v", err)
	}
	if len(res.Findings) != 0 || res.Counts.Total() != 0 {
		t.Errorf("clean image findings: %v", findingIDs(res.Findings))
	}
	// 16 apk packages, the Go binary's main module, stdlib and two deps.
	if res.Packages < 16 {
		t.Errorf("Packages = %d, want at least the 16 apk packages", res.Packages)
	}
}

func TestScanByTagResolvesDigest(t *testing.T) {
	s := newScanner(t, env.opts)
	res, err := s.ScanImage(context.Background(), env.vulnerable.TagRef())
	if err != nil {
		t.Fatalf("ScanImage: %v", err)
	}
	if res.Digest != env.vulnerable.Digest {
		t.Errorf("Digest = %q, want %q", res.Digest, env.vulnerable.Digest)
	}
}

func TestScanImageIndex(t *testing.T) {
	img, err := sampleimage.VulnerableAlpine().Build()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := env.reg.PushIndex(context.Background(), "team/multi", "v1", img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := newScanner(t, env.opts).ScanImage(context.Background(), idx.Ref())
	if err != nil {
		t.Fatalf("ScanImage(index): %v", err)
	}
	// The linux/amd64 image of the index is scanned; the digest stays the
	// index's, which is what the registry notified.
	if res.Digest != idx.Digest || res.Counts.Critical != 2 {
		t.Errorf("index scan: digest %s (want %s), counts %+v", res.Digest, idx.Digest, res.Counts)
	}
}

func TestScanErrors(t *testing.T) {
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadHost := l.Addr().String()
	l.Close()

	missingDigest := "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name    string
		opts    scan.Options
		ref     string
		wantErr error
	}{
		{"bad reference", env.opts, "Not A Reference!", scan.ErrReference},
		{"unknown repository", env.opts, env.reg.Host + "/team/nope@" + env.vulnerable.Digest, scan.ErrPull},
		{"unknown digest", env.opts, env.vulnerable.Repository + "@" + missingDigest, scan.ErrPull},
		{"no credentials", scan.Options{}, env.vulnerable.Ref(), scan.ErrPull},
		{"wrong password", scan.Options{Registries: map[string]scan.Registry{env.reg.Host: {Username: regUser, Password: "wrong"}}}, env.vulnerable.Ref(), scan.ErrPull},
		{"registry down", env.opts, deadHost + "/team/app@" + env.vulnerable.Digest, scan.ErrPull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScanner(t, tt.opts)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := s.ScanImage(ctx, tt.ref)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ScanImage(%q) err = %v, want %v", tt.ref, err, tt.wantErr)
			}
			if res != nil {
				t.Errorf("got a result with the error: %+v", res)
			}
		})
	}
}

func TestScanSBOMFindsTheSameCVEs(t *testing.T) {
	s := newScanner(t, env.opts)
	ctx := context.Background()
	img, err := s.ScanImage(ctx, env.vulnerable.Ref())
	if err != nil {
		t.Fatalf("ScanImage: %v", err)
	}
	fromSBOM, err := s.ScanSBOM(ctx, img.SBOM)
	if err != nil {
		t.Fatalf("ScanSBOM: %v", err)
	}
	key := func(fs []finding.Finding) []string {
		var ks []string
		for _, f := range fs {
			ks = append(ks, fmt.Sprintf("%s %s %s %s %s", f.ID, f.Package, f.InstalledVersion, f.FixedVersion, f.Severity))
		}
		slices.Sort(ks)
		return ks
	}
	if got, want := key(fromSBOM.Findings), key(img.Findings); !slices.Equal(got, want) {
		t.Errorf("SBOM re-scan findings:\n%v\nimage scan findings:\n%v", got, want)
	}
	if fromSBOM.Counts != img.Counts {
		t.Errorf("SBOM counts %+v, image counts %+v", fromSBOM.Counts, img.Counts)
	}
}

func TestScanSBOMRejectsGarbage(t *testing.T) {
	s := newScanner(t, env.opts)
	if _, err := s.ScanSBOM(context.Background(), []byte("not an sbom")); !errors.Is(err, scan.ErrScan) {
		t.Errorf("err = %v, want ErrScan", err)
	}
}

func TestScanWithLayerCache(t *testing.T) {
	opts := env.opts
	opts.LayerCacheDir = t.TempDir()
	s := newScanner(t, opts)
	for i := range 2 {
		res, err := s.ScanImage(context.Background(), env.vulnerable.Ref())
		if err != nil {
			t.Fatalf("scan %d: %v", i, err)
		}
		if res.Counts.Critical != 2 {
			t.Errorf("scan %d: Counts = %+v", i, res.Counts)
		}
	}
}
