#!/usr/bin/env bash
# Starts both services on embedded defaults (data under ./data, embedded
# SQLite and NATS), in the foreground; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/authprovider ./cmd/authprovider
go build -o bin/eventrelay ./cmd/eventrelay
bin/authprovider "$@" &
ap=$!
bin/eventrelay &
er=$!
trap 'kill -TERM $ap $er 2>/dev/null; wait $ap $er' INT TERM
wait -n $ap $er || true
kill -TERM $ap $er 2>/dev/null || true
wait $ap $er 2>/dev/null || true
