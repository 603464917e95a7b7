#!/bin/sh
# A workload for scripts/bench-vm: a producer/consumer pipeline (four
# processes handing 64-byte blocks down pipes: each stage wakes the next
# and blocks on the one before) while CPU hogs load every CPU.
# Prints "metric pipeline_s SECONDS".
# Usage: pipeline.sh [BLOCKS]
blocks=${1:-20000}
pids=""
for _ in $(seq "$(nproc)"); do
    sh -c 'while :; do :; done' &
    pids="$pids $!"
done
sleep 1
t0=$(date +%s%N)
dd if=/dev/zero bs=64 count="$blocks" 2>/dev/null | cat | cat | cat >/dev/null
t1=$(date +%s%N)
# shellcheck disable=SC2086
kill $pids
wait 2>/dev/null
echo "metric pipeline_s $(echo "$t0 $t1" | awk '{ printf "%.3f", ($2 - $1) / 1e9 }')"
