#!/bin/sh
# A workload for scripts/bench-vm (part of suite.sh): a stress-ng mix of
# CPU hogs, context switching, pipes and forks on every CPU for 10 s.
# Prints, per stressor, "metric mix_NAME_ops" (bogo-ops per second, higher
# is better) and "metric mix_NAME_cpu_s" (the CPU time, user + system, it
# got: the share the scheduler gave it, neither better nor worse).
# Also "metric mix_idle_s": the CPU time all CPUs spent idle meanwhile
# (/proc/stat idle + iowait). Under QEMU's TCG an idle vCPU hands its share
# of the one host thread to the busy ones, so a scheduler that leaves CPUs
# idle while tasks wait gets more bogo-ops out of those that run: this row
# tells such a gain from a cheaper hot path.
# stress-ng aborts in a read-only cwd: it runs from /tmp.
cd /tmp || exit 1
n=$(nproc)
idle_ticks() { awk '/^cpu / { print $5 + $6 }' /proc/stat; }
i0=$(idle_ticks)
stress-ng --cpu "$n" --switch 2 --pipe 2 --fork 1 --timeout 10s --temp-path /tmp \
    --metrics-brief --yaml /tmp/mix.yaml >/dev/null 2>&1
i1=$(idle_ticks)
echo "metric mix_idle_s $(awk -v d="$((i1 - i0))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", d / hz }')"
awk '/- stressor:/ { s = $3 }
     /bogo-ops-per-second-real-time:/ { printf "metric mix_%s_ops %.1f\n", s, $2 }
     /user-time:/ { u = $2 }
     /system-time:/ { printf "metric mix_%s_cpu_s %.2f\n", s, u + $2 }' /tmp/mix.yaml
