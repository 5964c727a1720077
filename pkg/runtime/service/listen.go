package service

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
)

// The listener rule: the HTTP listener serves webhooks and the deployer's
// operator API. On loopback only local users reach it; beyond this host it
// must be HTTPS (so tokens and signatures do not cross the network in the
// clear), unless the operator says a TLS-terminating proxy in front does
// that (InsecureListen). Every route that changes state requires its
// credential whatever the address: the webhooks and the operator API refuse
// requests when none is configured.

func (o *Options) bindListenFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.TLSCertFile, "tls-cert", o.TLSCertFile, "PEM certificate of the HTTPS listener (with --tls-key)")
	fs.StringVar(&o.TLSKeyFile, "tls-key", o.TLSKeyFile, "PEM private key of the HTTPS listener (with --tls-cert)")
	fs.BoolVar(&o.InsecureListen, "insecure-listen", o.InsecureListen,
		"serve plain HTTP on a non-loopback --http address (only behind a TLS-terminating proxy)")
}

// ErrInsecureListen: a non-loopback HTTP listener without TLS.
var ErrInsecureListen = errors.New("a non-loopback HTTP listener needs TLS")

// checkListen applies the listener rule and loads the key pair, so a bad
// one fails at start-up.
func (o Options) checkListen() error {
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if o.TLSCertFile != "" {
		if _, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile); err != nil {
			return fmt.Errorf("--tls-cert, --tls-key: %w", err)
		}
		return nil
	}
	host, _, _ := net.SplitHostPort(o.HTTPAddr)
	if o.InsecureListen || Loopback(host) {
		return nil
	}
	return fmt.Errorf("--http %s: %w: it would serve webhook credentials and operator tokens in the clear beyond this host; "+
		"give --tls-cert and --tls-key, listen on 127.0.0.1, or pass --insecure-listen if a TLS-terminating proxy is in front",
		o.HTTPAddr, ErrInsecureListen)
}

// Loopback reports whether host (an --http address's host part) is only
// reachable from this machine: a loopback IP or "localhost". An empty host
// means every interface.
func Loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serve serves HTTP on ln, or HTTPS when a key pair is configured.
func (o Options) serve(srv interface {
	Serve(net.Listener) error
	ServeTLS(net.Listener, string, string) error
}, ln net.Listener) error {
	if o.TLSCertFile != "" {
		return srv.ServeTLS(ln, o.TLSCertFile, o.TLSKeyFile)
	}
	return srv.Serve(ln)
}
