#!/bin/sh
# isobox-@SERVICE@ preremove. Arguments: deb "remove" or "upgrade ...",
# rpm "0" (erase) or "1" (upgrade). Stops and disables the service when the
# package goes away; an upgrade restarts it from postinstall instead.
set -e
svc=@SERVICE@
case "$1" in
  remove|0)
    if [ -d /run/systemd/system ]; then
      systemctl disable --now isobox-$svc.service || true
    fi ;;
esac
exit 0
