#!/usr/bin/env bash
# Install test of the release (issue 12), run by scripts/test.sh as root:
# builds the release for the host architecture twice (two versions), checks
# SHA256SUMS, installs the .deb packages from the offline bundle with
# dpkg -i, verifies the units with systemd-analyze (offline: no systemd is
# running here), starts each service the way its unit does (same user and
# groups, umask, clean environment, ExecStart line with the installed config,
# state directory) and waits for /readyz 200, logs into the web console and
# sees it reach eventrelay's admin API with the packaged relay admin key,
# runs both doctors, upgrades with data and edited
# configs kept, removes (data kept), purges (data, users, configs gone).
# Compares the .rpm file list (rpm -qlp) with the .deb's and reads each image
# tarball the way `docker load` does (go-containerregistry).
#
# A script rather than a Go test: it changes the machine (dpkg database,
# system users, /etc/isobox, /var/lib/isobox) and needs root, so it runs once,
# on purpose, from the test command, never inside `go test ./...`. Whatever
# it installed it purges on exit, failed or not.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "install-test: run as root (it installs packages with dpkg -i)" >&2; exit 1; }
for svc in authprovider eventrelay; do
  if dpkg-query -W -f='${Status}' "isobox-$svc" 2>/dev/null | grep -q installed; then
    echo "install-test: isobox-$svc is already installed on this machine; not touching it" >&2; exit 1
  fi
  if getent passwd "isobox-$svc" >/dev/null || [ -e "/var/lib/isobox/$svc" ]; then
    echo "install-test: user isobox-$svc or /var/lib/isobox/$svc exists already; not touching it" >&2; exit 1
  fi
done

work=$(mktemp -d /tmp/isobox-install-test.XXXXXX)
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  dpkg --purge isobox-authprovider isobox-eventrelay >/dev/null 2>&1 || true
  rm -rf "$work"
  [ $rc = 0 ] && echo "install-test: ok" || echo "install-test: FAILED" >&2
  exit $rc
}
trap cleanup EXIT

fail() { echo "install-test: $*" >&2; exit 1; }
step() { echo "-- $*"; }

arch=$(go env GOARCH)
v1=0.0.1 v2=0.0.2
gobin="$work/isobox-dist"
go build -o "$gobin" ./cmd/isobox-dist

step "make dist VERSION=$v1 and $v2 for linux/$arch"
for v in $v1 $v2; do
  make --no-print-directory dist VERSION=$v DIST="$work/dist-$v" DIST_ARCHES="$arch" >"$work/make-$v.log" 2>&1 ||
    { cat "$work/make-$v.log"; fail "make dist VERSION=$v failed"; }
  (cd "$work/dist-$v" && sha256sum --quiet -c SHA256SUMS) || fail "dist-$v: SHA256SUMS does not match"
done

step "offline bundle: unpack, SHA256SUMS, INSTALL.md, docs"
for v in $v1 $v2; do
  mkdir -p "$work/bundle-$v"
  tar -xzf "$work/dist-$v/isobox-$v-offline.tar.gz" -C "$work/bundle-$v"
  b="$work/bundle-$v/isobox-$v"
  (cd "$b" && sha256sum --quiet -c SHA256SUMS) || fail "bundle $v: SHA256SUMS does not match"
  for f in INSTALL.md docs/install.md docs/install.ru.md docs/operations.md docker-compose.yml deploy/nats.conf \
    "bin/linux_$arch/authprovider" "bin/linux_$arch/eventrelay" "isobox.connector-$v.tar.gz"; do
    [ -s "$b/$f" ] || fail "bundle $v has no $f"
  done
  grep -q 'docs/install.md' "$b/INSTALL.md" && grep -q 'docs/install.ru.md' "$b/INSTALL.md" || fail "INSTALL.md does not point at docs/install*.md"
  # The module archive unpacks into /bitrix/modules/: everything under isobox.connector/.
  outside=$(tar -tzf "$b/isobox.connector-$v.tar.gz" | grep -v '^isobox.connector/' || true)
  [ -z "$outside" ] || fail "module archive has entries outside isobox.connector/: $outside"
  tar -xzOf "$b/isobox.connector-$v.tar.gz" isobox.connector/install/version.php | grep -q "'VERSION' => '$v'" ||
    fail "module version.php not stamped with $v"
