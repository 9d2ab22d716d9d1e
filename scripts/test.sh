#!/usr/bin/env bash
# The project's test command (README Quick start, `make test`, .ci/run):
# installs what the tests need, starts a throwaway MariaDB on a loopback
# port, checks formatting and vet, then runs every test against real parts.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== MariaDB"
ISOBOX_TEST_MARIADB="$(scripts/mariadb.sh start)"
export ISOBOX_TEST_MARIADB
echo "throwaway MariaDB at $ISOBOX_TEST_MARIADB"

echo "== go test"
go test -count=1 -timeout 45m ./...

if [ -x bitrix-module/tests/run.sh ]; then
  echo "== bitrix-module"
  bitrix-module/tests/run.sh
fi

echo "== install (release packages)"
scripts/install-test.sh

echo "== firmware"
make --no-print-directory -C firmware test
