#!/bin/sh
cd /tmp
for k in 1 2 3 4 5 6 7 8; do
  c0=$(awk '/^ctxt/ { print $2 }' /proc/stat)
  t0=$(date +%s%N)
  hackbench -g 4 -l 50 >/dev/null 2>&1
  t1=$(date +%s%N)
  c1=$(awk '/^ctxt/ { print $2 }' /proc/stat)
  echo "metric hb$k $(echo "$t0 $t1" | awk '{ printf "%.3f", ($2 - $1) / 1e9 }')"
  echo "metric cs$k $((c1 - c0))"
done
