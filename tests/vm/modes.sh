#!/bin/sh
# Guest side of tests/vm_modes.rs: the tuner's slice under load and without,
# --fifo, and --partial (only SCHED_EXT tasks are scheduled by scx_rebal).
# Usage: modes.sh SCHED_BINARY OUTDIR
set -u
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
guest_setup "$1" "$2"

# The hogs run as "hog" (a link to sh), so that the kernel's tracepoints
# tell them from every other sh.
ln -sf "$(command -v sh)" /tmp/hog
hogs() { # hogs N: starts N CPU hogs, prints their pids
    _p=""
    for _ in $(seq "$1"); do
        # Not on our stdout: $(hogs N) would wait for them to close it.
        /tmp/hog -c 'while :; do :; done' >/dev/null 2>&1 &
        _p="$_p $!"
    done
    echo "$_p"
}

# A run: idle, then 16 hogs on 8 CPUs, then idle again. The slice must
# shrink while tasks wait and come back once they are gone.
PREEMPT_LOOPS=200
echo "preempt_loops: $PREEMPT_LOOPS" >"$out/modes.txt"
# What the kernel did, seen from its sched_switch tracepoint (not from
# scx_rebal's counters), by the CPU time each hog ran in each stint (the
# growth of its se.sum_exec_runtime between two of its switch-outs, which is
# what the kernel takes off its slice). @run_ms: stints that ended with
# another task than the pinned cyclictest thread taking the CPU, per second;
# @to_cyclictest_ms: stints that ended with it taking the CPU. Recorded for
# the report: in this 8-vCPU TCG guest the stints are quantized by QEMU's
# rounds over the vCPUs (vm_modes.rs says why they are not judged).
cat >/tmp/witness.bt <<'EOF'
tracepoint:sched:sched_switch
{
    if (args->prev_comm == "hog") {
        $exec = curtask->se.sum_exec_runtime;
        $last = @exec[args->prev_pid];
        @exec[args->prev_pid] = $exec;
        if ($last != 0) {
            if (args->next_comm == "cyclictest") {
                @to_cyclictest_ms = lhist(($exec - $last) / 1000000, 0, 40, 1);
            } else {
                @run_ms = lhist(($exec - $last) / 1000000, 0, 40, 1);
            }
        }
    }
}
interval:s:1
{
    time("second %H:%M:%S\n");
    print(@run_ms);
    clear(@run_ms);
}
END
{
    clear(@exec);
}
EOF
bpftrace /tmp/witness.bt >"$out/witness.txt" 2>&1 &
bt=$!
# bpftrace compiles its program first (seconds under TCG): wait until it
# has attached ("Attaching N probes...").
end=$(($(date +%s) + 120))
until grep -q Attaching "$out/witness.txt" || [ "$(date +%s)" -ge "$end" ]; do sleep 1; done
log "tuner phase"
"$sched" --stats-json "$out/tuner.stats.jsonl" --interval 0.5 >"$out/tuner.log" 2>&1 &
pid=$!
wait_for_state enabled 60
sleep 3
p=$(hogs 16)
# shellcheck disable=SC2086 # a list of pids
ticks_mark "$out/ticks" $p
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
echo "tuner_hogs: $(ticks_check "$out/ticks" $p)" >>"$out/modes.txt"
# shellcheck disable=SC2086 # a list of pids
kill $p
sleep 4
kill -INT "$pid"
wait "$pid"
echo "tuner_exit: $?" >>"$out/modes.txt"
wait_for_state disabled 30
kill -INT "$bt"
wait "$bt"

log "fifo phase"
"$sched" --fifo --run-for 20 --stats-json "$out/fifo.stats.jsonl" >"$out/fifo.log" 2>&1 &
pid=$!
wait_for_state enabled 60
record "$out/modes.txt" fifo_state scx_state
record "$out/modes.txt" fifo_ops cat /sys/kernel/sched_ext/root/ops
hackbench -g 2 -l 50 >"$out/fifo.hackbench" 2>&1
echo "fifo_hackbench_rc: $?" >>"$out/modes.txt"
record "$out/modes.txt" fifo_hackbench_time sed -n 's/^Time: //p' "$out/fifo.hackbench"
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
        # shellcheck disable=SC2086
        ticks_mark "$out/ticks" $p
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
        ticks_mark "$out/ticks" "$p"
    fi
    "$sched" --partial --run-for 8 --stats-json "$out/partial-$kind.stats.jsonl" \
        >"$out/partial-$kind.log" 2>&1 &
    pid=$!
    wait_for_state enabled 60
    record "$out/modes.txt" "partial_${kind}_state" scx_state
    wait "$pid"
    echo "partial_${kind}_exit: $?" >>"$out/modes.txt"
    # shellcheck disable=SC2086
    echo "partial_${kind}_hogs: $(ticks_check "$out/ticks" $p)" >>"$out/modes.txt"
    # shellcheck disable=SC2086
    kill $p
    wait_for_state disabled 30
done
dmesg >"$out/dmesg.txt"
log "done"
