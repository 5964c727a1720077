package mesh_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rampartci/rampart/cmd/rampart/internal/mesh"
	"github.com/rampartci/rampart/pkg/attest"
	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/policy"
	"github.com/rampartci/rampart/pkg/policy/gate"
	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
	"github.com/rampartci/rampart/pkg/runtime/service"
	"github.com/rampartci/rampart/services/deployer/adminapi"
	deployer "github.com/rampartci/rampart/services/deployer/app"
	ledger "github.com/rampartci/rampart/services/ledger/app"
	notifier "github.com/rampartci/rampart/services/notifier/app"
	scanner "github.com/rampartci/rampart/services/scanner/app"
)

// How many events the cluster tests publish (RAMPART_TEST_CLUSTER_EVENTS
// overrides both). TestThreeNodeCluster publishes the 10,000 the design
// asks for: about 100 s under -race on two busy cores (the ledger records
// some 200 a second there, and stalls about 20 s after the node loss); the
// node-loss variant publishes fewer to keep `make test` short
// (docs/decisions/0016).
const (
	clusterEvents  = 10_000
	nodeLossEvents = 6_000
)

// Three nats-server processes (the embedded server's code, routes on
// loopback, the same nkey users and permissions as the embedded default)
// run the mesh with every stream, bucket and object store at R3. While
// the admin publishes events asynchronously, as the bus does (Nats-Msg-Id
// is the event id), the node leading RAMPART is killed with kill -9 and
// started again; the services are connected to another node. Then: RAMPART
// holds each event exactly once, the ledger recorded each exactly once and
// verifies, and a rollout started before the loss is promoted after it.
func TestThreeNodeCluster(t *testing.T) { runCluster(t, false, clusterEvents) }

// The same, killing the node every service is connected to: each
// connection moves to another node. Deliveries in flight to the ledger when
// its connection drops come back after AckWait, behind later messages; the
// ledger records them from the stream first (docs/decisions/0016).
func TestThreeNodeClusterLosingTheServicesNode(t *testing.T) { runCluster(t, true, nodeLossEvents) }

