package bundle

import (
	"errors"
	"strconv"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/rampartci/rampart/pkg/ledger/entry"
)

type header map[string]string

func (h header) Get(k string) string { return h[k] }

// bundleOf is the data and headers of a bundle of es from first.
func bundleOf(first int64, es ...string) (header, []byte) {
	var data []byte
	var leaves []tlog.Hash
	for _, e := range es {
		data = Append(data, []byte(e))
		leaves = append(leaves, tlog.RecordHash([]byte(e)))
	}
	return header{FirstHeader: strconv.FormatInt(first, 10), LeavesHeader: EncodeLeaves(leaves)}, data
}

func TestRead(t *testing.T) {
	h, data := bundleOf(254, "a", "bc")
	m, err := Read(h, data)
	if err != nil || m.First != 254 || len(m.Entries) != 2 || string(m.Entries[1]) != "bc" || m.Leaves[1] != tlog.RecordHash([]byte("bc")) {
		t.Fatalf("Read = %+v, %v", m, err)
	}
	// Without FirstHeader: one signed entry of the format before bundles.
	m, err = Read(header{entry.SignatureHeader: "sig"}, []byte("{}"))
	if err != nil || m.First != -1 || len(m.Entries) != 1 || m.Signature != "sig" {
		t.Fatalf("Read of a signed entry = %+v, %v", m, err)
	}
	one, _ := bundleOf(0, "a")
	across, acrossData := bundleOf(255, "a", "b")
	for name, tt := range map[string]struct {
		h    header
		data []byte
	}{
		"across a tile boundary": {across, acrossData},
		"trailing byte":          {one, append(Append(nil, []byte("a")), 0)},
		"entry cut short":        {one, Append(nil, []byte("abc"))[:4]},
		"empty entry":            {one, []byte{0, 0}},
		"no entry":               {header{FirstHeader: "0", LeavesHeader: ""}, nil},
		"leaves missing":         {header{FirstHeader: "0"}, Append(nil, []byte("a"))},
		"first not a count":      {header{FirstHeader: "-1", LeavesHeader: one[LeavesHeader]}, Append(nil, []byte("a"))},
	} {
		if _, err := Read(tt.h, tt.data); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Read error %v, want ErrMalformed", name, err)
		}
	}
}
