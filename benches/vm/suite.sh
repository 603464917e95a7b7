#!/bin/sh
# The standard workload set of scripts/bench-vm --suite, run one after the
# other under whichever scheduler is attached. Prints "metric NAME VALUE"
# lines (benches/vm/summary.py tabulates them against EEVDF):
#   hackbench_s         hackbench -g 4 -l 50: wakeup-heavy IPC throughput (lower is better)
#   mix_*_ops           stress-ng mix of CPU hogs, context switching, pipes and
#                       forks: bogo-ops per second of each stressor (higher is better)
#   mix_*_cpu_s         the CPU time (user + system) each stressor got in the mix:
#                       the share the scheduler gave it, neither better nor worse
#   pipeline_s          a 4-stage pipe chain under CPU hogs (lower is better)
#   p50_us/p99_us/max_us  cyclictest wakeup latency under 2 hogs per CPU (lower is better)
# With BENCH_OUT and BENCH_TAG set (compare.sh sets them), the cyclictest
# histogram is kept as $BENCH_OUT/$BENCH_TAG.hist for the latency plot.
here=$(dirname "$(realpath "$0")")
cd /tmp || exit 1

t0=$(date +%s%N)
hackbench -g 4 -l 50 >/dev/null 2>&1
t1=$(date +%s%N)
echo "metric hackbench_s $(echo "$t0 $t1" | awk '{ printf "%.3f", ($2 - $1) / 1e9 }')"

sh "$here/mix.sh"

sh "$here/pipeline.sh" 10000

sh "$here/latency.sh" 2000
if [ -n "${BENCH_OUT:-}" ] && [ -n "${BENCH_TAG:-}" ]; then
    cp /tmp/cyclictest.hist "$BENCH_OUT/$BENCH_TAG.hist"
fi