done
b1="$work/bundle-$v1/isobox-$v1" b2="$work/bundle-$v2/isobox-$v2"

step "binaries report the stamped version"
"$b1/bin/linux_$arch/authprovider" version | grep -q " $v1 " || fail "authprovider version does not say $v1: $("$b1/bin/linux_$arch/authprovider" version 2>&1)"
"$b1/bin/linux_$arch/eventrelay" --version | grep -q " $v1 " || fail "eventrelay --version does not say $v1"

step "images load as isobox/<service>:$v1 (go-containerregistry)"
for svc in authprovider eventrelay; do
  "$gobin" check-image -service $svc -version $v1 -arch "$arch" -binary "$b1/bin/linux_$arch/$svc" \
    "$b1/images/isobox-${svc}_${v1}_linux_$arch.tar"
done

rpm_arch=$arch; [ "$arch" = amd64 ] && rpm_arch=x86_64; [ "$arch" = arm64 ] && rpm_arch=aarch64
deb() { echo "$2/packages/isobox-$1_$3-1_$arch.deb"; }

step "rpm -qlp lists the .deb's files"
for svc in authprovider eventrelay; do
  rpm_file="$b1/packages/isobox-$svc-$v1-1.$rpm_arch.rpm"
  rpm_list=$(rpm -qlp "$rpm_file" 2>/dev/null | sort)
  deb_list=$(dpkg-deb -c "$(deb $svc "$b1" $v1)" | awk '$1 !~ /^d/ {print $6}' | sed 's|^\./|/|' | sort)
  want=$(printf '%s\n' /etc/isobox/$svc.conf /usr/bin/$svc /usr/lib/systemd/system/isobox-$svc.service | sort)
  [ "$deb_list" = "$want" ] || fail ".deb of $svc installs [$deb_list], want [$want]"
  [ "$rpm_list" = "$deb_list" ] || fail ".rpm of $svc installs [$rpm_list], the .deb [$deb_list]"
  [ "$(rpm -qcp "$rpm_file" 2>/dev/null)" = /etc/isobox/$svc.conf ] || fail ".rpm of $svc: config files $(rpm -qcp "$rpm_file")"
  scripts=$(rpm -qp --scripts "$rpm_file" 2>/dev/null) # not piped into grep -q: rpm would die of SIGPIPE under pipefail
  grep -q "useradd --system" <<<"$scripts" || fail ".rpm of $svc has no postinstall creating the user"
  [ "$(rpm -qp --qf '%{VERSION}-%{RELEASE} %{ARCH}' "$rpm_file" 2>/dev/null)" = "$v1-1 $rpm_arch" ] || fail ".rpm of $svc: wrong version/arch"
done

step "dpkg -i $v1"
dpkg -i "$(deb authprovider "$b1" $v1)" "$(deb eventrelay "$b1" $v1)" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i failed"; }
for k in service.key relay-admin.key; do
  [ "$(stat -c '%U:%G %a' /etc/isobox/$k)" = "root:isobox 640" ] || fail "$k is $(stat -c '%U:%G %a' /etc/isobox/$k)"
done
for svc in authprovider eventrelay; do
  [ "$(stat -c '%U:%G %a' /etc/isobox/$svc.conf)" = "root:isobox-$svc 640" ] || fail "$svc.conf is $(stat -c '%U:%G %a' /etc/isobox/$svc.conf)"
  [ "$(stat -c '%U %a' /var/lib/isobox/$svc)" = "isobox-$svc 700" ] || fail "/var/lib/isobox/$svc is $(stat -c '%U %a' /var/lib/isobox/$svc)"
  id -nG "isobox-$svc" | grep -qw isobox || fail "isobox-$svc is not in group isobox"
  dpkg-query -W -f='${Conffiles}' "isobox-$svc" | grep -q "/etc/isobox/$svc.conf" || fail "$svc.conf is not a conffile"
