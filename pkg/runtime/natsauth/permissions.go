package natsauth

import (
	"fmt"
	"maps"
	"slices"

	"github.com/rampartci/rampart/pkg/events"
	"github.com/rampartci/rampart/pkg/runtime/bus"
)

// Admin is the identity of the operator commands (`rampart events
// publish`, `events tail`, `replay`) and of the host that ensures the
// RAMPART stream before the services start.
const Admin = "admin"

// Grant is what one service does on NATS, from which its permissions are
// derived: the event kinds it emits, its durable consumers on RAMPART, the
// key-value buckets and object stores it owns, and the streams it owns
// outright (the ledger's).
type Grant struct {
	// Emits are the event kinds it publishes, on rampart.<kind>.>.
	Emits []string
	// Subjects are single event subjects it publishes besides its kinds.
	Subjects []string
	// Durables are its durable consumers on RAMPART; each also publishes
	// its dead letters on rampart.deadletter.<durable>.
	Durables []string
	// ReadsHistory: it reads RAMPART with ordered (ephemeral) consumers,
	// whose generated names no permission can spell: it may create and
	// read any consumer on RAMPART except another service's durable.
	ReadsHistory bool
	// MaxDeliveries: it dead-letters, on behalf of any consumer, the
	// RAMPART messages the server gave up on (bus.RecordMaxDeliveries):
	// it hears the server's max-deliveries advisories, reads the message
	// and publishes on rampart.deadletter.>.
	MaxDeliveries bool
	// KV and Objects are the buckets it owns.
	KV, Objects []string
	// Streams it owns with the subjects they capture: it writes them and
	// may change their configuration, never purge or delete them.
	Streams map[string][]string
}

// Grants is the permission table: every service's identity and what it
// may do. docs/security.md shows the same table.
var Grants = map[string]Grant{
	"scanner": {
		// anomaly: the zero-day re-scan reports a live release that a new
		// vulnerability DB blocks.
		Emits:    []string{events.KindCommit, events.KindArtifact, events.KindScan, events.KindTestOutput, events.KindAnomaly},
		Durables: []string{"scanner", "scanner-targets", "scanner-stages"}, // scanner-stages: checks of candidates in a stage
		KV:       []string{"RAMPART_SCANS", "RAMPART_SCAN_TARGETS"},
		Objects:  []string{"RAMPART_SBOMS", "RAMPART_API_SPECS"},
	},
	"deployer": {
		// stage: a candidate deployed to a pre-production stage.
		// intervention: an operator's action on a rollout, with who asked.
		Emits:    []string{events.KindPromote, events.KindCanaryStep, events.KindRelease, events.KindRollback, events.KindStage, events.KindIntervention},
		Durables: []string{"deployer"},
		KV:       []string{"RAMPART_ROLLOUTS"},
	},
	"watcher": {
		// analysis: each canary step's worst metric readings (decision 0024).
		Emits:        []string{events.KindAnomaly, events.KindAnalysis},
		Durables:     []string{"watcher"},
		ReadsHistory: true,
	},
	"notifier": {
		Emits:    []string{events.KindPage},
		Durables: []string{"notifier"},
		KV:       []string{"RAMPART_REPORTS", "RAMPART_INCIDENTS"},
	},
	"ledger": {
		// A message in LEDGER that the ledger did not write, or a new log
		// an operator accepted, is reported as an anomaly of the "ledger"
		// application; the ledger can publish no other anomaly.
		Subjects:      []string{events.SubjectPrefix + "." + events.KindAnomaly + ".ledger"},
		Durables:      []string{"ledger"},
		MaxDeliveries: true,
		Streams: map[string][]string{
			"LEDGER":             {"ledger.entries"},
			"LEDGER_CHECKPOINTS": {"ledger.checkpoints"},
			"LEDGER_CHAINS":      {"ledger.chain.>", "ledger.chains.indexed"},
		},
	},
}

