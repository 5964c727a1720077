package natsauth_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/rampartci/rampart/pkg/runtime/bus"
	"github.com/rampartci/rampart/pkg/runtime/natsauth"
	"github.com/rampartci/rampart/pkg/runtime/natstest"
)

// TestAnonymousRefused: no client gets in without a key the server knows.
func TestAnonymousRefused(t *testing.T) {
	ns := natstest.Server(t, "")
	_, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(0))
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("anonymous connect: err = %v, want %v", err, nats.ErrAuthorization)
	}
	stranger := filepath.Join(t.TempDir(), "stranger.nk")
	if _, err := natsauth.EnsureKey(stranger); err != nil {
		t.Fatal(err)
	}
	opts, err := natsauth.Identity{Name: "stranger", NKeyFile: stranger}.Options()
	if err != nil {
		t.Fatal(err)
	}
	_, err = nats.Connect(ns.ClientURL(), append(opts, nats.MaxReconnects(0))...)
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect with an unknown nkey: err = %v, want %v", err, nats.ErrAuthorization)
	}
}

// action is one thing an identity tries: publish on a subject (a JetStream
// API request is a publish too) or subscribe to one.
type action struct {
	sub     bool
	subject string
}

func pub(s string) action { return action{subject: s} }
func sub(s string) action { return action{sub: true, subject: s} }

func (a action) String() string {
	if a.sub {
		return "subscribe " + a.subject
	}
	return "publish " + a.subject
}

// Every row of the permission table: what the identity must be refused.
// What it must be allowed is shown by TestAllowed here and by every
// service's suite and the end-to-end demo, which run under these identities.
var refusals = map[string][]action{
	"scanner": {
		pub("rampart.rollback.shop"), pub("rampart.canarystep.shop"), pub("rampart.promote.shop"),
		pub("rampart.release.shop"), pub("rampart.page.shop"), pub("rampart.deadletter.deployer"),
		pub("$KV.RAMPART_ROLLOUTS.app.shop"), pub("$KV.RAMPART_REPORTS.x"),
		pub("$JS.API.CONSUMER.CREATE.RAMPART.deployer"), pub("$JS.API.CONSUMER.MSG.NEXT.RAMPART.watcher"),
		pub("$JS.ACK.RAMPART.deployer.1.1.1.1.0"),
		sub("rampart.>"), sub("_INBOX.>"), sub("_INBOX_deployer.>"),
	},
	"deployer": {
		pub("rampart.anomaly.shop"), pub("rampart.scan.shop"), pub("rampart.artifact.shop"), pub("rampart.page.shop"),
		pub("$KV.RAMPART_SCANS.x"), pub("$KV.RAMPART_INCIDENTS.x"), pub("$JS.API.STREAM.UPDATE.KV_RAMPART_SCANS"),
		pub("$JS.API.CONSUMER.DELETE.RAMPART.ledger"),
		sub("rampart.>"), sub("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.RAMPART.*"),
	},
	"watcher": {
		pub("$KV.RAMPART_ROLLOUTS.app.shop"), pub("$JS.API.DIRECT.GET.KV_RAMPART_ROLLOUTS"),
		pub("rampart.rollback.shop"), pub("rampart.release.shop"), pub("rampart.scan.shop"), pub("rampart.page.shop"),
		// It may create ephemeral readers on RAMPART, never take over a durable.
		pub("$JS.API.CONSUMER.CREATE.RAMPART.deployer"), pub("$JS.API.CONSUMER.CREATE.RAMPART.deployer.rampart.canarystep.>"),
		pub("$JS.API.CONSUMER.MSG.NEXT.RAMPART.deployer"), pub("$JS.API.CONSUMER.DELETE.RAMPART.ledger"),
		sub("rampart.anomaly.>"),
	},
	"notifier": {
		pub("rampart.anomaly.shop"), pub("rampart.rollback.shop"), pub("rampart.scan.shop"),
		pub("$KV.RAMPART_ROLLOUTS.app.shop"), pub("$JS.API.STREAM.INFO.LEDGER"),
	},
	"ledger": {
		pub("rampart.anomaly.shop"), pub("rampart.rollback.shop"), pub("rampart.page.shop"),
		pub("$KV.RAMPART_ROLLOUTS.app.shop"),
		pub("$JS.API.STREAM.MSG.DELETE.LEDGER"),
		sub("$JS.EVENT.ADVISORY.>"), sub("rampart.>"),
	},
	natsauth.Admin: {
		pub("ledger.entries"), pub("ledger.checkpoints"), pub("ledger.chain.x"),
		pub("$KV.RAMPART_ROLLOUTS.app.shop"), pub("$O.RAMPART_SBOMS.M.x"),
		pub("$JS.API.STREAM.UPDATE.LEDGER"), pub("$JS.API.STREAM.UPDATE.KV_RAMPART_ROLLOUTS"),
		pub("$JS.API.STREAM.MSG.DELETE.RAMPART"),
		pub("$JS.API.CONSUMER.DELETE.RAMPART.deployer"), pub("$JS.API.CONSUMER.CREATE.RAMPART.watcher"),
		pub("$JS.API.CONSUMER.MSG.NEXT.RAMPART.notifier"),
		sub("rampart.>"), sub("_INBOX_ledger.>"),
	},
}

