#!/usr/bin/env bash
# The isobox.connector module's tests (called by scripts/test.sh):
# `php -l` on every PHP file, then the PHPUnit unit suite on the Bitrix
# stand-ins (the spool's SQL also on the throwaway MariaDB, started here if
# ISOBOX_TEST_MARIADB is not set). The end-to-end suite (tests/e2e) needs the
# real Go services and is run by internal/e2e/module_test.go under `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ISOBOX_TEST_MARIADB:-}" ]; then
  ISOBOX_TEST_MARIADB="$(../scripts/mariadb.sh start)"
  export ISOBOX_TEST_MARIADB
fi

echo "== php -l"
fail=0
while IFS= read -r -d '' f; do
  php -l "$f" >/dev/null || { echo "php -l: $f"; fail=1; }
done < <(find . -name '*.php' -print0)
[ "$fail" -eq 0 ]

echo "== phpunit (unit)"
# APCu on in the CLI, so the module's preferred answer cache is exercised.
php -d apc.enable_cli=1 "$(command -v phpunit)" -c tests/phpunit.xml --testsuite unit
