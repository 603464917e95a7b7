#!/bin/sh
# Guest: many short-running tasks (hackbench -g G) beside 8 CPU hogs for SECS under SCHED;
# does the watchdog eject it, how long do the hogs wait (schedstat run_delay), daemon gaps.
out=$1 sched=$2 g=$3 secs=$4
cd /tmp || exit 1
$sched --stats-json "$out/crowd.stats.jsonl" --interval 0.5 >"$out/crowd.sched.log" 2>&1 &
pid=$!
i=0; while [ "$(cat /sys/kernel/sched_ext/state)" != enabled ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done
echo "state_start $(cat /sys/kernel/sched_ext/state)" >"$out/crowd.txt"
stress-ng --cpu 8 --timeout "${secs}s" --temp-path /tmp --metrics-brief >"$out/crowd.stress.log" 2>&1 &
sp=$!
# The daemon's threads every second: schedstat (ran ns, waited ns, slices), state, wchan.
( while kill -0 $sp 2>/dev/null; do
    for t in /proc/$pid/task/*; do
      echo "$(date +%s.%N) $(basename $t) $(cat $t/schedstat) $(sed 's/^.*) //' $t/stat | cut -d' ' -f1) $(cat $t/wchan)"
    done
    sleep 1
  done >"$out/crowd.daemon.txt" ) &
t0=$(date +%s)
n=0
while [ $(( $(date +%s) - t0 )) -lt "$secs" ]; do
  hackbench -g "$g" -l 200 >/dev/null 2>&1; n=$((n+1))
  echo "hb $n at $(( $(date +%s) - t0 )) state $(cat /sys/kernel/sched_ext/state)" >>"$out/crowd.txt"
done
wait $sp
echo "state_end $(cat /sys/kernel/sched_ext/state)" >>"$out/crowd.txt"
kill -INT $pid; wait $pid; echo "sched_exit $?" >>"$out/crowd.txt"
dmesg | grep -i -E "sched_ext|stall|watchdog" >>"$out/crowd.txt"