done

step "every setting the config files mention is a real flag with a valid example value"
for svc in authprovider eventrelay; do
  sed -E 's/^#([a-z][a-z0-9-]+ )/\1/' /etc/isobox/$svc.conf >"$work/all-$svc.conf"
  /usr/bin/$svc serve --config "$work/all-$svc.conf" --print-config >"$work/print-$svc.log" 2>&1 ||
    { cat "$work/print-$svc.log"; fail "/etc/isobox/$svc.conf with every example uncommented is refused"; }
  ! grep -q PASSWORD "$work/print-$svc.log" || fail "--print-config shows the database password"
done

step "systemd-analyze verify"
for svc in authprovider eventrelay; do
  unit=/usr/lib/systemd/system/isobox-$svc.service
  out=$(systemd-analyze verify "$unit" 2>&1) || { echo "$out"; fail "systemd-analyze verify $unit failed"; }
  # Offline verification still prints problems it does not fail on; ours must have none.
  if echo "$out" | grep -i "isobox-$svc" | grep -v '^$' >/dev/null; then echo "$out"; fail "systemd-analyze verify $unit complains"; fi
  # The hardening is in effect as systemd reads it: exposure (0 best, 10 worst) stays "OK".
  sec=$(systemd-analyze security --offline=true "$unit" 2>&1 | tail -1) || true
  score=$(echo "$sec" | grep -o 'level for [^:]*: [0-9.]*' | awk '{print $NF}')
  [ -n "$score" ] || fail "systemd-analyze security --offline $unit: no score in [$sec]"
  awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { systemd-analyze security --offline=true "$unit"; fail "$unit exposure $score, want <= 2.0"; }
  echo "   $unit: exposure $score"
done

