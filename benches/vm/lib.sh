# Helpers for the guest-side benchmark workloads (POSIX sh, sourced):
# CPU hogs, busy time from /proc/stat as evidence that a load ran, and
# percentiles of a list of numbers as "metric" lines. The callers set
# $here (this directory); the VM tests' helpers come along (stop_tracer).

# shellcheck source=tests/vm/lib.sh
. "$here/../../tests/vm/lib.sh"

# start_hogs N: starts N CPU hogs, prints their pids.
start_hogs() {
    _p=""
    for _ in $(seq "$1"); do
        # Not on our stdout: $(start_hogs N) would wait for them to close it.
        sh -c 'while :; do :; done' >/dev/null 2>&1 &
        _p="$_p $!"
    done
    echo "$_p"
}

# stop_hogs "PIDS"
stop_hogs() {
    # shellcheck disable=SC2086 # a list of pids
    kill $1 2>/dev/null
    wait 2>/dev/null
}

# cpu_busy: "busy total" jiffies over all CPUs (the aggregate cpu line of
# /proc/stat; busy = user + nice + system + irq + softirq + steal).
cpu_busy() {
    awk '$1 == "cpu" { b = $2 + $3 + $4 + $7 + $8 + $9; t = b + $5 + $6; print b, t }' /proc/stat
}

# busy_pct "B0 T0" "B1 T1": percent of the CPUs' time busy in between.
busy_pct() {
    echo "$1 $2" | awk '{ t = $4 - $2; printf "%.1f", (t > 0 ? 100 * ($3 - $1) / t : 0) }'
}

# percentiles PREFIX FILE: PREFIX_p50_us, _p90_us, _p99_us, _max_us,
# _over1ms_pct and _n of the numbers (microseconds), one per line of FILE.
percentiles() {
    sort -n "$2" | awk -v p="$1" '{ v[NR] = $1 }
        END {
            if (NR == 0) { printf "metric %s_n 0\nmetric error 1\n", p; exit }
            for (i = 1; i <= NR; i++) if (v[i] > 1000) over++
            q(50); q(90); q(99)
            printf "metric %s_max_us %d\nmetric %s_over1ms_pct %.2f\nmetric %s_n %d\n",
                p, v[NR], p, 100 * over / NR, p, NR
        }
        function q(k,  i) {
            i = int((k / 100) * NR + 0.999999); if (i < 1) i = 1
            printf "metric %s_p%d_us %d\n", p, k, v[i]
        }'
}
