#!/bin/sh
# Guest side of scripts/bench-vm: runs a fixed workload under each scheduler
# in turn, in one boot, with the kernel's BPF run-time statistics on, and
# writes one JSON line per run to OUTDIR/runs.jsonl:
#   {"sched":..., "round":N, "secs":..., "progs":{"name":[run_time_ns, run_cnt]}}
# progs are the deltas over the workload of the scheduler's struct_ops programs;
# metrics are the workload's "metric" lines plus ctxsw, the context switches
# (all CPUs) during the workload, daemon_cpu_s, the CPU time (user +
# system) the scheduler's own process used during it, and, for a scheduler
# writing OUTDIR/NAME.ROUND.stats.jsonl, daemon_gap_s (see below).
# Schedulers alternate (A B C A B C ...): TCG's clock drifts over a boot, so
# only ratios inside one run mean anything.
# Usage: compare.sh OUTDIR ROUNDS WORKLOAD NAME=CMD...   (NAME=eevdf: no scheduler)
set -u
out=$1 rounds=$2 workload=$3
shift 3
cd /tmp || exit 1
sysctl -q kernel.bpf_stats_enabled=1

state() { cat /sys/kernel/sched_ext/state 2>/dev/null || echo missing; }
wait_state() {
    end=$(($(date +%s) + $2))
    while [ "$(state)" != "$1" ]; do
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.5
    done
}
# "name run_time_ns run_cnt" of every loaded struct_ops program.
progs() {
    bpftool prog show -j | jq -r '.[] | select(.type == "struct_ops")
        | "\(.name) \(.run_time_ns // 0) \(.run_cnt // 0)"'
}

# proc_cpu PID: utime + stime of PID in clock ticks (0 without a PID).
proc_cpu() {
    if [ -n "$1" ] && [ -r "/proc/$1/stat" ]; then
        sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
    else
        echo 0
    fi
}

r=1
while [ "$r" -le "$rounds" ]; do
    for spec in "$@"; do
        name=${spec%%=*} cmd=${spec#*=}
        # @RUN@ in a command becomes NAME.ROUND (e.g. a --stats-json file).
        cmd=$(echo "$cmd" | sed "s/@RUN@/$name.$r/g")
        pid=""
        if [ "$name" != eevdf ]; then
            # shellcheck disable=SC2086 # cmd is a command line
            $cmd >"$out/$name.$r.log" 2>&1 &
            pid=$!
            if ! wait_state enabled 120; then
                echo "{\"sched\":\"$name\",\"round\":$r,\"error\":\"not enabled\"}" >>"$out/runs.jsonl"
                kill -INT "$pid" 2>/dev/null; wait "$pid"
                continue
            fi
            sleep 2
        fi
        progs >"$out/before"
        cpu0=$(proc_cpu "$pid")
        cs0=$(awk '/^ctxt/ { print $2 }' /proc/stat)
        t0=$(date +%s%N)
        BENCH_OUT=$out BENCH_TAG=$name.$r sh -c "$workload" >"$out/$name.$r.workload" 2>&1
        t1=$(date +%s%N)
        cs1=$(awk '/^ctxt/ { print $2 }' /proc/stat)
        cpu1=$(proc_cpu "$pid")
        progs >"$out/after"
        st=$(state)
        if [ -n "$pid" ]; then
            kill -INT "$pid"
            wait "$pid"
            wait_state disabled 60
        fi
        # "metric NAME VALUE" lines of the workload's output (see latency.sh).
        grep '^metric ' "$out/$name.$r.workload" >"$out/metrics"
        # Context switches over the whole workload, all CPUs.
        echo "metric ctxsw $((cs1 - cs0))" >>"$out/metrics"
        if [ -n "$pid" ]; then
            echo "metric daemon_cpu_s $(echo "$cpu0 $cpu1 $(getconf CLK_TCK)" |
                awk '{ printf "%.3f", ($2 - $1) / $3 }')" >>"$out/metrics"
        fi
        # A --stats-json file (scx_rebal's, asked for a line every
        # --interval): the longest gap between two lines is how long its
        # daemon waited for a CPU at worst, over the run and its start.
        stats=$out/$name.$r.stats.jsonl
        if [ -s "$stats" ]; then
            echo "metric daemon_gap_s $(sed -n 's/^{"t":\([0-9.]*\).*/\1/p' "$stats" |
                awk 'NR > 1 && $1 - p > g { g = $1 - p } { p = $1 } END { printf "%.2f", g }')" >>"$out/metrics"
        fi
        awk -v n="$name" -v r="$r" -v s="$(((t1 - t0) / 1000000))" -v st="$st" '
            FILENAME == ARGV[1] { b[$1] = $2 " " $3; next }
            FILENAME == ARGV[2] { split(b[$1], o, " "); t[$1] = $2 - o[1]; c[$1] = $3 - o[2]; next }
            { m[$2] = $3 }
            END {
                printf "{\"sched\":\"%s\",\"round\":%d,\"secs\":%.3f,\"state\":\"%s\",\"progs\":{", n, r, s / 1000, st
                sep = ""
                for (k in t) { printf "%s\"%s\":[%.0f,%.0f]", sep, k, t[k], c[k]; sep = "," }
                printf "},\"metrics\":{"
                sep = ""
                for (k in m) { printf "%s\"%s\":%s", sep, k, m[k]; sep = "," }
                print "}}"
            }' "$out/before" "$out/after" "$out/metrics" >>"$out/runs.jsonl"
    done
    r=$((r + 1))
done
dmesg >"$out/dmesg.txt"
