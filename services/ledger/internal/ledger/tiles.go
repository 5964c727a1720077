package ledger

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/bundle"
	"github.com/rampartci/rampart/pkg/ledger/tree"
)

// TilesPrefix is where the log is served as C2SP tlog-tiles
// (https://c2sp.org/tlog-tiles), so that a generic tile client can audit it
// without Rampart's code:
//
//	GET /ledger/tlog/checkpoint                  the latest signed checkpoint
//	GET /ledger/tlog/tile/<L>/<N>[.p/<W>]        a hash tile (height 8)
//	GET /ledger/tlog/tile/entries/<N>[.p/<W>]    an entry bundle: entries N*256.., each as a
//	                                             big-endian uint16 length and the entry bytes
//
// Tiles are computed from the committed tree, so any tile within it is
// served, also beyond the latest checkpoint; full tiles never change and are
// served as immutable.
const TilesPrefix = "/ledger/tlog/"

// tileHeight is the tile height C2SP tlog-tiles fixes.
const tileHeight = 8

// parseTilePath parses a C2SP tile path (the part after the prefix) into a
// tlog.Tile, whose own path format is the Go checksum database's: the
// same with the height as first element and "data" for "entries".
func parseTilePath(p string) (tlog.Tile, error) {
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		return tlog.Tile{}, badParam("tile path %q: does not start with tile/", p)
	}
	goPath := fmt.Sprintf("tile/%d/%s", tileHeight, rest)
	if after, ok := strings.CutPrefix(rest, "entries/"); ok {
		goPath = fmt.Sprintf("tile/%d/data/%s", tileHeight, after)
	}
	t, err := tlog.ParseTilePath(goPath)
	if err != nil || t.Path() != goPath {
		return tlog.Tile{}, badParam("tile path %q: not a C2SP tlog-tiles path (tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>])", p)
	}
	return t, nil
}

func (l *Ledger) serveTile(w http.ResponseWriter, r *http.Request) {
	t, err := parseTilePath(strings.TrimPrefix(r.URL.Path, TilesPrefix))
	if err != nil {
		l.writeError(w, err)
		return
	}
	var data []byte
	if t.L == -1 {
		data, err = l.entryBundle(r, t)
	} else {
		data, err = l.tree.TileData(t)
	}
	if err != nil {
		if errors.Is(err, errNoTile) || errors.Is(err, tree.ErrRange) {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		l.writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if t.W == 1<<tileHeight {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	_, _ = w.Write(data)
}

// errNoTile is a tile or bundle the committed tree does not cover yet.
var errNoTile = errors.New("not in the ledger yet")

// entryBundle returns the entries of data tile t, read from LEDGER: the
// bundles that hold them concatenated, or the signed entries of the format
// before bundles encoded one by one.
func (l *Ledger) entryBundle(r *http.Request, t tlog.Tile) ([]byte, error) {
	first := t.N << tileHeight
	if size := l.tree.Size(); t.N > size>>tileHeight || first+int64(t.W) > size {
		return nil, fmt.Errorf("entry bundle %d of width %d: %w (the ledger has %d entries)", t.N, t.W, errNoTile, size)
	}
	var out []byte
	var rd messageReader
	for i := first; i < first+int64(t.W); i++ {
		m, at, seq, err := rd.read(r.Context(), l, i)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("entry %d (LEDGER message %d) is missing from LEDGER", i, seq)
		}
		if err != nil {
			return nil, fmt.Errorf("reading entry %d: %w", i, err)
		}
		data := m.Entries[i-at]
		if len(data) > bundle.MaxEntry {
			return nil, fmt.Errorf("entry %d has %d bytes, more than the %d an entry bundle can hold", i, len(data), bundle.MaxEntry)
		}
		out = bundle.Append(out, data)
	}
	return out, nil
}
