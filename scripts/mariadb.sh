#!/usr/bin/env bash
# Starts or stops the throwaway MariaDB server the tests use: loopback only,
# its own data dir, run as the unprivileged "mysql" user, no password for root
# over TCP from 127.0.0.1 (it is never reachable from elsewhere).
#   scripts/mariadb.sh start   -> prints the DSN to export as ISOBOX_TEST_MARIADB
#   scripts/mariadb.sh stop
#   scripts/mariadb.sh restart -> stops it and starts it again on the same data
set -euo pipefail
PORT="${ISOBOX_MARIADB_PORT:-33306}"
DIR="${ISOBOX_MARIADB_DIR:-/tmp/isobox-mariadb-$PORT}"
SOCK="$DIR/mysqld.sock"
RUN_AS=mysql
id -u "$RUN_AS" >/dev/null 2>&1 || RUN_AS="$(id -un)"

start() {
  if mariadb-admin --protocol=tcp -h127.0.0.1 -P"$PORT" -uroot ping >/dev/null 2>&1; then
    echo "root@tcp(127.0.0.1:$PORT)/"
    return
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR/data"
  chown -R "$RUN_AS" "$DIR"
  mariadb-install-db --no-defaults --user="$RUN_AS" --datadir="$DIR/data" \
    --auth-root-authentication-method=normal --skip-test-db >"$DIR/install.log" 2>&1 \
    || { cat "$DIR/install.log" >&2; exit 1; }
  launch
}

# launch runs mariadbd on the existing data dir and waits until it answers.
launch() {
  # Durable commits (innodb_flush_log_at_trx_commit=1, sync_binlog unused):
  # the benchmarks measure what production would run.
  mariadbd --no-defaults --user="$RUN_AS" --datadir="$DIR/data" --socket="$SOCK" \
    --port="$PORT" --bind-address=127.0.0.1 --skip-name-resolve \
    --pid-file="$DIR/mysqld.pid" --log-error="$DIR/error.log" \
    --innodb-buffer-pool-size=512M --innodb-flush-log-at-trx-commit=1 \
    --max-connections=1000 --character-set-server=utf8mb4 --collation-server=utf8mb4_bin \
    >/dev/null 2>&1 &
  for _ in $(seq 1 120); do
    if mariadb-admin --protocol=tcp -h127.0.0.1 -P"$PORT" -uroot ping >/dev/null 2>&1; then
      # Let root connect over TCP without a password (loopback only).
      mariadb --protocol=socket -S "$SOCK" -uroot -e \
        "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;" >/dev/null 2>&1 || true
      echo "root@tcp(127.0.0.1:$PORT)/"
      return
    fi
    # The server may also become reachable only over its socket first.
    if mariadb --protocol=socket -S "$SOCK" -uroot -e \
        "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;" >/dev/null 2>&1; then
      continue
    fi
    sleep 0.5
  done
  echo "mariadb did not start; log follows" >&2
  cat "$DIR/error.log" >&2 || true
  exit 1
}

stop() {
  if [ -f "$DIR/mysqld.pid" ]; then
    kill "$(cat "$DIR/mysqld.pid")" 2>/dev/null || true
  fi
}

# restart stops the server, waits until it has exited and starts it again
# on the same data (the fault harness's "restart MariaDB").
restart() {
  local pid=""
  [ -f "$DIR/mysqld.pid" ] && pid="$(cat "$DIR/mysqld.pid")"
  stop
  if [ -n "$pid" ]; then
    for _ in $(seq 1 240); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
  fi
  launch
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) restart ;;
  *) echo "usage: $0 start|stop|restart" >&2; exit 2 ;;
esac
