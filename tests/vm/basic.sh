#!/bin/sh
# Guest side of tests/vm_basic.rs: loads the scheduler, runs >=30 s of CPU + fork +
# hackbench load under it, stops it with SIGINT and records sched_ext state throughout.
# The scheduler (and a --dump-domains) run inside a cgroup-v2 cpuset of CPUs 0-1
# only, as a daemon started from a restricted service would: its domains, and so
# the scheduling, must still cover all 8 CPUs (per-CPU busy time from /proc/stat).
# Then it installs the binary with scripts/install.sh and starts the installed
# binary under each --profile for 4 s.
# Usage: basic.sh SCHED_BINARY OUTDIR   (OUTDIR must be a --rwdir of the VM)
set -u
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
guest_setup "$1" "$2"

record "$out/before.txt" state scx_state

# A cpuset of CPUs 0-1 for the scheduler; everything else stays in the root cgroup.
cg=/sys/fs/cgroup
[ -f "$cg/cgroup.controllers" ] || mount -t cgroup2 none "$cg"
echo +cpuset >"$cg/cgroup.subtree_control"
mkdir -p "$cg/rebal"
echo 0-1 >"$cg/rebal/cpuset.cpus"
record "$out/cpuset.txt" cpuset_effective cat "$cg/rebal/cpuset.cpus.effective"
# sh -c "$in_cpuset" sh CMD...: runs CMD in that cgroup, as the same process (the
# shell execs it), so that $! of a background one is CMD's pid.
in_cpuset='echo $$ >/sys/fs/cgroup/rebal/cgroup.procs && exec "$@"'
log "cpuset 0-1 made; --dump-domains in it"
sh -c "$in_cpuset" sh grep Cpus_allowed_list /proc/self/status >>"$out/cpuset.txt" 2>&1
sh -c "$in_cpuset" sh "$sched" --dump-domains >"$out/domains-in-cpuset.json" 2>&1
echo "dump_exit: $?" >>"$out/cpuset.txt"

log "starting $sched (in the cpuset)"
sh -c "$in_cpuset" sh "$sched" --stats-json "$out/stats.jsonl" -v >"$out/sched.log" 2>&1 &
pid=$!
if wait_for_state enabled 60; then log "sched_ext enabled"; else log "not enabled after 60 s"; fi
record "$out/attached.txt" state scx_state
record "$out/attached.txt" ops cat /sys/kernel/sched_ext/root/ops
record "$out/cpuset.txt" sched_cpus_allowed grep Cpus_allowed_list "/proc/$pid/status"
# The nice value of each of its threads (stat's 19th field; comm may hold
# spaces, so counted after its closing parenthesis): --daemon-nice's default.
echo "threads_nice: $(for t in /proc/"$pid"/task/*/stat; do sed 's/^.*) //' "$t" | cut -d' ' -f17; done | tr '\n' ' ')" \
    >>"$out/attached.txt"

# A second instance must refuse, say why, and leave the first one attached.
"$sched" >"$out/second.log" 2>&1
echo "second_exit: $?" >>"$out/second.log"
record "$out/second.log" state_after scx_state
record "$out/second.log" ops_after cat /sys/kernel/sched_ext/root/ops

# Load: stress-ng's CPU hogs + fork churn with affinity changes (exercises migration
# and enqueue paths) while hackbench loops (wakeup-heavy IPC); each run is timed.
log "load phase"
grep '^cpu[0-9]' /proc/stat >"$out/stat-before.txt"
t0=$(now_ms)
stress-ng --cpu 4 --fork 2 --affinity 2 --timeout 30s --temp-path /tmp --metrics-brief \
    >"$out/stress-ng.log" 2>&1 &
stress=$!
: >"$out/hackbench.txt"
while kill -0 "$stress" 2>/dev/null; do
    h0=$(now_ms)
    hackbench -g 4 -l 50 >/dev/null 2>&1
    rc=$?
    echo "hackbench_ms: $(($(now_ms) - h0)) rc: $rc" >>"$out/hackbench.txt"
done
wait "$stress"
echo "stress_rc: $?" >>"$out/hackbench.txt"
grep '^cpu[0-9]' /proc/stat >"$out/stat-after.txt"
# stress-ng's own count of work done per stressor: evidence that it ran.
awk '$4 == "cpu" || $4 == "fork" || $4 == "affinity" { printf "%s %d ", $4, $5 } END { print "" }' \
    "$out/stress-ng.log" | sed 's/^/stress_ops: /' >>"$out/hackbench.txt"
echo "load_ms: $(($(now_ms) - t0))" >>"$out/hackbench.txt"
record "$out/after_load.txt" state scx_state

log "stopping scheduler (SIGINT)"
kill -INT "$pid"
# A scheduler that ignores SIGINT must not hang the VM until vm-run's timeout:
# SIGKILL it after 30 s (the exit status then shows 137).
(sleep 30 && kill -KILL "$pid" 2>/dev/null && echo "SIGKILLed after 30 s" >>"$out/sched.log") &
watchdog=$!
wait "$pid"
echo "exit_status: $?" >"$out/after_stop.txt"
kill "$watchdog" 2>/dev/null
wait_for_state disabled 30
record "$out/after_stop.txt" state scx_state

# The install path: scripts/install.sh into a DESTDIR on /tmp, then the
# *installed* binary under each profile for a few seconds, at the default log
# level (no -v, unlike the run above): the host checks it attached, and that
# its stderr has no libbpf line. Then scripts/uninstall.sh.
repo=$(realpath "$(dirname "$0")/../..")
dest=/tmp/scx_rebal-destdir
log "installing into $dest"
bash "$repo/scripts/install.sh" --bin "$sched" --no-systemctl "DESTDIR=$dest" >"$out/install.log" 2>&1
echo "install_rc: $?" >>"$out/install.log"
installed=$dest/usr/local/bin/scx_rebal
for p in auto gaming lowlatency powersave server; do
    log "installed binary, --profile $p"
    "$installed" --profile "$p" --run-for 4 >"$out/profile-$p.log" 2>&1 &
    ppid=$!
    wait_for_state enabled 60
    record "$out/profiles.txt" "${p}_state" scx_state
    record "$out/profiles.txt" "${p}_ops" cat /sys/kernel/sched_ext/root/ops
    wait "$ppid"
    echo "${p}_exit: $?" >>"$out/profiles.txt"
    wait_for_state disabled 30
done
bash "$repo/scripts/uninstall.sh" --no-systemctl "DESTDIR=$dest" >"$out/uninstall.log" 2>&1
echo "uninstall_rc: $?" >>"$out/uninstall.log"
echo "left_behind: $(find "$dest" -mindepth 1 | wc -l)" >>"$out/uninstall.log"

dmesg >"$out/dmesg.txt"
log "done"
