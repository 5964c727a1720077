package report

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the JetStream key-value bucket that holds every rollback report,
// keyed by rollout id (see Key).
const Bucket = "RAMPART_REPORTS"

// ErrNotFound is returned when no report is stored for a rollout.
var ErrNotFound = errors.New("no rollback report")

// Rendered is a report in both formats.
type Rendered struct {
	RolloutID string
	JSON      []byte
	Markdown  []byte
}

// Render renders r in both formats.
func Render(r *Report) (*Rendered, error) {
	js, err := r.JSON()
	if err != nil {
		return nil, err
	}
	return &Rendered{RolloutID: r.RolloutID, JSON: js, Markdown: r.Markdown()}, nil
}

// stored is the bucket's value: both renderings, as the exact bytes the
// files and the CLI show (strings rather than embedded JSON, because
// encoding/json would re-format an embedded document).
type stored struct {
	RolloutID string `json:"rolloutId"`
	JSON      string `json:"json"`
	Markdown  string `json:"markdown"`
}

// Store keeps reports in the bucket and, when dir is set, as files
// <dir>/<rollout>.json and <dir>/<rollout>.md.
type Store struct {
	kv  jetstream.KeyValue
	dir string
}

// NewStore stores into kv (see KVConfig) and, when dir is not "", into dir.
func NewStore(kv jetstream.KeyValue, dir string) *Store { return &Store{kv: kv, dir: dir} }

// KVConfig is the bucket's configuration: one value per rollout, with a short
// history so that a rebuilt report does not hide the one that paged.
func KVConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Rampart rollback reports by rollout id (JSON and Markdown)",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
}

// Put stores rd in the bucket and, when configured, as files.
func (s *Store) Put(ctx context.Context, rd *Rendered) error {
	val, err := json.Marshal(stored{RolloutID: rd.RolloutID, JSON: string(rd.JSON), Markdown: string(rd.Markdown)})
	if err != nil {
		return fmt.Errorf("encode report %s for %s: %w", rd.RolloutID, Bucket, err)
	}
	if _, err := s.kv.Put(ctx, Key(rd.RolloutID), val); err != nil {
		return fmt.Errorf("store report %s in %s: %w", rd.RolloutID, Bucket, err)
	}
	if s.dir == "" {
		return nil
	}
	base := filepath.Join(s.dir, FileName(rd.RolloutID))
	if err := writeFile(base+".json", rd.JSON); err != nil {
		return err
	}
	return writeFile(base+".md", rd.Markdown)
}

// Get returns the stored report of a rollout, or ErrNotFound.
func (s *Store) Get(ctx context.Context, rolloutID string) (*Rendered, error) {
	return get(ctx, s.kv, rolloutID)
}

func get(ctx context.Context, kv jetstream.KeyValue, rolloutID string) (*Rendered, error) {
	e, err := kv.Get(ctx, Key(rolloutID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w for rollout %s in %s", ErrNotFound, rolloutID, Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("read report %s from %s: %w", rolloutID, Bucket, err)
	}
	var st stored
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, fmt.Errorf("decode report %s from %s: %w", rolloutID, Bucket, err)
	}
	return &Rendered{RolloutID: st.RolloutID, JSON: []byte(st.JSON), Markdown: []byte(st.Markdown)}, nil
}

// validKey is what JetStream accepts as a key-value key.
var validKey = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

// encodedPrefix starts the key of a rollout id that is not a valid key.
const encodedPrefix = "b64."

// Key is the bucket key of a rollout: the id itself when JetStream accepts
// it as a key, otherwise "b64." and the id in unpadded base64url.
func Key(rolloutID string) string {
	if validKey.MatchString(rolloutID) && !strings.HasPrefix(rolloutID, ".") && !strings.HasSuffix(rolloutID, ".") &&
		!strings.Contains(rolloutID, "..") && !strings.HasPrefix(rolloutID, encodedPrefix) {
		return rolloutID
	}
	return encodedPrefix + base64.RawURLEncoding.EncodeToString([]byte(rolloutID))
}

// FileName is the base name (without extension) of a rollout's report
// files: the id with every character other than letters, digits, '-', '_'
// and '.' replaced by '_', so an id can never name a path outside dir.
func FileName(rolloutID string) string {
	name := strings.Map(func(r rune) rune {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return r
		}
		return '_'
	}, rolloutID)
	if name == "" || strings.HasPrefix(name, ".") {
		name = "_" + name
	}
	return name
}

// writeFile replaces path with data atomically: readers see the old file or
// the new one, never a part.
func writeFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".report-*")
	if err != nil {
		return fmt.Errorf("write report file: %w", err)
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write report file %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write report file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write report file %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write report file %s: %w", path, err)
	}
	return nil
}
