#!/usr/bin/env bash
# Installs, on a fresh Debian machine with Go, everything the tests need:
# MariaDB (server and client), the PHP CLI (portal stand-ins, the module's
# tests, payload decoding) and PHPUnit. Run as root (CI is root); a machine
# that already has every tool skips apt entirely.
set -euo pipefail
need=()
command -v mariadbd >/dev/null 2>&1 || need+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need+=(mariadb-client)
command -v php >/dev/null 2>&1 || need+=(php-cli)
php -m 2>/dev/null | grep -qi '^curl$' || need+=(php-curl)
php -m 2>/dev/null | grep -qi '^mbstring$' || need+=(php-mbstring)
php -m 2>/dev/null | grep -qi '^sqlite3$' || need+=(php-sqlite3)
php -m 2>/dev/null | grep -qi '^pdo_mysql$' || need+=(php-mysql)
php -m 2>/dev/null | grep -qi '^apcu$' || need+=(php-apcu)
command -v phpunit >/dev/null 2>&1 || need+=(phpunit)
# firmware/ host tests (make -C firmware test): g++ with its ASan/UBSan runtimes, make
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
# firmware/test/ws_host: SHA-1 and base64 of the WebSocket handshake (libcrypto)
[ -f /usr/include/openssl/sha.h ] || need+=(libssl-dev)
# install test of the release packages (scripts/install-test.sh): rpm -qlp, systemd-analyze verify
command -v rpm >/dev/null 2>&1 || need+=(rpm)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# network namespaces as LAN machines (internal/e2e: ip netns, veth)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# web console browser test (console/e2e): Debian's Chromium, Node.js and npm
# (npm installs playwright-core there; it never downloads a browser), a font
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's maintainer scripts try to start the packaged server; we run our
  # own throwaway one instead, so refuse service starts during the install.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
for tool in go mariadbd mariadb php phpunit; do
  command -v "$tool" >/dev/null 2>&1 || { echo "deps: $tool is missing after install" >&2; exit 1; }
done
