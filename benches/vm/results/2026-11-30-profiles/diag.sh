#!/bin/sh
# Which profile setting starves rt-app's frame loop (powersave) or hurts
# cyclictest's tail (lowlatency)? frames.sh 5 and wakelat.sh 1500 per variant.
out=$(dirname "$(realpath "$0")")
bench=$1
cd /tmp || exit 1
for v in "auto:" "powersave:--profile powersave" "credit25:--sleeper-credit-pct 25" \
         "kick0:--kick-greedy-under 0" "direct30:--direct-greedy-under 30" \
         "tune05:--tune-interval 0.5" \
         "lowlatency:--profile lowlatency" "ll_slices:--slice-min-us 2000 --slice-max-us 10000" \
         "ll_margin:--preempt-margin-us 5000" "ll_greedy:--direct-greedy-under 100 --kick-greedy-under 100"; do
    name=${v%%:*} args=${v#*:}
    "$out/scx_rebal" $args --interval 0.5 >"$out/$name.sched.log" 2>&1 &
    pid=$!
    sleep 6
    timeout 120 sh "$bench/frames.sh" 5 >"$out/$name.frames" 2>&1
    cp /tmp/frames/rt-app.out "$out/$name.rt-app.out" 2>/dev/null
    timeout 120 sh "$bench/wakelat.sh" 1500 >"$out/$name.wakelat" 2>&1
    echo "$name $(grep -h 'frames_n\|frames_missed\|wake_p99_us\|wake_over1ms' "$out/$name.frames" "$out/$name.wakelat" | grep -v rt_ | awk '{printf "%s=%s ", $2, $3}')" >>"$out/results.txt"
    kill -INT $pid; wait $pid
    sleep 2
done
