//! The tuner: every `--tune-interval` (100 ms by default) it looks at how
//! busy each domain is and sets the time slice and the "lightly used"
//! marks that the BPF side reads. Pure policy, like the balancer: the
//! daemon feeds it readings and writes its answer into BPF memory.
//!
//! Slice. A slice only matters when tasks wait: a CPU hog runs until its
//! slice ends, and whoever waits behind it waits that long. So the slice
//! follows the number of tasks waiting per CPU, `w` (runnable tasks beyond
//! each domain's CPUs, summed, over all CPUs, smoothed over a few ticks):
//!
//! ```text
//!   slice = clamp(slice_max / (1 + w), slice_min, slice_max)
//! ```
//!
//! Nobody waiting: the longest slice (fewer switches, warm caches, and a
//! game's frame thread is not preempted for nothing). One task waiting per
//! CPU: half of it. Many waiting: down to `slice_min`, so each of them gets
//! a turn soon. It is continuous, so a machine at the edge of overload does
//! not flip between two values.
//!
//! Why the floor is 10 ms by default (`--slice-min-us`), not the 0.5-1 ms of
//! other schedulers: a task whose wakeup latency matters does not wait for
//! the slice. It preempts the CPU hog where it wakes (BPF `should_preempt`),
//! so the slice only sets how often hogs, and tasks that wait anyway, take
//! turns. Shorter slices then buy no latency and cost switches. Measured in
//! the VM (benches/vm/results/2026-11-24-preemption): cyclictest's p50 and p99 under
//! hogs were the same with a 0.5 ms floor; the whole suite made 0.62x
//! EEVDF's context switches with 10 ms against 0.74x with 0.5 ms. hackbench
//! was faster with 10 ms in 3 of 5 rounds over two boots (geometric mean
//! 1.40x EEVDF against 1.64x), but it varied between rounds from 0.8x to 3x,
//! more than the difference.
//!
//! Marks. A domain whose CPUs were busy less than `direct_under` percent of
//! the last tick may take waking tasks of full domains directly on its idle
//! CPUs; below `kick_under`, its idle CPUs are kicked to steal work queued
//! elsewhere. A busy domain's idle moments are left to its own tasks, which
//! are about to wake again.

use crate::bpf_intf;

/// The tuner's settings (command-line options).
#[derive(Debug, Clone, PartialEq)]
pub struct TunerConfig {
    pub slice_min_us: u64,
    pub slice_max_us: u64,
    /// Fixed slice: when set, the slice is never changed.
    pub fixed_slice_us: Option<u64>,
    /// Utilisation (0..1) under which a domain takes direct greedy wakeups.
    pub direct_under: f64,
    /// Utilisation (0..1) under which a domain's idle CPUs are kicked.
    pub kick_under: f64,
}

impl Default for TunerConfig {
    fn default() -> Self {
        TunerConfig {
            slice_min_us: bpf_intf::consts_SLICE_MIN_US_DFL as u64,
            slice_max_us: bpf_intf::consts_SLICE_MAX_US_DFL as u64,
            fixed_slice_us: None,
            direct_under: bpf_intf::consts_DIRECT_GREEDY_UNDER_DFL as f64 / 100.0,
            kick_under: bpf_intf::consts_KICK_GREEDY_UNDER_DFL as f64 / 100.0,
        }
    }
}

/// One domain as the tuner sees it over the last tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DomReading {
    pub nr_cpus: usize,
    /// Tasks runnable (running or waiting) at the end of the tick.
    pub runnable: f64,
    /// Share of its CPUs' time spent running tasks during the tick (0..1).
    pub util: f64,
    /// Length of the tick, in seconds.
    pub secs: f64,
}

