#!/bin/sh
# Runs a scripts/bench-vm workload with a time cap, for the profile runs of
# this folder (one run of the first attempt never ended; see README.md).
# After CAP seconds timeout(1) kills the workload's process group; shortly
# before that, a snapshot of every process (and the kernel stacks of the
# workload's) goes to $BENCH_OUT/$BENCH_TAG.ps, and "metric timed_out 1"
# marks the run. Usage (as --workload): sh capped.sh CAP COMMAND...
cap=$1
shift
(
    sleep $((cap - 10))
    {
        ps -eo pid,ppid,stat,etimes,times,wchan:24,comm
        for p in $(pgrep -x 'cyclictest|bpftrace|rt-app|hackbench|stress-ng|sh'); do
            echo "--- $p $(cat /proc/"$p"/comm 2>/dev/null)"
            cat /proc/"$p"/stack 2>/dev/null
        done
    } >"${BENCH_OUT:-/tmp}/${BENCH_TAG:-capped}.ps" 2>&1
) &
snap=$!
timeout "$cap" "$@"
rc=$?
kill "$snap" 2>/dev/null
[ "$rc" -eq 124 ] && echo "metric timed_out 1"
exit 0
