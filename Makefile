# Tessera's build. `make demo` runs the whole system on simulated GPUs;
# `make test` runs every test. Tools the targets need are installed into
# ./bin at pinned versions, so a fresh machine with Go and gcc suffices.

GO          ?= go
BIN         := $(CURDIR)/bin
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(BIN)/staticcheck-$(STATICCHECK_VERSION)
FUZZTIME    ?= 60s
# NVML's cgo header declares deprecated functions; their warnings are noise.
export CGO_CFLAGS ?= -O2 -Wno-deprecated-declarations

.PHONY: all build test demo bench lint fmt fuzz clean help

all: build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/tessera
	$(GO) build -o $(BIN)/tessera ./cmd/tessera

test: ## run every test (unit, property, sim-backed, fuzz seeds)
	$(GO) test -count=1 ./...

demo: build ## run the demo on a simulated 8x A100-80GB node
	$(BIN)/tessera demo

bench: ## run the benchmarks, print the apply report and write the scheduler report bench/RESULTS.md
	$(GO) test -run '^TestReport$$' -v ./gpu/sim/applycost/ | grep '|'
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./cmd/tessera bench -o markdown > bench/RESULTS.md.tmp || { rm -f bench/RESULTS.md.tmp; exit 1; }
	mv bench/RESULTS.md.tmp bench/RESULTS.md

fuzz: ## fuzz the layout-file parser for $(FUZZTIME)
	$(GO) test -run '^$$' -fuzz '^FuzzParseFile$$' -fuzztime $(FUZZTIME) ./migconfig/

lint: $(STATICCHECK) ## gofmt, go vet and staticcheck
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(BIN)/staticcheck $@

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build output
	rm -rf $(BIN)
