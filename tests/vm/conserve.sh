#!/bin/sh
# Guest side of tests/vm_conserve.rs: does any CPU idle while tasks wait,
# and does the tuner see busy domains as busy? Measured by the guest kernel
# (/proc/stat per CPU, /proc/PID/stat of the hogs), not by scx_rebal.
#  visitors-eevdf  control: 10 CPU hogs (more than the 8 CPUs), started on
#                  domain 0's CPUs and then let free, under EEVDF
#  visitors        the same under scx_rebal --no-load-balance: all ten keep
#                  domain 0 as home, so the other CPUs run them as visitors,
#                  stolen, and must not idle when a visitor's slice ends
#  steady          scx_rebal with 8 hogs on 8 CPUs: every CPU keeps its hog,
#                  renewing its slice; the tuner must see every domain busy
#  traced          steady again, with the kernel's idle time traced (the
#                  tracer's probes lengthen the very paths they measure, so
#                  steady runs without them)
#  stints          scx_rebal under tasks that run and sleep a few ms at a
#                  time, so that every CPU goes from busy to idle and back
#                  hundreds of times a second: is the CPU time scx_rebal
#                  charges (its BPF clock) the CPU time the kernel counted?
# Each phase writes NAME.cpu0/NAME.cpu1 (per-CPU "cpuN busy idle" jiffies
# over the measured window), NAME.hogs0/NAME.hogs1 ("pid utime+stime"
# ticks), NAME.up0/NAME.up1 (/proc/uptime: the window's length) and, under
# scx_rebal, NAME.stats.jsonl and NAME.start (/proc/uptime once the scheduler
# is enabled: its stats' t counts from its attach, up to a 1 s poll earlier);
# traced also writes traced.idle (idle_trace below); stints writes
# stints.sched0/stints.sched1 instead of the hogs' ticks (sched_ns below).
# Usage: conserve.sh SCHED_BINARY OUTDIR
set -u
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
guest_setup "$1" "$2"
online=$(cat /sys/devices/system/cpu/online)
dom0=$(dom0_cpus "$sched")

