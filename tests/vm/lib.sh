# Helpers for the guest-side VM test scripts (POSIX sh: the guest runs dash without
# job control). Source it: . "$(dirname "$0")/lib.sh"

SCX_STATE=/sys/kernel/sched_ext/state

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

# cpu_ticks PID: CPU time (utime + stime, clock ticks) the kernel charged to
# PID; nothing (status 1) when PID is gone. The fields after the comm's ')'
# start at field 3, so utime and stime (14 and 15) are the 12th and 13th.
cpu_ticks() {
    _s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    echo "${_s##*) }" | awk '{ print $12 + $13 }'
}

# ticks_mark FILE PID...: notes each PID's CPU time in FILE, for ticks_check.
ticks_mark() {
    _f=$1
    shift
    : >"$_f"
    for _p in "$@"; do echo "$_p $(cpu_ticks "$_p" || echo gone)" >>"$_f"; done
}

# ticks_check FILE PID...: prints "D dead, S stalled, +T ticks": how many of
# the PIDs are gone, how many got no CPU time since ticks_mark FILE, and the
# CPU time they got in all (the evidence that a load really ran; a stress-ng
# started from a read-only cwd exits at once). Marks FILE again.
ticks_check() {
    _f=$1
    shift
    _dead=0 _stalled=0 _sum=0
    for _p in "$@"; do
        _was=$(awk -v p="$_p" '$1 == p { print $2 }' "$_f")
        if ! _now=$(cpu_ticks "$_p"); then
            _dead=$((_dead + 1))
        elif [ "$_was" = gone ] || [ -z "$_was" ] || [ "$_now" -le "$_was" ]; then
            _stalled=$((_stalled + 1))
        else
            _sum=$((_sum + _now - _was))
        fi
    done
    ticks_mark "$_f" "$@"
    echo "$_dead dead, $_stalled stalled, +$_sum ticks"
}

# busy_ticks: busy jiffies of all CPUs (user + nice + system + irq + softirq
# from /proc/stat), and total jiffies, as "BUSY TOTAL".
busy_ticks() {
    awk '$1 == "cpu" { b = $2 + $3 + $4 + $7 + $8; print b, b + $5 + $6 + $9 }' /proc/stat
}
