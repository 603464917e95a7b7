# Helpers for the guest-side VM test scripts (POSIX sh: the guest runs dash without
# job control). Source it: . "$(dirname "$0")/lib.sh"

SCX_STATE=/sys/kernel/sched_ext/state

# guest_setup SCHED_BINARY OUTDIR: the start of every guest script: sets
# $sched and $out to absolute paths (OUTDIR made if missing) and moves to
# /tmp, the guest's writable directory (the host's files, the cwd
# included, are read-only there, and stress-ng aborts in a read-only cwd).
guest_setup() {
    mkdir -p "$2"
    sched=$(realpath -m "$1") out=$(realpath "$2")
    cd /tmp || exit 1
}

# Prints the sched_ext state (enabled, disabled, enabling, ...) or "missing".
scx_state() { cat "$SCX_STATE" 2>/dev/null || echo missing; }

# wait_for_state STATE SECS: polls until the sched_ext state is STATE; 1 on timeout.
# Deadline by the clock, not by counting sleeps: a loaded TCG guest oversleeps.
wait_for_state() {
    _want=$1 _end=$(($(date +%s) + $2))
    while [ "$(scx_state)" != "$_want" ]; do
        [ "$(date +%s)" -ge "$_end" ] && return 1
        sleep 1
    done
}

# record FILE LABEL COMMAND...: appends "LABEL: <output>" (and the exit status when
# nonzero) to FILE, so the host-side test can grep one self-describing file.
record() {
    _f=$1 _l=$2
    shift 2
    _out=$("$@" 2>&1)
    _rc=$?
    printf '%s: %s\n' "$_l" "$_out" >>"$_f"
    [ "$_rc" -eq 0 ] || printf '%s_rc: %s\n' "$_l" "$_rc" >>"$_f"
}

# now_ms: wall-clock milliseconds (GNU date), for timing workloads in the guest.
now_ms() { date +%s%3N; }

log() { echo "[$(date +%T)] $*"; }

# ticks_now PID...: "PID TICKS" for each PID still there: the CPU time
# (utime + stime, clock ticks) the kernel charged to it. One awk for all of
# them: under TCG with every CPU busy each fork costs seconds. The fields
# after the comm's ") " start at field 3, so utime and stime (14 and 15)
# are the 12th and 13th.
ticks_now() {
    _files=""
    for _p in "$@"; do [ -r "/proc/$_p/stat" ] && _files="$_files /proc/$_p/stat"; done
    [ -n "$_files" ] || return 0
    # shellcheck disable=SC2086 # one file per argument
    awk '{ split(FILENAME, f, "/"); sub(/^.*\) /, ""); print f[3], $12 + $13 }' $_files 2>/dev/null
}

# ticks_mark FILE PID...: notes each PID's CPU time in FILE, for ticks_check.
ticks_mark() {
    _f=$1
    shift
    ticks_now "$@" >"$_f"
}

# ticks_check FILE PID...: prints "D dead, S stalled, +T ticks": how many of
# the PIDs are gone, how many made next to no progress since ticks_mark FILE,
# and the CPU time they got in all (the evidence that a load really ran; a
# stress-ng started from a read-only cwd exits at once). Marks FILE again.
# Stalled: less than a tenth of the PIDs' mean CPU time over the interval
# (and at least MIN_PROGRESS_TICKS), not just no growth at all: a hog
# stopped on purpose just after the mark still gained a second's worth
# under TCG before the stop took (vm_faults, vm_stats), while hogs that
# share CPUs get within a factor of 1.5 of each other, the daemon beside
# some of them included (vm_balance: 1.06-1.45).
MIN_PROGRESS_TICKS=5
ticks_check() {
    _f=$1
    shift
    ticks_now "$@" >"$_f.now"
    echo "$@" | tr ' ' '\n' | awk -v old="$_f" -v new="$_f.now" -v min="$MIN_PROGRESS_TICKS" '
        BEGIN {
            while ((getline l < old) > 0) { split(l, a, " "); o[a[1]] = a[2] }
            while ((getline l < new) > 0) { split(l, a, " "); n[a[1]] = a[2] }
        }
        NF {
            if (!($1 in n)) dead++
            else if (!($1 in o)) stalled++
            else { g[$1] = n[$1] - o[$1]; sum += g[$1]; alive++ }
        }
        END {
            floor = alive ? sum / alive / 10 : 0
            if (floor < min) floor = min
            for (p in g) if (g[p] < floor) stalled++
            printf "%d dead, %d stalled, +%d ticks\n", dead, stalled, sum
        }'
    mv "$_f.now" "$_f"
}

# busy_ticks: busy jiffies of all CPUs (user + nice + system + irq + softirq
# from /proc/stat), and total jiffies, as "BUSY TOTAL".
busy_ticks() {
    awk '$1 == "cpu" { b = $2 + $3 + $4 + $7 + $8; print b, b + $5 + $6 + $9 }' /proc/stat
}

# dom0_cpus SCHED_BINARY: the CPU list of domain 0 as the scheduler would
# build it (--dump-domains prints domain 0 first; its list is the first
# "cpus" array).
dom0_cpus() {
    "$1" --dump-domains | awk -F'"cpus":\\[' '{split($2, a, "]"); print a[1]}'
}

# stop_tracer PID PREFIX: stops a bpftrace with SIGINT (it prints its END
# output then) and appends "tracer: exited STATUS" or "tracer: hung" to
# PREFIX.state.txt; returns 1 if it had to be killed. In this guest
# bpftrace has now and then not left after SIGINT, with nothing in dmesg
# (vm_conserve-16036; a bench-vm --latency boot of 2026-12-01 in
# wakelat.sh), and whoever waited for it held the VM until its timeout.
# If it is still there after 60 s, what it waits in goes to
# PREFIX.tracer-hang (and every blocked task to dmesg, SysRq-w), and it is
# killed.
stop_tracer() {
    kill -INT "$1"
    _end=$(($(date +%s) + 60))
    while kill -0 "$1" 2>/dev/null && [ "$(date +%s)" -lt "$_end" ]; do sleep 1; done
    if kill -0 "$1" 2>/dev/null; then
        echo "tracer: hung" >>"$2.state.txt"
        {
            echo "wchan: $(cat "/proc/$1/wchan")"
            for _t in /proc/"$1"/task/*; do
                echo "== $_t ($(cat "$_t/comm")): $(cat "$_t/wchan")"
                cat "$_t/stack"
            done
        } >"$2.tracer-hang" 2>&1
        echo w >/proc/sysrq-trigger
        kill -KILL "$1"
        wait "$1" 2>/dev/null
        return 1
    fi
    wait "$1"
    echo "tracer: exited $?" >>"$2.state.txt"
}
