package vulndb

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	trivydb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	bolt "go.etcd.io/bbolt"
)

// ErrAlreadyOpen is returned by Open when this process already has a
// vulnerability DB open from a different cache directory: Trivy's DB handle is
// a package-level variable, so two DBs cannot be open at once.
var ErrAlreadyOpen = errors.New("a different vulnerability DB is already open in this process")

// ErrClosed is returned when a DB is used after its last Close.
var ErrClosed = errors.New("vulnerability DB is closed")

// ErrSchema is returned when metadata.json names a schema version this Trivy
// release cannot read.
var ErrSchema = errors.New("unsupported vulnerability DB schema")

// Version identifies the contents of a vulnerability DB. The scan cache keys
// verdicts on it, so a digest is re-scanned only when the DB changed.
type Version struct {
	Schema    int       // metadata.json Version (2 for this Trivy release)
	UpdatedAt time.Time // metadata.json UpdatedAt
	Digest    string    // sha256 of trivy.db, hex
}

// String is the compact form used as a cache key and in events, e.g.
// "2/2026-08-13T09:52:58Z/sha256:0e03…" (full digest).
func (v Version) String() string {
	return fmt.Sprintf("%d/%s/sha256:%s", v.Schema, v.UpdatedAt.UTC().Format(time.RFC3339), v.Digest)
}

// IsZero reports whether v is the zero Version (no DB).
func (v Version) IsZero() bool { return v.Digest == "" }

// DB is the process-wide handle to the vulnerability DB Trivy reads.
//
// Trivy's detectors read the DB through package-level state, so a DB here does
// not hold a connection object; it owns that global state. A scan holds a
// read lease (Acquire) while it matches packages against the DB, so that
// Reload, which closes and reopens the file after a refresh, never pulls the
// DB out from under it.
type DB struct {
	dir    string
	logger *slog.Logger

	mu      sync.RWMutex // read: a scan is using the DB; write: Reload/Close
	version Version
	closed  bool
}

// process guards the one DB that may be open per process.
var process struct {
	mu   sync.Mutex
	db   *DB
	refs int
}

// Open opens the DB in <cacheDir>/db read-only (no update, no network). If this
// process already has the same directory open, it returns the same *DB and
// counts one more reference; each Open needs its own Close. A different
// directory fails with ErrAlreadyOpen.
func Open(cacheDir string, logger *slog.Logger) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(Dir(cacheDir))
	if err != nil {
		return nil, fmt.Errorf("resolve DB directory: %w", err)
	}

	process.mu.Lock()
	defer process.mu.Unlock()
	if process.db != nil {
		if process.db.dir != dir {
			return nil, fmt.Errorf("open %s (open: %s): %w", dir, process.db.dir, ErrAlreadyOpen)
		}
		process.refs++
		return process.db, nil
	}

	v, err := openGlobal(dir)
	if err != nil {
		return nil, err
	}
	d := &DB{dir: dir, logger: logger.With("db_dir", dir), version: v}
	process.db, process.refs = d, 1
	d.logger.Info("vulnerability DB opened", "db_version", v.String())
	return d, nil
}

// openGlobal reads the metadata, checks the schema, hashes trivy.db and opens it
// as Trivy's global DB.
func openGlobal(dir string) (Version, error) {
	meta, err := metadata.NewClient(dir).Get()
	if err != nil {
		return Version{}, fmt.Errorf("read DB metadata in %s: %w", dir, err)
	}
	if meta.Version != trivydb.SchemaVersion {
		return Version{}, fmt.Errorf("DB in %s has schema %d, want %d: %w", dir, meta.Version, trivydb.SchemaVersion, ErrSchema)
	}
	digest, err := fileDigest(trivydb.Path(dir))
	if err != nil {
		return Version{}, fmt.Errorf("hash DB: %w", err)
	}
	// Read-only: the scanner never writes to the DB, and a read-only open takes
	// a shared lock so other processes may read the same file.
	if err := trivydb.Init(dir, trivydb.WithBoltOptions(&bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})); err != nil {
		return Version{}, fmt.Errorf("open DB in %s: %w", dir, err)
	}
	return Version{Schema: meta.Version, UpdatedAt: meta.UpdatedAt.UTC(), Digest: digest}, nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Version reports the version of the DB as last opened or reloaded.
func (d *DB) Version() Version {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.version
}

// Acquire takes a read lease on the DB and returns the version the holder
// sees. The caller must call release when done reading; Reload waits for
// outstanding leases, so hold one only while matching (milliseconds), not
// while pulling images.
func (d *DB) Acquire() (v Version, release func(), err error) {
	d.mu.RLock()
	if d.closed {
		d.mu.RUnlock()
		return Version{}, func() {}, ErrClosed
	}
	return d.version, sync.OnceFunc(d.mu.RUnlock), nil
}

// Reload closes and reopens the DB after its files were replaced in place (a
// refresh), and reports the version before and after. It waits for running
// scans to release their leases. If reopening fails the DB is left closed and
// scans fail with ErrClosed until a later Reload succeeds.
func (d *DB) Reload() (before, after Version, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	before = d.version
	if err := trivydb.Close(); err != nil {
		return before, Version{}, fmt.Errorf("close DB for reload: %w", err)
	}
	v, err := openGlobal(d.dir)
	if err != nil {
		d.closed = true
		return before, Version{}, fmt.Errorf("reload DB: %w", err)
	}
	d.version, d.closed = v, false
	if v != before {
		d.logger.Info("vulnerability DB changed", "db_version_before", before.String(), "db_version", v.String())
	}
	return before, v, nil
}

// Close drops one reference; the last Close closes Trivy's global DB so a
// different directory can be opened.
func (d *DB) Close() error {
	process.mu.Lock()
	defer process.mu.Unlock()
	if process.db != d {
		return nil
	}
	process.refs--
	if process.refs > 0 {
		return nil
	}
	process.db = nil

	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if err := trivydb.Close(); err != nil {
		return fmt.Errorf("close vulnerability DB: %w", err)
	}
	return nil
}
