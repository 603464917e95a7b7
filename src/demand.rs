//! How much CPU a task would use if it never had to wait: the part of a
//! candidate's load that is its own, not the machine's crowding.
//!
//! BPF measures a task's load as its runnable share: running or waiting to
//! run. For a CPU hog that is 1 wherever it is. For a task that runs
//! briefly and sleeps, the waiting is most of it on a busy machine: in the
//! VM test a kworker using 1% of a CPU weighed 0.17, rcu_preempt (5%) 0.3,
//! the daemon itself (~35%) 0.7, because each wakeup waited behind the hogs
//! (and, under QEMU's TCG, for its vCPU's turn). The balancer then counted
//! ~1.7 CPUs of such "noise" on one node and left three hogs on a 2-CPU
//! domain against one on another, with that domain's CPUs partly idle.
//!
//! The kernel keeps each task's time on a CPU and time waiting for one
//! (/proc/PID/schedstat, CONFIG_SCHED_INFO, which delay accounting and
//! schedstats select). Over an interval `dt` with `run` and `wait` of it,
//! the rest was sleep; a task that never waited would have run `run` out of
//! `dt - wait`. That share is its demand: 1 for a hog (it never sleeps),
//! its own duty cycle for a task that sleeps. The balancer's load of a task
//! is capped by it (see load.rs); without the file (another kernel, a task
//! in another pid namespace) nothing changes.

use std::collections::HashMap;
use std::fs;

/// Run and wait time of a task (ns) at a moment (ns, CLOCK_MONOTONIC).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    pub at_ns: u64,
    pub run_ns: u64,
    pub wait_ns: u64,
}

/// The demand of a task between two readings: run time over the time it
/// was not waiting, 0..=1. None when the interval is empty or the counters
/// went backwards (a pid reused by a new task).
pub fn demand(prev: &Reading, cur: &Reading) -> Option<f64> {
    let dt = cur.at_ns.checked_sub(prev.at_ns)?;
    let run = cur.run_ns.checked_sub(prev.run_ns)?;
    let wait = cur.wait_ns.checked_sub(prev.wait_ns)?;
    let not_waiting = dt.saturating_sub(wait);
    if dt == 0 || not_waiting == 0 {
        // Waited the whole time: it wants a CPU all along.
        return (dt > 0).then_some(1.0);
    }
    Some((run as f64 / not_waiting as f64).clamp(0.0, 1.0))
}

/// "run wait slices" of /proc/PID/schedstat.
pub fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut f = text.split_whitespace();
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// The last reading of each candidate, so that the next round can tell
/// its demand over the interval between.
#[derive(Debug, Default)]
pub struct DemandTracker {
    last: HashMap<i32, Reading>,
}

impl DemandTracker {
    /// Reads the kernel's figures of `pids` at `now_ns` and returns the
    /// demand of those read last round too. Pids not given are forgotten.
    pub fn update(
        &mut self,
        pids: impl IntoIterator<Item = i32>,
        now_ns: u64,
    ) -> HashMap<i32, f64> {
        self.update_with(pids, now_ns, |pid| {
            fs::read_to_string(format!("/proc/{pid}/schedstat"))
                .ok()
                .and_then(|t| parse_schedstat(&t))
        })
    }

    /// [`DemandTracker::update`] with the reading done by `read` (tests).
    pub fn update_with(
        &mut self,
        pids: impl IntoIterator<Item = i32>,
        now_ns: u64,
        mut read: impl FnMut(i32) -> Option<(u64, u64)>,
    ) -> HashMap<i32, f64> {
        let mut out = HashMap::new();
        let mut next = HashMap::new();
        for pid in pids {
            let Some((run_ns, wait_ns)) = read(pid) else {
                continue;
            };
            let cur = Reading {
                at_ns: now_ns,
                run_ns,
                wait_ns,
            };
            if let Some(d) = self.last.get(&pid).and_then(|p| demand(p, &cur)) {
                out.insert(pid, d);
            }
            next.insert(pid, cur);
        }
        self.last = next;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn r(at: u64, run: u64, wait: u64) -> Reading {
        Reading {
            at_ns: at * MS,
            run_ns: run * MS,
            wait_ns: wait * MS,
        }
    }

    #[test]
    fn a_hog_wants_a_whole_cpu_however_long_it_waits() {
        // Ran 2/3 of the time, waited the rest (three hogs on two CPUs).
        let d = demand(&r(0, 0, 0), &r(3000, 2000, 1000)).unwrap();
        assert!((d - 1.0).abs() < 1e-9, "{d}");
    }

    #[test]
    fn a_sleeper_wants_its_own_duty_cycle_not_its_waiting() {
        // A kworker: 1% running, 16% waiting behind hogs, asleep otherwise.
        // Its runnable share is 0.17; what it wants is ~1%.
        let d = demand(&r(0, 0, 0), &r(2000, 20, 320)).unwrap();
        assert!(d < 0.013 && d > 0.011, "{d}");
        // The daemon: 35% running, 35% waiting.
        let d = demand(&r(0, 0, 0), &r(1000, 350, 350)).unwrap();
        assert!((d - 350.0 / 650.0).abs() < 1e-9, "{d}");
    }

    #[test]
    fn odd_readings_give_no_figure() {
        assert_eq!(demand(&r(10, 5, 5), &r(10, 5, 5)), None);
        // A new task under a reused pid: counters went back.
        assert_eq!(demand(&r(0, 500, 0), &r(1000, 100, 0)), None);
        // Waited throughout: wants a CPU.
        assert_eq!(demand(&r(0, 0, 0), &r(1000, 0, 1000)), Some(1.0));
    }

    #[test]
    fn the_tracker_needs_two_readings_and_forgets_the_gone() {
        let mut t = DemandTracker::default();
        let table = |run: u64| move |pid: i32| (pid != 3).then_some((run * MS, 0));
        assert!(t.update_with([1, 2, 3], 0, table(0)).is_empty());
        let d = t.update_with([1, 2, 3], 1000 * MS, table(250));
        assert_eq!(d.len(), 2);
        assert!((d[&1] - 0.25).abs() < 1e-9);
        // Pid 2 is not a candidate this round: forgotten, no figure next.
        t.update_with([1], 2000 * MS, table(500));
        assert!(
            !t.update_with([1, 2], 3000 * MS, table(750))
                .contains_key(&2)
        );
    }

    #[test]
    fn schedstat_lines_parse() {
        assert_eq!(parse_schedstat("123 456 7\n"), Some((123, 456)));
        assert_eq!(parse_schedstat("x"), None);
    }
}
