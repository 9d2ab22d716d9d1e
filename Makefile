# isobox: see README.md. Every target works on a fresh Debian machine with Go.
GO ?= go
BIN := bin

.PHONY: run build test bench fuzz generate lint clean

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

clean:
	rm -rf $(BIN)
