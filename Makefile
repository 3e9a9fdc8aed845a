# Tessera's build. `make demo` runs the whole system on simulated GPUs;
# `make test` runs every test. Tools the targets need are installed into
# ./bin at pinned versions, so a fresh machine with Go and gcc suffices.

GO          ?= go
BIN         := $(CURDIR)/bin
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(BIN)/staticcheck-$(STATICCHECK_VERSION)
FUZZTIME    ?= 60s
# make install: PREFIX for the binary, SYSCONFDIR for /etc/tessera,
# UNITDIR for the systemd unit; DESTDIR stages everything under a root.
PREFIX      ?= /usr/local
SYSCONFDIR  ?= /etc
UNITDIR     ?= /lib/systemd/system
DESTDIR     ?=
# The e2e tests' kube-apiserver, kubectl and etcd, built once per machine.
E2E_COMPONENTS := GO="$(GO)" $(CURDIR)/e2e/scripts/components.sh
# NVML's cgo header declares deprecated functions; their warnings are noise.
export CGO_CFLAGS ?= -O2 -Wno-deprecated-declarations

.PHONY: all build build-dcgm test test-unit test-e2e e2e-components install demo bench lint fmt fuzz clean help

all: build

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

build: ## build bin/tessera
	$(GO) build -o $(BIN)/tessera ./cmd/tessera

build-dcgm: ## build bin/tessera with DCGM profiling support (cgo; libdcgm loaded at run time)
	$(GO) build -tags dcgm -o $(BIN)/tessera ./cmd/tessera

test: test-unit test-e2e ## run every test: unit, property, sim-backed, fuzz seeds and end-to-end

test-unit: ## run the product module's tests
	$(GO) test -count=1 ./...
	@# metrics/dcgm's go-dcgm build (cgo; runs without libdcgm.so.4 installed).
	$(GO) test -count=1 -tags dcgm ./metrics/dcgm/

test-e2e: ## run the end-to-end tests against a real kube-apiserver and etcd (built once per machine, ~7 min) and the kubelet's device manager (root)
	bin=$$($(E2E_COMPONENTS)) && cd e2e && TESSERA_E2E_BIN="$$bin" TESSERA_REPO="$(CURDIR)" $(GO) test -count=1 ./...
	cd e2e/kubelet && $(GO) test -count=1 -exec $(CURDIR)/e2e/scripts/in-mountns.sh ./...

e2e-components: ## build kube-apiserver, kubectl and etcd for e2e/ (once per machine; ~7 min cold)
	$(E2E_COMPONENTS)

install: ## install bin/tessera (run make build first, as yourself), the systemd unit and default /etc/tessera files (PREFIX, SYSCONFDIR, UNITDIR, DESTDIR)
	@test -x $(BIN)/tessera || { echo "make install: $(BIN)/tessera is missing; run 'make build' first (as yourself, not root)" >&2; exit 1; }
	install -D -m 0755 $(BIN)/tessera $(DESTDIR)$(PREFIX)/bin/tessera
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/tessera
	sed -e 's#/usr/local/bin/tessera#$(PREFIX)/bin/tessera#g' -e 's#/etc/tessera/#$(SYSCONFDIR)/tessera/#g' \
	  systemd/tessera-agent.service > $(DESTDIR)$(UNITDIR)/tessera-agent.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/tessera-agent.service
	@# Configuration the operator may have edited is never overwritten.
	test -e $(DESTDIR)$(SYSCONFDIR)/tessera/agent.yaml || install -m 0644 systemd/agent.yaml $(DESTDIR)$(SYSCONFDIR)/tessera/agent.yaml
	test -e $(DESTDIR)$(SYSCONFDIR)/tessera/layouts.yaml || install -m 0644 systemd/layouts.yaml $(DESTDIR)$(SYSCONFDIR)/tessera/layouts.yaml

demo: build ## run the demo on a simulated 8x A100-80GB node
	$(BIN)/tessera demo

bench: ## run the benchmarks, print the apply report and write the scheduler report bench/RESULTS.md
	$(GO) test -run '^TestReport$$' -v ./gpu/sim/applycost/ | grep '|'
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./cmd/tessera bench -o markdown > bench/RESULTS.md.tmp || { rm -f bench/RESULTS.md.tmp; exit 1; }
	mv bench/RESULTS.md.tmp bench/RESULTS.md

fuzz: ## fuzz the layout-file parser and the Triton metrics-page parser for $(FUZZTIME) each
	$(GO) test -run '^$$' -fuzz '^FuzzParseFile$$' -fuzztime $(FUZZTIME) ./migconfig/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./metrics/triton/

lint: $(STATICCHECK) ## gofmt, go vet and staticcheck
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@# The dcgm build tag swaps in metrics/dcgm's go-dcgm (cgo) implementation.
	$(GO) vet -tags dcgm ./metrics/dcgm/
	$(STATICCHECK) -tags dcgm ./metrics/dcgm/
	cd e2e && $(GO) vet ./... && $(STATICCHECK) ./...
	cd e2e/kubelet && $(GO) vet ./... && $(STATICCHECK) ./...

$(STATICCHECK):
	mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(BIN)/staticcheck $@

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build output
	rm -rf $(BIN)
