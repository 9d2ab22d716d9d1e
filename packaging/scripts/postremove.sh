#!/bin/sh
# isobox-@SERVICE@ postremove. Arguments: deb "remove", "purge", "upgrade ...",
# rpm "0" (erase) or "1" (upgrade). Remove (deb remove, rpm -e) keeps the data
# in /var/lib/isobox/@SERVICE@ and the service user, so reinstalling picks
# up where it left off. Purge (dpkg --purge; rpm has none) also deletes the
# data and the user (eventrelay: its /etc/isobox/relay-admin.key), and, with
# the last isobox package, the shared key.
set -e
svc=@SERVICE@
user=isobox-$svc
case "$1" in
  purge)
    rm -rf "/var/lib/isobox/$svc"
    [ "$svc" != eventrelay ] || rm -f /etc/isobox/relay-admin.key
    rmdir /var/lib/isobox 2>/dev/null || true
    if getent passwd "$user" >/dev/null; then userdel "$user" || true; fi
    if getent group "$user" >/dev/null; then groupdel "$user" || true; fi
    if ! getent passwd isobox-authprovider >/dev/null && ! getent passwd isobox-eventrelay >/dev/null; then
      rm -f /etc/isobox/service.key
      if getent group isobox >/dev/null; then groupdel isobox || true; fi
      rmdir /etc/isobox 2>/dev/null || true
    fi ;;
esac
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
exit 0