func runCluster(t *testing.T, killServicesNode bool, total int) {
	if testing.Short() {
		t.Skip("three server processes and thousands of events: not in -short")
	}
	if v := os.Getenv("RAMPART_TEST_CLUSTER_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("RAMPART_TEST_CLUSTER_EVENTS=%q: want a positive count", v)
		}
		total = n
	}
	began := time.Now()
	data := t.TempDir()
	keys := mesh.NATSKeyDir(data)
	users, err := natsauth.EnsureKeys(keys, append(natsauth.Services(), natsauth.Admin)...)
	if err != nil {
		t.Fatal(err)
	}
	nodes := startCluster(t, users)
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.URL
	}

	// The JetStream meta leader must be elected before any stream is made.
	m := &mesh.Mesh{Admin: mesh.Identity(keys, natsauth.Admin)}
	admin := connectAdmin(t, m, strings.Join(urls, ","))
	js, err := jetstream.New(admin, jetstream.WithPublishAsyncMaxPending(256), jetstream.WithPublishAsyncTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})

	// The admin creates RAMPART at R3, as `rampart up` does before the
	// services start; its leader is the node to kill.
	svc := service.DefaultOptions("mesh-cluster-test")
	svc.HTTPAddr, svc.Stream.Replicas = "127.0.0.1:0", 3
	b, err := bus.New(admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	var leader string
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		s, err := b.EnsureStream(ctx, svc.Stream)
		if err != nil {
			return err
		}
		if ci := s.CachedInfo().Cluster; ci != nil {
			leader = ci.Leader
		}
		if leader == "" {
			return errors.New("RAMPART has no leader yet")
		}
		return nil
	})
	victim := -1
	for i := range nodes {
		if fmt.Sprintf("n%d", i) == leader {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("RAMPART's leader is %q, not one of the nodes", leader)
	}
	servicesNode := (victim + 1) % len(nodes)
	if killServicesNode {
		servicesNode = victim
	}
	m = startMesh(t, mesh.Options{
		DataDir:  data,
		NATSURL:  nodes[servicesNode].URL,
		Service:  svc,
		Policy:   shopPolicy(t),
		Ledger:   ledger.Options{Replicas: 3},
		Scanner:  scanner.Options{Replicas: 3},
		Deployer: deployer.Options{Replicas: 3},
		Notifier: notifier.Options{Replicas: 3},
	})
	waitReady(t, m, 60*time.Second)
	for _, name := range []string{bus.StreamName, "LEDGER", "LEDGER_CHECKPOINTS", "LEDGER_CHAINS", "KV_RAMPART_ROLLOUTS",
		"KV_RAMPART_SCANS", "KV_RAMPART_SCAN_TARGETS", "KV_RAMPART_REPORTS", "KV_RAMPART_INCIDENTS", "OBJ_RAMPART_SBOMS"} {
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, r)
		}
	}
	t.Logf("cluster and mesh ready in %s", time.Since(began).Round(time.Millisecond))

	// A rollout under way before the node is lost.
	rollouts := operatorClient(t, m, data)
	rolloutID := startRollout(t, m, b, rollouts)

	// Publish in the background; kill the leader a third of the way in and
	// bring it back at two thirds.
	ids := make([]string, total)
	for i := range ids {
		ids[i] = fmt.Sprintf("cluster-%05d", i)
	}
	pub := newAsyncPublisher(t, js)
	done := make(chan error, 1)
	pubStart := time.Now()
	go func() { done <- pub.publishAll(t.Context(), ids) }()
	waitAcked := func(n int) {
		t.Helper()
		natstest.CheckFor(t, 60*time.Second, 5*time.Millisecond, func() error {
			select {
			case err := <-done:
				done <- err
				if err != nil {
					return fmt.Errorf("publishing stopped: %w", err)
				}
				return nil
			default:
			}
			if got := pub.acked.Load(); got < int64(n) {
				return fmt.Errorf("%d of %d events acknowledged", got, n)
			}
			return nil
		})
	}
	waitAcked(total / 3)
	nodes[victim].Kill()
	killed := time.Now()
	ackedAtKill := pub.acked.Load()
	// Publishing resumes on the surviving two.
	waitAcked(int(ackedAtKill) + max(total/20, 1))
	resumed := time.Since(killed)
	waitAcked(2 * total / 3)
	nodes[victim].Start()
	restarted := time.Now()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pubTime := time.Since(pubStart)
	t.Logf("published %d events in %s (%.0f/s) with n%d (RAMPART's leader; the services on n%d) killed by kill -9 at %d acknowledged; %d more acknowledged %s after the kill; restarted after %s; %d publishes retried",
		total, pubTime.Round(time.Millisecond), float64(total)/pubTime.Seconds(), victim, servicesNode, ackedAtKill, max(total/20, 1), resumed.Round(time.Millisecond),
		restarted.Sub(killed).Round(time.Millisecond), pub.retried.Load())

	// The restarted node catches up on RAMPART.
	natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		s, err := js.Stream(t.Context(), bus.StreamName)
		if err != nil {
			return err
		}
		ci := s.CachedInfo().Cluster
		if ci == nil || len(ci.Replicas) != 2 {
			return fmt.Errorf("RAMPART's cluster: %+v", ci)
		}
		for _, r := range ci.Replicas {
			if !r.Current || r.Offline {
				return fmt.Errorf("replica %s: current %v, offline %v, lag %d", r.Name, r.Current, r.Offline, r.Lag)
			}
		}
		return nil
	})
	t.Logf("n%d current again %s after its restart", victim, time.Since(restarted).Round(time.Millisecond))

	// 0 lost, 0 duplicated in RAMPART.
	var stored map[string]int
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		counts, n, err := countByID(t.Context(), js, "rampart.testoutput.>")
		if err != nil {
			return err
		}
		if n < total {
			return fmt.Errorf("read %d of at least %d messages", n, total)
		}
		stored = counts
		if n != total {
			t.Errorf("RAMPART holds %d messages on rampart.testoutput.>, want %d", n, total)
		}
		return nil
	})
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
		if n := stored[id]; n != 1 {
			t.Errorf("event %s stored %d times in RAMPART", id, n)
		}
	}
	if len(stored) != total {
		t.Errorf("RAMPART holds %d distinct test events, want %d", len(stored), total)
	}

	// The ledger recorded each exactly once and verifies.
	recordStart := time.Now()
	checkLedger(t, m, data, want, 90*time.Second)
	t.Logf("ledger complete and verified %s after the last publish", time.Since(recordStart).Round(time.Millisecond))

	// The rollout started before the loss still moves forward.
	promoteRollout(t, rollouts, rolloutID)
	t.Logf("whole test: %s", time.Since(began).Round(time.Millisecond))
}

