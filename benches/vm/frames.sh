#!/bin/sh
# A workload for scripts/bench-vm: a game's frame loop under background CPU
# load, with rt-app. Each 16.7 ms period (60 fps) a "game" thread computes
# and hands the frame to a "render" thread, which computes and hands it
# back; the frame is late when the two together end after the
# period. Two CPU hogs per CPU play the background (a build, a download, a
# stream encoder). Work is counted in rt-app's calibrated loops, measured
# on this machine under this scheduler with no load, just before; 1 ms of
# it each, because under TCG every vCPU shares one host thread, so with
# the others busy a loop takes twice as long as when it was calibrated
# (3 ms each overloaded the 2-vCPU guest: EEVDF made 68 frames in 10 s).
# The hand-offs are rt-app barriers, which count who has arrived: its
# suspend/resume pair is a bare condition signal, lost whenever render had
# not reached its suspend yet, and both threads then waited for each other
# until the end (one frame logged in a whole run).
# Prints "metric NAME VALUE" lines (benches/vm/summary.py):
#   frames_missed_pct   share of periods whose frame ended after its deadline (lower is better)
#   frames_slack_p1_us  the 1st percentile of slack: how late the worst frames were (higher is better)
#   frames_n            periods measured (evidence that it ran)
#   busy_pct            share of all CPUs' time busy (/proc/stat): evidence that the hogs ran
# Usage: frames.sh [SECS]
here=$(dirname "$(realpath "$0")")
secs=${1:-10}
dir=/tmp/frames
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir" || exit 1
. "$here/lib.sh"

# ns per loop of rt-app's busy loop, on an idle machine.
cat >calib.json <<'EOF'
{ "tasks": { "t": { "loop": 1, "run": 1000 } },
  "global": { "duration": 1, "calibration": "CPU0", "log_size": "Disable" } }
EOF
pload=$(rt-app calib.json 2>&1 | sed -n 's/.*pLoad = \([0-9]*\)ns.*/\1/p')
if [ -z "$pload" ]; then
    echo "frames: rt-app calibration failed" >&2
    echo "metric error 1"
    exit 1
fi

cat >game.json <<EOF
{
  "tasks": {
    "game": { "loop": -1, "phases": { "frame": {
        "run": 1000, "barrier": "to_render", "barrier": "rendered",
        "timer": { "ref": "vsync", "period": 16667 } } } },
    "render": { "loop": -1, "phases": { "draw": {
        "barrier": "to_render", "run": 1000, "barrier": "rendered" } } }
  },
  "global": { "duration": $secs, "calibration": $pload, "default_policy": "SCHED_OTHER",
              "log_size": 4, "logdir": "$dir", "log_basename": "game",
              "ftrace": false, "lock_pages": false }
}
EOF
hogs=$(start_hogs $(($(nproc) * 2)))
b0=$(cpu_busy)
rt-app game.json >rt-app.out 2>&1
b1=$(cpu_busy)
stop_hogs "$hogs"
# The game thread's log: one line per period, slack in column 8 (us).
awk '!/^#/ && NF >= 8 { print $8 }' game-game-0.log >slack
awk '{ n++; if ($1 < 0) late++ }
    END { printf "metric frames_missed_pct %.2f\nmetric frames_n %d\n", n ? 100 * late / n : 100, n }' slack
sort -n slack | awk '{ v[NR] = $1 }
    END { if (NR) { i = int(NR / 100) + 1; printf "metric frames_slack_p1_us %d\n", v[i] } }'
echo "metric busy_pct $(busy_pct "$b0" "$b1")"
if [ -n "${BENCH_OUT:-}" ] && [ -n "${BENCH_TAG:-}" ]; then
    cp slack "$BENCH_OUT/$BENCH_TAG.frames.slack"
fi
