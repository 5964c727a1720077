// Package vulndb builds and opens the Trivy vulnerability database the scanner
// matches packages against.
//
// Production points the scanner at Trivy's normal DB; tests and the demo build a
// small fixture DB from the YAML advisories embedded here (Trivy's
// bolt-fixtures format) so scans run offline and give known answers.
//
// Trivy keeps its DB handle in a package-level variable, so there is at most
// one open DB per process: see DB.
package vulndb

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	fixtures "github.com/aquasecurity/bolt-fixtures"
	trivydb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
)

//go:embed fixtures/*.yaml
var embedded embed.FS

// Fixtures returns the advisories shipped with the scanner: an Alpine 3.22
// openssl CVE (Critical), a busybox CVE (Medium), a golang.org/x/net CVE (High)
// and an unfixed Go advisory.
func Fixtures() fs.FS {
	sub, err := fs.Sub(embedded, "fixtures")
	if err != nil {
		// fs.Sub only fails on an invalid path, and "fixtures" is a constant.
		panic(err)
	}
	return sub
}

// Dir is where Trivy expects its DB inside a cache directory (<cache>/db), the
// same layout as Trivy's own pkg/db.Dir.
func Dir(cacheDir string) string {
	return filepath.Join(cacheDir, "db")
}

// Build writes a fixture DB into <cacheDir>/db: trivy.db loaded from every
// *.yaml file at the root of each source (in order; later sources add to or
// overwrite earlier ones), and metadata.json with schema version 2 and the
// given UpdatedAt. With no sources it loads Fixtures().
//
// An existing DB in that directory is replaced by unlinking it first, so a
// process that has the old file open keeps reading it (the mapping survives
// the unlink) until it calls DB.Reload.
func Build(cacheDir string, updatedAt time.Time, sources ...fs.FS) error {
	if len(sources) == 0 {
		sources = []fs.FS{Fixtures()}
	}
	dbDir := Dir(cacheDir)
	if err := os.MkdirAll(dbDir, 0o700); err != nil {
		return fmt.Errorf("create DB directory: %w", err)
	}

	// bolt-fixtures reads files by path, so the sources (often embedded) are
	// copied to a scratch directory first.
	scratch, err := os.MkdirTemp(cacheDir, "fixtures-")
	if err != nil {
		return fmt.Errorf("create scratch directory: %w", err)
	}
	defer os.RemoveAll(scratch)

	var files []string
	for i, src := range sources {
		names, err := fs.Glob(src, "*.yaml")
		if err != nil {
			return fmt.Errorf("list fixtures of source %d: %w", i, err)
		}
		for _, name := range names {
			b, err := fs.ReadFile(src, name)
			if err != nil {
				return fmt.Errorf("read fixture %s: %w", name, err)
			}
			path := filepath.Join(scratch, fmt.Sprintf("%02d-%s", i, name))
			if err := os.WriteFile(path, b, 0o600); err != nil {
				return fmt.Errorf("copy fixture %s: %w", name, err)
			}
			files = append(files, path)
		}
	}
	if len(files) == 0 {
		return errors.New("build fixture DB: no *.yaml fixtures in the sources")
	}

	dbPath := trivydb.Path(dbDir)
	if err := os.Remove(dbPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove old DB: %w", err)
	}
	loader, err := fixtures.New(dbPath, files)
	if err != nil {
		return fmt.Errorf("create DB %s: %w", dbPath, err)
	}
	loadErr := loader.Load()
	if err := loader.Close(); err != nil && loadErr == nil {
		loadErr = err
	}
	if loadErr != nil {
		return fmt.Errorf("load fixtures into %s: %w", dbPath, loadErr)
	}

	meta := metadata.Metadata{
		Version:      trivydb.SchemaVersion,
		UpdatedAt:    updatedAt.UTC(),
		NextUpdate:   updatedAt.UTC().Add(24 * time.Hour),
		DownloadedAt: updatedAt.UTC(),
	}
	if err := metadata.NewClient(dbDir).Update(meta); err != nil {
		return fmt.Errorf("write DB metadata: %w", err)
	}
	return nil
}
