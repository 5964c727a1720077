package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

const defaultServer = "http://127.0.0.1:8080"

func init() {
	register("rollout list", "list rollouts, newest first", func(ctx context.Context, e *env, args []string) error {
		return runRollout(ctx, e, "list", args)
	})
	register("rollout status", "show one rollout", func(ctx context.Context, e *env, args []string) error {
		return runRollout(ctx, e, "status", args)
	})
	for _, action := range []string{"pause", "resume", "abort", "promote"} {
		summary := map[string]string{
			"pause":   "hold a rollout at its current step",
			"resume":  "continue a paused rollout",
			"abort":   "roll a rollout back now: canary weight 0, then the rollback is recorded",
			"promote": "end the current step's pause now",
		}[action]
		register("rollout "+action, summary, func(ctx context.Context, e *env, args []string) error {
			return runRollout(ctx, e, action, args)
		})
	}
}

// rolloutView is what the deployer's operator API returns for a rollout.
type rolloutView struct {
	ID            string    `json:"id"`
	App           string    `json:"app"`
	Environment   string    `json:"environment"`
	Artifact      string    `json:"artifact"`
	Stable        string    `json:"stable"`
	Steps         []int     `json:"steps"`
	Step          int       `json:"step"`
	Weight        int       `json:"weight"`
	Phase         string    `json:"phase"`
	Reason        string    `json:"reason"`
	StepStartedAt time.Time `json:"stepStartedAt"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

func runRollout(ctx context.Context, e *env, action string, args []string) error {
	synopsis := "ROLLOUT-ID [--server URL] [--token-file FILE]"
	if action == "list" {
		synopsis = "[--server URL] [--token-file FILE]"
	}
	fs := newFlags(e, "rollout "+action, synopsis)
	server := fs.String("server", defaultServer, "the deployer's HTTP address (rampart up serves it)")
	tokenFile := fs.String("token-file", "", "file with the operator API's bearer token, if it requires one")
	reason := ""
	if action == "pause" || action == "abort" {
		fs.StringVar(&reason, "reason", "", "why, recorded with the rollout")
	}
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	var id string
	switch {
	case action == "list" && len(pos) == 0:
	case action != "list" && len(pos) == 1:
		id = pos[0]
	default:
		return fmt.Errorf("%w: want %s", errUsage, synopsis)
	}
	base, err := url.Parse(*server)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("%w: --server %q is not an http(s) URL", errUsage, *server)
	}
	token := ""
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}

	method, path := http.MethodGet, "/deployer/rollouts"
	var body []byte
	switch action {
	case "status":
		path += "/" + url.PathEscape(id)
	case "pause", "resume", "abort", "promote":
		method, path = http.MethodPost, path+"/"+url.PathEscape(id)+"/"+action
		body, _ = json.Marshal(map[string]string{"reason": reason})
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base.String(), "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("reach the deployer at %s: %w", *server, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var apiErr struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &apiErr) == nil && apiErr.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, apiErr.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(raw))
	}
	if *asJSON {
		_, err := e.stdout.Write(raw)
		return err
	}
	if action == "list" {
		var list []rolloutView
		if err := json.Unmarshal(raw, &list); err != nil {
			return fmt.Errorf("decode the deployer's answer: %w", err)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ROLLOUT\tAPP\tPHASE\tSTEP\tWEIGHT\tUPDATED\tARTIFACT")
		for _, r := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d%%\t%s\t%s\n", r.ID, r.App, r.Phase, r.Step+1, len(r.Steps), r.Weight,
				r.UpdatedAt.Format(time.RFC3339), r.Artifact)
		}
		return tw.Flush()
	}
	var r rolloutView
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("decode the deployer's answer: %w", err)
	}
	fmt.Fprintf(e.stdout, "rollout   %s\napp       %s (%s)\nphase     %s\nstep      %d of %d, canary weight %d%%\nartifact  %s\nstable    %s\n",
		r.ID, r.App, r.Environment, r.Phase, r.Step+1, len(r.Steps), r.Weight, r.Artifact, r.Stable)
	if r.Reason != "" {
		fmt.Fprintf(e.stdout, "reason    %s\n", r.Reason)
	}
	return nil
}