/// What the tuner asks the BPF side to use until the next tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    pub slice_us: u64,
    /// Tasks waiting per CPU, smoothed: what the slice was chosen from.
    pub waiting_per_cpu: f64,
    /// By domain id: lightly used enough for direct greedy placement.
    pub direct: Vec<bool>,
    /// By domain id: lightly used enough to have idle CPUs kicked.
    pub kick: Vec<bool>,
    /// By domain id, since the tuner started: CPU-seconds of idle it
    /// measured in the ticks where it marked the domain (either mark).
    /// Each mark claims idle CPUs; the kernel's idle time can check it.
    pub marked_idle_s: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct Tuner {
    cfg: TunerConfig,
    /// Smoothed tasks waiting per CPU; None before the first tick.
    waiting: Option<f64>,
    /// See [`Tuning::marked_idle_s`].
    marked_idle_s: Vec<f64>,
}

/// Weight of the newest reading in the smoothed waiting count: about three
/// ticks (300 ms at the default interval) to follow a change.
const SMOOTHING: f64 = 0.5;

impl Tuner {
    pub fn new(cfg: TunerConfig) -> Tuner {
        Tuner {
            cfg,
            waiting: None,
            marked_idle_s: Vec::new(),
        }
    }

    pub fn config(&self) -> &TunerConfig {
        &self.cfg
    }

    /// The slice for `waiting` tasks per CPU.
    pub fn slice_for(&self, waiting: f64) -> u64 {
        if let Some(fixed) = self.cfg.fixed_slice_us {
            return fixed;
        }
        let (lo, hi) = (self.cfg.slice_min_us, self.cfg.slice_max_us);
        let s = hi as f64 / (1.0 + waiting.max(0.0));
        (s.round() as u64).clamp(lo, hi)
    }

