#!/bin/sh
# Guest side of tests/vm_balance.rs: eight CPU hogs start pinned to domain 0's
# CPUs, are unpinned, and the busy time of every CPU (/proc/stat) and the CPU
# each hog last ran on (/proc/PID/stat field 39) are sampled. Two phases in
# one boot: with --no-load-balance, then with balancing.
# Usage: balance.sh SCHED_BINARY OUTDIR
set -u
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
mkdir -p "$2"
sched=$(realpath -m "$1") out=$(realpath "$2")
cd /tmp || exit 1
online=$(cat /sys/devices/system/cpu/online)
# dump-domains prints domain 0 first; its cpu list is the first "cpus" array.
dom0=$("$sched" --dump-domains | awk -F'"cpus":\\[' '{split($2, a, "]"); print a[1]}')
echo "online: $online dom0: $dom0" >"$out/setup.txt"

phase() {
    name=$1
    shift
    "$sched" --stats-json "$out/$name.stats.jsonl" -v "$@" >"$out/$name.sched.log" 2>&1 &
    spid=$!
    wait_for_state enabled 60 || log "$name: not enabled"
    record "$out/$name.state.txt" attached scx_state
    pids=""
    for _ in 1 2 3 4 5 6 7 8; do
        taskset -c "$dom0" sh -c 'while :; do :; done' &
        pids="$pids $!"
    done
    sleep 2
    for p in $pids; do taskset -pc "$online" "$p" >/dev/null; done
    echo "$pids" >"$out/$name.pids"
    : >"$out/$name.where"
    : >"$out/$name.stat"
    # 14 windows of ~2 s (one balancing interval each).
    for w in 1 2 3 4 5 6 7 8 9 10 11 12 13 14; do
        echo "t $w $(date +%s%3N)" >>"$out/$name.stat"
        grep '^cpu[0-9]' /proc/stat >>"$out/$name.stat"
        for p in $pids; do
            echo "$w $p $(awk '{print $39}' "/proc/$p/stat")" >>"$out/$name.where"
        done
        sleep 2
    done
    record "$out/$name.state.txt" loaded scx_state
    # shellcheck disable=SC2086
    kill $pids
    kill -INT "$spid"
    wait "$spid"
    echo "exit_status: $?" >>"$out/$name.state.txt"
    wait_for_state disabled 30
}

phase nobalance --no-load-balance
phase balance
dmesg >"$out/dmesg.txt"
log "done"
