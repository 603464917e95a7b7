#!/usr/bin/env bash
# THE test command (CI runs it via .ci/run): installs deps, makes sure a sched_ext
# kernel is available, then fmt + clippy + every test (VM tests included, never skipped).
# Env: SCX_REBAL_SKIP_DEPS=1 skips install-deps.sh; SCX_REBAL_BUILD_KERNEL=1 builds a
# kernel (~20 min) when none is found; SCX_REBAL_KERNEL=/path/bzImage picks one.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "${SCX_REBAL_SKIP_DEPS:-}" = 1 ] || scripts/install-deps.sh

# The VM tests need a kernel. Without one they fail with find-kernel.sh's advice:
# a green run must mean the scheduler really ran.
if kernel=$(scripts/find-kernel.sh 2>/dev/null); then
    echo "test.sh: kernel $kernel" >&2
elif [ "${SCX_REBAL_BUILD_KERNEL:-}" = 1 ]; then
    kernel=$(scripts/build-kernel.sh | tail -n1)
    export SCX_REBAL_KERNEL=$kernel
else
    scripts/find-kernel.sh >/dev/null || true # show the advice now; the tests repeat it
fi

# Debian's clang-19 has no plain `clang`; scx_cargo honours BPF_CLANG.
export BPF_CLANG=${BPF_CLANG:-clang-19}
cargo fmt --check
# One profile (release) for clippy and tests, so the dependencies compile once.
cargo clippy --release --all-targets -- -D warnings
# --test-threads=1: two 8-vCPU TCG guests at once would starve each other (and a 2-core host).
exec cargo test --release -- --test-threads=1