// startCluster starts three nodes n0, n1, n2 with routes on loopback and
// the users' nkeys and permissions (the server.conf `rampart up` writes).
func startCluster(t *testing.T, users []natsauth.User) []*natsProc {
	t.Helper()
	dir := t.TempDir()
	ports := freePorts(t, 6)
	routes := make([]string, 3)
	for i := range routes {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3+i])
	}
	auth := natsauth.ServerConfig(users)
	nodes := make([]*natsProc, 3)
	for i := range nodes {
		conf := filepath.Join(dir, fmt.Sprintf("n%d.conf", i))
		doc := fmt.Sprintf(`server_name: n%d
listen: 127.0.0.1:%d
jetstream { store_dir: %q }
cluster {
  name: rampart
  listen: 127.0.0.1:%d
  routes: [%s]
}
%s`, i, ports[i], filepath.Join(dir, fmt.Sprintf("n%d", i)), ports[3+i], strings.Join(routes, ", "), auth)
		if err := os.WriteFile(conf, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		nodes[i] = startNATS(t, natsSpec{Conf: conf})
	}
	return nodes
}

// asyncPublisher publishes events as the bus does (binary mode,
// Nats-Msg-Id = event id), many in flight at once; a publish that fails
// (its node died, the stream is electing a leader) is sent again with the
// same id until acknowledged, which JetStream's duplicate window makes
// safe.
type asyncPublisher struct {
	t       *testing.T
	js      jetstream.JetStream
	acked   atomic.Int64
	retried atomic.Int64
}

func newAsyncPublisher(t *testing.T, js jetstream.JetStream) *asyncPublisher {
	return &asyncPublisher{t: t, js: js}
}

func (p *asyncPublisher) publishAll(ctx context.Context, ids []string) error {
	const batch = 256
	for start := 0; start < len(ids); start += batch {
		msgs := make([]*nats.Msg, 0, batch)
		futures := make([]jetstream.PubAckFuture, 0, batch)
		for _, id := range ids[start:min(start+batch, len(ids))] {
			ev := testOutput(p.t, id)
			msg, err := events.ToMsg(events.SubjectOf(ev), ev)
			if err != nil {
				return err
			}
			msg.Header.Set(jetstream.MsgIDHeader, id)
			msgs = append(msgs, msg)
			f, err := p.js.PublishMsgAsync(msg)
			if err != nil {
				f = nil // sent again below
			}
			futures = append(futures, f)
		}
		for i, f := range futures {
			ok := false
			if f != nil {
				select {
				case <-f.Ok():
					ok = true
				case <-f.Err():
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if !ok {
				p.retried.Add(1)
				if err := p.publishUntilAcked(ctx, msgs[i]); err != nil {
					return err
				}
			}
			p.acked.Add(1)
		}
	}
	return nil
}

func (p *asyncPublisher) publishUntilAcked(ctx context.Context, msg *nats.Msg) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := p.js.PublishMsg(actx, msg)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("publish %s: %w", msg.Header.Get(jetstream.MsgIDHeader), err)
		}
		time.Sleep(50 * time.Millisecond) // back off before the retry, not a synchronisation
	}
}

