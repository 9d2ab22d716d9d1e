# isobox: see README.md. Every target works on a fresh Debian machine with Go.
GO ?= go
BIN := bin

.PHONY: run build test bench fuzz generate lint clean dist dist-bin faults

## run: build and start both services on embedded defaults (Ctrl-C stops them)
run:
	scripts/run.sh

## build: build both binaries into bin/
build:
	$(GO) build -o $(BIN)/authprovider ./cmd/authprovider
	$(GO) build -o $(BIN)/eventrelay ./cmd/eventrelay

## test: install test dependencies, start a throwaway MariaDB, vet, run every test
test:
	scripts/test.sh

## bench: run the Go benchmarks (see docs/benchmarks.md for the load tools)
bench:
	ISOBOX_TEST_MARIADB="$$(scripts/mariadb.sh start)" $(GO) test -run '^$$' -bench . -benchtime 2s ./...

## faults: fault harness, about 10 minutes: 3 NATS nodes + 2 authprovider + 2 eventrelay on
## loopback with its own MariaDB (port FAULTS_MARIADB_PORT); ends with the "faults: ..." line
FAULTS_MARIADB_PORT ?= 33406
faults:
	ISOBOX_MARIADB_PORT=$(FAULTS_MARIADB_PORT) ISOBOX_MARIADB_DIR=/tmp/isobox-faults-mariadb-$(FAULTS_MARIADB_PORT) scripts/mariadb.sh start >/dev/null
	ISOBOX_MARIADB_PORT=$(FAULTS_MARIADB_PORT) ISOBOX_MARIADB_DIR=/tmp/isobox-faults-mariadb-$(FAULTS_MARIADB_PORT) \
	  ISOBOX_FAULTS_MARIADB="root@tcp(127.0.0.1:$(FAULTS_MARIADB_PORT))/" nice -n 10 $(GO) run ./cmd/faults $(FAULTS_ARGS); \
	  rc=$$?; ISOBOX_MARIADB_PORT=$(FAULTS_MARIADB_PORT) ISOBOX_MARIADB_DIR=/tmp/isobox-faults-mariadb-$(FAULTS_MARIADB_PORT) scripts/mariadb.sh stop; exit $$rc

## fuzz: run each fuzz target for FUZZTIME (default 20s)
FUZZTIME ?= 20s
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

## generate: regenerate protobuf, gRPC, gateway and OpenAPI code with local plugins
generate:
	scripts/generate.sh

## lint: gofmt and go vet
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

## dist: release artefacts for VERSION (x.y.z) into dist/: static binaries, .deb/.rpm, images, module, offline bundle
# VERSION is required; COMMIT and DATE default to the checked-out commit, so
# two builds of one commit are identical. DIST_ARCHES narrows the build (the
# install test builds amd64 only).
DIST ?= dist
DIST_ARCHES ?= amd64 arm64
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
VERSION_PKG := github.com/isobox/isobox/internal/version
DIST_LDFLAGS := -s -w -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Commit=$(COMMIT) -X $(VERSION_PKG).Date=$(DATE)

dist: dist-bin
	$(GO) run ./cmd/isobox-dist build -version '$(VERSION)' -commit '$(COMMIT)' -date '$(DATE)' \
	  -arch '$(shell echo $(DIST_ARCHES) | tr ' ' ,)' -out '$(DIST)' -root .

## dist-bin: only the static binaries, dist/bin/linux_<arch>/<service>
dist-bin:
	@test -n "$(VERSION)" || { echo 'make dist: set VERSION, e.g. make dist VERSION=1.2.3' >&2; exit 2; }
	rm -rf $(DIST)
	@set -e; for arch in $(DIST_ARCHES); do for svc in authprovider eventrelay; do \
	  echo "build $(DIST)/bin/linux_$$arch/$$svc"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(DIST_LDFLAGS)' \
	    -o $(DIST)/bin/linux_$$arch/$$svc ./cmd/$$svc; \
	done; done

clean:
	rm -rf $(BIN) $(DIST)