// destructive is refused to every identity: no one updates, purges or
// deletes RAMPART or the ledger's streams, or deletes a stream at all.
var destructive = []action{
	pub("$JS.API.STREAM.DELETE.RAMPART"), pub("$JS.API.STREAM.PURGE.RAMPART"),
	pub("$JS.API.STREAM.DELETE.LEDGER"), pub("$JS.API.STREAM.PURGE.LEDGER"),
	pub("$JS.API.STREAM.DELETE.LEDGER_CHECKPOINTS"), pub("$JS.API.STREAM.PURGE.LEDGER_CHAINS"),
	pub("$JS.API.STREAM.DELETE.KV_RAMPART_ROLLOUTS"), pub("$JS.API.STREAM.PURGE.KV_RAMPART_ROLLOUTS"),
	pub("$JS.API.STREAM.DELETE.OBJ_RAMPART_SBOMS"),
	pub("$JS.API.ACCOUNT.PURGE.$G"),
}

func TestRefused(t *testing.T) {
	ns := natstest.Server(t, "")
	for _, name := range append(natsauth.Services(), natsauth.Admin) {
		t.Run(name, func(t *testing.T) {
			acts := refusals[name]
			if len(acts) == 0 {
				t.Fatalf("no refusals listed for %s", name)
			}
			nc, violations := connect(t, ns, name)
			for _, a := range append(acts, destructive...) {
				refused(t, nc, violations, a)
			}
			if name != natsauth.Admin {
				refused(t, nc, violations, pub("$JS.API.STREAM.UPDATE.RAMPART"))
			}
		})
	}
}

