package cli

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/demo"
)

func TestRolloutCommands(t *testing.T) {
	e, err := demo.Start(t.Context(), demo.Config{DataDir: t.TempDir(), Pause: time.Hour, Interval: time.Minute, Logger: slog.New(slog.DiscardHandler)})
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
	server := "http://" + e.Mesh.Host.HTTPAddr()
	run := func(args ...string) (int, string, string) {
		var out, errOut syncBuffer
		if !slices.Contains(args, "--server") {
			args = append(args, "--server", server)
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
}
