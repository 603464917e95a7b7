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
