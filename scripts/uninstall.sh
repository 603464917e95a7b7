#!/usr/bin/env bash
# Removes what scripts/install.sh installed (give it the same PREFIX and
# DESTDIR) and says what it did; run twice, the second run finds nothing to
# do. Stops and disables the service first when systemd runs it. The
# settings file /etc/default/scx_rebal goes too, unless you edited it: an
# edited one is kept (and named) unless --purge.
# Usage: scripts/uninstall.sh [--purge] [--no-systemctl] [VAR=VALUE]...
#   --purge         also remove an edited /etc/default/scx_rebal
#   --no-systemctl  do not stop, disable or reload anything through systemctl
#   PREFIX=/usr/local  SYSCONFDIR=/etc  UNITDIR=$PREFIX/lib/systemd/system  DESTDIR=
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/install-layout.sh
. "$here/install-layout.sh"

purge=0 systemctl=1
while [ $# -gt 0 ]; do
    case "$1" in
        --purge) purge=1; shift ;;
        --no-systemctl) systemctl=0; shift ;;
        *=*) layout_var "$1" || usage; shift ;;
        *) usage ;;
    esac
done
layout

use_systemd=0
if [ -z "$DESTDIR" ] && [ "$systemctl" = 1 ] && [ -d /run/systemd/system ] &&
    command -v systemctl >/dev/null; then
    use_systemd=1
fi
# Stop it before its unit goes: disabling removes the wants/ link that
# would otherwise be left dangling in /etc/systemd/system.
if [ "$use_systemd" = 1 ] && [ -f "$unit" ]; then
    if systemctl is-enabled --quiet scx_rebal.service 2>/dev/null ||
        systemctl is-active --quiet scx_rebal.service; then
        systemctl disable --now scx_rebal.service
        echo "uninstall.sh: stopped and disabled scx_rebal.service"
    fi
fi

removed=0
rm_file() {
    if [ -e "$DESTDIR$1" ] || [ -L "$DESTDIR$1" ]; then
        rm -f "$DESTDIR$1"
        echo "  removed    $1"
        removed=$((removed + 1))
    fi
}

files=() dirs=() conf_sum=''
if [ -f "$DESTDIR$manifest" ]; then
    while read -r kind path sum; do
        case "$kind" in
            file) files+=("$path") ;;
            dir) dirs+=("$path") ;;
            conf) conf_sum=$sum ;;
        esac
    done <"$DESTDIR$manifest"
else
    # No record (an install older than the record, or none at all): the
    # files install.sh would have put here, and no directories.
    files=("${all_files[@]}")
fi
echo "uninstall.sh: removing scx_rebal installed with PREFIX=$PREFIX${DESTDIR:+ into DESTDIR=$DESTDIR}"

for f in "${files[@]}"; do
    [ "$f" = "$manifest" ] || rm_file "$f"
done

if [ -e "$DESTDIR$defaults" ]; then
    sum=$(sha256sum <"$DESTDIR$defaults" | cut -d' ' -f1)
    if [ "$sum" = "$conf_sum" ] || [ "$purge" = 1 ]; then
        rm_file "$defaults"
    else
        echo "  kept       $defaults (edited since it was installed; --purge removes it)"
    fi
fi
rm_file "$manifest"

# Directories install.sh created, deepest first, if nothing else is in them.
for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
    d=${dirs[i]}
    if [ -d "$DESTDIR$d" ] && rmdir "$DESTDIR$d" 2>/dev/null; then
        echo "  removed    $d/"
    fi
done

if [ "$use_systemd" = 1 ] && [ "$removed" -gt 0 ]; then
    systemctl daemon-reload
    echo "uninstall.sh: ran systemctl daemon-reload"
fi
if [ "$removed" = 0 ]; then
    echo "uninstall.sh: nothing to remove: scx_rebal is not installed under ${DESTDIR}${PREFIX}"
else
    echo "uninstall.sh: done ($removed file(s) removed)"
fi
