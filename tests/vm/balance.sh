#!/bin/sh
# Guest side of tests/vm_balance.rs. Eight CPU hogs start pinned to domain 0's
# CPUs (so domain 0 becomes their home), are unpinned, and for 30 s the CPU
# each hog is on (/proc/PID/stat field 39) is sampled every ~0.5 s. Two
# phases in one boot: with --no-load-balance, then with balancing.
#
# Why not just compare the domains' busy time: idle CPUs steal from other
# domains, so even with every hog homed in domain 0 all CPUs end up busy.
# What balancing changes is where each hog *belongs*: whether it runs on its
# home LLC or is dragged across LLCs and nodes by stealing.
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
    # Builtins only in the loop (read, set, printf): forks are slow under TCG.
    end=$(($(date +%s) + 30))
    half=$(($(date +%s) + 15))
    s=0
    while [ "$(date +%s)" -lt "$end" ]; do
        s=$((s + 1))
        # Busy time per CPU over the second half, from the guest kernel.
        if [ "$half" -gt 0 ] && [ "$(date +%s)" -ge "$half" ]; then
            grep '^cpu[0-9]' /proc/stat >"$out/$name.stat0"
            half=0
        fi
        for p in $pids; do
            read -r l <"/proc/$p/stat"
            # shellcheck disable=SC2086 # split the stat line into fields
            set -- $l
            shift 38
            printf '%s %s %s\n' "$s" "$p" "$1" >>"$out/$name.where"
        done
        sleep 0.5
    done
    grep '^cpu[0-9]' /proc/stat >"$out/$name.stat1"
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
