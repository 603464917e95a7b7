#!/bin/sh
# Spread of charged/kernel run time under the stints load, several builds in one boot.
out=$1
cd /tmp || exit 1
cpu_times() { awk '$1 ~ /^cpu[0-9]/ { print $1, $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
sched_ns() { cat /proc/[0-9]*/task/[0-9]*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
for s in a1:/work/main/target/release/scx_rebal old1:/work/bench/rebal-old broken:/work/wt-target/release/scx_rebal a2:/work/main/target/release/scx_rebal old2:/work/bench/rebal-old a3:/work/main/target/release/scx_rebal; do
  name=${s%%:*}; b=${s#*:}
  $b --stats-json "$out/$name.stats.jsonl" --interval 1 >"$out/$name.log" 2>&1 &
  spid=$!
  i=0; until grep -q '^enabled' /sys/kernel/sched_ext/state || [ $i -gt 240 ]; do sleep 0.5; i=$((i+1)); done
  cut -d' ' -f1 /proc/uptime >"$out/$name.start"
  stress-ng --cpu 8 --cpu-load 50 --cpu-load-slice 2 --timeout 60s --temp-path /tmp >"$out/$name.stress-ng.log" 2>&1 &
  lpid=$!
  sleep 4
  cut -d' ' -f1 /proc/uptime >"$out/$name.up0"; cpu_times >"$out/$name.cpu0"; sched_ns >"$out/$name.sched0"
  sleep 15
  cut -d' ' -f1 /proc/uptime >"$out/$name.up1"; cpu_times >"$out/$name.cpu1"; sched_ns >"$out/$name.sched1"
  kill $lpid; wait $lpid 2>/dev/null
  kill -INT $spid; wait $spid
  i=0; until grep -q '^disabled' /sys/kernel/sched_ext/state || [ $i -gt 120 ]; do sleep 0.5; i=$((i+1)); done
done
echo done >"$out/done"
