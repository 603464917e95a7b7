#!/usr/bin/env bash
# Installs scx_rebal: the binary, its systemd unit and settings file
# (/etc/default/scx_rebal), the man page and bash/zsh/fish completions, and
# says what it did. Run it again to update: unchanged files are left alone,
# and a settings file you edited is never overwritten.
# Usage: scripts/install.sh [--bin PATH] [--no-systemctl] [VAR=VALUE]...
#   --bin PATH      the scx_rebal binary to install (default: target/release/scx_rebal;
#                   build it first with `cargo build --release --locked`)
#   --no-systemctl  do not run `systemctl daemon-reload` afterwards
#   PREFIX=/usr/local  SYSCONFDIR=/etc  UNITDIR=$PREFIX/lib/systemd/system
#   DESTDIR=           a staging root for packaging: files go to $DESTDIR$PREFIX/...
#                   (VAR=VALUE may also come from the environment.)
# scripts/uninstall.sh, with the same PREFIX and DESTDIR, removes it all.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=scripts/install-layout.sh
. "$here/install-layout.sh"

bin=${SCX_REBAL_BIN:-$repo/target/release/scx_rebal} systemctl=1
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin=${2:?--bin needs a path}; shift 2 ;;
        --no-systemctl) systemctl=0; shift ;;
        *=*) layout_var "$1" || usage; shift ;;
        *) usage ;;
    esac
done
layout

if [ ! -x "$bin" ]; then
    die "no scx_rebal binary at $bin: build it first (cargo build --release --locked) or give --bin PATH"
fi
# Everything generated below comes from the binary being installed, so the
# man page and completions always match it.
version=$("$bin" --version) || die "$bin --version failed: is it an scx_rebal binary for this machine?"
case "$version" in scx_rebal\ *) ;; *) die "$bin is not scx_rebal (--version says: $version)" ;; esac
echo "install.sh: installing $version with PREFIX=$PREFIX${DESTDIR:+ into DESTDIR=$DESTDIR}"

# The staging root is the packager's: made if missing, never recorded.
[ -z "$DESTDIR" ] || mkdir -p "$DESTDIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Directories this install created, so that uninstall.sh removes exactly
# those (and never a shared one like /usr/local/bin): the previous
# install's record, plus any made now.
created=()
if [ -f "$DESTDIR$manifest" ]; then
    while read -r kind path _; do
        [ "$kind" = dir ] && created+=("$path")
    done <"$DESTDIR$manifest"
fi
files=()

# mkdirs DIR: creates DIR and its missing parents under DESTDIR, noting each.
mkdirs() {
    local d=$1 missing=()
    while [ "$d" != / ] && [ ! -d "$DESTDIR$d" ]; do
        missing=("$d" "${missing[@]}")
        d=$(dirname "$d")
    done
    for d in "${missing[@]}"; do
        mkdir -m 0755 "$DESTDIR$d"
        created+=("$d")
    done
}

# put SRC DEST MODE: installs SRC as DEST (under DESTDIR), saying whether it
# was new, changed or already there.
put() {
    local src=$1 dest=$2 mode=$3
    mkdirs "$(dirname "$dest")"
    files+=("file $dest")
    if [ -f "$DESTDIR$dest" ] && cmp -s "$src" "$DESTDIR$dest"; then
        chmod "$mode" "$DESTDIR$dest"
        echo "  unchanged  $dest"
        return
    fi
    local what=installed
    [ -e "$DESTDIR$dest" ] && what=updated
    install -m "$mode" "$src" "$DESTDIR$dest"
    printf "  %-10s %s\n" "$what" "$dest"
}

cp "$bin" "$tmp/scx_rebal"
put "$tmp/scx_rebal" "$bindir/scx_rebal" 0755

sed -e "s|@BINDIR@|$bindir|g" -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" \
    "$repo/dist/scx_rebal.service.in" >"$tmp/scx_rebal.service"
put "$tmp/scx_rebal.service" "$unit" 0644

"$bin" --man >"$tmp/scx_rebal.8"
put "$tmp/scx_rebal.8" "$man" 0644
"$bin" --completions bash >"$tmp/bash"
put "$tmp/bash" "$bash_completion" 0644
"$bin" --completions zsh >"$tmp/zsh"
put "$tmp/zsh" "$zsh_completion" 0644
"$bin" --completions fish >"$tmp/fish"
put "$tmp/fish" "$fish_completion" 0644

# The settings file is the operator's: installed when missing, never
# overwritten. Its checksum as shipped lets uninstall.sh tell whether it
# was edited since (an edited one is kept unless --purge).
shipped="$repo/dist/scx_rebal.default"
shipped_sum=$(sha256sum <"$shipped" | cut -d' ' -f1)
recorded_sum=$(awk '$1 == "conf" { print $3 }' "$DESTDIR$manifest" 2>/dev/null || true)
mkdirs "$(dirname "$defaults")"
conf_sum=$shipped_sum
if [ ! -e "$DESTDIR$defaults" ]; then
    install -m 0644 "$shipped" "$DESTDIR$defaults"
    echo "  installed  $defaults"
elif cmp -s "$shipped" "$DESTDIR$defaults"; then
    echo "  unchanged  $defaults"
elif [ "$(sha256sum <"$DESTDIR$defaults" | cut -d' ' -f1)" = "$recorded_sum" ]; then
    # What the last install shipped, never edited: the new default replaces it.
    install -m 0644 "$shipped" "$DESTDIR$defaults"
    echo "  updated    $defaults (you had not edited it)"
else
    echo "  kept       $defaults (yours: it differs from the shipped dist/scx_rebal.default)"
    conf_sum=${recorded_sum:-none}
fi

mkdirs "$(dirname "$manifest")"
{
    echo "# What scripts/install.sh installed ($version); scripts/uninstall.sh reads it."
    printf '%s\n' "${files[@]}"
    echo "conf $defaults $conf_sum"
    echo "file $manifest"
    # Each created directory once, in creation order.
    printf '%s\n' "${created[@]}" | awk '!seen[$0]++ { print "dir " $0 }'
} >"$tmp/manifest"
if [ -f "$DESTDIR$manifest" ] && cmp -s "$tmp/manifest" "$DESTDIR$manifest"; then
    echo "  unchanged  $manifest (the list of installed files)"
else
    install -m 0644 "$tmp/manifest" "$DESTDIR$manifest"
    echo "  wrote      $manifest (the list of installed files)"
fi

if [ -z "$DESTDIR" ]; then
    case "$unitdir" in
        /etc/systemd/system | /usr/lib/systemd/system | /lib/systemd/system | /usr/local/lib/systemd/system) ;;
        *) echo "install.sh: note: systemd does not look for units in $unitdir (set UNITDIR=/etc/systemd/system)" ;;
    esac
    if [ "$systemctl" = 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        systemctl daemon-reload
        echo "install.sh: ran systemctl daemon-reload"
        if systemctl is-active --quiet scx_rebal.service; then
            echo "install.sh: scx_rebal.service is running the binary it started with; to use this one: systemctl restart scx_rebal"
        else
            echo "install.sh: to start it now and at every boot: systemctl enable --now scx_rebal"
        fi
    fi
fi
echo "install.sh: done. Options: $defaults; logs: journalctl -u scx_rebal; manual: man scx_rebal"
