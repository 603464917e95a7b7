#!/bin/sh
# Guest side of tests/vm_modes.rs: the tuner's slice under load and without,
# --fifo, and --partial (only SCHED_EXT tasks are scheduled by scx_rebal).
# Usage: modes.sh SCHED_BINARY OUTDIR
set -u
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
mkdir -p "$2"
sched=$(realpath -m "$1") out=$(realpath "$2")
cd /tmp || exit 1

hogs() { # hogs N: starts N CPU hogs, prints their pids
    _p=""
    for _ in $(seq "$1"); do
        # Not on our stdout: $(hogs N) would wait for them to close it.
        sh -c 'while :; do :; done' >/dev/null 2>&1 &
        _p="$_p $!"
    done
    echo "$_p"
}

# A run: idle, then 16 hogs on 8 CPUs, then idle again. The slice must
# shrink while tasks wait and come back once they are gone.
PREEMPT_LOOPS=200
echo "preempt_loops: $PREEMPT_LOOPS" >"$out/modes.txt"
log "tuner phase"
"$sched" --stats-json "$out/tuner.stats.jsonl" --interval 0.5 >"$out/tuner.log" 2>&1 &
pid=$!
wait_for_state enabled 60
sleep 3
p=$(hogs 16)
sleep 3
# Wakeup preemption: a periodic thread pinned to CPU 1 (pinned tasks skip
# the domain queues) must cut the hogs' slices short when it wakes; the
# stats' preempt counter is read before and after (vm_modes.rs compares).
record "$out/modes.txt" preempt_before sh -c "tail -n 1 '$out/tuner.stats.jsonl' | jq .preempt"
cyclictest -q -m -t 1 -a 1 -i 2000 -l "$PREEMPT_LOOPS" -h 100000 >"$out/cyclictest.hist" 2>&1
echo "cyclictest_rc: $?" >>"$out/modes.txt"
sleep 1.5	# one more stats line
record "$out/modes.txt" preempt_after sh -c "tail -n 1 '$out/tuner.stats.jsonl' | jq .preempt"
sleep 2
# shellcheck disable=SC2086 # a list of pids
kill $p
sleep 4
kill -INT "$pid"
wait "$pid"
echo "tuner_exit: $?" >>"$out/modes.txt"
wait_for_state disabled 30

log "fifo phase"
"$sched" --fifo --run-for 20 --stats-json "$out/fifo.stats.jsonl" >"$out/fifo.log" 2>&1 &
pid=$!
wait_for_state enabled 60
record "$out/modes.txt" fifo_state scx_state
record "$out/modes.txt" fifo_ops cat /sys/kernel/sched_ext/root/ops
hackbench -g 2 -l 50 >"$out/fifo.hackbench" 2>&1
echo "fifo_hackbench_rc: $?" >>"$out/modes.txt"
wait "$pid"
echo "fifo_exit: $?" >>"$out/modes.txt"
wait_for_state disabled 30

# --partial, twice: with ordinary hogs only (scx_rebal must see no work),
# then with one hog that chose SCHED_EXT (policy 7). The hogs start first,
# so the scheduler finds them running when it attaches.
log "partial phases"
for kind in plain ext; do
    if [ "$kind" = plain ]; then
        p=$(hogs 4)
    else
        python3 -c 'import os
os.sched_setscheduler(0, 7, os.sched_param(0))
while True: pass' >/dev/null 2>&1 &
        p=$!
        # Python starts slowly under TCG; field 41 of /proc/PID/stat is the policy.
        end=$(($(date +%s) + 60))
        while [ "$(cut -d' ' -f41 "/proc/$p/stat")" != 7 ] && [ "$(date +%s)" -lt "$end" ]; do
            sleep 0.5
        done
        record "$out/modes.txt" ext_policy cut -d' ' -f41 "/proc/$p/stat"
    fi
    "$sched" --partial --run-for 8 --stats-json "$out/partial-$kind.stats.jsonl" \
        >"$out/partial-$kind.log" 2>&1 &
    pid=$!
    wait_for_state enabled 60
    record "$out/modes.txt" "partial_${kind}_state" scx_state
    wait "$pid"
    echo "partial_${kind}_exit: $?" >>"$out/modes.txt"
    # shellcheck disable=SC2086
    kill $p
    wait_for_state disabled 30
done
dmesg >"$out/dmesg.txt"
log "done"
