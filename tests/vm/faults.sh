#!/bin/sh
# Guest side of tests/vm_faults.rs: bad days for a scheduler, under load.
#  1. CPU hotplug cycles: each change makes the kernel eject scx_rebal with
#     a restart request; it must come back, with the new topology, every time.
#  2. Storms for SOAK seconds: affinity changes (stress-ng and hogs re-pinned
#     many times a second), fork/exit churn, nice changes, a SCHED_FIFO task
#     beside it, cgroup moves.
#     Then a task storm alone: stress-ng forking short-lived tasks flat out.
#  3. SIGKILL of the daemon: the kernel falls back to its default scheduler,
#     every task keeps running, and a new scx_rebal starts cleanly.
# Usage: faults.sh SCHED_BINARY OUTDIR CYCLES SOAK_SECS
set -u
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
guest_setup "$1" "$2"
cycles=$3 soak=$4
res=$out/faults.txt
: >"$res"

restarts() { grep -c "asked for a restart" "$out/sched.log"; }
# settled LABEL BEFORE: waits for a restart beyond BEFORE, then for the
# scheduler to be attached again; records LABEL: ok / LABEL: FAIL <why>.
settled() {
    _end=$(($(date +%s) + 90))
    while [ "$(restarts)" -le "$2" ]; do
        if [ "$(date +%s)" -ge "$_end" ]; then
            echo "$1: FAIL no restart (state $(scx_state))" >>"$res"
            return
        fi
        sleep 0.5
    done
    if wait_for_state enabled 90 && [ "$(cat /sys/kernel/sched_ext/root/ops)" = rebal ]; then
        echo "$1: ok" >>"$res"
    else
        echo "$1: FAIL not attached again (state $(scx_state))" >>"$res"
    fi
}
# hogs_ran LABEL: records "LABEL: D dead, S stalled, +T ticks": how many
# hogs are gone and how many got no CPU time since the last call (a hog that
# exists but never runs is as lost as a dead one).
# shellcheck disable=SC2086 # one pid per argument
hogs_ran() { echo "$1: $(ticks_check "$out/hog.ticks" $hogs)" >>"$res"; }
# domains_now LABEL: once the daemon has gone 3 s without a restart (one
# hotplug step is several CPU operations, each of which may eject it) and
# then written a stats line, records the CPUs of its domains as it uses them.
domains_now() {
    _end=$(($(date +%s) + 60))
    _r=$(restarts)
    while [ "$(date +%s)" -lt "$_end" ]; do
        sleep 3
        [ "$(restarts)" = "$_r" ] && [ "$(scx_state)" = enabled ] && break
        _r=$(restarts)
    done
    _n=$(wc -l <"$out/stats.jsonl")
    _end=$(($(date +%s) + 30))
    while [ "$(wc -l <"$out/stats.jsonl")" -le "$_n" ] && [ "$(date +%s)" -lt "$_end" ]; do
        sleep 0.5
    done
    echo "$1: $(tail -n 1 "$out/stats.jsonl" | jq -c '[.domains[].cpus]')" >>"$res"
}
setcpu() { echo "$2" >"/sys/devices/system/cpu/cpu$1/online"; }

"$sched" --stats-json "$out/stats.jsonl" --interval 1 >"$out/sched.log" 2>&1 &
pid=$!
wait_for_state enabled 60 || echo "start: FAIL not enabled" >>"$res"
hogs=""
for _ in 1 2 3 4 5 6 7 8; do
    sh -c 'while :; do :; done' >/dev/null 2>&1 &
    hogs="$hogs $!"
done
# shellcheck disable=SC2086
ticks_mark "$out/hog.ticks" $hogs

log "hotplug: $cycles cycles"
i=1
while [ "$i" -le "$cycles" ]; do
    # Odd cycles take one CPU of domain 1 away, even ones the whole domain
    # (its two CPUs: the domain disappears), and node 1's CPU 6 as well.
    n=$(restarts)
    if [ $((i % 2)) -eq 1 ]; then setcpu 3 0; else setcpu 3 0; setcpu 2 0; fi
    setcpu 6 0
    settled "cycle $i offline" "$n"
    domains_now "cycle $i offline domains"
    n=$(restarts)
    setcpu 2 1; setcpu 3 1; setcpu 6 1
    settled "cycle $i online" "$n"
    domains_now "cycle $i online domains"
    i=$((i + 1))
done
record "$res" online cat /sys/devices/system/cpu/online
hogs_ran "after hotplug"

log "storms: $soak s"
before=$(restarts)
stress-ng --affinity 2 --fork 2 --timeout "${soak}s" --metrics-brief --temp-path /tmp \
    >"$out/stress-ng.log" 2>&1 &
