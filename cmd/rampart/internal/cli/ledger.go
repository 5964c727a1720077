package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/eventline"
	"github.com/rampartci/rampart/cmd/rampart/internal/progress"
	"github.com/rampartci/rampart/pkg/ledger/checkpoint"
	"github.com/rampartci/rampart/pkg/ledger/client"
	"github.com/rampartci/rampart/pkg/ledger/verify"
	"github.com/rampartci/rampart/pkg/ledger/witness"
)

// defaultLedgerKey is the verifier key `rampart up` writes with its default
// --data directory.
var defaultLedgerKey = filepath.Join(".rampart", "ledger", "ledger.key.pub")

func init() {
	register("ledger verify", "recompute the ledger's Merkle tree and check every entry and signed checkpoint", runLedgerVerify)
	register("ledger show", "print the ledger entries of one release (chainId), in order", runLedgerShow)
}

// ledgerServerFlag is the ledger's HTTP address, where it serves /ledger/,
// and the CA its certificate may be signed by (--ca-file).
func ledgerServerFlag(fs *flag.FlagSet) (server, ca *string) {
	return fs.String("server", defaultServer, "the ledger's HTTP `URL` (rampart up serves it)"), bindCA(fs)
}

// ledgerClient is a client of the ledger at server, trusting ca.
func ledgerClient(server, ca string) (*client.Client, error) {
	hc, err := httpClient(ca, 30*time.Second)
	if err != nil {
		return nil, err
	}
	c, err := client.New(server, hc)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	return c, nil
}

// verifiedFileName is the file, beside the key by default, where `ledger
// verify` remembers the last checkpoint it verified.
const verifiedFileName = "verified-checkpoint"

func runLedgerVerify(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "ledger verify", "[--server URL] [--key FILE] [--verified-checkpoint FILE]\n\n"+
		"Reads every entry and signed checkpoint through the ledger's query API and checks\n"+
		"against the key (never one the ledger serves) that every entry parses, sits at its\n"+
		"index and records a new event, that the Merkle tree of the entries matches every\n"+
		"signed checkpoint, and that successive checkpoints are consistent. The latest\n"+
		"checkpoint's signed root pins the exact bytes of the entries it covers; entries after\n"+
		"it are checked by their own signatures (--all-signatures checks every entry's).\n"+
		"Exits 1 naming the first entry that does not match. On a terminal it shows progress\n"+
		"on stderr (entries/s, time left).\n\n"+
		"Like the Go checksum database client, it remembers the last checkpoint it verified\n"+
		"(--verified-checkpoint, outside the ledger) and fails, naming both tree heads, when\n"+
		"the ledger's tree is smaller than that one or does not extend it (a consistency\n"+
		"proof fails): the ledger's streams were deleted, truncated or rewritten.")
	server, ca := ledgerServerFlag(fs)
	keyFile := fs.String("key", defaultLedgerKey, "the ledger's verifier key `FILE` (the .pub beside the ledger key)")
	verifiedFile := fs.String("verified-checkpoint", "", "`FILE` keeping the last checkpoint verified (default: "+verifiedFileName+" beside --key)")
	allSigs := fs.Bool("all-signatures", false, "also verify the signature of every entry the latest checkpoint pins")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	v, err := loadLedgerVerifier(*keyFile)
	if err != nil {
		return err
	}
	if *verifiedFile == "" {
		*verifiedFile = filepath.Join(filepath.Dir(*keyFile), verifiedFileName)
	}
	state := witness.NewLatest(*verifiedFile)
	trusted, err := witness.Trusted(state, v)
	if err != nil {
		return fmt.Errorf("--verified-checkpoint: %w (a checkpoint of another ledger? give this ledger its own file)", err)
	}
	c, err := ledgerClient(*server, *ca)
	if err != nil {
		return err
	}
	opts := client.VerifyOptions{AllSignatures: *allSigs}
	bar := progress.New(e.stderr, "verifying the ledger", "entries", 0) // nil, doing nothing, off a terminal
	opts.Progress = bar.Set
	res, err := c.VerifyWith(ctx, v, opts)
	bar.Done()
	var verr *verify.Error
	if errors.As(err, &verr) {
		fmt.Fprintf(e.stdout, "checked %s and %s with key %s\n", nouns(res.Entries, "entry", "entries"), nouns(res.Checkpoints, "checkpoint", "checkpoints"), v.Key())
		return fmt.Errorf("the ledger does NOT verify: %w", verr)
	}
	if err != nil {
		return fmt.Errorf("reading the ledger: %w", err)
	}
	fmt.Fprintf(e.stdout, "ledger verified: %s and %s checked with key %s\n", nouns(res.Entries, "entry", "entries"), nouns(res.Checkpoints, "checkpoint", "checkpoints"), v.Key())
	if res.Latest != nil {
		fmt.Fprintf(e.stdout, "latest checkpoint: size %d, root %s\n", res.Latest.Size, base64.StdEncoding.EncodeToString(res.Latest.Root[:]))
	}
	pinned := res.Entries - res.SignaturesChecked - res.Unsigned
	switch {
	case pinned > 0 && res.SignaturesChecked > 0:
		fmt.Fprintf(e.stdout, "%s pinned by the latest checkpoint's signed root; %s checked by their own signatures\n",
			nouns(pinned, "entry", "entries"), nouns(res.SignaturesChecked, "entry", "entries"))
	case pinned > 0 && res.Bundled == res.Entries:
		fmt.Fprintf(e.stdout, "every entry pinned by the latest checkpoint's signed root\n")
	case pinned > 0:
		fmt.Fprintf(e.stdout, "every entry pinned by the latest checkpoint's signed root (entry signatures not checked one by one; --all-signatures does)\n")
	case res.Entries > 0 && res.SignaturesChecked == res.Entries:
		fmt.Fprintf(e.stdout, "every entry's own signature checked\n")
	}
	if res.Bundled > 0 {
		fmt.Fprintf(e.stdout, "%s written in bundles: they carry no signature of their own, the signed checkpoints vouch for them\n", nouns(res.Bundled, "entry", "entries"))
	}
	if signed := res.Unanchored - res.Unsigned; signed > 0 {
		fmt.Fprintf(e.stdout, "%d entries after the latest checkpoint are covered by their own signatures only\n", signed)
	}
	if res.Unsigned > 0 {
		fmt.Fprintf(e.stdout, "%s after the latest checkpoint, written in bundles, are not vouched for by any signature yet (the ledger signs a checkpoint every interval and on shutdown)\n",
			nouns(res.Unsigned, "entry", "entries"))
	}
	if err := extendsTrusted(ctx, c, trusted, res, state); err != nil {
		return fmt.Errorf("the ledger does NOT verify: %w; if an operator started a new log on purpose, remove %s to trust it", err, state.Path())
	}
	switch {
	case res.Latest == nil:
	case trusted == nil:
		fmt.Fprintf(e.stdout, "remembered checkpoint size %d in %s\n", res.Latest.Size, state.Path())
	case res.Latest.Size > trusted.Size:
		fmt.Fprintf(e.stdout, "extends the checkpoint verified before (size %d); remembered size %d in %s\n", trusted.Size, res.Latest.Size, state.Path())
	default:
		fmt.Fprintf(e.stdout, "same checkpoint as verified before (size %d, %s)\n", trusted.Size, state.Path())
	}
	return nil
}

