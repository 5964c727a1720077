package cli

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/demo"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/services/deployer/adminapi"
)

func TestRolloutCommands(t *testing.T) {
	dir := t.TempDir()
	e, err := demo.Start(t.Context(), demo.Config{DataDir: dir, Pause: time.Hour, Interval: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, _, a, err := e.PushAndWait(t.Context(), demo.Image{Version: "v1"}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.WaitStep(t.Context(), a, 0, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	server := e.Mesh.HTTPURL()
	run := func(args ...string) (int, string, string) {
		var out, errOut syncBuffer
		if !slices.Contains(args, "--server") {
			args = append(args, "--server", server, "--ca-file", e.Mesh.CAFile)
		}
		if !slices.Contains(args, "--token-file") {
			role := "operator"
			if args[1] == "list" || args[1] == "status" {
				role = "viewer"
			}
			args = append(args, "--token-file", filepath.Join(dir, "deployer", role+".token"))
		}
		code := Main(t.Context(), args, nil, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"rollout", "list"}, 0, a.RolloutID},
		// The viewer's token reads and may not act; none at all is refused.
		{[]string{"rollout", "promote", a.RolloutID, "--token-file", filepath.Join(dir, "deployer", "viewer.token")}, 1, "403 Forbidden: the viewer token may only read"},
		{[]string{"rollout", "list", "--token-file", filepath.Join(dir, "watcher", "siem.secret")}, 1, "401 Unauthorized: a valid bearer token is required"},
		{[]string{"rollout", "pause", a.RolloutID, "--token-file", filepath.Join(dir, "nothing")}, 1, "the operator API's operator token: open " + filepath.Join(dir, "nothing")},
		{[]string{"rollout", "status", a.RolloutID}, 0, "step      1 of 4, canary weight 5%"},
		{[]string{"rollout", "pause", a.RolloutID, "--reason", "investigating"}, 0, "paused by operator: investigating"},
		{[]string{"rollout", "resume", a.RolloutID}, 0, "phase     progressing"},
		{[]string{"rollout", "abort", a.RolloutID, "--reason", "drill"}, 0, "phase     rolledback"},
		{[]string{"rollout", "abort", a.RolloutID}, 1, "409 Conflict: rollout has finished (rolledback)"},
		{[]string{"rollout", "status", "no-such-rollout"}, 1, "404 Not Found: no such rollout"},
		{[]string{"rollout", "status"}, 2, "want ROLLOUT-ID"},
		{[]string{"rollout", "list", "--server", "ftp://x"}, 2, `--server "ftp://x" is not an http(s) URL`},
	}
	for _, s := range steps {
		code, out, errOut := run(s.args...)
		if code != s.code || !strings.Contains(out+errOut, s.want) {
			t.Fatalf("%v: exit %d, want %d with %q\nstdout: %s\nstderr: %s", s.args, code, s.code, s.want, out, errOut)
		}
	}
	if w, _ := e.Mesh.Deployer.Weight(demo.App); w != 0 {
		t.Fatalf("weight %d after abort", w)
	}

	// The ledger records each action with who asked for it: the operator
	// role and a fingerprint of its token, never the token.
	token, err := os.ReadFile(filepath.Join(dir, "deployer", "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	actor := adminapi.OperatorActor(strings.TrimSpace(string(token)), "api")
	viewerToken, err := os.ReadFile(filepath.Join(dir, "deployer", "viewer.token"))
	if err != nil {
		t.Fatal(err)
	}
	hc, err := httpClient(e.Mesh.CAFile, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := adminapi.NewClient(server, strings.TrimSpace(string(viewerToken)), hc)
	if err != nil {
		t.Fatal(err)
	}
	ro, err := viewer.Rollout(t.Context(), a.RolloutID)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := ledgerClient(server, e.Mesh.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pause progressing paused investigating", "resume paused progressing ", "abort progressing rolledback drill"}
	natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		entries, err := lc.Chain(t.Context(), ro.ChainID)
		if err != nil {
			return err
		}
		var got []string
		for _, en := range entries {
			if events.KindOf(en.Type) != events.KindIntervention {
				continue
			}
			evs, err := events.ParseStructured(en.Event)
			if err != nil {
				return err
			}
			iv, err := events.InterventionOf(evs[0])
			if err != nil {
				return err
			}
			if iv.Actor != actor.Name || iv.Via != "api" || iv.RolloutID != a.RolloutID || strings.Contains(iv.Actor, strings.TrimSpace(string(token))) {
				t.Fatalf("intervention recorded as %+v, want by %+v", iv, actor)
			}
			got = append(got, strings.Join([]string{iv.Action, iv.PhaseBefore, iv.PhaseAfter, iv.Reason}, " "))
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			return fmt.Errorf("interventions in the ledger: %q, want %q", got, want)
		}
		return nil
	})
}
