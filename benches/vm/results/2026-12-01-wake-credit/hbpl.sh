#!/bin/sh
# The workload of hackbench-1: hackbench -g 4 -l 100 (seconds and context
# switches), the suite's stress-ng mix, the pipe chain under hogs.
here=$(dirname "$(realpath "$0")")/../..
cd /tmp || exit 1
cs0=$(awk '/^ctxt/ { print $2 }' /proc/stat)
t0=$(date +%s%N)
hackbench -g 4 -l 100 >/dev/null 2>&1
t1=$(date +%s%N)
cs1=$(awk '/^ctxt/ { print $2 }' /proc/stat)
echo "metric hb100_s $(echo "$t0 $t1" | awk '{ printf "%.3f", ($2 - $1) / 1e9 }')"
echo "metric hb100_ctxsw $((cs1 - cs0))"
sh "$here/mix.sh"
sh "$here/pipeline.sh" 10000
