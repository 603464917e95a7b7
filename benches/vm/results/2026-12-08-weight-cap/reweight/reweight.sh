#!/bin/sh
# 12 nice-0 hogs + 1 nice -5 hog, started right after attach (cap still nice 0's):
# does the domain load come to count the nice -5 hog at the balancer's cap?
out=$1
cd /tmp || exit 1
for s in cap1:/work/bench/rebal-e1090ad rew1:/work/bench/rebal-rew cap2:/work/bench/rebal-e1090ad rew2:/work/bench/rebal-rew; do
  name=${s%%:*}; b=${s#*:}
  $b --stats-json "$out/$name.stats.jsonl" --interval 1 -vv >"$out/$name.log" 2>&1 &
  spid=$!
  i=0; until grep -q '^enabled' /sys/kernel/sched_ext/state || [ $i -gt 240 ]; do sleep 0.2; i=$((i+1)); done
  stress-ng --cpu 12 --timeout 40s --temp-path /tmp >"$out/$name.hogs.log" 2>&1 &
  hpid=$!
  nice -n -5 stress-ng --cpu 1 --timeout 40s --temp-path /tmp >"$out/$name.nice.log" 2>&1 &
  npid=$!
  a0=$(awk '/^cpu / {print $2+$3+$4, $5}' /proc/stat)
  sleep 35
  a1=$(awk '/^cpu / {print $2+$3+$4, $5}' /proc/stat)
  echo "$a0 $a1" >"$out/$name.cpu"
  wait $hpid $npid
  kill -INT $spid; wait $spid
  i=0; until grep -q '^disabled' /sys/kernel/sched_ext/state || [ $i -gt 120 ]; do sleep 0.5; i=$((i+1)); done
done
echo done >"$out/done"
