#!/bin/sh
# isobox-@SERVICE@ postinstall. Arguments: deb "configure [old-version]",
# rpm "1" (install) or "2" (upgrade). Creates the service's own system user
# and state directory, the key shared by both isobox services, and lets the
# service read its config; on upgrade restarts a running service.
set -e
svc=@SERVICE@
user=isobox-$svc
state=/var/lib/isobox/$svc

upgrade=
case "$1" in
  configure) [ -z "$2" ] || upgrade=1 ;;
  1) ;;
  2) upgrade=1 ;;
  *) exit 0 ;;
esac

nologin=$(command -v nologin || echo /bin/false)
getent group isobox >/dev/null || groupadd --system isobox
getent passwd "$user" >/dev/null ||
  useradd --system --user-group --groups isobox --home-dir "$state" --no-create-home \
    --shell "$nologin" --comment "isobox $svc" "$user"

# systemd's StateDirectory= makes the same directory; making it here too lets
# the service run (and be tested) without systemd.
install -d -m 0755 /var/lib/isobox
install -d -m 0700 -o "$user" -g "$user" "$state"

# The key both services authenticate each other with: made once, kept on
# upgrade; readable by the services' shared group only.
install -d -m 0755 /etc/isobox
if [ ! -s /etc/isobox/service.key ]; then
  (umask 077; LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 48 >/etc/isobox/service.key.new; echo >>/etc/isobox/service.key.new)
  mv /etc/isobox/service.key.new /etc/isobox/service.key
fi
chgrp isobox /etc/isobox/service.key
chmod 0640 /etc/isobox/service.key
# eventrelay's admin key lives beside it (admin-key-file in eventrelay.conf),
# readable by the group, so authprovider's console can call the relay admin
# API (console-relay-admin-key-file in authprovider.conf). A key an older
# release made in the state directory is kept, not replaced.
if [ "$svc" = eventrelay ]; then
  key=/etc/isobox/relay-admin.key
  if [ ! -s $key ]; then
    if [ -s "$state/relay-admin.key" ]; then
      cp "$state/relay-admin.key" $key.new
    else
      (umask 077; LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 48 >$key.new; echo >>$key.new)
    fi
    mv $key.new $key
  fi
  chown root:isobox $key
  chmod 0640 $key
fi
# The config may hold a database password: root writes it, the service reads it.
chgrp "$user" /etc/isobox/$svc.conf
chmod 0640 /etc/isobox/$svc.conf

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
  if [ -n "$upgrade" ]; then
    systemctl try-restart isobox-$svc.service || true
  else
    systemctl enable isobox-$svc.service || true
    systemctl start isobox-$svc.service || true
  fi
fi
exit 0
