package helm_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestNATSConfig loads the rendered nats.conf with nats-server's own
// parser, as the first node of the StatefulSet would.
func TestNATSConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		args   []string
		routes int
	}{
		"3 nodes":            {nil, 3},
		"1 node, no cluster": {[]string{"--set", "nats.replicas=1"}, 0},
		"extra config":       {[]string{"--set", "nats.extraConfig=max_payload: 2MB"}, 3},
	} {
		t.Run(name, func(t *testing.T) {
			conf, _, _ := unstructured.NestedString(find(t, render(t, tc.args...), "ConfigMap", fullname+"-nats").Object, "data", "nats.conf")
			path := filepath.Join(t.TempDir(), "nats.conf")
			if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("SERVER_NAME", fullname+"-nats-0")
			opts, err := server.ProcessConfigFile(path)
			if err != nil {
				t.Fatalf("nats-server refuses the config: %v\n%s", err, conf)
			}
			if opts.ServerName != fullname+"-nats-0" || !opts.JetStream || opts.StoreDir != "/data" || opts.Port != 4222 || opts.HTTPPort != 8222 {
				t.Errorf("server %q, JetStream %v in %q, client port %d, monitor port %d", opts.ServerName, opts.JetStream, opts.StoreDir, opts.Port, opts.HTTPPort)
			}
			if opts.JetStreamMaxStore != 9<<30 || opts.JetStreamMaxMemory != 256<<20 || opts.LameDuckDuration != 30*time.Second {
				t.Errorf("file store %d, memory store %d, lame duck %v", opts.JetStreamMaxStore, opts.JetStreamMaxMemory, opts.LameDuckDuration)
			}
			if len(opts.Routes) != tc.routes {
				t.Errorf("%d routes, want %d", len(opts.Routes), tc.routes)
			}
			if tc.routes > 0 && (opts.Cluster.Name != fullname || opts.Cluster.Port != 6222) {
				t.Errorf("cluster %q on port %d", opts.Cluster.Name, opts.Cluster.Port)
			}
		})
	}
}
