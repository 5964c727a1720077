package client_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rampartci/rampart/pkg/ledger/client"
)

func TestNewRejectsNonHTTP(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://ledger", "http://"} {
		if _, err := client.New(u, nil); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}

// TestErrors: answers other than 200 are *StatusError with the ledger's
// reason; 404 matches ErrNotFound; no checkpoint yet is nil, not an error.
func TestErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ledger/chains/a b":
			http.Error(w, `no ledger entry has chainId "a b"`, http.StatusNotFound)
		case "/ledger/checkpoint":
			http.Error(w, "no checkpoint has been signed yet", http.StatusNotFound)
		case "/ledger/entries":
			http.Error(w, "parameter from: -1 is not a non-negative integer", http.StatusBadRequest)
		default:
			http.Error(w, "the ledger is not recording", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Chain(t.Context(), "a b"); !errors.Is(err, client.ErrNotFound) || !strings.Contains(err.Error(), `chainId "a b"`) {
		t.Errorf("Chain of an unknown chain: %v", err)
	}
	if cp, err := c.LatestCheckpoint(t.Context()); cp != nil || err != nil {
		t.Errorf("LatestCheckpoint before the first = %q, %v", cp, err)
	}
	var se *client.StatusError
	if _, err := c.Entries(t.Context(), -1, -1); !errors.As(err, &se) || se.Status != 400 || errors.Is(err, client.ErrNotFound) {
		t.Errorf("Entries(-1) = %v", err)
	}
	if _, err := c.Key(t.Context()); !errors.As(err, &se) || se.Status != 503 {
		t.Errorf("Key from a ledger not recording = %v", err)
	}
}
