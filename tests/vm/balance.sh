#!/bin/sh
# Guest side of tests/vm_balance.rs. Eight CPU hogs start pinned to domain 0's
# CPUs (so domain 0 becomes their home), are unpinned, and for 30 s the CPU
# each hog is on (/proc/PID/stat field 39) is sampled every ~0.5 s, with the
# kernel's accounting of their run time. Two phases in one
# boot: with --no-load-balance, then with balancing.
#
# Why not just compare the domains' busy time: idle CPUs steal from other
# domains, so even with every hog homed in domain 0 all CPUs end up busy.
# What balancing changes is where each hog *belongs*: whether it runs on its
# home LLC or is dragged across LLCs and nodes by stealing.
# Usage: balance.sh SCHED_BINARY OUTDIR
set -u
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"
guest_setup "$1" "$2"
online=$(cat /sys/devices/system/cpu/online)
dom0=$(dom0_cpus "$sched")
echo "online: $online dom0: $dom0" >"$out/setup.txt"

phase() {
    name=$1
    shift
    "$sched" --stats-json "$out/$name.stats.jsonl" -v "$@" >"$out/$name.sched.log" 2>&1 &
    spid=$!
    wait_for_state enabled 60 || log "$name: not enabled"
    record "$out/$name.state.txt" attached scx_state
    pids=""
    for _ in 1 2 3 4 5 6 7 8; do
        taskset -c "$dom0" sh -c 'while :; do :; done' &
        pids="$pids $!"
    done
    echo "$pids" >"$out/$name.pids"
    # The sampler is Python, not a shell loop: under TCG with every vCPU
    # busy, each fork (date, sleep) took seconds, and a shell loop managed
    # 3-4 samples per hog in 15 s, too few to judge. It unpins the hogs
    # itself once it has started: Python's start-up costs seconds of CPU
    # under TCG, and counted as load on one node at the balancer's first
    # round with free hogs it weighed on where the hogs went.
    # Files (the host side reads them):
    #  .where   "time of day (UTC, s) pid cpu" every ~0.5 s, so a sample can
    #           be matched against the home the daemon's log gave the hog;
    #  .stat0/1 /proc/stat's cpuN lines at half time and at the end;
    #  .tasks0/1 "tid run_ns" of every thread at the same moments;
    #  .others  like .where, for the daemon's threads and the sampler;
    #  .hogs0/1 "pid run_ns wait_ns" per hog at the same moments, the
    #           kernel's own accounting (/proc/PID/schedstat), and .window
    #           the seconds between them.
    # shellcheck disable=SC2086 # one argument per pid
    DAEMON=$spid python3 - "$out/$name" 30 $pids <<'EOF'
import os, sys, time
base, secs, pids = sys.argv[1], float(sys.argv[2]), sys.argv[3:]

def cpustat(path):
    with open('/proc/stat') as src, open(path, 'w') as dst:
        dst.writelines(l for l in src if l[:3] == 'cpu' and l[3].isdigit())

def task_run(path):
    # Every thread's run time (ns) from its schedstat, which the kernel
    # brings up to date at each tick: their sum over a window is the CPU
    # time all tasks got, with no tick lost to TCG (/proc/stat) and no hog
    # that keeps its CPU left uncounted (/proc/schedstat's per-CPU sums
    # are charged when a run ends).
    with open(path, 'w') as dst:
        for d in os.listdir('/proc'):
            if not d.isdigit():
                continue
            try:
                tids = os.listdir('/proc/%s/task' % d)
            except OSError:
                continue
            for t in tids:
                try:
                    with open('/proc/%s/task/%s/schedstat' % (d, t)) as f:
                        dst.write('%s %s\n' % (t, f.read().split()[0]))
                except (OSError, IndexError):
                    continue

def hogstat(path):
    with open(path, 'w') as dst:
        for p in pids:
            try:
                with open('/proc/%s/schedstat' % p) as f:
                    run, wait = f.read().split()[:2]
            except (OSError, ValueError):
                continue
            dst.write('%s %s %s\n' % (p, run, wait))

def where(tid):
    # Field 39 (processor); fields after the comm's ')' start at 3.
    with open('/proc/%s/stat' % tid) as f:
        return f.read().rsplit(')', 1)[1].split()[36]

def others():
    # The threads besides the hogs that use a real share of a CPU under
    # TCG: the daemon's and this sampler's (vm_balance.rs weighs them).
    daemon = os.environ.get('DAEMON', '')
    try:
        tids = os.listdir('/proc/%s/task' % daemon) if daemon else []
    except OSError:
        tids = []
    return tids + [str(os.getpid())]

cpus = os.sched_getaffinity(0)
for p in pids:
    os.sched_setaffinity(int(p), cpus)
start = time.monotonic()
half = None
with open(base + '.where', 'w') as out, open(base + '.others', 'w') as oth:
    while time.monotonic() - start < secs:
        if half is None and time.monotonic() - start >= secs / 2:
            cpustat(base + '.stat0')  # the second half is the settled one
            task_run(base + '.tasks0')
            hogstat(base + '.hogs0')
            half = time.monotonic()
        tod = time.time() % 86400
        for dst, tids in ((out, pids), (oth, others())):
            for p in tids:
                try:
                    dst.write('%.3f %s %s\n' % (tod, p, where(p)))
                except (OSError, IndexError):
                    continue
            dst.flush()
        # Not faster: the sampler's own CPU time (0.3-0.45 of a CPU at 4
        # samples a second under TCG) is load on whichever domain it runs
        # in, and with the daemon beside it that came to a hog's worth:
        # then 3 hogs in one domain and 1 in another balance as well as 2
        # and 2 (benches/vm/results/2026-12-01-checks).
        time.sleep(0.5)
cpustat(base + '.stat1')
task_run(base + '.tasks1')
hogstat(base + '.hogs1')
with open(base + '.window', 'w') as f:
    f.write('%.3f\n' % (time.monotonic() - half))
EOF
    # Which tasks besides the hogs carried load (the balancer moves them too).
    ps -eo pid,psr,pcpu,time,comm --sort=-pcpu | head -30 >"$out/$name.ps"
    record "$out/$name.state.txt" loaded scx_state
    # shellcheck disable=SC2086
    kill $pids
    kill -INT "$spid"
    wait "$spid"
    echo "exit_status: $?" >>"$out/$name.state.txt"
    wait_for_state disabled 30
}

phase nobalance --no-load-balance
phase balance
dmesg >"$out/dmesg.txt"
log "done"
