// Package embedded runs a NATS server with JetStream inside the process: the
// embedded default of `rampart up`, and the real server every integration test
// runs against.
package embedded

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/rampartci/rampart/pkg/runtime/natsauth"
)

// DefaultListen is the embedded server's address: loopback only.
const DefaultListen = "127.0.0.1:4222"

// Options configures the embedded server.
type Options struct {
	// Listen is host:port; the host must be a loopback address. Port 0 picks
	// a free port.
	Listen string
	// StoreDir holds JetStream's data; it survives restarts.
	StoreDir string
	// Name of the server, shown in monitoring and advisories.
	Name string
	// ReadyTimeout bounds the wait for the server to accept clients (default 10s).
	ReadyTimeout time.Duration
	// Users are the only clients the server accepts, each authenticated by
	// its nkey and limited to its permissions (natsauth.EnsureKeys). At
	// least one is required: the server never accepts anonymous clients.
	Users []natsauth.User
	// TLS, when set, makes the server require TLS of every client, with
	// this configuration (tlsgen.ServerConfig); with ClientAuth
	// RequireAndVerifyClientCert clients must also present a certificate
	// its ClientCAs signed (mutual TLS). Clients still authenticate with
	// their nkey.
	TLS *tls.Config
	// Cluster, when set, makes the server a node of a cluster (cluster.go).
	Cluster *Cluster
	// Logger, when set, receives the server's log (notices and errors).
	Logger server.Logger
}

// Start runs a server and waits until it accepts clients.
func Start(opts Options) (*server.Server, error) {
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.StoreDir == "" {
		return nil, errors.New("embedded NATS: a store directory is required")
	}
	host, portStr, err := net.SplitHostPort(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: listen address %q: %w", opts.Listen, err)
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("embedded NATS: listen address %q is not loopback; the embedded server is for one machine, use --nats to reach a cluster", opts.Listen)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("embedded NATS: port %q is not a port number", portStr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if len(opts.Users) == 0 {
		return nil, errors.New("embedded NATS: no users: the server refuses anonymous clients, give it the identities that may connect")
	}
	nkeys := make([]*server.NkeyUser, len(opts.Users))
	for i, u := range opts.Users {
		nkeys[i] = &server.NkeyUser{Nkey: u.PublicKey, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: u.Permissions.Publish.Allow, Deny: u.Permissions.Publish.Deny},
			Subscribe: &server.SubjectPermission{Allow: u.Permissions.Subscribe.Allow, Deny: u.Permissions.Subscribe.Deny},
		}}
	}
	if opts.Name == "" {
		opts.Name = "rampart"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 10 * time.Second
	}
	sopts := &server.Options{
		ServerName: opts.Name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoSigs:     true,
		NoLog:      opts.Logger == nil,
		Nkeys:      nkeys,
		TLSConfig:  opts.TLS,
		TLSVerify:  opts.TLS != nil && opts.TLS.ClientAuth == tls.RequireAndVerifyClientCert,
	}
	if opts.Cluster != nil {
		if err := opts.Cluster.apply(sopts); err != nil {
			return nil, err
		}
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	if opts.Logger != nil {
		ns.SetLoggerV2(opts.Logger, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(opts.ReadyTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS on %s: not ready after %s (is the port taken?)", opts.Listen, opts.ReadyTimeout)
	}
	return ns, nil
}
