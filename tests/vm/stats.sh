#!/bin/sh
# Guest side of tests/vm_stats.rs: the stats a harness and an operator read.
#  1. `--monitor 1` started before any scheduler waits for one, then prints
#     its table from the root-only socket; a non-root --monitor is refused.
#  2. `--stats 1 --stats-json FILE --run-for 20` under 16 CPU hogs: the table
#     on stdout, JSON lines in FILE, exit status 0 and a summary as the last
#     line of stderr.
#  3. A second run loses both its outputs (`--stats 1` into a pipe that
#     `head -3` closes, `--stats-json /dev/full`) and must keep scheduling;
#     then it is stopped (SIGSTOP) for 30 s under 8 hogs, which must keep
#     getting CPU while it is stopped, and not be ejected; after SIGCONT it
#     goes on. Finally it is ejected with SysRq-S: exit status 2 and an
#     EJECTED summary that says the outputs were lost; the monitor finds the
#     new instance by itself.
# Usage: stats.sh SCHED_BINARY OUTDIR
set -u
. "$(dirname "$0")/lib.sh"
guest_setup "$1" "$2"
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
# shellcheck disable=SC2086 # one pid per argument
ticks_mark "$out/ticks" $hogs
sleep 5
record "$out/facts.txt" socket stat -c '%a %U %F' "$sock"
setpriv --reuid=65534 --regid=65534 --clear-groups "$sched" --monitor 1 \
    >"$out/nonroot.out" 2>&1
echo "nonroot_exit: $?" >>"$out/facts.txt"
wait "$pid"
echo "run1_exit: $?" >>"$out/facts.txt"
# shellcheck disable=SC2086
echo "run1_hogs: $(ticks_check "$out/ticks" $hogs)" >>"$out/facts.txt"
# shellcheck disable=SC2086
kill $hogs
sleep 3

log "run 2: outputs lost, SIGSTOP 30 s, then ejected by SysRq-S"
mkfifo /tmp/stats.fifo
head -n 3 </tmp/stats.fifo >"$out/head.out" &
"$sched" -v --stats 1 --stats-json /dev/full --interval 1 --run-for 300 \
    >/tmp/stats.fifo 2>"$out/run2.err" &
pid=$!
wait_for_state enabled 60
hogs=""
for _ in $(seq 8); do
    sh -c 'while :; do :; done' &
    hogs="$hogs $!"
done
sleep 6
# head has exited and /dev/full refused a line: both outputs are lost.
record "$out/facts.txt" outputs_lost_state scx_state
echo "outputs_lost_alive: $(kill -0 "$pid" 2>/dev/null && echo yes || echo no)" >>"$out/facts.txt"
# shellcheck disable=SC2086
ticks_mark "$out/ticks" $hogs
kill -STOP "$pid"
stopped_at=$(date +%s)
sleep 30
record "$out/facts.txt" stopped_state scx_state
echo "stopped_secs: $(($(date +%s) - stopped_at))" >>"$out/facts.txt"
# shellcheck disable=SC2086
echo "stopped_hogs: $(ticks_check "$out/ticks" $hogs)" >>"$out/facts.txt"
# The daemon's log lines so far: after SIGCONT there must be new ones.
grep -c "dom 0 load" "$out/run2.err" >"$out/lines_at_cont"
kill -CONT "$pid"
sleep 5
echo "cont_lines: $(cat "$out/lines_at_cont") -> $(grep -c "dom 0 load" "$out/run2.err")" >>"$out/facts.txt"
record "$out/facts.txt" cont_state scx_state
echo S >/proc/sysrq-trigger
wait "$pid"
echo "run2_exit: $?" >>"$out/facts.txt"
# shellcheck disable=SC2086
kill $hogs
sleep 2
kill -INT "$mon"
wait "$mon"
echo "monitor_exit: $?" >>"$out/facts.txt"
dmesg >"$out/dmesg.txt"
log "done"
