#!/usr/bin/env bash
# Runs scx_rebal: on a sched_ext kernel, here (as root, until Ctrl-C, passing
# any arguments on); elsewhere, in the test VM for 20 s under hackbench, to
# show it attach, schedule and detach. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SCX_REBAL_SKIP_DEPS:-}" = 1 ] || scripts/install-deps.sh >&2
export BPF_CLANG=${BPF_CLANG:-clang-19}
cargo build --release >&2
bin=$PWD/target/release/scx_rebal

if [ -d /sys/kernel/sched_ext ]; then
    exec "$bin" "$@"
fi

echo "run.sh: this kernel has no sched_ext; showing scx_rebal in the test VM" >&2
kernel=$(scripts/find-kernel.sh) || {
    echo "run.sh: building a test kernel first (about 20 minutes, cached)" >&2
    kernel=$(scripts/build-kernel.sh | tail -n1)
}
export SCX_REBAL_KERNEL=$kernel
out=$(mktemp -d)
scripts/vm-run --shape 2n4l --rwdir "$out" -- "
    cd /tmp
    echo \"guest: sched_ext state \$(cat /sys/kernel/sched_ext/state)\"
    $bin --run-for 20 --stats-json $out/stats.jsonl $* &
    pid=\$!
    sleep 5
    echo \"guest: state \$(cat /sys/kernel/sched_ext/state), ops \$(cat /sys/kernel/sched_ext/root/ops)\"
    hackbench -g 4 -l 50
    wait \$pid
    echo \"guest: scx_rebal exited with \$?, state \$(cat /sys/kernel/sched_ext/state)\"
    tail -n1 $out/stats.jsonl
"