# Non-default loopback ports, so the test does not clash with anything on the machine.
ports=()
for _ in $(seq 500); do
  p=$((20000 + RANDOM % 30000))
  [[ " ${ports[*]} " == *" $p "* ]] && continue
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue # taken
  ports+=("$p")
  [ ${#ports[@]} -lt 7 ] || break
done
[ ${#ports[@]} = 7 ] || fail "found no 7 free loopback ports"
read -r ap_http ap_grpc ap_admin er_http er_pub er_admin er_grpc <<<"${ports[*]}"
cat >>/etc/isobox/authprovider.conf <<EOF

# install test
http-addr 127.0.0.1:$ap_http
grpc-addr 127.0.0.1:$ap_grpc
admin-addr 127.0.0.1:$ap_admin
relay-url http://127.0.0.1:$er_http
console-relay-grpc-addr 127.0.0.1:$er_grpc
EOF
cat >>/etc/isobox/eventrelay.conf <<EOF

# install test
http-addr 127.0.0.1:$er_http
publish-addr 127.0.0.1:$er_pub
admin-addr 127.0.0.1:$er_admin
grpc-addr 127.0.0.1:$er_grpc
auth-grpc-addr 127.0.0.1:$ap_grpc
EOF

unit_value() { sed -n "s/^$2=//p" "/usr/lib/systemd/system/isobox-$1.service" | tail -1; }

# exec_as_unit SVC CMD...: replaces the shell with CMD run as the unit runs
# its ExecStart: its User/Group/SupplementaryGroups, no capabilities, no new
# privileges, its UMask and WorkingDirectory, an empty environment. Call it
# in a subshell: ( exec_as_unit ... ) or exec_as_unit ... &
exec_as_unit() {
  local svc=$1; shift
  local user group supp wd umask gids=""
  user=$(unit_value "$svc" User) group=$(unit_value "$svc" Group) supp=$(unit_value "$svc" SupplementaryGroups)
  wd=$(unit_value "$svc" WorkingDirectory) umask=$(unit_value "$svc" UMask)
  for g in $supp; do gids="${gids:+$gids,}$(getent group "$g" | cut -d: -f3)"; done
  cd "$wd"
  umask "$umask"
  exec env -i PATH=/usr/bin:/bin setpriv --reuid="$user" --regid="$group" \
    --groups="$gids" --no-new-privs --bounding-set=-all --inh-caps=-all -- "$@"
}
as_unit() { (exec_as_unit "$@"); }

# start SVC: ExecStart of the installed unit, in the background; sets $started.
start() {
  local svc=$1 state exec
  state=/var/lib/$(unit_value "$svc" StateDirectory)
  [ -d "$state" ] && [ "$(stat -c %U "$state")" = "$(unit_value "$svc" User)" ] || fail "$svc: StateDirectory $state missing or not the user's"
  exec=$(unit_value "$svc" ExecStart)
  # shellcheck disable=SC2086 # ExecStart is split on spaces, as systemd does for this simple line
  exec_as_unit "$svc" $exec >>"$work/$svc.log" 2>&1 &
  started=$! # the service itself: the background subshell execs into env, setpriv, the binary
  pids+=("$started")
}

http_status() { # PORT PATH → status code of GET, or nothing
  (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3 && head -1 <&3 | cut -d' ' -f2) 2>/dev/null || true
}

wait_ready() { # SVC PORT PID
  local deadline=$((SECONDS + 90))
  while [ "$(http_status "$2" /readyz)" != 200 ]; do
    kill -0 "$3" 2>/dev/null || { cat "$work/$1.log"; fail "$1 exited before /readyz said 200"; }
    [ $SECONDS -lt $deadline ] || { cat "$work/$1.log"; fail "$1: /readyz not 200 within 90s (last: $(http_status "$2" /readyz))"; }
    sleep 0.2
  done
}

stop() { # SVC PID: SIGTERM (the unit's KillSignal), exits 0
  kill -0 "$2" 2>/dev/null || { cat "$work/$1.log"; fail "$1 (pid $2) is no longer running"; }
  kill -TERM "$2"
  local rc=0
  wait "$2" || rc=$?
  [ $rc = 0 ] || { cat "$work/$1.log"; fail "$1 exited with status $rc on SIGTERM"; }
}

run_both() { # → starts both, waits for /readyz 200, sets ap_pid er_pid
  for p in "$ap_admin" "$er_admin"; do
    [ -z "$(http_status "$p" /readyz)" ] || fail "something already answers on 127.0.0.1:$p"
  done
  start authprovider; ap_pid=$started
  wait_ready authprovider "$ap_admin" "$ap_pid"
  start eventrelay; er_pid=$started
  wait_ready eventrelay "$er_admin" "$er_pid"
}

step "start $v1 as the units do; /readyz 200"
run_both
as_unit authprovider /usr/bin/authprovider portal allow --config /etc/isobox/authprovider.conf --host portal.install-test.lan >/dev/null
as_unit authprovider /usr/bin/authprovider portal allowlist --config /etc/isobox/authprovider.conf | grep -q portal.install-test.lan ||
  fail "portal allow did not approve the host"

step "the console reaches eventrelay's admin API with the packaged key; doctor says ok"
pw=install-test-console-password
printf '%s\n' "$pw" | as_unit authprovider /usr/bin/authprovider console user add --config /etc/isobox/authprovider.conf --name admin --role admin >/dev/null
body="name=admin&password=$pw"
login=$( (exec 3<>"/dev/tcp/127.0.0.1/$ap_admin" &&
  printf 'POST /console/login HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nOrigin: http://127.0.0.1:%s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s' \
    "$ap_admin" "$ap_admin" ${#body} "$body" >&3 && cat <&3) | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: *\(isobox_console=[^;]*\).*/\1/p')
[ -n "$login" ] || fail "console login as admin gave no session cookie"
# The handlers page lists eventrelay's handlers through its admin API: 200
# only when the console read the relay admin key and the relay accepted it.
page=$( (exec 3<>"/dev/tcp/127.0.0.1/$ap_admin" &&
  printf 'GET /console/handlers HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nCookie: %s\r\n\r\n' "$ap_admin" "$login" >&3 && cat <&3) | tr -d '\r')
[ "$(echo "$page" | head -1 | cut -d' ' -f2)" = 200 ] || { echo "$page" | head -12; tail -n 20 "$work/authprovider.log" "$work/eventrelay.log"; fail "the console's handlers page (eventrelay admin API) did not answer 200"; }
for svc in authprovider eventrelay; do
  as_unit $svc /usr/bin/$svc doctor --config /etc/isobox/$svc.conf >"$work/doctor-$svc.log" 2>&1 ||
    { cat "$work/doctor-$svc.log"; fail "$svc doctor on the installed packages found a problem"; }
done
stop eventrelay "$er_pid"; stop authprovider "$ap_pid"
for f in authprovider/admin.key authprovider/authprovider.db eventrelay/nats; do
  [ -e "/var/lib/isobox/$f" ] || fail "no /var/lib/isobox/$f after the first start"
done
keys_before=$(cat /var/lib/isobox/authprovider/admin.key /etc/isobox/relay-admin.key /etc/isobox/service.key | sha256sum)

step "upgrade to $v2 (dpkg -i): data and edited configs kept"
dpkg -i "$(deb authprovider "$b2" $v2)" "$(deb eventrelay "$b2" $v2)" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "upgrade failed"; }
for svc in authprovider eventrelay; do
  [ "$(dpkg-query -W -f='${Version}' isobox-$svc)" = "$v2-1" ] || fail "isobox-$svc is $(dpkg-query -W -f='${Version}' isobox-$svc) after the upgrade"
  /usr/bin/$svc version | grep -q " $v2 " || fail "/usr/bin/$svc is not $v2 after the upgrade"
  grep -q '^# install test' /etc/isobox/$svc.conf || fail "the upgrade replaced the edited /etc/isobox/$svc.conf"
done
[ "$(cat /var/lib/isobox/authprovider/admin.key /etc/isobox/relay-admin.key /etc/isobox/service.key | sha256sum)" = "$keys_before" ] ||
  fail "the upgrade changed the keys"
run_both
as_unit authprovider /usr/bin/authprovider portal allowlist --config /etc/isobox/authprovider.conf | grep -q portal.install-test.lan ||
  fail "the approved portal is gone after the upgrade"
stop eventrelay "$er_pid"; stop authprovider "$ap_pid"

step "dpkg -r: programs gone, data and configs kept"
dpkg -r isobox-authprovider isobox-eventrelay >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -r failed"; }
for svc in authprovider eventrelay; do
  [ ! -e /usr/bin/$svc ] && [ ! -e /usr/lib/systemd/system/isobox-$svc.service ] || fail "dpkg -r left /usr/bin/$svc or its unit"
  [ -e /etc/isobox/$svc.conf ] || fail "dpkg -r deleted /etc/isobox/$svc.conf"
  getent passwd isobox-$svc >/dev/null || fail "dpkg -r deleted the user isobox-$svc"
done
[ "$(cat /var/lib/isobox/authprovider/admin.key /etc/isobox/relay-admin.key /etc/isobox/service.key | sha256sum)" = "$keys_before" ] ||
  fail "dpkg -r changed or deleted the keys"
[ -s /var/lib/isobox/authprovider/authprovider.db ] || fail "dpkg -r deleted the database"

step "dpkg --purge: data, configs, users gone"
dpkg --purge isobox-authprovider isobox-eventrelay >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg --purge failed"; }
for p in /var/lib/isobox /etc/isobox; do [ ! -e $p ] || fail "purge left $p: $(ls -la $p)"; done
for u in isobox-authprovider isobox-eventrelay; do ! getent passwd $u >/dev/null || fail "purge left the user $u"; done
! getent group isobox >/dev/null || fail "purge left the group isobox"
