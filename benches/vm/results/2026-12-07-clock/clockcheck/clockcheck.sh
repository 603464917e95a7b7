#!/bin/sh
# Accuracy of scx_rebal's BPF clock: CPU time charged (run_ns) per second
# against /proc/stat's busy share, under a 50% load on 8 CPUs.
out=$1
cd /tmp || exit 1
for s in anchor:/work/main/target/release/scx_rebal old:/work/bench/rebal-old broken:/work/wt-target/release/scx_rebal anchor2:/work/main/target/release/scx_rebal; do
  n=${s%%:*}; b=${s#*:}
  $b --stats-json "$out/$n.jsonl" --interval 1 >"$out/$n.log" 2>&1 &
  pid=$!
  i=0; until grep -q '^enabled' /sys/kernel/sched_ext/state || [ $i -gt 240 ]; do sleep 0.5; i=$((i+1)); done
  stress-ng --cpu 8 --cpu-load 50 --timeout 17s --temp-path /tmp >/dev/null 2>&1 &
  sp=$!
  sleep 3
  grep '^cpu ' /proc/stat >"$out/$n.stat0"; cut -d' ' -f1 /proc/uptime >"$out/$n.up0"
  sleep 12
  grep '^cpu ' /proc/stat >"$out/$n.stat1"; cut -d' ' -f1 /proc/uptime >"$out/$n.up1"
  wait $sp
  kill -INT $pid; wait $pid
  i=0; until grep -q '^disabled' /sys/kernel/sched_ext/state || [ $i -gt 120 ]; do sleep 0.5; i=$((i+1)); done
done
echo done >"$out/done"
