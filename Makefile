# Rampart: one Makefile over every Go module in the workspace (go.work).
# Targets run per module, found from the go.mod files (tools/ holds the
# modules of tools `make tools` builds, not Rampart's own).

SHELL := /bin/bash
# Trivy v0.74 needs the encoding/json/v2 experiment to build with Go 1.26;
# every module is built and tested with it so all binaries agree.
export GOEXPERIMENT := jsonv2
GO ?= go
MODULES := $(shell find . -name go.mod -not -path './.git/*' -not -path './bin/*' -not -path './tools/*' -printf '%h\n' | sed 's|^\./||' | sort)
BIN := $(CURDIR)/bin
DATA ?= .rampart
TAG ?= dev
TESTFLAGS ?= -race -count=1 -timeout 20m
BENCHFLAGS ?= -run '^$$' -bench . -benchmem -timeout 60m

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build the rampart CLI and every service binary into bin/
	@mkdir -p $(BIN)
	GO=$(GO) scripts/gobuild.sh $(BIN)/rampart ./cmd/rampart
	@for svc in scanner deployer watcher notifier ledger; do \
		echo "$(GO) build -o $(BIN)/$$svc ./services/$$svc/cmd/$$svc"; \
		$(GO) build -o $(BIN)/$$svc ./services/$$svc/cmd/$$svc || exit 1; done

.PHONY: images
images: ## Build the OCI images of the CLI and the services into bin/images (PUSH=registry to push them too)
	@mkdir -p $(BIN)/linux
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/linux/ ./cmd/rampart $(addprefix ./services/,$(foreach s,scanner deployer watcher notifier ledger,$(s)/cmd/$(s)))
	$(GO) run ./deploy/images -bin $(BIN)/linux -out $(BIN)/images -tag $(TAG) -revision $$(git rev-parse HEAD) $(if $(PUSH),-push $(PUSH))

.PHONY: tools
tools: ## Build kube-apiserver, etcd, helm and otelcol for the cluster and trace tests into bin/tools (or $$RAMPART_TOOLS), once
	scripts/tools.sh

.PHONY: test
test: ## Run every module's tests with -race
	@fail=0; for m in $(MODULES); do \
		echo "== test $$m"; \
		(cd $$m && $(GO) test $(TESTFLAGS) ./...) || fail=1; done; exit $$fail

.PHONY: sast
sast: ## Run the commit scan's Go SAST (gosec) over this tree; fail on what the gate blocks under gate-policy.yaml
	GO=$(GO) scripts/gobuild.sh $(BIN)/rampart ./cmd/rampart
	$(BIN)/rampart precommit --sast --gate-policy gate-policy.yaml

.PHONY: vet
vet: ## go vet every module
	@fail=0; for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || fail=1; done; exit $$fail

.PHONY: bench
bench: ## Run the benchmarks (ratios against baselines measured in the same run)
	@for m in $(MODULES); do \
		if grep -rqs --include='*_test.go' '^func Benchmark' $$m; then \
			echo "== bench $$m"; (cd $$m && $(GO) test $(BENCHFLAGS) ./...) || exit 1; fi; done

.PHONY: bench-ledger
bench-ledger: ## Ledger figures: append ÷ raw publish, verify of 1M entries ÷ raw read, HTTP proof p99, publish-to-checkpoint p99, replay ÷ raw consume
	cd services/ledger && RAMPART_BENCH_LEDGER_ENTRIES=$${RAMPART_BENCH_LEDGER_ENTRIES:-1000000} $(GO) test -run '^$$' -timeout 60m \
		-bench 'Throughput|VerifyLarge|InclusionHTTP|CheckpointLatency' -count $${COUNT:-1} ./internal/ledger
	cd cmd/rampart && $(GO) test -run '^$$' -bench ReplayRead -count $${COUNT:-1} ./internal/replay

.PHONY: demo
demo: ## The whole pipeline on the embedded default, with its web console (DEMO_FLAGS=--keep: serve it until Ctrl-C)
	GO=$(GO) scripts/gobuild.sh $(BIN)/rampart ./cmd/rampart
	$(BIN)/rampart demo $(DEMO_FLAGS)

.PHONY: run
run: build ## Bring the mesh up on the embedded default (data in .rampart/)
	$(BIN)/rampart up --data $(DATA)

.PHONY: tidy
tidy: ## go mod tidy every module (each must build on its own) at the versions the workspace selects
	@for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) mod tidy) || exit 1; done
	@# Raise each module to the workspace's versions, so a module built on its
	@# own reuses the workspace's build cache, then drop what that added but
	@# the module does not use.
	@$(GO) work sync
	@for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) mod tidy) || exit 1; done

.PHONY: build-alone
build-alone: ## Build each module on its own, without go.work
	@for m in $(MODULES); do echo "== build $$m (GOWORK=off)"; (cd $$m && GOWORK=off $(GO) build ./...) || exit 1; done

.PHONY: fmt
fmt: ## gofmt every Go file
	@gofmt -w $$(git ls-files '*.go')

.PHONY: verify
verify: fmt tidy vet ## Fail if fmt or tidy change the tree, or vet complains
	@git diff --exit-code --stat -- '*.go' '*go.mod' '*go.sum' || \
		{ echo "verify: the tree is dirty after fmt/tidy; commit the result"; exit 1; }
