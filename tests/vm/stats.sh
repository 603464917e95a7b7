#!/bin/sh
# Guest side of tests/vm_stats.rs: the stats a harness and an operator read.
#  1. `--monitor 1` started before any scheduler waits for one, then prints
#     its table from the root-only socket; a non-root --monitor is refused.
#  2. `--stats 1 --stats-json FILE --run-for 20` under 16 CPU hogs: the table
#     on stdout, JSON lines in FILE, exit status 0 and a summary as the last
#     line of stderr.
#  3. A second run is ejected with SysRq-S: exit status 2 and an EJECTED
#     summary; the monitor finds the new instance by itself.
# Usage: stats.sh SCHED_BINARY OUTDIR
set -u
. "$(dirname "$0")/lib.sh"
mkdir -p "$2"
sched=$(realpath -m "$1") out=$(realpath "$2")
cd /tmp || exit 1
sock=/var/run/scx/root/stats
rm -f "$sock"

log "monitor first"
"$sched" --monitor 1 >"$out/monitor.out" 2>"$out/monitor.err" &
mon=$!
sleep 3

log "run 1: --stats --stats-json --run-for 20 under 16 hogs"
"$sched" --stats 1 --stats-json "$out/stats.jsonl" --interval 1 --run-for 20 \
    >"$out/table.out" 2>"$out/run1.err" &
pid=$!
# Hogs only once attached: loading under 16 hogs takes minutes under TCG.
wait_for_state enabled 60
hogs=""
for _ in $(seq 16); do
    sh -c 'while :; do :; done' &
    hogs="$hogs $!"
done
sleep 5
record "$out/facts.txt" socket stat -c '%a %U %F' "$sock"
setpriv --reuid=65534 --regid=65534 --clear-groups "$sched" --monitor 1 \
    >"$out/nonroot.out" 2>&1
echo "nonroot_exit: $?" >>"$out/facts.txt"
wait "$pid"
echo "run1_exit: $?" >>"$out/facts.txt"
# shellcheck disable=SC2086
kill $hogs
sleep 3

log "run 2: ejected by SysRq-S"
"$sched" --run-for 120 >/dev/null 2>"$out/run2.err" &
pid=$!
wait_for_state enabled 60
sleep 6
echo S >/proc/sysrq-trigger
wait "$pid"
echo "run2_exit: $?" >>"$out/facts.txt"
sleep 2
kill -INT "$mon"
wait "$mon"
echo "monitor_exit: $?" >>"$out/facts.txt"
dmesg >"$out/dmesg.txt"
log "done"
