#!/bin/sh
# cyclictest under 2 hogs/CPU: SCHED_OTHER (the scheduler's) and SCHED_FIFO (the floor)
loops=${1:-2000}
n=$(($(nproc) * 2))
pids=""
for _ in $(seq "$n"); do sh -c 'while :; do :; done' & pids="$pids $!"; done
sleep 1
pct() {
awk -v pre="$1" '!/^#/ && NF == 2 { c[$1 + 0] += $2; n += $2; if ($2 > 0 && $1 + 0 > m) m = $1 + 0 }
    END { for (l = 0; l <= m; l++) { s += c[l]; if (!p50 && s >= 0.50 * n) p50 = l; if (!p99 && s >= 0.99 * n) p99 = l }
        printf "metric %sp50_us %d\nmetric %sp99_us %d\nmetric %smax_us %d\n", pre, p50, pre, p99, pre, m }' /tmp/ct.hist
}
cyclictest -q -m -t 1 -i 1000 -l "$loops" -h 100000 >/tmp/ct.hist 2>&1; pct ""
cyclictest -q -m -t 1 -p 95 -i 1000 -l "$loops" -h 100000 >/tmp/ct.hist 2>&1; pct "rt_"
kill $pids; wait 2>/dev/null
