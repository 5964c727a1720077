module github.com/rampartci/rampart/pkg/ledger

go 1.26.8

require (
	github.com/nats-io/nats.go v1.55.0
	golang.org/x/mod v0.43.0
)

require (
	github.com/klauspost/compress v1.20.4 // indirect
	github.com/nats-io/nkeys v0.4.17 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
