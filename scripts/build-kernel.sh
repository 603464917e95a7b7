#!/usr/bin/env bash
# Builds the sched_ext test-VM kernel (bzImage) from Debian's linux-source-6.12 with
# scripts/kernel.config and caches it; prints the bzImage path on the last stdout line.
# Usage: build-kernel.sh [--print-path | --config-only]   (full build: ~20 min on 2 cores)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
frag=$here/kernel.config
pkg=linux-source-6.12
cache=${SCX_REBAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scx_rebal}

die() { echo "build-kernel.sh: $*" >&2; exit 1; }

mode=build
case "${1:-}" in
    "") ;;
    --print-path) mode=print ;;
    --config-only) mode=config ;; # stop after the .config check (to test the fragment cheaply)
    *) die "usage: $0 [--print-path | --config-only]" ;;
esac

# The cache key covers both inputs that decide the image: the fragment and the
# exact source version, so a Debian point release or a config edit rebuilds.
pkg_version() {
    dpkg-query -W -f='${Status}|${Version}' "$pkg" 2>/dev/null | sed -n 's/^install ok installed|//p'
}
image_path() {
    local ver key
    ver=$(pkg_version)
    [ -n "$ver" ] || return 1
    key=$({ cat "$frag"; echo "$ver"; } | sha256sum | cut -c1-12)
    echo "$cache/kernel-$key/bzImage"
}

if image=$(image_path) && { [ "$mode" = print ] || { [ "$mode" = build ] && [ -f "$image" ]; }; }; then
    echo "$image"
    exit 0
fi
[ "$mode" = print ] && die "$pkg is not installed, so the cache key is unknown"

# Building always runs install-deps.sh (fast when all is there): without e.g. pahole
# (dwarves) Kconfig silently drops BTF and, with it, sched_ext.
"$here/install-deps.sh" >&2 || die "install-deps.sh failed"
image=$(image_path) || die "$pkg is not installed"
dir=$(dirname "$image")
key=${dir##*/kernel-}
ver=$(pkg_version)

# Build tree beside the cache entry; removed on success (several GB with DEBUG_INFO).
work=$cache/build-$key
mkdir -p "$work"
cd "$work"
echo "build-kernel.sh: unpacking $pkg $ver into $work" >&2
[ -d linux-source-6.12 ] || tar xf /usr/src/linux-source-6.12.tar.xz
cd linux-source-6.12
# vng --kconfig = defconfig + what virtme-ng needs to boot (virtio, 9p, virtiofs) + our fragment.
vng --kconfig --config "$frag" >&2
grep -q '^CONFIG_SCHED_CLASS_EXT=y' .config ||
    die "CONFIG_SCHED_CLASS_EXT=y did not survive olddefconfig (needs DEBUG_INFO_BTF, so pahole>=1.16)"
if [ "$mode" = config ]; then
    echo "build-kernel.sh: .config OK (CONFIG_SCHED_CLASS_EXT=y) in $PWD" >&2
    echo "$PWD/.config"
    exit 0
fi
echo "build-kernel.sh: building bzImage with $(nproc) jobs (about 20 min on 2 cores)" >&2
make -s -j"$(nproc)" bzImage >&2
mkdir -p "$dir"
cp .config "$dir/config-$(cat include/config/kernel.release)"
# Copy then rename, so an interrupted build never looks like a cached image.
cp arch/x86/boot/bzImage "$image.tmp" && mv "$image.tmp" "$image"
cd "$cache" && rm -rf "$work"
echo "$image"
