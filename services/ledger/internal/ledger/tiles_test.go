package ledger

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

// httpTiles is a generic C2SP tlog-tiles client: it knows the URL layout
// and nothing of Rampart's ledger code.
type httpTiles struct {
	t    *testing.T
	base string
}

func (h httpTiles) get(path string) ([]byte, int) {
	h.t.Helper()
	resp, err := http.Get(h.base + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return b, resp.StatusCode
}

// c2spPath turns tlog's tile path (tile/8/L/N, tile/8/data/N) into the C2SP
// one (tile/L/N, tile/entries/N).
func c2spPath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), "tile/8/")
	p = strings.Replace(p, "data/", "entries/", 1)
	return "tile/" + p
}

func (h httpTiles) Height() int { return 8 }

func (h httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, status := h.get(c2spPath(t))
		if status != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %d %s", c2spPath(t), status, b)
		}
		out[i] = b
	}
	return out, nil
}

func (h httpTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// TestTiles audits the ledger as a tile-based transparency log with
// golang.org/x/mod/sumdb/tlog and note: the checkpoint verifies with the
// ledger's key, every hash tile is checked against its signed root by
// tlog.TileHashReader, every entry in the entry bundles hashes to the leaf
// the root covers, and an inclusion proof built from the tiles checks.
func TestTiles(t *testing.T) {
	const n = 600 // two full tiles and a partial one
	in, _, s := recordEvents(t, n, "tile-%d")
	natstest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if _, size := in.l.LatestCheckpoint(); size != n {
			return fmt.Errorf("checkpoint at size %d", size)
		}
		return nil
	})
	h := auditTiles(t, in.l, s, n, func(i int64) string { return fmt.Sprintf("tile-%d", i) })

	for _, tt := range []struct {
		path   string
		status int
	}{
		{"tile/0/000", http.StatusOK},
		{"tile/0/002.p/88", http.StatusOK},
		{"tile/1/000.p/2", http.StatusOK},
		{"tile/entries/002.p/88", http.StatusOK},
		{"tile/0/002", http.StatusNotFound},       // not full yet
		{"tile/0/002.p/89", http.StatusNotFound},  // beyond the tree
		{"tile/entries/003", http.StatusNotFound}, // beyond the tree
		{"tile/1/000", http.StatusNotFound},
		{"tile/8/0/000", http.StatusBadRequest}, // the Go sumdb layout, not C2SP
		{"tile/0/2", http.StatusBadRequest},
		{"tile/0/000.p/256", http.StatusBadRequest},
		{"tile/0/x", http.StatusBadRequest},
		{"tiles/0/000", http.StatusNotFound},
	} {
		if b, status := h.get(tt.path); status != tt.status {
			t.Errorf("GET %s = %d %q, want %d", tt.path, status, b, tt.status)
		}
	}
}

// auditTiles audits ledger l of n entries through its C2SP tlog-tiles
// endpoint with golang.org/x/mod/sumdb only: the checkpoint opens with the
// key, every leaf hash is read through tiles verified against its root,
// every entry bundle hashes to those leaves (entry i records event
// eventID(i)), and an inclusion proof built from the tiles checks.
func auditTiles(t *testing.T, l *Ledger, s *checkpoint.Signer, n int64, eventID func(int64) string) httpTiles {
	t.Helper()
	srv := httptest.NewServer(l.Handler())
	t.Cleanup(srv.Close)
	h := httpTiles{t: t, base: srv.URL + "/ledger/tlog/"}

	signed, status := h.get("checkpoint")
	if status != http.StatusOK {
		t.Fatalf("GET checkpoint = %d %s", status, signed)
	}
	v, err := note.NewVerifier(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		t.Fatalf("opening the checkpoint: %v", err)
	}
	lines := strings.Split(cp.Text, "\n")
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size != n {
		t.Fatalf("checkpoint size %q, want %d", lines[1], n)
	}
	rawRoot, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		t.Fatal(err)
	}
	var root tlog.Hash
	copy(root[:], rawRoot)

	thr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, h)
	indexes := make([]int64, size)
	for i := range indexes {
		indexes[i] = tlog.StoredHashIndex(0, int64(i))
	}
	leaves, err := thr.ReadHashes(indexes)
	if err != nil {
		t.Fatalf("reading the leaf hashes through verified tiles: %v", err)
	}
	for b := int64(0); b*256 < size; b++ {
		tile := tlog.Tile{H: 8, L: -1, N: b, W: int(min(256, size-b*256))}
		bundle, status := h.get(c2spPath(tile))
		if status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", c2spPath(tile), status, bundle)
		}
		for i := b * 256; i < b*256+int64(tile.W); i++ {
			if len(bundle) < 2 {
				t.Fatalf("bundle %d ends before entry %d", b, i)
			}
			l := int(binary.BigEndian.Uint16(bundle))
			e := bundle[2 : 2+l]
			bundle = bundle[2+l:]
			if tlog.RecordHash(e) != leaves[i] {
				t.Fatalf("entry %d in bundle %d does not hash to its leaf", i, b)
			}
			if !bytes.Contains(e, fmt.Appendf(nil, `"eventId":%q`, eventID(i))) {
				t.Fatalf("entry %d is %s", i, e)
			}
		}
		if len(bundle) != 0 {
			t.Fatalf("bundle %d has %d bytes after its entries", b, len(bundle))
		}
	}
	p, err := tlog.ProveRecord(size, 300, thr)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckRecord(p, size, root, 300, leaves[300]); err != nil {
		t.Fatalf("inclusion proof from tiles: %v", err)
	}

	return h
}