// extendsTrusted checks that the verified ledger extends the checkpoint
// verified before (with a consistency proof from the ledger, checked against
// both signed roots), and then remembers its latest checkpoint.
func extendsTrusted(ctx context.Context, c *client.Client, trusted *checkpoint.Checkpoint, res *verify.Result, state *witness.Latest) error {
	if trusted != nil {
		cur := checkpoint.Checkpoint{Origin: trusted.Origin}
		if res.Latest != nil {
			cur = *res.Latest
		}
		proof := &client.Consistency{}
		if trusted.Size > 0 && cur.Size > trusted.Size {
			var err error
			if proof, err = c.ConsistencyProof(ctx, trusted.Size, cur.Size); err != nil {
				return fmt.Errorf("asking for a consistency proof from size %d to %d: %w", trusted.Size, cur.Size, err)
			}
		}
		if err := verify.Extends(*trusted, cur, proof.Proof, state.Name()); err != nil {
			return err
		}
	}
	if res.Latest == nil || trusted != nil && res.Latest.Size <= trusted.Size {
		return nil
	}
	if err := state.Add(res.LatestNote); err != nil {
		return fmt.Errorf("remembering the checkpoint: %w", err)
	}
	return nil
}

// loadLedgerVerifier reads a verifier key file, or derives the verifier from
// a signer key file.
func loadLedgerVerifier(path string) (*checkpoint.Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the ledger's verifier key (--key): %w", err)
	}
	text := strings.TrimSpace(string(b))
	if strings.HasPrefix(text, "PRIVATE+KEY+") {
		// Only the ledger loads its signing key; a verifier needs the public half.
		return nil, fmt.Errorf("%w: --key %s is the ledger's private signing key; give its verifier key, %s.pub", errUsage, path, path)
	}
	v, err := checkpoint.NewVerifier(text)
	if err != nil {
		return nil, fmt.Errorf("--key %s: %w", path, err)
	}
	return v, nil
}

func runLedgerShow(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "ledger show", "--chain ID [--server URL]\n\n"+
		"Prints the ledger entries of one release, those whose event carries chainId ID,\n"+
		"in ledger order: index, recorded time, type, event id and subject. It does not\n"+
		"check signatures: run `rampart ledger verify` for that.")
	server, ca := ledgerServerFlag(fs)
	chain := fs.String("chain", "", "the release's correlation `ID` (CDEvents chainId; required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *chain == "" {
		return fmt.Errorf("%w: --chain is required", errUsage)
	}
	c, err := ledgerClient(*server, *ca)
	if err != nil {
		return err
	}
	entries, err := c.Chain(ctx, *chain)
	if errors.Is(err, client.ErrNotFound) || err == nil && len(entries) == 0 {
		return fmt.Errorf("no ledger entry has chainId %q", *chain)
	}
	if err != nil {
		return fmt.Errorf("reading the ledger: %w", err)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tRECORDED\tTYPE\tID\tSUBJECT")
	for _, en := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", en.Index, en.RecordedAt.UTC().Format(eventline.TimeFormat),
			eventline.ShortType(en.Type), en.EventID, en.Subject)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, nouns(len(entries), "entry", "entries"))
	return nil
}
