package embedded

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster makes the embedded server a node of a NATS cluster.
type Cluster struct {
	// Name of the cluster; every node gives the same.
	Name string
	// Listen is the host:port other nodes' routes connect to. A
	// non-loopback address requires TLS.
	Listen string
	// Routes are the other nodes' cluster addresses (host:port or
	// nats-route://host:port).
	Routes []string
	// TLS secures the routes in both directions: the node presents its
	// certificate, and verifies the peer's against the config's CAs, when it
	// accepts a route (ClientCAs, with ClientAuth
	// RequireAndVerifyClientCert: mutual TLS) and when it dials one
	// (RootCAs). tlsgen.ServerConfig(cert, key, ca) gives exactly that; a
	// node without a certificate the CA signed cannot join.
	TLS *tls.Config
}

// apply sets c on the server options.
func (c *Cluster) apply(o *server.Options) error {
	if c.Name == "" {
		return errors.New("embedded NATS cluster: a cluster name is required")
	}
	host, portStr, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("embedded NATS cluster: listen address %q: %w", c.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("embedded NATS cluster: port %q is not a port number", portStr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if c.TLS == nil && !loopback(host) {
		return fmt.Errorf("embedded NATS cluster: listen address %q is not loopback: routes beyond this host need TLS", c.Listen)
	}
	if c.TLS != nil && c.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		return errors.New("embedded NATS cluster: route TLS must verify the peer's certificate (mutual TLS: tlsgen.ServerConfig with a CA)")
	}
	o.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: port, TLSConfig: c.TLS}
	for _, r := range c.Routes {
		if u, err := url.Parse(r); err == nil && u.Scheme != "" && u.Host != "" {
			o.Routes = append(o.Routes, u)
			continue
		}
		if _, _, err := net.SplitHostPort(r); err != nil {
			return fmt.Errorf("embedded NATS cluster: route %q: want host:port or nats-route://host:port", r)
		}
		o.Routes = append(o.Routes, &url.URL{Scheme: "nats-route", Host: r})
	}
	return nil
}

func loopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}
