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
# What the kernel did (not scx_rebal's counters), from kprobes and the
# sched_switch tracepoint; vm_modes.rs judges both.
# - @slice_100us: the slice a hog starts with when the kernel makes it the
#   running task (set_next_task_scx), in 100 us buckets: what the kernel
#   takes each run's CPU time off, whatever scx_rebal says it set.
# - Each wakeup of the pinned cyclictest thread that finds a hog running on
#   its CPU (try_to_wake_up of the sleeping thread, before scx_rebal's
#   enqueue can cut the slice): the hog's slice left and CPU time, as the
#   kernel last charged them; at the next switch on that CPU, if it hands
#   the CPU to that thread, the hog's CPU time since. Less than it had
#   left: the hog went with slice left by the kernel's own count, cut short
#   (@cut); at least as much: its slice ran out first (@waited). Without
#   preemption a hog leaves only when its slice has run out, so every
#   switch is @waited. @other: the CPU went to another task first.
cat >/tmp/witness.bt <<'EOF'
kprobe:set_next_task_scx
{
    $p = (struct task_struct *)arg1;
    if ($p->comm == "hog") {
        @slice_100us = lhist($p->scx.slice / 100000, 0, 400, 1);
    }
}
kprobe:try_to_wake_up
/comm == "hog" && cpu == 1/
{
    $p = (struct task_struct *)arg0;
    if ($p->nr_cpus_allowed == 1 && $p->comm == "cyclictest" && $p->__state != 0) {
        @left[cpu] = curtask->scx.slice;
        @exec0[cpu] = curtask->se.sum_exec_runtime;
        @hog[cpu] = tid;
        @wakee[cpu] = $p->pid;
        @found = count();
    }
}
tracepoint:sched:sched_switch
/@hog[cpu] != 0/
{
    if (args->prev_pid == @hog[cpu] && args->next_pid == @wakee[cpu]) {
        if (curtask->se.sum_exec_runtime - @exec0[cpu] < @left[cpu]) {
            @cut = count();
        } else {
            @waited = count();
        }
    } else {
        @other = count();
    }
    delete(@hog[cpu]);
}
END
{
    clear(@left);
    clear(@exec0);
    clear(@hog);
    clear(@wakee);
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
# Its maps are printed on the way out (END): a tracer that has to be
# killed leaves witness.txt without them, and vm_modes fails on that.
stop_tracer "$bt" "$out/witness"

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
