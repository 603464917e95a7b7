#!/bin/sh
# hackbench, the suite's stress-ng mix and the pipe chain, with context switches of each
cd /tmp
ctxt() { awk '/^ctxt/ { print $2 }' /proc/stat; }
c0=$(ctxt); t0=$(date +%s%N); hackbench -g 4 -l 50 >/dev/null 2>&1; t1=$(date +%s%N); c1=$(ctxt)
echo "metric hackbench_s $(echo "$t0 $t1" | awk '{ printf "%.3f", ($2 - $1) / 1e9 }')"
echo "metric hb_ctxsw $((c1 - c0))"
n=$(nproc)
stress-ng --cpu "$n" --switch 2 --pipe 2 --fork 1 --timeout 10s --temp-path /tmp \
    --metrics-brief --yaml /tmp/mix.yaml >/dev/null 2>&1
awk '/- stressor:/ { s = $3 }
     /bogo-ops-per-second-real-time:/ { printf "metric mix_%s_ops %.1f\n", s, $2 }' /tmp/mix.yaml
c0=$(ctxt)
sh /work/main/benches/vm/pipeline.sh 10000
c1=$(ctxt)
echo "metric pipe_ctxsw $((c1 - c0))"
