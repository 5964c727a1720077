package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rampartci/rampart/cmd/rampart/internal/chaos"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/services/deployer/adminapi"
)

func init() {
	register("chaos run", "run the chaos drills of a file against the running mesh, once or on a schedule", runChaosRun)
	register("chaos check", "validate a chaos file", runChaosCheck)
}

const chaosRunUsage = "FILE [--every DURATION] [--server URL] [--data DIR] [--nats URL]\n\n" +
	"Each experiment waits for a live canary of its target, injects its fault (http-errors or latency at the\n" +
	"deployer's router, memory through the application's fault hook, siem through the watcher's webhook;\n" +
	"with kill: deployer or watcher, that component is killed first and started again after its downtime),\n" +
	"measures detection and rollback, counts the pages and records the drill's result in the ledger.\n" +
	"A failed drill pages; the command then exits 1 (with a schedule, it keeps running)."

func runChaosCheck(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "chaos check", "FILE")
	file, f, err := chaosFile(fs, args)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %s\n", file, nouns(len(f.Experiments), "experiment", "experiments"))
	return nil
}

// chaosFile parses the command line and loads the one chaos file it names.
func chaosFile(fs *flag.FlagSet, args []string) (string, *chaos.File, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return "", nil, err
	}
	if len(pos) != 1 {
		return "", nil, fmt.Errorf("%w: want one chaos file", errUsage)
	}
	f, err := chaos.Load(pos[0])
	return pos[0], f, err
}

func runChaosRun(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "chaos run", chaosRunUsage)
	server := fs.String("server", defaultServer, "the mesh's HTTP `URL`: deployer, watcher and ledger (rampart up serves them)")
	data := fs.String("data", ".rampart", "`DIR` of rampart up, holding the tokens the drill uses: deployer/viewer.token, deployer/chaos.token, watcher/siem.secret")
	every := fs.Duration("every", 0, "run the file again every `DURATION` (default: the file's every; 0 runs once)")
	nf := bindNATS(e, fs)
	_, f, err := chaosFile(fs, args)
	if err != nil {
		return err
	}
	if *every == 0 {
		*every = time.Duration(f.Every)
	}
	if *every != 0 && *every < time.Minute {
		return fmt.Errorf("%w: --every %s: at least 1m", errUsage, *every)
	}
	m, closeMesh, err := chaosMesh(ctx, e, *server, *data, nf)
	if err != nil {
		return err
	}
	defer closeMesh()
	for {
		drills, err := m.RunFile(ctx, f)
		if *every == 0 || ctx.Err() != nil {
			return chaosResult(drills, err)
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "rampart chaos run: %v\n", err)
		}
		fmt.Fprintf(e.stdout, "next run at %s\n", time.Now().Add(*every).UTC().Format(time.RFC3339))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*every):
		}
	}
}

// chaosResult is the command's error after one run: a failed drill is exit
// 1 with its reason, already recorded and paged.
func chaosResult(drills []events.Drill, err error) error {
	if err == nil {
		return nil
	}
	var reasons []string
	for _, d := range drills {
		if d.Outcome == events.DrillFailed {
			reasons = append(reasons, d.Name+": "+d.Reason)
		}
	}
	if len(reasons) == 0 {
		return err
	}
	return fmt.Errorf("%w:\n  %s", chaos.ErrFailed, strings.Join(reasons, "\n  "))
}

// chaosMesh connects to the running mesh as a drill does.
func chaosMesh(ctx context.Context, e *env, server, data string, nf *natsFlags) (*chaos.Mesh, func(), error) {
	read := func(rel string) (string, error) {
		b, err := os.ReadFile(filepath.Join(data, rel))
		if err != nil {
			return "", fmt.Errorf("%w (start `rampart up`, or pass --data)", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	viewer, err := read(filepath.Join("deployer", "viewer.token"))
	if err != nil {
		return nil, nil, err
	}
	chaosToken, err := read(filepath.Join("deployer", "chaos.token"))
	if err != nil {
		return nil, nil, err
	}
	siem, err := read(filepath.Join("watcher", "siem.secret"))
	if err != nil {
		return nil, nil, err
	}
	hc, err := httpClient(*nf.caFile, 30*time.Second)
	if err != nil {
		return nil, nil, err
	}
	rollouts, err := adminapi.NewClient(server, viewer, hc)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: --server %q is not an http(s) URL", errUsage, server)
	}
	faults, _ := adminapi.NewClient(server, chaosToken, hc)
	ledger, err := ledgerClient(server, *nf.caFile)
	if err != nil {
		return nil, nil, err
	}
	nc, err := nf.connect("chaos run")
	if err != nil {
		return nil, nil, err
	}
	b, err := bus.New(nc, nil)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	m := &chaos.Mesh{Rollouts: rollouts, Faults: faults, Bus: b, Ledger: ledger, HTTP: hc,
		Components: &chaos.Components{Base: server, Token: chaosToken, HTTP: hc},
		SIEMURL:    strings.TrimSuffix(server, "/") + "/hooks/siem", SIEMSecret: siem, Progress: e.stdout}
	return m, nc.Close, nil
}
