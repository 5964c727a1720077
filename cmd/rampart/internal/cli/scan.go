package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/runtime/service"
)

func init() {
	register("scan sarif", "have the scanner judge a SARIF file from another tool (Semgrep, CodeQL, ZAP)", runScanSARIF)
}

// defaultScannerURL is where `rampart up` serves the scanner's routes.
const defaultScannerURL = "https://127.0.0.1:8080"

// sarifAnswer is the scanner's 202 answer to POST /hooks/sarif.
type sarifAnswer struct {
	ID       string `json:"id"`
	Outcome  string `json:"outcome"`
	Blocking int    `json:"blocking"`
	Findings []struct {
		ID       string `json:"id"`
		Package  string `json:"package"`
		Severity string `json:"severity"`
		Title    string `json:"title"`
	} `json:"findings"`
	Duplicate bool `json:"duplicate"`
}

func runScanSARIF(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "scan sarif", "--commit SHA [--repo REPO] [--app APP] [--pr N] [--scanner URL] [--token REF] FILE|-\n\n"+
		"Posts a SARIF 2.1.0 log to the scanner's /hooks/sarif. The scanner judges its results under its\n"+
		"gate policy (error-level results and rules with security-severity >= 7.0 are High; others by\n"+
		"level) and publishes the source verdict for the commit, signed with its key. Prints the outcome\n"+
		"and the blocking findings. The exit code is 0 once the verdict is published, blocked or not:\n"+
		"the verdict is what gates the release.")
	sha := fs.String("commit", "", "full `SHA` of the commit the tool analysed (required)")
	repo := fs.String("repo", "", "`REPOSITORY` the commit belongs to, e.g. github.com/acme/shop")
	app := fs.String("app", "", "`APP` the verdict is about (its event subject)")
	pr := fs.Int("pr", 0, "pull request `N`, if the commit is a pull request's head")
	server := fs.String("scanner", defaultScannerURL, "the scanner's HTTP `URL` (rampart up serves it)")
	ca := bindCA(fs)
	token := policy.Secret{File: filepath.Join(".rampart", "scanner", "sarif.token")}
	var secrets service.SecretFlags
	secrets.Var(fs, &token, "token", "bearer token of the scanner's /hooks/sarif (rampart up writes "+token.File+")")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := secrets.Err(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if len(files) != 1 {
		return fmt.Errorf("%w: want one SARIF FILE, or - for standard input; got %d arguments", errUsage, len(files))
	}
	if *sha == "" {
		return fmt.Errorf("%w: --commit is required", errUsage)
	}
	base, err := url.Parse(*server)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("%w: --scanner %q: want an http(s) URL", errUsage, *server)
	}
	tok, err := token.Resolve()
	if err != nil {
		return fmt.Errorf("SARIF hook token: %w (start `rampart up`, or pass --token)", err)
	}
	data, err := readInput(e.stdin, files[0])
	if err != nil {
		return err
	}

	q := url.Values{"commit": {*sha}}
	for k, v := range map[string]string{"repository": *repo, "app": *app} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *pr != 0 {
		q.Set("pull_request", strconv.Itoa(*pr))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base.String(), "/")+"/hooks/sarif?"+q.Encode(), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/sarif+json")
	req.Header.Set("Authorization", "Bearer "+tok)
	hc, err := httpClient(*ca, time.Minute)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("scanner: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("scanner: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("%s: scanner answered %s: %s; published nothing", files[0], resp.Status, strings.TrimSpace(string(body)))
	}
	var ans sarifAnswer
	if err := json.Unmarshal(body, &ans); err != nil {
		return fmt.Errorf("scanner: answer %q: %w", body, err)
	}
	dup := ""
	if ans.Duplicate {
		dup = " (already published)"
	}
	fmt.Fprintf(e.stdout, "%s: commit %s, %d blocking finding(s); verdict %s%s\n", ans.Outcome, *sha, ans.Blocking, ans.ID, dup)
	for _, f := range ans.Findings {
		fmt.Fprintf(e.stdout, "  %s %s %s %s\n", f.Severity, f.ID, f.Package, f.Title)
	}
	return nil
}
