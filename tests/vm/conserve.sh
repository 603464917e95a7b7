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
# Each phase writes NAME.cpu0/NAME.cpu1 (per-CPU "cpuN busy idle" jiffies
# over the measured window), NAME.hogs0/NAME.hogs1 ("pid utime+stime"
# ticks), NAME.up0/NAME.up1 (/proc/uptime: the window's length) and, under
# scx_rebal, NAME.stats.jsonl and NAME.start (/proc/uptime once the scheduler
# is enabled: its stats' t counts from its attach, up to a 1 s poll earlier).
# Usage: conserve.sh SCHED_BINARY OUTDIR
set -u
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
guest_setup "$1" "$2"
online=$(cat /sys/devices/system/cpu/online)
dom0=$(dom0_cpus "$sched")

cpu_times() { awk '$1 ~ /^cpu[0-9]/ { print $1, $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
hog_times() { for _p in $1; do echo "$_p $(sed 's/.*) //' "/proc/$_p/stat" | awk '{ print $12 + $13 }')"; done; }

# phase NAME HOGS PIN SCHED_ARGS...: HOGS hogs (on domain 0's CPUs first if
# PIN is "pin"), 4 s to settle, 15 s measured; SCHED_ARGS "-" for EEVDF.
phase() {
    name=$1 n=$2 pin=$3
    shift 3
    spid=""
    if [ "$1" != - ]; then
        "$sched" --stats-json "$out/$name.stats.jsonl" --interval 1 "$@" >"$out/$name.log" 2>&1 &
        spid=$!
        wait_for_state enabled 120 || log "$name: not enabled"
        cut -d' ' -f1 /proc/uptime >"$out/$name.start"
        record "$out/$name.state.txt" attached scx_state
    fi
    pids=""
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
    cut -d' ' -f1 /proc/uptime >"$out/$name.up0"
    cpu_times >"$out/$name.cpu0"
    hog_times "$pids" >"$out/$name.hogs0"
    sleep 15
    cut -d' ' -f1 /proc/uptime >"$out/$name.up1"
    cpu_times >"$out/$name.cpu1"
    hog_times "$pids" >"$out/$name.hogs1"
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
dmesg >"$out/dmesg.txt"
log "done"
