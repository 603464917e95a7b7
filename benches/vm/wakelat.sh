#!/bin/sh
# A workload for scripts/bench-vm, meant for the 2-vCPU guest (--shape 1n2l):
# wake-to-run latency of a periodic task (cyclictest, 2 ms period) while two
# CPU hogs per CPU keep every CPU busy, timed by the kernel's tracepoints
# with bpftrace: from sched_wakeup of the task to the sched_switch that runs
# it. That leaves out timer delivery, which in a TCG guest is dominated by
# QEMU's round-robin over the vCPUs (cyclictest's own figure includes it).
#
# Twice per run: the task as an ordinary task (what the scheduler under test
# gives it), then at SCHED_FIFO 95, which the kernel's RT class schedules
# above any sched_ext scheduler: the floor of this guest, to read the first
# figures against. Prints "metric NAME VALUE" lines (benches/vm/summary.py):
#   wake_p50_us wake_p90_us wake_p99_us wake_max_us  ordinary task (lower is better)
#   wake_over1ms_pct   share of its wakeups that waited over 1 ms
#   wake_n             wakeups measured (evidence that it ran)
#   rt_wake_*          the same at SCHED_FIFO 95
#   busy_pct           share of all CPUs' time busy during the runs (/proc/stat):
#                      evidence that the hogs ran
# With BENCH_OUT and BENCH_TAG set (compare.sh sets them), the raw latencies
# are kept as $BENCH_OUT/$BENCH_TAG.wakelat.
# Usage: wakelat.sh [LOOPS]
here=$(dirname "$(realpath "$0")")
loops=${1:-3000}
cd /tmp || exit 1
. "$here/lib.sh"

hogs=$(start_hogs $(($(nproc) * 2)))
b0=$(cpu_busy)

# run NAME CYCLICTEST_ARGS...: latencies of cyclictest's measuring thread
# to /tmp/NAME.lat, one value in us per line.
run() {
    name=$1
    shift
    trace=/tmp/$name.trace
    # Every wakeup of a task named cyclictest, keyed by pid; the switch that
    # runs it prints "pid us". Its main thread wakes too (every ~10 ms, to
    # check for the end); the measuring thread is the pid with most wakeups.
    bpftrace -e '
tracepoint:sched:sched_wakeup, tracepoint:sched:sched_wakeup_new
/args->comm == "cyclictest"/ { @t[args->pid] = nsecs; }
tracepoint:sched:sched_switch /@t[args->next_pid]/ {
    printf("%d %d\n", args->next_pid, (nsecs - @t[args->next_pid]) / 1000);
    delete(@t[args->next_pid]);
}' >"$trace" 2>&1 &
    bt=$!
    # bpftrace compiles its program first: seconds under TCG.
    end=$(($(date +%s) + 180))
    until grep -q '^Attaching' "$trace" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$end" ] || ! kill -0 "$bt" 2>/dev/null; then
            echo "wakelat: bpftrace did not attach:" >&2
            cat "$trace" >&2
            kill "$bt" 2>/dev/null
            echo "metric error 1"
            return 1
        fi
        sleep 0.5
    done
    cyclictest -q -m -t 1 -i 2000 -l "$loops" "$@" >/dev/null 2>&1
    # A tracer killed after a hang (stop_tracer) has written its lines
    # already, but a line may be cut: $name_n says how many were read.
    keep=/tmp/$name
    [ -n "${BENCH_OUT:-}" ] && [ -n "${BENCH_TAG:-}" ] && keep=$BENCH_OUT/$BENCH_TAG.$name
    stop_tracer "$bt" "$keep" || {
        echo "wakelat: bpftrace did not leave after SIGINT; killed ($keep.tracer-hang)" >&2
        echo "metric ${name}_tracer_killed 1"
    }
    awk 'NF == 2 && $1 ~ /^[0-9]+$/ { n[$1]++; v[$1, n[$1]] = $2 }
        END { for (p in n) if (n[p] > best) { best = n[p]; pid = p }
              for (i = 1; i <= best; i++) print v[pid, i] }' "$trace" >"/tmp/$name.lat"
    if [ -n "${BENCH_OUT:-}" ] && [ -n "${BENCH_TAG:-}" ]; then
        cp "/tmp/$name.lat" "$BENCH_OUT/$BENCH_TAG.$name.lat"
    fi
    percentiles "$name" "/tmp/$name.lat"
}

run wake
run rt_wake -p 95 --policy=fifo
echo "metric busy_pct $(busy_pct "$b0" "$(cpu_busy)")"
stop_hogs "$hogs"
