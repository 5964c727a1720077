package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rampartci/rampart/services/deployer/adminapi"
)

const defaultServer = "https://127.0.0.1:8080"

func init() {
	register("rollout list", "list rollouts, newest first", func(ctx context.Context, e *env, args []string) error {
		return runRollout(ctx, e, "list", args)
	})
	register("rollout status", "show one rollout", func(ctx context.Context, e *env, args []string) error {
		return runRollout(ctx, e, "status", args)
	})
	for _, action := range adminapi.Actions {
		summary := map[adminapi.Action]string{
			adminapi.ActionPause:   "hold a rollout at its current step",
			adminapi.ActionResume:  "continue a paused rollout",
			adminapi.ActionAbort:   "roll a rollout back now: canary weight 0, then the rollback is recorded",
			adminapi.ActionPromote: "end the current step's pause now",
		}[action]
		register("rollout "+string(action), summary, func(ctx context.Context, e *env, args []string) error {
			return runRollout(ctx, e, string(action), args)
		})
	}
}

func runRollout(ctx context.Context, e *env, action string, args []string) error {
	synopsis := "ROLLOUT-ID [--server URL] [--token-file FILE]"
	if action == "list" {
		synopsis = "[--server URL] [--token-file FILE]"
	}
	fs := newFlags(e, "rollout "+action, synopsis)
	server := fs.String("server", defaultServer, "the deployer's HTTP address (rampart up serves it)")
	// Reading needs the viewer's token, acting the operator's: each
	// command reads the least it needs from where `rampart up` writes them.
	role := "operator"
	if action == "list" || action == "status" {
		role = "viewer"
	}
	tokenFile := fs.String("token-file", filepath.Join(".rampart", "deployer", role+".token"), "file with the operator API's bearer token ("+role+" role)")
	reason := ""
	if action == string(adminapi.ActionPause) || action == string(adminapi.ActionAbort) {
		fs.StringVar(&reason, "reason", "", "why, recorded with the rollout")
	}
	asJSON := fs.Bool("json", false, "print the API's JSON")
	ca := bindCA(fs)
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
	b, err := os.ReadFile(*tokenFile)
	if err != nil {
		return fmt.Errorf("the operator API's %s token: %w (start `rampart up`, or pass --token-file)", role, err)
	}
	token := strings.TrimSpace(string(b))
	hc, err := httpClient(*ca, 30*time.Second)
	if err != nil {
		return err
	}
	client, err := adminapi.NewClient(*server, token, hc)
	if err != nil {
		return fmt.Errorf("%w: --server %q is not an http(s) URL", errUsage, *server)
	}

	var answer any
	switch action {
	case "list":
		answer, err = client.List(ctx)
	case "status":
		answer, err = client.Rollout(ctx, id)
	default:
		answer, err = client.Act(ctx, id, adminapi.Action(action), reason)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(answer)
	}
	if list, ok := answer.([]adminapi.Rollout); ok {
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ROLLOUT\tAPP\tPHASE\tSTEP\tWEIGHT\tUPDATED\tARTIFACT")
		for _, r := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d%%\t%s\t%s\n", r.ID, r.App, r.Phase, r.Step+1, len(r.Steps), r.Weight,
				r.UpdatedAt.Format(time.RFC3339), r.Artifact)
		}
		return tw.Flush()
	}
	r := answer.(adminapi.Rollout)
	fmt.Fprintf(e.stdout, "rollout   %s\napp       %s (%s)\nphase     %s\nstep      %d of %d, canary weight %d%%\nartifact  %s\nstable    %s\n",
		r.ID, r.App, r.Environment, r.Phase, r.Step+1, len(r.Steps), r.Weight, r.Artifact, r.Stable)
	if r.Reason != "" {
		fmt.Fprintf(e.stdout, "reason    %s\n", r.Reason)
	}
	return nil
}
