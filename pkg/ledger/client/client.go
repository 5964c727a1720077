// Package client is a typed client of the ledger service's query API
// (/ledger/ on the ledger's HTTP address): entries, a release chain's
// entries, checkpoints, proofs and the verifier key. It is how the notifier
// and the CLI read the ledger; the ledger's streams are private to it.
//
// Verify reads the whole ledger through the API and checks it with
// pkg/ledger/verify against a key from a trusted place, so a ledger service
// that serves altered entries fails verification like altered storage would.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/entry"
	"github.com/rampartci/rampart/pkg/ledger/verify"
)

// ErrNotFound is returned (wrapped in a *StatusError) when the ledger
// answers 404: an unknown chain, or no checkpoint yet.
var ErrNotFound = errors.New("not found")

// StatusError is an answer other than 200.
type StatusError struct {
	// Status is the HTTP status code.
	Status int
	// Message is the ledger's explanation (the response body, shortened).
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("ledger answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Is makes a 404 match ErrNotFound.
func (e *StatusError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// maxErrorBody bounds how much of an error answer is kept.
const maxErrorBody = 1 << 10

// Client calls one ledger's query API.
type Client struct {
	base string
	hc   *http.Client
}

// New returns a client of the ledger at baseURL (e.g. http://127.0.0.1:8080,
// the address the ledger's host serves HTTP on). httpClient, when not nil,
// carries the requests; the default one times each request out after 30s.
func New(baseURL string, httpClient *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("ledger URL %q is not an http(s) URL", baseURL)
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: httpClient}, nil
}

// URL is the ledger's base URL.
func (c *Client) URL() string { return c.base }

// get fetches path with query q and decodes a JSON answer into v, or, when v
// is a *[]byte, returns the body as it is.
func (c *Client) get(ctx context.Context, path string, q url.Values, v any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return fmt.Errorf("GET %s: %w", path, &StatusError{Status: resp.StatusCode, Message: strings.TrimSpace(string(body))})
	}
	if raw, ok := v.(*[]byte); ok {
		*raw, err = io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("GET %s: reading the answer: %w", path, err)
		}
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: decoding the answer: %w", path, err)
	}
	return nil
}

