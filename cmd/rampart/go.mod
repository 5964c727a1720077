module github.com/rampartci/rampart/cmd/rampart

go 1.26.8

require (
	github.com/cloudevents/sdk-go/v2 v2.16.2
	github.com/nats-io/nats.go v1.55.0
	github.com/rampartci/rampart/pkg/events v0.0.0
	github.com/rampartci/rampart/pkg/ledger v0.0.0
	github.com/rampartci/rampart/pkg/runtime v0.0.0
	github.com/rampartci/rampart/services/deployer v0.0.0
	github.com/rampartci/rampart/services/ledger v0.0.0
	github.com/rampartci/rampart/services/notifier v0.0.0
	github.com/rampartci/rampart/services/scanner v0.0.0
	github.com/rampartci/rampart/services/watcher v0.0.0
	golang.org/x/mod v0.43.0
)

replace (
	github.com/rampartci/rampart/pkg/events => ../../pkg/events
	github.com/rampartci/rampart/pkg/runtime => ../../pkg/runtime
	github.com/rampartci/rampart/services/deployer => ../../services/deployer
	github.com/rampartci/rampart/services/ledger => ../../services/ledger
	github.com/rampartci/rampart/services/notifier => ../../services/notifier
	github.com/rampartci/rampart/services/scanner => ../../services/scanner
	github.com/rampartci/rampart/services/watcher => ../../services/watcher
)

replace github.com/rampartci/rampart/pkg/ledger => ../../pkg/ledger