    /// One tick: readings by domain id in, the new settings out.
    pub fn step(&mut self, doms: &[DomReading]) -> Tuning {
        let cpus: usize = doms.iter().map(|d| d.nr_cpus).sum();
        let excess: f64 = doms
            .iter()
            .map(|d| (d.runnable - d.nr_cpus as f64).max(0.0))
            .sum();
        let now = excess / cpus.max(1) as f64;
        // Flushed: once nobody waits it would otherwise halve forever.
        let waiting = crate::stats::flush_negligible(match self.waiting {
            Some(w) => w + SMOOTHING * (now - w),
            None => now,
        });
        self.waiting = Some(waiting);
        let direct: Vec<bool> = doms
            .iter()
            .map(|d| d.util < self.cfg.direct_under)
            .collect();
        let kick: Vec<bool> = doms.iter().map(|d| d.util < self.cfg.kick_under).collect();
        self.marked_idle_s.resize(doms.len(), 0.0);
        for (i, d) in doms.iter().enumerate() {
            if direct[i] || kick[i] {
                self.marked_idle_s[i] += (1.0 - d.util).max(0.0) * d.nr_cpus as f64 * d.secs;
            }
        }
        Tuning {
            slice_us: self.slice_for(waiting),
            waiting_per_cpu: waiting,
            direct,
            kick,
            marked_idle_s: self.marked_idle_s.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(nr_cpus: usize, runnable: f64, util: f64) -> DomReading {
        DomReading {
            nr_cpus,
            runnable,
            util,
            secs: 0.1,
        }
    }

    fn cfg() -> TunerConfig {
        TunerConfig {
            slice_min_us: 500,
            slice_max_us: 20_000,
            fixed_slice_us: None,
            direct_under: 0.9,
            kick_under: 0.8,
        }
    }

    #[test]
    fn idle_machine_gets_the_longest_slice() {
        let mut t = Tuner::new(cfg());
        let out = t.step(&[dom(4, 1.0, 0.2), dom(4, 0.0, 0.0)]);
        assert_eq!(out.slice_us, 20_000);
        assert_eq!(out.waiting_per_cpu, 0.0);
    }

    #[test]
    fn slice_shrinks_continuously_with_waiting_tasks() {
        let t = Tuner::new(cfg());
        let mut last = u64::MAX;
        for i in 0..=64 {
            let s = t.slice_for(i as f64 * 0.25);
            assert!(s <= last, "slice grew from {last} to {s} at {i}");
            assert!((500..=20_000).contains(&s));
            last = s;
        }
        assert_eq!(t.slice_for(1.0), 10_000);
        assert_eq!(t.slice_for(3.0), 5_000);
        assert_eq!(t.slice_for(1000.0), 500);
        // In between the two ends, many distinct values: not a switch.
        let distinct: std::collections::BTreeSet<u64> =
            (0..40).map(|i| t.slice_for(i as f64 * 0.1)).collect();
        assert!(distinct.len() > 30);
    }

    #[test]
    fn waiting_counts_only_tasks_beyond_each_domains_cpus() {
        let mut t = Tuner::new(cfg());
        // Domain 0 has 8 runnable on 4 CPUs (4 waiting); domain 1 has idle
        // CPUs, which do not cancel domain 0's queue.
        let out = t.step(&[dom(4, 8.0, 1.0), dom(4, 1.0, 0.25)]);
        assert!((out.waiting_per_cpu - 0.5).abs() < 1e-9);
        assert_eq!(out.slice_us, 13_333);
    }

    #[test]
    fn overload_is_smoothed_over_ticks() {
        let mut t = Tuner::new(cfg());
        t.step(&[dom(2, 2.0, 1.0)]);
        let first = t.step(&[dom(2, 10.0, 1.0)]).waiting_per_cpu;
        let second = t.step(&[dom(2, 10.0, 1.0)]).waiting_per_cpu;
        assert!(first > 0.0 && first < 4.0, "{first}");
        assert!(second > first && second < 4.0, "{second}");
        let mut w = second;
        for _ in 0..30 {
            w = t.step(&[dom(2, 10.0, 1.0)]).waiting_per_cpu;
        }
        assert!((w - 4.0).abs() < 1e-3, "converges to the reading: {w}");
    }

    #[test]
    fn waiting_decays_to_exactly_zero_when_the_queue_empties() {
        let mut t = Tuner::new(cfg());
        t.step(&[dom(2, 10.0, 1.0)]);
        let mut out = t.step(&[dom(2, 1.0, 0.5)]);
        assert!(out.waiting_per_cpu > 0.0);
        // 200 idle ticks (20 s at the default interval): 4 * 2^-200 unflushed.
        for _ in 0..200 {
            out = t.step(&[dom(2, 1.0, 0.5)]);
        }
        assert_eq!(out.waiting_per_cpu, 0.0);
        assert_eq!(out.slice_us, 20_000);
    }

    #[test]
    fn marked_idle_counts_only_marked_ticks() {
        let mut t = Tuner::new(cfg());
        // Busy: no mark, nothing claimed.
        let out = t.step(&[dom(2, 2.0, 0.95), dom(4, 1.0, 0.25)]);
        assert_eq!(out.direct, vec![false, true]);
        assert_eq!(out.marked_idle_s[0], 0.0);
        // 0.75 of 4 CPUs for 0.1 s.
        assert!((out.marked_idle_s[1] - 0.3).abs() < 1e-9);
        // Marked by the direct threshold only (0.85 is above kick's 0.8).
        let out = t.step(&[dom(2, 2.0, 0.85), dom(4, 1.0, 1.0)]);
        assert_eq!(out.kick, vec![false, false]);
        assert!((out.marked_idle_s[0] - 0.03).abs() < 1e-9);
        assert!((out.marked_idle_s[1] - 0.3).abs() < 1e-9, "cumulative");
    }

    #[test]
    fn fixed_slice_never_moves() {
        let mut t = Tuner::new(TunerConfig {
            fixed_slice_us: Some(3000),
            ..cfg()
        });
        assert_eq!(t.step(&[dom(2, 50.0, 1.0)]).slice_us, 3000);
        assert_eq!(t.step(&[dom(2, 0.0, 0.0)]).slice_us, 3000);
    }

    #[test]
    fn lightly_used_domains_are_marked_by_threshold() {
        let mut t = Tuner::new(cfg());
        let out = t.step(&[dom(2, 2.0, 0.95), dom(2, 1.0, 0.85), dom(2, 0.0, 0.1)]);
        assert_eq!(out.direct, vec![false, true, true]);
        assert_eq!(out.kick, vec![false, false, true]);
    }

    #[test]
    fn no_domains_is_harmless() {
        let mut t = Tuner::new(cfg());
        let out = t.step(&[]);
        assert_eq!(out.slice_us, 20_000);
        assert!(out.direct.is_empty());
    }
}