stress=$!
# Hogs re-pinned to random CPUs many times a second, and reniced.
(
    end=$(($(date +%s) + soak)) k=0
    while [ "$(date +%s)" -lt "$end" ]; do
        for p in $hogs; do
            k=$((k + 1))
            taskset -pc $((k % 8)) "$p" >/dev/null 2>&1
            renice -n $((k % 20 - 5)) -p "$p" >/dev/null 2>&1
        done
        echo "$k" >"$out/repins"
    done
) &
repin=$!
# A SCHED_FIFO task waking every 10 ms beside scx_rebal's tasks.
chrt -f 10 sh -c 'while :; do sleep 0.01; done' >/dev/null 2>&1 &
fifo=$!
# cgroup moves, where cgroup2 is mounted.
cg=/sys/fs/cgroup
if [ -w "$cg/cgroup.procs" ] && mkdir -p "$cg/rebal-a" "$cg/rebal-b" 2>/dev/null; then
    (
        end=$(($(date +%s) + soak)) k=0
        while [ "$(date +%s)" -lt "$end" ]; do
            for p in $hogs; do
                k=$((k + 1))
                echo "$p" >"$cg/rebal-$(if [ $((k % 2)) -eq 0 ]; then echo a; else echo b; fi)/cgroup.procs"
            done
            echo "$k" >"$out/cgmoves"
            sleep 0.1
        done
    ) &
    cgmover=$!
else
    echo "cgroup: not available" >>"$res"
    cgmover=""
fi
wait "$stress"
echo "stress_rc: $?" >>"$res"
# Its own count of work done, as evidence it ran (bogo ops per stressor).
awk '$4 == "affinity" || $4 == "fork" { printf "%s %d ", $4, $5 } END { print "" }' \
    "$out/stress-ng.log" | sed 's/^/storm_ops: /' >>"$res"
wait "$repin"
[ -n "$cgmover" ] && wait "$cgmover"
kill "$fifo"
record "$res" after_storms scx_state
record "$res" after_storms_ops cat /sys/kernel/sched_ext/root/ops
echo "storm_restarts: $(($(restarts) - before))" >>"$res"
echo "repins: $(cat "$out/repins" 2>/dev/null)" >>"$res"
echo "cgmoves: $(cat "$out/cgmoves" 2>/dev/null)" >>"$res"
hogs_ran "after storms"

# A task storm alone (hogs stopped, so that forks get the CPUs): as many
# short-lived tasks per second as the guest can make, each one a task_ctx
# created and freed, for a third of SOAK (at least 10 s).
log "task storm"
# shellcheck disable=SC2086
kill -STOP $hogs
forks=$((soak / 3 > 10 ? soak / 3 : 10))
stress-ng --fork 4 --fork-max 32 --timeout "${forks}s" --metrics-brief --temp-path /tmp \
    >"$out/forkstorm.log" 2>&1
echo "forkstorm_rc: $?" >>"$res"
awk '$4 == "fork" { printf "forks: %d in %.0f s, %.0f/s\n", $5, $6, $9 }' \
    "$out/forkstorm.log" >>"$res"
# shellcheck disable=SC2086
kill -CONT $hogs
record "$res" after_forkstorm scx_state
echo "forkstorm_restarts: $(($(restarts) - before))" >>"$res"
# shellcheck disable=SC2086
ticks_mark "$out/hog.ticks" $hogs
sleep 2
hogs_ran "after task storm"

log "SIGKILL"
# shellcheck disable=SC2086
ticks_mark "$out/hog.ticks" $hogs
kill -KILL "$pid"
wait "$pid"
if wait_for_state disabled 30; then echo "killed: ok" >>"$res"; else echo "killed: FAIL $(scx_state)" >>"$res"; fi
sleep 2
hogs_ran "after SIGKILL"
record "$res" after_kill_hackbench sh -c 'hackbench -g 2 -l 20 >/dev/null && echo ran'
"$sched" >"$out/sched2.log" 2>&1 &
pid=$!
# Loading means the verifier's work on a guest whose 8 CPUs run 8 hogs:
# under TCG that took 103 s once (60 s was too short); under load is the
# point of the test, so wait rather than stop the hogs.
if wait_for_state enabled 240; then echo "restarted: ok" >>"$res"; else echo "restarted: FAIL" >>"$res"; fi
hackbench -g 2 -l 20 >/dev/null 2>&1
echo "restarted_hackbench_rc: $?" >>"$res"
kill -INT "$pid"
wait "$pid"
echo "restarted_exit: $?" >>"$res"
# shellcheck disable=SC2086
kill $hogs
wait_for_state disabled 30
dmesg >"$out/dmesg.txt"
log "done"
