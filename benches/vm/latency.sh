#!/bin/sh
# A workload for scripts/bench-vm: wakeup latency of a periodic task
# (cyclictest, 1 ms period) while CPU hogs load every CPU twice over.
# Prints "metric NAME VALUE" lines that benches/vm/summary.py tabulates:
# p50/p99/max wakeup latency in microseconds, from cyclictest's histogram.
# Usage: latency.sh [LOOPS]
loops=${1:-3000}
n=$(($(nproc) * 2))
pids=""
for _ in $(seq "$n"); do
    sh -c 'while :; do :; done' &
    pids="$pids $!"
done
sleep 1
cyclictest -q -m -t 1 -i 1000 -l "$loops" -h 100000 >/tmp/cyclictest.hist 2>&1
# shellcheck disable=SC2086
kill $pids
wait 2>/dev/null
# Histogram lines: "latency_us count"; comments start with #.
awk '!/^#/ && NF == 2 { c[$1 + 0] += $2; n += $2; if ($2 > 0 && $1 + 0 > m) m = $1 + 0 }
    /^# Histogram Overflows/ { over = $4 + 0 }
    END {
        if (n == 0) { print "metric error 1"; exit }
        for (l = 0; l <= m; l++) {
            s += c[l]
            if (!p50 && s >= 0.50 * n) p50 = l
            if (!p99 && s >= 0.99 * n) p99 = l
        }
        printf "metric p50_us %d\nmetric p99_us %d\nmetric max_us %d\nmetric overflows %d\n", p50, p99, m, over
    }' /tmp/cyclictest.hist