cpu_times() { awk '$1 ~ /^cpu[0-9]/ { print $1, $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
hog_times() { for _p in $1; do echo "$_p $(sed 's/.*) //' "/proc/$_p/stat" | awk '{ print $12 + $13 }')"; done; }

# The kernel's idle time per CPU as the tuner counts it, from the
# kernel's own events: a CPU runs no task from the moment its task blocks
# (sched_ext's dequeue_task_scx on the current task, where the core calls
# ops.stopping() early) or it switches to its idle task, to the next
# sched_switch away. The tuner's idle runs from stopping() to the next
# running(), which sit beside those events. /proc/stat's idle time is
# narrower: from the idle loop's entry to the next interrupt; under TCG
# the time around it (the search for work after a task blocks, the path
# out of idle) can each wait a whole vCPU round (~7 ms). Summed in the
# kernel (one line per event was lossy); every `cut` the script runs (the
# /proc/uptime readings) prints "U <ns> <cpu> <idle ns so far>" for CPUs
# 0-7.
idle_trace() {
    cat >/tmp/idle.bt <<'BT'
kprobe:dequeue_task_scx /arg1 == (uint64)curtask/
{
    @blocked[cpu] = nsecs;
}
tracepoint:sched:sched_switch
{
    if (@blocked[cpu] && args->prev_state != 0) {
        @idle[cpu] += nsecs - @blocked[cpu];
    }
    @blocked[cpu] = 0;
    if (args->prev_pid == 0 && @since[cpu]) {
        @idle[cpu] += nsecs - @since[cpu];
        @since[cpu] = 0;
    }
    if (args->next_pid == 0) {
        @since[cpu] = nsecs;
    }
}
tracepoint:sched:sched_process_exec /comm == "cut"/
{
    $now = nsecs;
    printf("U %lld 0 %lld\n", $now, @idle[0] + (@since[0] ? $now - @since[0] : 0));
    printf("U %lld 1 %lld\n", $now, @idle[1] + (@since[1] ? $now - @since[1] : 0));
    printf("U %lld 2 %lld\n", $now, @idle[2] + (@since[2] ? $now - @since[2] : 0));
    printf("U %lld 3 %lld\n", $now, @idle[3] + (@since[3] ? $now - @since[3] : 0));
    printf("U %lld 4 %lld\n", $now, @idle[4] + (@since[4] ? $now - @since[4] : 0));
    printf("U %lld 5 %lld\n", $now, @idle[5] + (@since[5] ? $now - @since[5] : 0));
    printf("U %lld 6 %lld\n", $now, @idle[6] + (@since[6] ? $now - @since[6] : 0));
    printf("U %lld 7 %lld\n", $now, @idle[7] + (@since[7] ? $now - @since[7] : 0));
}
END
{
    clear(@idle);
    clear(@since);
}
BT
    bpftrace /tmp/idle.bt >"$1" 2>&1 &
    tracer=$!
    # bpftrace compiles its program first (seconds under TCG).
    _end=$(($(date +%s) + 120))
    until grep -q Attaching "$1" || [ "$(date +%s)" -ge "$_end" ]; do sleep 1; done
}

# The run time of every task in the system, summed (ns): the first field
# of /proc/PID/task/TID/schedstat is the task's sum_exec_runtime, on the
# kernel's runqueue clock, which is the very time scx_rebal charges from
# running() to stopping(). (The guest kernel has no IRQ time accounting,
# so both count the interrupts that come during a run.)
sched_ns() {
    cat /proc/[0-9]*/task/[0-9]*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

# mark N: the window's edge N (0 or 1) of phase $name, whose load is $kind
# with pids $pids.
mark() {
    cut -d' ' -f1 /proc/uptime >"$out/$name.up$1"
    cpu_times >"$out/$name.cpu$1"
    if [ "$kind" = stints ]; then
        sched_ns >"$out/$name.sched$1"
    else
        hog_times "$pids" >"$out/$name.hogs$1"
    fi
}

# phase NAME HOGS PIN SCHED_ARGS...: HOGS hogs (on domain 0's CPUs first if
# PIN is "pin"), 4 s to settle, 15 s measured; SCHED_ARGS "-" for EEVDF,
# none for scx_rebal's defaults. HOGS "stints": 8 stress-ng workers, each busy half the time in 2 ms
# slices, marked with sched_ns instead of the hogs' ticks.
phase() {
    name=$1 n=$2 pin=$3
    shift 3
    kind=$n
    spid="" tracer=""
    [ "$name" = traced ] && idle_trace "$out/$name.idle"
    if [ "${1:-}" != - ]; then
        "$sched" --stats-json "$out/$name.stats.jsonl" --interval 1 "$@" >"$out/$name.log" 2>&1 &
        spid=$!
        wait_for_state enabled 120 || log "$name: not enabled"
        cut -d' ' -f1 /proc/uptime >"$out/$name.start"
        record "$out/$name.state.txt" attached scx_state
    fi
    pids=""
    if [ "$n" = stints ]; then
        stress-ng --cpu 8 --cpu-load 50 --cpu-load-slice 2 --timeout 60s --temp-path /tmp \
            >"$out/$name.stress-ng.log" 2>&1 &
        pids=$!
        n=0
    fi
    for _ in $(seq "$n"); do
        if [ "$pin" = pin ]; then
            taskset -c "$dom0" sh -c 'while :; do :; done' >/dev/null 2>&1 &
        else
            sh -c 'while :; do :; done' >/dev/null 2>&1 &
        fi
        pids="$pids $!"
    done
    if [ "$pin" = pin ]; then
        sleep 2
        for p in $pids; do taskset -pc "$online" "$p" >/dev/null; done
    fi
    sleep 4
    mark 0
    sleep 15
    mark 1
    # The tracer's figures are all written by now (the `cut` above marked
    # the window's end), so it need not exit cleanly (stop_tracer).
    [ -n "$tracer" ] && stop_tracer "$tracer" "$out/$name"
    [ -n "$spid" ] && record "$out/$name.state.txt" loaded scx_state
    # shellcheck disable=SC2086 # a list of pids
    kill $pids
    wait $pids 2>/dev/null
    if [ -n "$spid" ]; then
        kill -INT "$spid"
        wait "$spid"
        echo "exit_status: $?" >>"$out/$name.state.txt"
        wait_for_state disabled 60
    fi
}

phase visitors-eevdf 10 pin -
phase visitors 10 pin --no-load-balance
phase steady 8 free --tune-interval 0.1
phase traced 8 free --tune-interval 0.1
phase stints stints free
dmesg >"$out/dmesg.txt"
log "done"
