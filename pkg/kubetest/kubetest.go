// Package kubetest runs a real etcd and kube-apiserver for tests, the way
// nats-server's tests run a real server: temporary directories, loopback
// ports, self-made certificates and service-account keys, an admin token,
// RBAC authorization, readiness polled with a deadline, everything stopped
// at the end. There is no scheduler, controller-manager or kubelet: objects
// are stored, validated, defaulted and authorized, but nothing runs.
//
// The binaries come from `make tools` (see Lookup). A test binary usually
// shares one server:
//
//	func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }
//
//	func TestX(t *testing.T) {
//		srv := kubetest.Shared(t) // skips when the tools are not built
//		...
//	}
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// Options configures Start.
type Options struct {
	// APIServer and Etcd are the binaries; empty: Lookup's.
	APIServer, Etcd string
	// ReadyTimeout bounds the wait for /readyz (default 90s: a loaded
	// machine is slow to start the apiserver's post-start hooks).
	ReadyTimeout time.Duration
	// Args are extra kube-apiserver flags, e.g. --runtime-config.
	Args []string
}

// Server is a running etcd and kube-apiserver.
type Server struct {
	// URL is the apiserver's https address on 127.0.0.1.
	URL string
	// Token is the bearer token of an admin (group system:masters).
	Token string
	// CAData is the PEM of the CA the serving certificate chains to.
	CAData []byte

	dir             string
	etcd, apiserver *process
}

// Start starts etcd and kube-apiserver and waits until the apiserver is
// ready. Stop ends both and removes their files.
func Start(ctx context.Context, opts Options) (_ *Server, err error) {
	if opts.APIServer == "" {
		if opts.APIServer, err = Lookup("kube-apiserver"); err != nil {
			return nil, err
		}
	}
	if opts.Etcd == "" {
		if opts.Etcd, err = Lookup("etcd"); err != nil {
			return nil, err
		}
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 90 * time.Second
	}
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	s := &Server{dir: dir}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	s.etcd, err = startProcess(dir, "etcd", opts.Etcd,
		"--name=kubetest", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=kubetest="+peer, "--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return nil, err
	}

	p, err := writePKI(dir)
	if err != nil {
		return nil, err
	}
	s.CAData = p.caPEM
	s.Token = randomToken()
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(s.Token+`,kubetest-admin,kubetest-admin,"system:masters"`+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	s.URL = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	args := append([]string{
		"--etcd-servers=" + client,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(ports[2]),
		"--tls-cert-file=" + p.certFile, "--tls-private-key-file=" + p.keyFile,
		"--service-account-key-file=" + p.saPubFile, "--service-account-signing-key-file=" + p.saKeyFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--token-auth-file=" + tokens, "--authorization-mode=RBAC",
		// The apiserver advertises 127.0.0.1, which it refuses to write into
		// the kubernetes Endpoints; no reconciler, no Endpoints.
		"--endpoint-reconciler-type=none", "--service-cluster-ip-range=10.0.0.0/24",
		"--cert-dir=" + filepath.Join(dir, "certs"), "--profiling=false",
	}, opts.Args...)
	if s.apiserver, err = startProcess(dir, "kube-apiserver", opts.APIServer, args...); err != nil {
		return nil, err
	}
	return s, s.waitReady(ctx, opts.ReadyTimeout)
}

// Config is a client configuration with the admin token. Its rate limit is
// raised: client-go's default (5 QPS) slows tests.
func (s *Server) Config() *rest.Config {
	return s.TokenConfig(s.Token)
}

// TokenConfig is a client configuration that authenticates with token, such
// as a ServiceAccount's from TokenRequest.
func (s *Server) TokenConfig(token string) *rest.Config {
	return &rest.Config{
		Host: s.URL, BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.CAData},
		QPS:             1000, Burst: 1000, Timeout: 30 * time.Second,
	}
}

// Stop stops the apiserver, then etcd, and removes their directory.
func (s *Server) Stop() {
	if s.apiserver != nil {
		s.apiserver.stop()
	}
	if s.etcd != nil {
		s.etcd.stop()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// waitReady polls /readyz until it answers ok, a process exits, or the
// deadline passes.
func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rt, err := rest.TransportFor(s.Config())
	if err != nil {
		return fmt.Errorf("kubetest: %w", err)
	}
	hc := &http.Client{Transport: rt, Timeout: 2 * time.Second}
	var last string
	for {
		for _, p := range []*process{s.etcd, s.apiserver} {
			if p.exited() {
				return fmt.Errorf("kubetest: %s exited while starting: %v\n%s", p.name, p.err, p.tail())
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubetest: kube-apiserver not ready after %v (last: %s)\n%s", timeout, last, s.apiserver.tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// process is a started tool, its output in a log file.
type process struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
	err       error
}

func startProcess(dir, name, bin string, args ...string) (*process, error) {
	p := &process{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = procAttr()
	if err := p.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("kubetest: start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after 10s, and waits.
func (p *process) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail is the end of the process's log, for error messages.
func (p *process) tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return p.name + " log (end):\n" + string(b)
}

// freePorts asks the kernel for n free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("kubetest: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// IsMissing reports whether err is a tool that is not built.
func IsMissing(err error) bool { return errors.Is(err, ErrMissing) }
