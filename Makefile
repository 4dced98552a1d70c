# cri-enricherd — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

BIN       ?= bin/cri-enricherd
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
GO        ?= go
E2E_TIMEOUT ?= 25m
# A count, not a duration: with a duration Go 1.26's fuzz coordinator can
# fail a clean run at its deadline on a loaded machine (go.dev/issue/75804).
FUZZTIME  ?= 100000x
TOOLS_BIN := $(shell $(GO) env GOPATH)/bin

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the static daemon binary into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cri-enricherd

.PHONY: deps
deps: ## Install what the real-runtime tests need (containerd 1.6 and 2.x, runc, CNI, crictl, a kubelet built from the module proxy)
	bash hack/install-test-deps.sh

.PHONY: promtool
promtool: ## Install promtool (Debian prometheus), which checks the metrics exposition, dashboard and docs queries
	bash hack/install-promtool.sh

.PHONY: test
# make deps (on a fresh machine ~12 minutes of module downloads and the
# containerd 2.4 and kubelet builds) runs in the background while the stages
# that need no runtime run: much of their time is spent waiting (downloads,
# timers, buildah), so the two together take minutes less than one after the
# other. Its output is printed when it is done; e2e runs deps again, which
# is then a quick check.
DEPS_LOG ?= bin/deps.log
test: ## Run every test: unit, deployment and image checks, fuzz (bounded), and end-to-end against real containerd 1.6 and 2.x
	@mkdir -p $(dir $(DEPS_LOG)); set -e; \
	$(MAKE) --no-print-directory deps >$(DEPS_LOG) 2>&1 & deps=$$!; \
	trap 'kill $$deps 2>/dev/null || true' EXIT; \
	echo "make deps: in the background, log in $(DEPS_LOG)"; \
	$(MAKE) unit; $(MAKE) integration; $(MAKE) deploy-check; $(MAKE) image-check; $(MAKE) fuzz; \
	status=0; wait $$deps || status=$$?; trap - EXIT; \
	echo "make deps (background) ended with status $$status:"; cat $(DEPS_LOG); \
	[ $$status -eq 0 ]; \
	$(MAKE) e2e

.PHONY: unit
unit: promtool ## Unit tests (no runtime needed), with -race
	$(GO) test -race -count=1 ./pkg/... ./cmd/...

.PHONY: integration
integration: ## Real CRI client, lookup engine, cache and metrics against the in-process fake runtime, with -race
	$(GO) test -race -count=1 ./test/integration/...

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (corpus kept under testdata/fuzz)
	@set -e; for pkg in $$($(GO) list ./pkg/...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# -p 1: one package at a time. The daemon under test watches every cgroup
# on the host, so another package's pods (the kubelet tests' included)
# would show up in its call counts.
.PHONY: e2e
e2e: deps promtool helm build ## End-to-end tests against real containerd 1.6 and 2.x, a real kubelet on both, the chart's pod and a real Prometheus (needs root)
	set -a; source $${CRI_ENRICHERD_TEST_ENV:-/var/cache/cri-enricherd-test/env}; set +a; \
	CRI_ENRICHERD_E2E=1 CRI_ENRICHERD_BIN=$(CURDIR)/$(BIN) CRI_ENRICHERD_HELM=$(HELM) \
	  $(GO) test -p 1 -count=1 -timeout $(E2E_TIMEOUT) -v ./test/harness/... ./test/e2e/...

.PHONY: demo
demo: deps build ## Start a throwaway containerd with sample pods, run the daemon on it, print its records, tear down
	set -a; source $${CRI_ENRICHERD_TEST_ENV:-/var/cache/cri-enricherd-test/env}; set +a; \
	$(GO) run ./test/demo -daemon $(CURDIR)/$(BIN)

BENCH_DIR     ?= bin/bench
# 6 runs: the fewest for a finite 95% interval of the median, the report's ±.
BENCH_COUNT   ?= 6
BENCH_LOAD    ?= 10s
BENCH_CLIENTS ?= 2 4 8
BENCH_PKGS    := ./pkg/cache ./pkg/cgroup ./pkg/enrich ./pkg/api/httpapi ./pkg/api/grpcapi

.PHONY: bench
bench: deps build ## Go benchmarks, API load, fake-runtime scale run and runtime run (containerd 1.6, 2.4 and the fake in CRI-O mode; needs root); one table of figures beside their targets
	@rm -rf $(BENCH_DIR); mkdir -p $(BENCH_DIR)
	@echo "load average before: $$(cut -d' ' -f1-3 /proc/loadavg) (2 shared cores: the figures are only as quiet as the machine)"
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) $(BENCH_PKGS) | tee $(BENCH_DIR)/go-bench.txt
	$(GO) build -o $(BENCH_DIR)/api-load ./test/bench/api-load
	@for proto in http grpc; do for c in $(BENCH_CLIENTS); do \
	  $(BENCH_DIR)/api-load -proto $$proto -clients $$c -duration $(BENCH_LOAD) -json $(BENCH_DIR)/api-$$proto-$$c.json || exit 1; \
	done; done
	$(GO) run ./test/bench/scale -daemon $(BIN) -json $(BENCH_DIR)/scale.json
	set -a; source $${CRI_ENRICHERD_TEST_ENV:-/var/cache/cri-enricherd-test/env}; set +a; \
	  $(GO) run ./test/bench/runtime-bench -daemon $(BIN) -pods 100 -json $(BENCH_DIR)/runtime.json
	@echo; $(GO) run ./test/bench/report -dir $(BENCH_DIR)