// getJSON fetches path with the query parameters first=a and, when b >= 0,
// second=b, and decodes the answer as a T.
func getJSON[T any](ctx context.Context, c *Client, path, first string, a int64, second string, b int64) (*T, error) {
	q := url.Values{first: {strconv.FormatInt(a, 10)}}
	if b >= 0 {
		q.Set(second, strconv.FormatInt(b, 10))
	}
	var out T
	if err := c.get(ctx, path, q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Entries returns one page of entries from index from up to, not including,
// to; to < 0 means up to the ledger's size when it answers.
func (c *Client) Entries(ctx context.Context, from, to int64) (*Entries, error) {
	return getJSON[Entries](ctx, c, "/ledger/entries", "from", from, "to", to)
}

// Chain returns the entries whose chainId is chainID, in ledger order. It
// fails with an error matching ErrNotFound when the ledger has no entry of
// that chain. It does not verify signatures; Verify does.
func (c *Client) Chain(ctx context.Context, chainID string) ([]*entry.Entry, error) {
	path := "/ledger/chains/" + url.PathEscape(chainID)
	var out []*entry.Entry
	for from := int64(0); ; {
		page, err := getJSON[Entries](ctx, c, path, "from", from, "", -1)
		if err != nil {
			return nil, err
		}
		for _, je := range page.Entries {
			e, err := entry.Unmarshal(je.Entry)
			if err != nil {
				return nil, fmt.Errorf("chain %q: entry %d: %w", chainID, je.Index, err)
			}
			out = append(out, e)
		}
		if page.Next == nil {
			return out, nil
		}
		if *page.Next <= from {
			return nil, fmt.Errorf("chain %q: the ledger's next page %d does not advance past %d", chainID, *page.Next, from)
		}
		from = *page.Next
	}
}

// LatestCheckpoint returns the latest signed checkpoint (note text), or nil
// when none has been signed yet.
func (c *Client) LatestCheckpoint(ctx context.Context) ([]byte, error) {
	var out []byte
	err := c.get(ctx, "/ledger/checkpoint", nil, &out)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return out, err
}

// Checkpoints returns one page of signed checkpoints from position from up
// to, not including, to; to < 0 means up to the count when it answers.
func (c *Client) Checkpoints(ctx context.Context, from, to int64) (*Checkpoints, error) {
	return getJSON[Checkpoints](ctx, c, "/ledger/checkpoints", "from", from, "to", to)
}

// Key returns the ledger's verifier key as the ledger states it. Verify
// with a key from a trusted place, never with this one alone.
func (c *Client) Key(ctx context.Context) (string, error) {
	var out []byte
	if err := c.get(ctx, "/ledger/key", nil, &out); err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// InclusionProof returns the proof that entry index is in the tree of size
// size; size < 0 means the latest checkpoint's size.
func (c *Client) InclusionProof(ctx context.Context, index, size int64) (*Inclusion, error) {
	return getJSON[Inclusion](ctx, c, "/ledger/proof/inclusion", "index", index, "size", size)
}

// ConsistencyProof returns the proof that the tree of size from is a prefix
// of the tree of size to; to < 0 means the latest checkpoint's size.
func (c *Client) ConsistencyProof(ctx context.Context, from, to int64) (*Consistency, error) {
	return getJSON[Consistency](ctx, c, "/ledger/proof/consistency", "from", from, "to", to)
}

// Verify reads the whole ledger through the API and verifies it with v (see
// verify.Log), streaming the entries through a verify.Checker page by page.
// It is VerifyWith without options: entries the latest checkpoint covers are
// pinned by its signed root, the others checked by their own signatures.
func (c *Client) Verify(ctx context.Context, v *checkpoint.Verifier) (*verify.Result, error) {
	return c.VerifyWith(ctx, v, VerifyOptions{})
}

// VerifyOptions tunes VerifyWith.
type VerifyOptions struct {
	// Progress, if set, is called after each page of entries with the
	// number of entries read so far and the number to read.
	Progress func(done, total int64)
	// AllSignatures checks the signature of every entry, also of those the
	// latest checkpoint pins (verify.Checker.Pin).
	AllSignatures bool
}

// VerifyWith reads the whole ledger through the API and verifies it with v
// (see verify.Stream): the latest checkpoint, which must verify with v, pins
// the entries it covers, and should anything fail the ledger is read again
// with every signature checked, so that the error names the first bad entry.
// It returns what verify returns, or an error for a ledger that cannot be
// read.
//
// The checkpoints are read up to the count there was before the entries
// were read, so a checkpoint signed while Verify runs cannot cover entries
// it did not read. The key must come from a trusted place (the key file's
// .pub, or a value pinned by the operator), never from the ledger itself.
func (c *Client) VerifyWith(ctx context.Context, v *checkpoint.Verifier, opts VerifyOptions) (*verify.Result, error) {
	first, err := c.Checkpoints(ctx, 0, 0)
	if err != nil {
		return nil, err
	}
	count := first.Count
	var pinned int64
	if count > 0 && !opts.AllSignatures {
		last, err := c.Checkpoints(ctx, count-1, count)
		if err != nil {
			return nil, err
		}
		if len(last.Checkpoints) == 1 {
			if cp, err := v.Open([]byte(last.Checkpoints[0])); err == nil {
				pinned = cp.Size
			}
		}
	}
	return verify.Stream(v, pinned, func(checker *verify.Checker) error {
		if err := c.verifyEntries(ctx, checker, opts.Progress); err != nil {
			return err
		}
		return c.verifyCheckpoints(ctx, checker, count)
	})
}

// verifyEntries feeds every entry to checker, page by page.
func (c *Client) verifyEntries(ctx context.Context, checker *verify.Checker, progress func(done, total int64)) error {
	size := int64(-1)
	for from := int64(0); size < 0 || from < size; {
		page, err := c.Entries(ctx, from, size)
		if err != nil {
			return err
		}
		if size < 0 {
			size = page.Size
		}
		for _, e := range page.Entries {
			if e.Index != from {
				return fmt.Errorf("the ledger answered entry %d where entry %d was asked for", e.Index, from)
			}
			checker.Entry(verify.Entry{Data: e.Entry, Signature: e.Signature, Leaf: e.Leaf})
			from++
		}
		if progress != nil {
			progress(from, size)
		}
		if page.Next == nil {
			break
		}
		if *page.Next != from {
			return fmt.Errorf("the ledger's next page starts at %d, after entry %d", *page.Next, from-1)
		}
	}
	return nil
}

// verifyCheckpoints feeds the first count checkpoints to checker.
func (c *Client) verifyCheckpoints(ctx context.Context, checker *verify.Checker, count int64) error {
	for from := int64(0); from < count; {
		page, err := c.Checkpoints(ctx, from, count)
		if err != nil {
			return err
		}
		if len(page.Checkpoints) == 0 {
			return fmt.Errorf("the ledger answered no checkpoint from %d of %d", from, count)
		}
		for _, cp := range page.Checkpoints {
			checker.Checkpoint([]byte(cp))
			from++
		}
	}
	return nil
}