// countByID reads RAMPART's messages on subject with an ordered consumer
// and counts them by Nats-Msg-Id.
func countByID(ctx context.Context, js jetstream.JetStream, subject string) (map[string]int, int, error) {
	c, err := js.OrderedConsumer(ctx, bus.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, 0, err
	}
	counts, total := map[string]int{}, 0
	for {
		batch, err := c.FetchNoWait(500)
		if err != nil {
			return nil, 0, err
		}
		n := 0
		var pending uint64
		for msg := range batch.Messages() {
			n++
			counts[msg.Headers().Get(jetstream.MsgIDHeader)]++
			meta, err := msg.Metadata()
			if err != nil {
				return nil, 0, err
			}
			pending = meta.NumPending
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, 0, err
		}
		total += n
		if n == 0 || pending == 0 {
			return counts, total, nil
		}
	}
}

const shopImage = "127.0.0.1:5000/shop"

// shopPolicy is one application on the local router whose canary holds
// each step for an hour: only an operator's promote moves it.
func shopPolicy(t *testing.T) *policy.Store {
	t.Helper()
	ports := freePorts(t, 3)
	pol, err := policy.Parse("cluster.yaml", fmt.Appendf(nil, `version: 1
apps:
  - name: shop
    image: %s
    environment: prod
    router: {type: local, local: {listen: "127.0.0.1:%d", stable: "http://127.0.0.1:%d", canary: "http://127.0.0.1:%d"}}
    canary: {steps: [5, 25, 50, 100], pause: 1h}
`, shopImage, ports[0], ports[1], ports[2]))
	if err != nil {
		t.Fatal(err)
	}
	return policy.StoreOf(pol)
}

func operatorClient(t *testing.T, m *mesh.Mesh, data string) *adminapi.Client {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(data, "deployer", "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := adminapi.NewClient("http://"+m.Host.HTTPAddr(), strings.TrimSpace(string(tok)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startRollout publishes a passing verdict signed with the mesh's scanner
// key, as the scanner would, and waits for the deployer's rollout at its
// first step.
func startRollout(t *testing.T, m *mesh.Mesh, b *bus.Bus, c *adminapi.Client) string {
	t.Helper()
	key, err := events.LoadOrCreateVerdictKey(m.ScannerKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	oci, err := events.NewOCI(shopImage, "sha256:"+strings.Repeat("ab", 32), "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := attest.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	vsa, err := signer.Summary(t.Context(), attest.Summary{Subject: attest.Subject{Name: shopImage, Digest: oci.Digest}, Verifier: "/rampart/scanner",
		ResourceURI: oci.String(), Passed: true, Time: time.Now(), PolicyURI: gate.DefaultURI, PolicyDigest: gate.Default().Digest()})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.SignScan(events.Meta{ID: "cluster-verdict", Source: "/rampart/scanner", ChainID: "chain-cluster", App: "shop"},
		events.Scan{Target: oci.String(), TargetKind: "image", Environment: "prod", Outcome: events.OutcomePass, Attestations: []json.RawMessage{vsa}}, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	var id string
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		rs, err := c.List(t.Context())
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.App == "shop" && r.Weight == 5 {
				id = r.ID
				return nil
			}
		}
		return fmt.Errorf("no rollout of shop at 5%%: %+v", rs)
	})
	return id
}

// promoteRollout asks for the next step and waits until the rollout is at
// 25%: the deployer holds the application's lease and writes its state.
func promoteRollout(t *testing.T, c *adminapi.Client, id string) {
	t.Helper()
	if _, err := c.Act(t.Context(), id, adminapi.ActionPromote, "cluster test: after the node loss"); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		r, err := c.Rollout(t.Context(), id)
		if err != nil {
			return err
		}
		if r.Weight != 25 {
			return fmt.Errorf("rollout %s at %d%% (%s), want 25%%", id, r.Weight, r.Phase)
		}
		return nil
	})
}