// Services are the names of the service identities, sorted.
func Services() []string {
	names := make([]string, 0, len(Grants))
	for n := range Grants {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Permissions are the subjects an identity may publish and subscribe to,
// in nats-server's terms: with an allow list, everything else is refused;
// deny wins over allow.
type Permissions struct {
	Publish, Subscribe Rule
}

// Rule is an allow and a deny list of subjects (NATS wildcards).
type Rule struct {
	Allow, Deny []string
}

// PermissionsOf returns the permissions of the identity name: a service of
// Grants or Admin.
func PermissionsOf(name string) (Permissions, error) {
	if name == Admin {
		return adminPermissions(), nil
	}
	g, ok := Grants[name]
	if !ok {
		return Permissions{}, fmt.Errorf("NATS identity %q: unknown; want admin or one of %v", name, Services())
	}
	return g.permissions(name), nil
}

const (
	api    = "$JS.API."
	stream = bus.StreamName
)

func (g Grant) permissions(name string) Permissions {
	var p Permissions
	pub := func(s ...string) { p.Publish.Allow = append(p.Publish.Allow, s...) }
	for _, k := range g.Emits {
		pub(events.SubjectPrefix + "." + k + ".>")
	}
	pub(g.Subjects...)
	// Any service may create RAMPART when it does not exist yet (creating
	// it again with the same configuration is a no-op), never change it.
	pub(api+"STREAM.INFO."+stream, api+"STREAM.CREATE."+stream)
	// Account info: creating a bucket reads the account's limits.
	pub(api + "INFO")
	for _, d := range g.Durables {
		pub(bus.DeadLetterSubject(d))
		pub(consumer(stream, d)...)
	}
	if g.ReadsHistory {
		pub(api+"CONSUMER.CREATE."+stream+".*", api+"CONSUMER.CREATE."+stream+".*.>",
			api+"CONSUMER.INFO."+stream+".*", api+"CONSUMER.DELETE."+stream+".*", api+"CONSUMER.MSG.NEXT."+stream+".*")
		p.Publish.Deny = othersDurables(name)
	}
	var sub []string
	if g.MaxDeliveries {
		pub(events.SubjectPrefix+"."+events.KindDeadLetter+".>", api+"STREAM.MSG.GET."+stream)
		sub = append(sub, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."+stream+".*")
	}
	for _, b := range g.KV {
		pub(owned("KV_" + b)...)
		pub("$KV." + b + ".>")
	}
	for _, b := range g.Objects {
		pub(owned("OBJ_" + b)...)
		// Replacing or deleting an object purges its old chunks.
		pub(api+"STREAM.PURGE.OBJ_"+b, "$O."+b+".>")
	}
	for _, s := range slices.Sorted(maps.Keys(g.Streams)) {
		pub(owned(s)...)
		pub(g.Streams[s]...)
	}
	p.Subscribe.Allow = append(sub, InboxPrefix(name)+".>")
	return p
}

// consumer is what a durable consumer d on stream s needs: create or
// update it (with or without its filter in the subject), read its info,
// delete it (to reposition it), pull and acknowledge (both ack formats).
func consumer(s, d string) []string {
	return []string{
		api + "CONSUMER.CREATE." + s + "." + d, api + "CONSUMER.CREATE." + s + "." + d + ".>",
		api + "CONSUMER.DURABLE.CREATE." + s + "." + d,
		api + "CONSUMER.INFO." + s + "." + d, api + "CONSUMER.DELETE." + s + "." + d,
		api + "CONSUMER.MSG.NEXT." + s + "." + d,
		"$JS.ACK." + s + "." + d + ".>", "$JS.ACK.*.*." + s + "." + d + ".>",
	}
}

// owned is what the owner of stream s needs: create it or change its
// configuration, read its messages, run consumers on it (key watches,
// object reads, its own readers). Not purge, not delete.
func owned(s string) []string {
	return []string{
		api + "STREAM.INFO." + s, api + "STREAM.CREATE." + s, api + "STREAM.UPDATE." + s,
		api + "STREAM.MSG.GET." + s, api + "DIRECT.GET." + s, api + "DIRECT.GET." + s + ".>",
		api + "CONSUMER.CREATE." + s, api + "CONSUMER.CREATE." + s + ".>", api + "CONSUMER.DURABLE.CREATE." + s + ".*",
		api + "CONSUMER.INFO." + s + ".*", api + "CONSUMER.DELETE." + s + ".*", api + "CONSUMER.MSG.NEXT." + s + ".*",
		"$JS.ACK." + s + ".>", "$JS.ACK.*.*." + s + ".>", "$JS.FC." + s + ".>",
	}
}

// othersDurables denies every durable consumer on RAMPART that is not
// name's: an identity allowed any consumer name must not take over,
// reposition or drain another service's.
func othersDurables(name string) []string {
	var deny []string
	for _, n := range Services() {
		if n == name {
			continue
		}
		for _, d := range Grants[n].Durables {
			deny = append(deny, api+"CONSUMER.CREATE."+stream+"."+d, api+"CONSUMER.CREATE."+stream+"."+d+".>",
				api+"CONSUMER.DELETE."+stream+"."+d, api+"CONSUMER.MSG.NEXT."+stream+"."+d)
		}
	}
	return deny
}

// adminPermissions: the operator reads every stream and publishes events
// (rampart.>) and replay copies (replay.>); it may create and update
// RAMPART (its retention) and create REPLAY. It never writes the ledger's
// streams or a service's bucket, never purges or deletes a stream, and never
// touches a service's durable consumer.
func adminPermissions() Permissions {
	return Permissions{
		Publish: Rule{
			Allow: []string{
				events.SubjectPrefix + ".>", "replay.>",
				api + "INFO", api + "STREAM.NAMES", api + "STREAM.LIST", api + "STREAM.INFO.*",
				api + "STREAM.MSG.GET.*", api + "DIRECT.GET.>",
				api + "STREAM.CREATE." + stream, api + "STREAM.UPDATE." + stream, api + "STREAM.CREATE.REPLAY",
				api + "CONSUMER.CREATE.>", api + "CONSUMER.INFO.>", api + "CONSUMER.DELETE.>", api + "CONSUMER.MSG.NEXT.>",
				api + "CONSUMER.NAMES.*", api + "CONSUMER.LIST.*",
			},
			Deny: othersDurables(Admin),
		},
		Subscribe: Rule{Allow: []string{InboxPrefix(Admin) + ".>"}},
	}
}
