#!/usr/bin/env bash
# Installs what building and VM-testing scx_rebal needs on a fresh Debian 12 machine
# (BPF toolchain, QEMU + virtme-ng, guest workloads, kernel build tools). Idempotent.
set -euo pipefail

pkgs=(clang-19 llvm-19 libclang-19-dev libelf-dev zlib1g-dev libhwloc-dev hwloc
    pkg-config make qemu-system-x86 udev stress-ng rt-tests bpftool jq procps
    linux-source-6.12 build-essential bc flex bison libssl-dev dwarves cpio zstd
    bpftrace rt-app xz-utils systemd man-db
    python3-pip)

sudo=()
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then sudo=(sudo); else
        echo "install-deps.sh: not root and no sudo; install these yourself: ${pkgs[*]}" >&2
        exit 1
    fi
fi

# Skip apt entirely when everything is there: apt-get update is slow and needs network.
missing=()
for p in "${pkgs[@]}"; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

# virtme-ng is not packaged in Debian 12. Debian's pip refuses system-wide installs
# (PEP 668) unless told otherwise; a pyenv/venv pip does not know the flag is needed.
if ! command -v vng >/dev/null; then
    echo "install-deps.sh: installing virtme-ng with pip" >&2
    pip=(pip3)
    command -v pip3 >/dev/null || pip=(python3 -m pip)
    "${sudo[@]}" "${pip[@]}" install -q virtme-ng ||
        "${sudo[@]}" "${pip[@]}" install -q --break-system-packages virtme-ng
    hash -r
    command -v vng >/dev/null || { echo "install-deps.sh: vng still not on PATH" >&2; exit 1; }
fi

# Rust comes from rustup, not apt (the crate needs a newer toolchain than Debian's).
if ! command -v cargo >/dev/null; then
    echo "install-deps.sh: cargo not found; install Rust with rustup:" >&2
    echo "  curl -sSf https://sh.rustup.rs | sh -s -- -y && . \"\$HOME/.cargo/env\"" >&2
    exit 1
fi
