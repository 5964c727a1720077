package mesh_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/rampartci/rampart/pkg/runtime/embedded"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

// natsChildEnv, when set, makes this test binary a NATS server instead of a
// test run: the spec (JSON) says which.
const natsChildEnv = "RAMPART_TEST_NATS_SERVER"

// natsSpec is the server a child process runs: the embedded default
// (embedded.Start on Listen and StoreDir, knowing the identities in
// KeyDir), or, with Conf, a nats-server configuration file (a cluster node).
type natsSpec struct {
	Listen   string `json:",omitempty"`
	StoreDir string `json:",omitempty"`
	KeyDir   string `json:",omitempty"`
	Conf     string `json:",omitempty"`
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(natsChildEnv); spec != "" {
		if err := runNATSChild(spec); err != nil {
			fmt.Fprintln(os.Stderr, "nats child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runNATSChild runs the server spec describes, says "ready <url>" on
// standard output once it accepts clients, and runs until killed.
func runNATSChild(doc string) error {
	var spec natsSpec
	if err := json.Unmarshal([]byte(doc), &spec); err != nil {
		return err
	}
	var ns *server.Server
	if spec.Conf != "" {
		opts, err := server.ProcessConfigFile(spec.Conf)
		if err != nil {
			return err
		}
		opts.NoSigs, opts.NoLog = true, true
		if ns, err = server.NewServer(opts); err != nil {
			return err
		}
		ns.Start()
		if !ns.ReadyForConnections(30 * time.Second) {
			return errors.New("not ready after 30s")
		}
	} else {
		users, err := natsauth.EnsureKeys(spec.KeyDir, append(natsauth.Services(), natsauth.Admin)...)
		if err != nil {
			return err
		}
		if ns, err = embedded.Start(embedded.Options{Listen: spec.Listen, StoreDir: spec.StoreDir, Users: users}); err != nil {
			return err
		}
	}
	fmt.Printf("ready %s\n", ns.ClientURL())
	ns.WaitForShutdown()
	return nil
}

// natsProc is a NATS server in its own OS process (this test binary run
// again as a child), so that a test can kill -9 it and start it again on
// the same port and store.
type natsProc struct {
	t    *testing.T
	spec natsSpec
	cmd  *exec.Cmd
	out  *lockedBuffer
	// waitCh is closed when the process has exited.
	waitCh chan struct{}
	URL    string
}

// startNATS starts the server spec describes and waits until it accepts
// clients; it is killed when the test ends. A restart (Start after Kill)
// keeps the port the first start was given.
func startNATS(t *testing.T, spec natsSpec) *natsProc {
	t.Helper()
	p := &natsProc{t: t, spec: spec}
	p.Start()
	t.Cleanup(p.Kill)
	return p
}

// Start runs the server process and waits for it to be ready.
func (p *natsProc) Start() {
	p.t.Helper()
	doc, err := json.Marshal(p.spec)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), natsChildEnv+"="+string(doc))
	p.out = &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// The server dies with the test binary, whatever happens to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd = cmd
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.waitCh = exited
	natstest.CheckFor(p.t, 30*time.Second, 10*time.Millisecond, func() error {
		select {
		case <-exited:
			p.t.Fatalf("the NATS server process exited: %s", p.out.String())
		default:
		}
		for line := range strings.Lines(p.out.String()) {
			if u, ok := strings.CutPrefix(strings.TrimSpace(line), "ready "); ok {
				p.URL = u
				return nil
			}
		}
		return errors.New("the NATS server process is not ready")
	})
	if p.spec.Conf == "" && strings.HasSuffix(p.spec.Listen, ":0") {
		// Restarts reuse the port this start was given.
		u, err := url.Parse(p.URL)
		if err != nil {
			p.t.Fatal(err)
		}
		p.spec.Listen = u.Host
	}
}

// Kill ends the server process with SIGKILL (kill -9) and waits for it.
func (p *natsProc) Kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.waitCh
	p.cmd = nil
}

// lockedBuffer is an io.Writer safe for the process's output goroutines
// and the test's reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freePorts returns n distinct loopback ports that were free a moment ago
// (a cluster's routes must name each other's ports before any starts).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}
