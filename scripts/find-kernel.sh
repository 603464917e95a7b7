#!/usr/bin/env bash
# Prints the path of the sched_ext kernel (bzImage) the VM tests boot:
# $SCX_REBAL_KERNEL if set, else the image cached by scripts/build-kernel.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ -n "${SCX_REBAL_KERNEL:-}" ]; then
    # An explicit choice that is wrong must fail loudly, not fall back silently.
    if [ ! -f "$SCX_REBAL_KERNEL" ]; then
        echo "find-kernel.sh: SCX_REBAL_KERNEL=$SCX_REBAL_KERNEL does not exist" >&2
        exit 1
    fi
    realpath "$SCX_REBAL_KERNEL"
    exit 0
fi

cached=$("$here/build-kernel.sh" --print-path 2>/dev/null || true)
if [ -n "$cached" ] && [ -f "$cached" ]; then
    echo "$cached"
    exit 0
fi

cat >&2 <<MSG
find-kernel.sh: no sched_ext kernel found for the VM tests.
The host kernel has no sched_ext, so the tests boot a VM and need a kernel image. Either:
  - build one: scripts/build-kernel.sh   (about 20 minutes on 2 cores; cached in
    ${cached:-\$SCX_REBAL_CACHE or ~/.cache/scx_rebal}), or run the tests with
    SCX_REBAL_BUILD_KERNEL=1 scripts/test.sh
  - or set SCX_REBAL_KERNEL=/path/to/bzImage of a 6.12+ kernel with CONFIG_SCHED_CLASS_EXT=y
    (plus BTF and the virtio/9p pieces virtme-ng needs; see scripts/kernel.config).
MSG
exit 1