PROTOC_VERSION           := 3.21.12
PROTOC_GEN_GO_VERSION    := $(shell $(GO) list -m -f '{{.Version}}' google.golang.org/protobuf)
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTOS := api/v1/enricher.proto

.PHONY: protoc-tools
protoc-tools: ## Install protoc (Debian protobuf-compiler) and the pinned Go protoc plugins
	@command -v protoc >/dev/null || apt-get install -y protobuf-compiler
	@protoc --version | grep -qx 'libprotoc $(PROTOC_VERSION)' || \
	  { echo "protoc $(PROTOC_VERSION) required (Debian bookworm protobuf-compiler), found: $$(protoc --version)"; exit 1; }
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

# protoc-gen writes the Go code of $(PROTOS) under the directory $(1).
define protoc-gen
	protoc -I . \
	  --plugin=protoc-gen-go=$(TOOLS_BIN)/protoc-gen-go --go_out=$(1) --go_opt=paths=source_relative \
	  --plugin=protoc-gen-go-grpc=$(TOOLS_BIN)/protoc-gen-go-grpc --go-grpc_out=$(1) --go-grpc_opt=paths=source_relative \
	  $(PROTOS)
endef

.PHONY: generate
generate: protoc-tools ## Regenerate the gRPC Go code under api/v1 from its .proto
	$(call protoc-gen,.)

.PHONY: generate-check
generate-check: protoc-tools ## Fail if the committed api/v1 Go code differs from a fresh `make generate`
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	$(call protoc-gen,$$tmp) && \
	for f in $$(cd $$tmp && find . -name '*.go'); do \
	  diff -u $$f $$tmp/$$f || { echo "$$f is stale: run make generate"; exit 1; }; \
	done; \
	echo "generated code is up to date"

.PHONY: lint
lint: ## gofmt, go vet and golangci-lint
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	test -x $(TOOLS_BIN)/golangci-lint || $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
	$(TOOLS_BIN)/golangci-lint run ./...

.PHONY: clean
clean: ## Remove build outputs
	rm -rf bin dist

# --- Shipping: Helm chart, plain manifests, container image ---------------

HELM_VERSION := v3.22.0
HELM         := $(TOOLS_BIN)/helm
IMAGE        ?= cri-enricherd/cri-enricherd
IMAGE_TAG    ?= $(VERSION)
REVISION     ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

.PHONY: helm
helm: ## Install the pinned helm (HELM_VERSION) into GOPATH/bin with go install, unless it is there
	@$(GO) version -m $(HELM) 2>/dev/null | grep -Eq '^\s+mod\s+helm\.sh/helm/v3\s+$(HELM_VERSION)\s' || { \
	  echo "installing helm $(HELM_VERSION) into $(TOOLS_BIN)"; \
	  GOBIN=$(TOOLS_BIN) GOFLAGS=-buildvcs=false $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); }

.PHONY: manifests
manifests: helm ## Render deploy/manifests/cri-enricherd.yaml from the Helm chart's default values
	CRI_ENRICHERD_HELM=$(HELM) $(GO) test -count=1 -run '^TestManifests_MatchTheChart$$' ./test/deploy -update

.PHONY: deploy-check
deploy-check: helm promtool ## Lint, render and strictly decode the chart in every ci/ scenario, load its config with the daemon, test the alerts, check manifest drift
	CRI_ENRICHERD_DEPLOY_CHECK=1 CRI_ENRICHERD_HELM=$(HELM) $(GO) test -race -count=1 ./test/deploy/...

.PHONY: image
image: build ## Build the container image IMAGE:IMAGE_TAG with docker or podman when one answers, else buildah
	IMAGE=$(IMAGE) IMAGE_TAG=$(IMAGE_TAG) VERSION=$(VERSION) REVISION=$(REVISION) bash hack/image-build.sh

.PHONY: image-check
image-check: build ## Build the image with buildah in a throwaway store and run its binary (--version); cleans up after
	VERSION=$(VERSION) REVISION=$(REVISION) bash hack/image-check.sh