// TestDestructiveCallsChangeNothing makes the refused JetStream API calls
// for real, as the ledger and as the admin, and checks the streams are
// untouched: D3 (delete the ledger) and D4 (shrink it by an update).
func TestDestructiveCallsChangeNothing(t *testing.T) {
	ns := natstest.Server(t, "")
	tester := jsOf(t, natstest.Connect(t, ns))
	ledger, err := tester.CreateStream(t.Context(), jetstream.StreamConfig{Name: "LEDGER", Subjects: []string{"ledger.entries"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tester.Publish(t.Context(), "ledger.entries", []byte("entry 0")); err != nil {
		t.Fatal(err)
	}
	natstest.Bus(t, ns)
	for _, name := range []string{"ledger", natsauth.Admin, "watcher"} {
		js := jsOf(t, natstest.ConnectAs(t, ns, name))
		for what, call := range map[string]func() error{
			"delete LEDGER": func() error { return js.DeleteStream(short(t), "LEDGER") },
			"purge LEDGER": func() error {
				s, err := js.Stream(short(t), "LEDGER")
				if err != nil {
					return err
				}
				return s.Purge(short(t))
			},
			"update LEDGER to MaxMsgs 0": func() error {
				if name == "ledger" {
					return errors.New("skipped: the ledger may configure its own stream")
				}
				_, err := js.UpdateStream(short(t), jetstream.StreamConfig{Name: "LEDGER", Subjects: []string{"ledger.entries"}, MaxMsgs: 1, Discard: jetstream.DiscardOld})
				return err
			},
			"delete RAMPART": func() error { return js.DeleteStream(short(t), bus.StreamName) },
		} {
			if err := call(); err == nil {
				t.Errorf("%s: %s succeeded", name, what)
			}
		}
	}
	info, err := ledger.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 || info.Config.MaxMsgs != -1 {
		t.Fatalf("LEDGER changed: %d messages, max %d", info.State.Msgs, info.Config.MaxMsgs)
	}
	if _, err := tester.Stream(t.Context(), bus.StreamName); err != nil {
		t.Fatalf("RAMPART: %v", err)
	}
}

// TestAllowed: what each identity's job needs goes through.
func TestAllowed(t *testing.T) {
	ns := natstest.Server(t, "")
	natstest.Bus(t, ns)
	for name, subject := range map[string]string{
		"scanner": "rampart.scan.shop", "deployer": "rampart.rollback.shop", "watcher": "rampart.anomaly.shop",
		"notifier": "rampart.page.shop", "ledger": "rampart.anomaly.ledger", natsauth.Admin: "rampart.anomaly.shop",
	} {
		js := jsOf(t, natstest.ConnectAs(t, ns, name))
		if _, err := js.Publish(short(t), subject, []byte("{}")); err != nil {
			t.Errorf("%s: publish %s: %v", name, subject, err)
		}
		if _, err := js.Publish(short(t), "rampart.deadletter."+name, nil); name != natsauth.Admin && err != nil {
			t.Errorf("%s: dead letter: %v", name, err)
		}
	}
	// The ledger owns its streams: creates, writes and reads them.
	js := jsOf(t, natstest.ConnectAs(t, ns, "ledger"))
	s, err := js.CreateOrUpdateStream(short(t), jetstream.StreamConfig{Name: "LEDGER", Subjects: []string{"ledger.entries"}, DenyDelete: true, DenyPurge: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(short(t), "ledger.entries", []byte("entry 0")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMsg(short(t), 1); err != nil {
		t.Fatal(err)
	}
	// The watcher and the admin read RAMPART with ordered consumers.
	for _, name := range []string{"watcher", natsauth.Admin} {
		js := jsOf(t, natstest.ConnectAs(t, ns, name))
		s, err := js.Stream(short(t), bus.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.OrderedConsumer(short(t), jetstream.OrderedConsumerConfig{FilterSubjects: []string{"rampart.anomaly.>"}})
		if err != nil {
			t.Fatalf("%s: ordered consumer: %v", name, err)
		}
		if _, err := c.Next(jetstream.FetchMaxWait(2 * time.Second)); err != nil {
			t.Fatalf("%s: read RAMPART: %v", name, err)
		}
	}
	// The deployer keeps its state in its bucket, and watches it.
	djs := jsOf(t, natstest.ConnectAs(t, ns, "deployer"))
	kv, err := djs.CreateOrUpdateKeyValue(short(t), jetstream.KeyValueConfig{Bucket: "RAMPART_ROLLOUTS"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(short(t), "app.shop", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(short(t), "app.shop"); err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(short(t), "app.*")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	select {
	case e := <-w.Updates():
		if e == nil || e.Key() != "app.shop" {
			t.Fatalf("watch: %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch: no update")
	}
}

// TestServerConfig: the configuration ServerConfig writes for an external
// server is one nats-server reads, with every user and its permissions.
func TestServerConfig(t *testing.T) {
	dir := t.TempDir()
	users, err := natsauth.EnsureKeys(dir, append(natsauth.Services(), natsauth.Admin)...)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(conf, []byte(natsauth.ServerConfig(users)), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Nkeys) != len(users) {
		t.Fatalf("%d users in the config, want %d", len(opts.Nkeys), len(users))
	}
	for i, u := range opts.Nkeys {
		want := users[i]
		if u.Nkey != want.PublicKey || fmt.Sprint(u.Permissions.Publish.Allow) != fmt.Sprint(want.Permissions.Publish.Allow) ||
			fmt.Sprint(u.Permissions.Publish.Deny) != fmt.Sprint(want.Permissions.Publish.Deny) {
			t.Errorf("user %s: read back %+v", want.Name, u.Permissions.Publish)
		}
	}
	// Keys are kept: a second call returns the same public keys.
	again, err := natsauth.EnsureKeys(dir, append(natsauth.Services(), natsauth.Admin)...)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range again {
		if u.PublicKey != users[i].PublicKey || !nkeys.IsValidPublicUserKey(u.PublicKey) {
			t.Errorf("%s: key %s, then %s", u.Name, users[i].PublicKey, u.PublicKey)
		}
	}
}

func connect(t *testing.T, ns *server.Server, name string) (*nats.Conn, chan error) {
	t.Helper()
	violations := make(chan error, 100)
	nc := natstest.ConnectAs(t, ns, name, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		violations <- err
	}))
	return nc, violations
}

// refused tries a and waits for the server's permissions violation naming
// its subject.
func refused(t *testing.T, nc *nats.Conn, violations chan error, a action) {
	t.Helper()
	var err error
	if a.sub {
		var s *nats.Subscription
		s, err = nc.SubscribeSync(a.subject)
		defer func() { _ = s.Unsubscribe() }()
	} else {
		err = nc.PublishRequest(a.subject, nc.NewRespInbox(), []byte("{}"))
	}
	if err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("Publish to %q", a.subject)
	if a.sub {
		want = fmt.Sprintf("Subscription to %q", a.subject)
	}
	deadline := time.After(2 * time.Second)
	for {
		select {
		case err := <-violations:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), want) {
				return
			}
		case <-deadline:
			t.Errorf("%s: allowed, want a permissions violation", a)
			return
		}
	}
}

func jsOf(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// short bounds one call: a refused request is never answered.
func short(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestDocumentedTable: docs/security.md's permission table names, for each
// identity, what Grants gives it.
func TestDocumentedTable(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		if cells := strings.Split(line, "|"); len(cells) > 2 {
			rows[strings.TrimSpace(cells[1])] = line
		}
	}
	for _, name := range append(natsauth.Services(), natsauth.Admin) {
		row, ok := rows[name]
		if !ok {
			t.Errorf("docs/security.md: no row for %s", name)
			continue
		}
		g := natsauth.Grants[name]
		want := []string{}
		for _, k := range g.Emits {
			want = append(want, "`rampart."+k+".>`")
		}
		for _, subject := range g.Subjects {
			want = append(want, "`"+subject+"`")
		}
		for _, d := range g.Durables {
			want = append(want, "`"+d+"`")
		}
		want = append(append(want, g.KV...), g.Objects...)
		for s, subjects := range g.Streams {
			want = append(append(want, "`"+s+"`"), subjects...)
		}
		for _, w := range want {
			if !strings.Contains(row, w) {
				t.Errorf("docs/security.md: the %s row does not name %s", name, w)
			}
		}
	}
}

// TestCredsFile: an identity read from a .creds file connects to a server
// in decentralized JWT mode, with the permissions its user JWT carries.
func TestCredsFile(t *testing.T) {
	op, _ := nkeys.CreateOperator()
	opPub, _ := op.PublicKey()
	acc, _ := nkeys.CreateAccount()
	accPub, _ := acc.PublicKey()
	accJWT, err := jwt.NewAccountClaims(accPub).Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	user, _ := nkeys.CreateUser()
	userPub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(userPub)
	uc.IssuerAccount = accPub
	uc.Pub.Allow.Add("rampart.anomaly.>")
	uc.Sub.Allow.Add(natsauth.InboxPrefix("watcher") + ".>")
	userJWT, err := uc.Encode(acc)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	if err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(t.TempDir(), "watcher.creds")
	if err := os.WriteFile(credsFile, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	if err := resolver.Store(accPub, accJWT); err != nil {
		t.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		TrustedOperators: []*jwt.OperatorClaims{jwt.NewOperatorClaims(opPub)}, AccountResolver: resolver})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	opts, err := natsauth.Identity{Name: "watcher", CredsFile: credsFile}.Options()
	if err != nil {
		t.Fatal(err)
	}
	violations := make(chan error, 10)
	nc, err := nats.Connect(ns.ClientURL(), append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		violations <- err
	}))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Request("rampart.anomaly.shop", nil, 50*time.Millisecond); !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("publish allowed by the JWT: %v", err)
	}
	refused(t, nc, violations, pub("rampart.rollback.shop"))
}
