package vulndb_test

import (
	"errors"
	"testing"
	"testing/fstest"
	"time"

	trivydb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"

	"github.com/rampartci/rampart/services/scanner/internal/vulndb"
)

var updatedAt = time.Date(2026, 8, 13, 9, 52, 58, 0, time.UTC)

// The DB is process-global, so these tests run sequentially and each closes
// what it opens.

func TestBuildAndOpen(t *testing.T) {
	cache := t.TempDir()
	if err := vulndb.Build(cache, updatedAt); err != nil {
		t.Fatalf("Build: %v", err)
	}

	meta, err := metadata.NewClient(vulndb.Dir(cache)).Get()
	if err != nil {
		t.Fatalf("read metadata: %v", err)
	}
	if meta.Version != 2 || !meta.UpdatedAt.Equal(updatedAt) {
		t.Errorf("metadata = %+v, want Version 2 and UpdatedAt %v", meta, updatedAt)
	}

	db, err := vulndb.Open(cache, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })

	v := db.Version()
	if v.Schema != 2 || !v.UpdatedAt.Equal(updatedAt) || len(v.Digest) != 64 {
		t.Errorf("Version() = %+v", v)
	}

	// The advisories are readable through Trivy's own DB API, keyed the way
	// Trivy's detectors look them up.
	advs, err := trivydb.Config{}.GetAdvisories("alpine 3.22", "openssl")
	if err != nil {
		t.Fatalf("GetAdvisories: %v", err)
	}
	found := false
	for _, a := range advs {
		if a.VulnerabilityID == "CVE-2025-9230" && a.FixedVersion == "3.5.4-r0" {
			found = true
		}
	}
	if !found {
		t.Errorf("alpine 3.22/openssl advisories = %+v, want CVE-2025-9230 fixed in 3.5.4-r0", advs)
	}
	vuln, err := trivydb.Config{}.GetVulnerability("CVE-2025-9230")
	if err != nil {
		t.Fatalf("GetVulnerability: %v", err)
	}
	if vuln.Severity != "CRITICAL" {
		t.Errorf("CVE-2025-9230 severity = %q, want CRITICAL", vuln.Severity)
	}
	goAdvs, err := trivydb.Config{}.GetAdvisories("go::GitHub Security Advisory Go", "golang.org/x/net")
	if err != nil || len(goAdvs) != 1 || goAdvs[0].VulnerabilityID != "CVE-2023-44487" {
		t.Errorf("golang.org/x/net advisories = %+v, %v", goAdvs, err)
	}
}

func TestOpenIsProcessGlobal(t *testing.T) {
	cacheA, cacheB := t.TempDir(), t.TempDir()
	for _, c := range []string{cacheA, cacheB} {
		if err := vulndb.Build(c, updatedAt); err != nil {
			t.Fatalf("Build: %v", err)
		}
	}

	a1, err := vulndb.Open(cacheA, nil)
	if err != nil {
		t.Fatalf("Open A: %v", err)
	}
	a2, err := vulndb.Open(cacheA, nil)
	if err != nil {
		t.Fatalf("second Open A: %v", err)
	}
	if a1 != a2 {
		t.Error("opening the same directory twice gave two handles")
	}
	if _, err := vulndb.Open(cacheB, nil); !errors.Is(err, vulndb.ErrAlreadyOpen) {
		t.Fatalf("Open B while A is open: err = %v, want ErrAlreadyOpen", err)
	}

	// One Close per Open: after the first the DB stays usable.
	if err := a1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, release, err := a2.Acquire(); err != nil {
		t.Fatalf("Acquire after one of two Closes: %v", err)
	} else {
		release()
	}
	if err := a2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a2.Acquire(); !errors.Is(err, vulndb.ErrClosed) {
		t.Errorf("Acquire after last Close: err = %v, want ErrClosed", err)
	}

	b, err := vulndb.Open(cacheB, nil)
	if err != nil {
		t.Fatalf("Open B after A closed: %v", err)
	}
	_ = b.Close()
}

func TestReloadSeesNewAdvisories(t *testing.T) {
	cache := t.TempDir()
	if err := vulndb.Build(cache, updatedAt); err != nil {
		t.Fatal(err)
	}
	db, err := vulndb.Open(cache, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })

	// A zero-day: the refreshed DB adds an advisory for musl.
	extra := fstest.MapFS{"zz-zero-day.yaml": {Data: []byte(`
- bucket: alpine 3.22
  pairs:
    - bucket: musl
      pairs:
        - key: CVE-2026-0001
          value:
            FixedVersion: 1.2.5-r99
- bucket: vulnerability
  pairs:
    - key: CVE-2026-0001
      value:
        Title: "musl: fixture zero-day"
        Severity: CRITICAL
`)}}
	if err := vulndb.Build(cache, updatedAt.Add(time.Hour), vulndb.Fixtures(), extra); err != nil {
		t.Fatal(err)
	}

	// Until Reload the process still sees the old DB.
	if advs, _ := (trivydb.Config{}).GetAdvisories("alpine 3.22", "musl"); len(advs) != 0 {
		t.Fatalf("new advisory visible before Reload: %+v", advs)
	}

	before, after, err := db.Reload()
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if before == after || before.Digest == after.Digest {
		t.Errorf("version unchanged by Reload: %v", after)
	}
	if got := db.Version(); got != after {
		t.Errorf("Version() = %v, want %v", got, after)
	}
	advs, err := trivydb.Config{}.GetAdvisories("alpine 3.22", "musl")
	if err != nil || len(advs) != 1 {
		t.Errorf("musl advisories after Reload = %+v, %v", advs, err)
	}
}

func TestOpenRejectsWrongSchema(t *testing.T) {
	cache := t.TempDir()
	if err := vulndb.Build(cache, updatedAt); err != nil {
		t.Fatal(err)
	}
	if err := metadata.NewClient(vulndb.Dir(cache)).Update(metadata.Metadata{Version: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := vulndb.Open(cache, nil); !errors.Is(err, vulndb.ErrSchema) {
		t.Errorf("Open with schema 1: err = %v, want ErrSchema", err)
	}
}

func TestOpenMissingDB(t *testing.T) {
	if _, err := vulndb.Open(t.TempDir(), nil); err == nil {
		t.Error("Open of an empty cache succeeded")
	}
}
