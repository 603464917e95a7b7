//! Counters read from the BPF side, the figures derived from them, and the
//! stats objects that leave the process.
//!
//! BPF keeps, per CPU and per domain (`struct pcpu_dom`, see bpf/intf.h),
//! counters that only grow (`enum dom_stat_idx`) and that CPU's share of
//! the domain's load average, in a map the daemon reads through mmap; plus
//! each CPU's start of an uncharged run (`cpu_busy_at`) and a gauge of each
//! domain's queue length. A [`Sample`] is one reading of all of it with its
//! time; the difference of two samples gives rates and utilisation
//! ([`DomReport`]).
//! [`SchedStats`] is what the outside world sees: the same object is
//! served over the scx_stats socket (src/monitor.rs), printed as a table by
//! `--stats`/`--monitor`, written as a line by `--stats-json`, and described
//! field by field by `--help-stats` (from the `desc` attributes below), so
//! harnesses, tests and operators all read exactly what the daemon saw.

use scx_stats::prelude::*;
use scx_stats_derive::{Stats, stat_doc};
use serde::{Deserialize, Serialize};

use crate::arith;
use crate::bpf_intf;
use crate::domains::Domains;
use crate::tuner::DomReading;

pub const NR_DSTATS: usize = bpf_intf::dom_stat_idx_NR_DSTATS as usize;
const WEIGHT_NICE0: f64 = bpf_intf::consts_WEIGHT_NICE0 as f64;
const DCYCLE_ONE: f64 = bpf_intf::consts_DCYCLE_ONE as f64;
const RUN_NS: usize = bpf_intf::dom_stat_idx_DSTAT_RUN_NS as usize;

pub type DomCounters = [u64; NR_DSTATS];

/// Averages smaller than this (in tasks, or nice-0 tasks of load) are
/// reported as 0. A decaying average only halves every half-life and never
/// reaches 0 by itself: an idle domain's load, or the tuner's smoothed
/// waiting count, went on to print as 2.0e-45 (and denormal floats are slow
/// to compute with). A thousandth of a task is below anything the balancer
/// or the tuner acts on, and below the table's two decimals.
pub const NEGLIGIBLE: f64 = 1e-3;

/// `x`, or 0 when it is within [`NEGLIGIBLE`] of 0.
pub fn flush_negligible(x: f64) -> f64 {
    if x.abs() < NEGLIGIBLE { 0.0 } else { x }
}

#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was taken (CLOCK_MONOTONIC ns): the moment the runs in
    /// progress were counted up to, so intervals match the counters.
    pub at_ns: u64,
    /// Counters by domain id; DSTAT_RUN_NS includes the runs in progress.
    pub doms: Vec<DomCounters>,
    /// Each domain's load averages at `at`, by domain id.
    pub loads: Vec<DomLoad>,
    /// Tasks waiting in each domain's queue, by id.
    pub queued: Vec<u32>,
}

/// A domain's load averages, summed over the CPUs' shares.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DomLoad {
    /// Average number of runnable tasks (weight-blind).
    pub dcycle: f64,
    /// Average runnable weight, in nice-0 tasks.
    pub load: f64,
    /// Tasks runnable at the moment of reading.
    pub runnable: f64,
}

/// What BPF's per-CPU slots say, summed by domain, as of `now_ns`
/// (CLOCK_MONOTONIC): `slots[cpu * nr_doms + dom]` as laid out in the
/// `pcpu_doms` map; `busy_at[cpu]` when `cpu` started a run not yet
/// charged (0: idle) and `cpu_dom[cpu]` its domain, so that a task that
/// has kept its CPU since counts as busy up to now; loads decayed from
/// each slot's update time to `now_ns` with BPF's own decay.
pub fn sum_slots(
    slots: &[bpf_intf::pcpu_dom],
    nr_doms: usize,
    busy_at: &[u64],
    cpu_dom: impl Fn(usize) -> Option<usize>,
    now_ns: u64,
    half_life_ns: u64,
) -> (Vec<DomCounters>, Vec<DomLoad>) {
    let mut counters = vec![[0u64; NR_DSTATS]; nr_doms];
    let mut sums = vec![(0i64, 0i64, 0i64); nr_doms];
    for (i, s) in slots.iter().enumerate() {
        let dom = i % nr_doms.max(1);
        if let Some(c) = counters.get_mut(dom) {
            for (acc, v) in c.iter_mut().zip(s.cnt.iter()) {
                *acc = acc.wrapping_add(*v);
            }
        }
        let l = &s.load;
        if l.at == 0 {
            continue;
        }
        let dt = arith::elapsed(now_ns, l.at);
        if let Some(acc) = sums.get_mut(dom) {
            acc.0 += arith::decay_towards(l.avg, l.runnable, dt, half_life_ns);
            acc.1 += arith::decay_towards(l.avg_w, l.runnable_w, dt, half_life_ns);
            acc.2 += l.runnable;
        }
    }
    for (cpu, &at) in busy_at.iter().enumerate() {
        if at == 0 {
            continue;
        }
        if let Some(c) = cpu_dom(cpu).and_then(|d| counters.get_mut(d)) {
            c[RUN_NS] = c[RUN_NS].wrapping_add(arith::elapsed(now_ns, at));
        }
    }
    // A share can be negative (a task that became runnable on one CPU and
    // left on another); the sum cannot, but for rounding.
    let loads = sums
        .iter()
        .map(|&(dcycle, load, runnable)| DomLoad {
            dcycle: flush_negligible((dcycle as f64 / DCYCLE_ONE).max(0.0)),
            load: flush_negligible((load as f64 / DCYCLE_ONE / WEIGHT_NICE0).max(0.0)),
            runnable: (runnable as f64 / DCYCLE_ONE).max(0.0),
        })
        .collect();
    (counters, loads)
}

/// What one domain did between two samples.
#[derive(Debug, Clone, Default)]
pub struct DomReport {
    pub id: usize,
    pub node: usize,
    pub cpus: Vec<usize>,
    /// Average runnable weight (load half-life), in nice-0 tasks.
    pub load: f64,
    /// Average number of runnable tasks (load half-life; weight-blind).
    pub dcycle: f64,
    /// Tasks runnable at the later sample.
    pub runnable: f64,
    /// Tasks waiting in the domain's queue at the later sample.
    pub queued: u32,
    /// Share of the domain's CPU time its tasks spent running (0..1).
    pub util: f64,
    /// Counters since the BPF program was loaded (at the later sample).
    pub totals: DomCounters,
}

impl DomReport {
    pub fn total(&self, idx: u32) -> u64 {
        self.totals.get(idx as usize).copied().unwrap_or(0)
    }
}

/// Per-domain figures between `prev` and `cur`.
pub fn domain_reports(domains: &Domains, prev: &Sample, cur: &Sample) -> Vec<DomReport> {
    let dt_ns = cur.at_ns.saturating_sub(prev.at_ns).max(1) as f64;
    domains
        .domains
        .iter()
        .map(|d| {
            let zero = [0u64; NR_DSTATS];
            let c = cur.doms.get(d.id).unwrap_or(&zero);
            let p = prev.doms.get(d.id).unwrap_or(&zero);
            let delta = |i: u32| c[i as usize].saturating_sub(p[i as usize]) as f64;
            let l = cur.loads.get(d.id).copied().unwrap_or_default();
            let util =
                delta(bpf_intf::dom_stat_idx_DSTAT_RUN_NS) / dt_ns / d.cpus.len().max(1) as f64;
            DomReport {
                id: d.id,
                node: d.node,
                cpus: d.cpus.clone(),
                load: l.load,
                dcycle: l.dcycle,
                runnable: l.runnable,
                queued: cur.queued.get(d.id).copied().unwrap_or(0),
                util,
                totals: *c,
            }
        })
        .collect()
}

/// What the tuner needs of each domain between two samples: tasks runnable
/// now and the share of its CPUs' time spent running them.
pub fn tuner_readings(domains: &Domains, prev: &Sample, cur: &Sample) -> Vec<DomReading> {
    let dt_ns = cur.at_ns.saturating_sub(prev.at_ns).max(1) as f64;
    let run = bpf_intf::dom_stat_idx_DSTAT_RUN_NS as usize;
    domains
        .domains
        .iter()
        .map(|d| {
            let ran = |s: &Sample| s.doms.get(d.id).map_or(0, |c| c[run]);
            let nr_cpus = d.cpus.len().max(1);
            DomReading {
                secs: dt_ns / 1e9,
                nr_cpus,
                runnable: cur.loads.get(d.id).map_or(0.0, |l| l.runnable),
                util: (ran(cur).saturating_sub(ran(prev)) as f64 / dt_ns / nr_cpus as f64)
                    .clamp(0.0, 1.0),
            }
        })
        .collect()
}

/// One domain, as `--stats`, `--monitor`, `--stats-json` and the stats
/// socket show it. Counters count from the last load of the BPF program
/// (a CPU hotplug restart starts them again); rates are the reader's
/// business: take the difference of two readings.
#[stat_doc]
#[derive(Clone, Debug, Default, Serialize, Deserialize, Stats)]
#[stat(_om_prefix = "d_", _om_label = "domain")]
pub struct DomainStats {
    #[stat(desc = "domain id (numbered by NUMA node, then smallest CPU)")]
    pub id: u64,
    #[stat(desc = "NUMA node of the domain (kernel id)")]
    pub node: u64,
    #[stat(desc = "the domain's CPUs", _om_skip)]
    pub cpus: Vec<u64>,
    #[stat(desc = "load: average runnable weight over the load half-life, in nice-0 tasks")]
    pub load: f64,
    #[stat(desc = "average number of runnable tasks over the load half-life, weight-blind")]
    pub dcycle: f64,
    #[stat(desc = "tasks runnable (running or waiting) at the time of reading")]
    pub runnable: f64,
    #[stat(desc = "tasks waiting in the domain's queue, as of its last enqueue or dispatch")]
    pub queued: u64,
    #[stat(
        desc = "share of the domain's CPU time spent running tasks, 0..1, over the window \
                   (--stats-json: the balancing interval; socket: the last tuner tick)"
    )]
    pub util: f64,
    #[stat(desc = "tasks queued on the domain's queue")]
    pub enqueued: u64,
    #[stat(desc = "tasks its own CPUs took from the domain's queue")]
    pub dispatched: u64,
    #[stat(
        desc = "slices renewed for a task with nothing else queued for its CPU (at home, or a \
                   visitor whose home had no idle CPU)"
    )]
    pub kept: u64,
    #[stat(desc = "wakeups placed straight on an idle CPU of the domain")]
    pub direct: u64,
    #[stat(desc = "tasks allowed on one CPU only, sent straight to it")]
    pub pinned: u64,
    #[stat(desc = "tasks the domain's CPUs stole from other domains")]
    pub steal_in: u64,
    #[stat(desc = "tasks other domains' CPUs stole from this one")]
    pub steal_out: u64,
    #[stat(desc = "steals (counted in steal_in) that crossed a NUMA node")]
    pub steal_xnode: u64,
    #[stat(desc = "idle CPUs of the domain woken to pick up work")]
    pub kicks: u64,
    #[stat(desc = "... of those, woken for work queued in another domain (kick greedy)")]
    pub kick_greedy: u64,
    #[stat(desc = "wakeups of other domains' tasks run on an idle CPU here (direct greedy)")]
    pub greedy_in: u64,
    #[stat(desc = "running tasks cut short for a waking task with a much earlier deadline")]
    pub preempt: u64,
    #[stat(desc = "balancer moves that took effect, arriving in the domain")]
    pub migrated_in: u64,
    #[stat(desc = "balancer moves that took effect, leaving the domain")]
    pub migrated_out: u64,
    #[stat(
        desc = "CPU-seconds of idle the tuner measured in the ticks where it marked the domain \
                   lightly used (cumulative): each mark claims idle CPUs, which the kernel's \
                   idle time can confirm"
    )]
    pub marked_idle_s: f64,
    #[stat(desc = "nanoseconds the domain's CPUs spent running tasks")]
    pub run_ns: u64,
    #[stat(desc = "deadlines clamped (a run length past the cap, or a deadline in the past)")]
    pub dl_clamped: u64,
    #[stat(desc = "WAKE_SYNC wakeups aimed at the waker's CPU (--sync-wakeups)")]
    pub sync: u64,
    #[stat(
        desc = "visitors sent home at the end of their slice to an idle CPU there, rather \
                   than kept where they ran"
    )]
    pub went_home: u64,
}

impl DomainStats {
    pub fn from_report(r: &DomReport) -> DomainStats {
        use bpf_intf::*;
        DomainStats {
            id: r.id as u64,
            node: r.node as u64,
            cpus: r.cpus.iter().map(|&c| c as u64).collect(),
            load: r.load,
            dcycle: r.dcycle,
            runnable: r.runnable,
            queued: u64::from(r.queued),
            util: r.util,
            // The tuner's, filled in by SchedStats::build.
            marked_idle_s: 0.0,
            enqueued: r.total(dom_stat_idx_DSTAT_ENQUEUED),
            dispatched: r.total(dom_stat_idx_DSTAT_DISPATCHED),
            kept: r.total(dom_stat_idx_DSTAT_KEPT),
            direct: r.total(dom_stat_idx_DSTAT_DIRECT),
            pinned: r.total(dom_stat_idx_DSTAT_PINNED),
            steal_in: r.total(dom_stat_idx_DSTAT_STEAL_IN),
            steal_out: r.total(dom_stat_idx_DSTAT_STEAL_OUT),
            steal_xnode: r.total(dom_stat_idx_DSTAT_STEAL_XNODE),
            kicks: r.total(dom_stat_idx_DSTAT_KICKS),
            kick_greedy: r.total(dom_stat_idx_DSTAT_KICK_GREEDY),
            greedy_in: r.total(dom_stat_idx_DSTAT_GREEDY_IN),
            preempt: r.total(dom_stat_idx_DSTAT_PREEMPT),
            migrated_in: r.total(dom_stat_idx_DSTAT_MIGRATED_IN),
            migrated_out: r.total(dom_stat_idx_DSTAT_MIGRATED_OUT),
            run_ns: r.total(dom_stat_idx_DSTAT_RUN_NS),
            dl_clamped: r.total(dom_stat_idx_DSTAT_DL_CLAMPED),
            sync: r.total(dom_stat_idx_DSTAT_SYNC),
            went_home: r.total(dom_stat_idx_DSTAT_WENT_HOME),
        }
    }
}

/// The whole scheduler: what `--stats-json` writes once per interval and
/// the stats socket answers with.
#[stat_doc]
#[derive(Clone, Debug, Default, Serialize, Deserialize, Stats)]
#[stat(top)]
pub struct SchedStats {
    #[stat(desc = "seconds since the scheduler first attached")]
    pub t: f64,
    #[stat(desc = "times the kernel asked for a restart (CPU hotplug) and it reloaded")]
    pub restarts: u64,
    #[stat(desc = "current time slice in microseconds")]
    pub slice_us: u64,
    #[stat(desc = "tasks waiting per CPU at the last tuner tick (what sets the slice)")]
    pub waiting_per_cpu: f64,
    #[stat(desc = "domains currently open to direct greedy placement", _om_skip)]
    pub greedy_direct_doms: Vec<u64>,
    #[stat(
        desc = "domains whose idle CPUs are currently kicked for others' work",
        _om_skip
    )]
    pub greedy_kick_doms: Vec<u64>,
    #[stat(desc = "balancer passes since the scheduler started")]
    pub passes: u64,
    #[stat(desc = "task moves the balancer planned")]
    pub moves_planned: u64,
    #[stat(desc = "task moves that took effect (migrated_in summed over domains)")]
    pub moves_applied: u64,
    #[stat(desc = "microseconds the last balancer pass took (snapshot to plan)")]
    pub pass_us: f64,
    #[stat(desc = "1 if the last pass balanced weighted load, 0 if runnable counts")]
    pub weighted: u64,
    #[stat(
        desc = "largest weight a task counts with in the domain loads, nice 0 = 100 \
                (set by the last pass: the infeasible-weights cap)"
    )]
    pub weight_cap: u64,
    #[stat(desc = "max - min load per CPU between domains before the last plan")]
    pub spread_before: f64,
    #[stat(desc = "... and as the plan would leave it")]
    pub spread_after: f64,
    #[stat(desc = "wakeups run on an idle CPU of another domain (greedy_in summed)")]
    pub direct_greedy: u64,
    #[stat(desc = "idle CPUs kicked for another domain's work (kick_greedy summed)")]
    pub kick_greedy: u64,
    #[stat(desc = "deadlines clamped (dl_clamped summed)")]
    pub dl_clamped: u64,
    #[stat(desc = "wakeup preemptions (preempt summed)")]
    pub preempt: u64,
    #[stat(desc = "per-domain figures, by domain id")]
    pub domains: Vec<DomainStats>,
}

/// The balancer's side of [`SchedStats`], kept by the daemon's loop.
#[derive(Debug, Clone, Default)]
pub struct BalancerTotals {
    pub passes: u64,
    pub planned: u64,
    pub pass_us: f64,
    pub weighted: bool,
    pub weight_cap: u32,
    pub spread_before: f64,
    pub spread_after: f64,
}

impl SchedStats {
    pub fn build(
        t: f64,
        restarts: u64,
        slice_us: u64,
        reports: &[DomReport],
        bal: &BalancerTotals,
        tuning: Option<&crate::tuner::Tuning>,
    ) -> SchedStats {
        let mut domains: Vec<DomainStats> = reports.iter().map(DomainStats::from_report).collect();
        if let Some(t) = tuning {
            for d in &mut domains {
                d.marked_idle_s = t.marked_idle_s.get(d.id as usize).copied().unwrap_or(0.0);
            }
        }
        let sum = |f: fn(&DomainStats) -> u64| domains.iter().map(f).sum::<u64>();
        let ids = |flags: &[bool]| -> Vec<u64> {
            flags
                .iter()
                .enumerate()
                .filter_map(|(i, f)| f.then_some(i as u64))
                .collect()
        };
        SchedStats {
            t,
            restarts,
            slice_us,
            waiting_per_cpu: tuning.map_or(0.0, |t| t.waiting_per_cpu),
            greedy_direct_doms: tuning.map(|t| ids(&t.direct)).unwrap_or_default(),
            greedy_kick_doms: tuning.map(|t| ids(&t.kick)).unwrap_or_default(),
            passes: bal.passes,
            moves_planned: bal.planned,
            moves_applied: sum(|d| d.migrated_in),
            pass_us: bal.pass_us,
            weighted: u64::from(bal.weighted),
            weight_cap: u64::from(bal.weight_cap),
            spread_before: bal.spread_before,
            spread_after: bal.spread_after,
            direct_greedy: sum(|d| d.greedy_in),
            kick_greedy: sum(|d| d.kick_greedy),
            dl_clamped: sum(|d| d.dl_clamped),
            preempt: sum(|d| d.preempt),
            domains,
        }
    }
}

/// The scx_stats description of [`SchedStats`] (for `--help-stats` and
/// the server), with no reader attached.
pub fn meta_only() -> StatsServerData<(), ()> {
    StatsServerData::new()
        .add_meta(DomainStats::meta())
        .add_meta(SchedStats::meta())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_land_in_their_fields() {
        let mut r = DomReport::default();
        for (i, v) in r.totals.iter_mut().enumerate() {
            *v = 100 + i as u64;
        }
        let d = DomainStats::from_report(&r);
        let at = |i: u32| 100 + u64::from(i);
        assert_eq!(d.dispatched, at(bpf_intf::dom_stat_idx_DSTAT_DISPATCHED));
        assert_eq!(d.steal_out, at(bpf_intf::dom_stat_idx_DSTAT_STEAL_OUT));
        assert_eq!(d.dl_clamped, at(bpf_intf::dom_stat_idx_DSTAT_DL_CLAMPED));
        // Every counter has a field: their sum is the sum of the array.
        let v = serde_json::to_value(&d).unwrap();
        let counted: u64 = v
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| !["id", "node", "queued"].contains(&k.as_str()))
            .filter_map(|(_, v)| v.as_u64())
            .sum();
        assert_eq!(counted, r.totals.iter().sum::<u64>());
    }

    #[test]
    fn meta_describes_every_field() {
        let mut out = Vec::new();
        meta_only().describe_meta(&mut out, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        let v = serde_json::to_value(SchedStats {
            domains: vec![DomainStats::default()],
            ..Default::default()
        })
        .unwrap();
        let mut names: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        names.extend(v["domains"][0].as_object().unwrap().keys().cloned());
        for n in names {
            assert!(
                text.contains(&format!("  {n} ")),
                "{n} undocumented:\n{text}"
            );
        }
    }

    fn zero_slot() -> bpf_intf::pcpu_dom {
        // SAFETY: pcpu_dom is plain integers; all zeroes is a valid value.
        unsafe { std::mem::zeroed() }
    }

    fn slot(runnable: i64, avg: i64, at: u64) -> bpf_intf::pcpu_dom {
        bpf_intf::pcpu_dom {
            load: bpf_intf::dom_load {
                runnable,
                runnable_w: runnable * 100,
                avg,
                avg_w: avg * 100,
                at,
            },
            ..zero_slot()
        }
    }

    #[test]
    fn load_shares_decay_and_add_up() {
        let one = DCYCLE_ONE as i64;
        // One domain, three CPUs. CPU 0 saw two tasks become runnable
        // (average still 0 at t=1000 ms); CPU 1 saw one of them leave
        // again, with an average of -0.5; CPU 2 never saw the domain.
        let ms = 1_000_000;
        let slots = [
            slot(2 * one, 0, 1000 * ms),
            slot(-one, -one / 2, 1000 * ms),
            slot(0, 0, 0),
        ];
        // One half-life later: CPU 0 at 2 - 2/2 = 1, CPU 1 at -1 + 0.5/2.
        let (_, l) = sum_slots(&slots, 1, &[], |_| Some(0), 2000 * ms, 1000 * ms);
        assert!((l[0].dcycle - 0.25).abs() < 1e-3, "{l:?}");
        assert!((l[0].load - 0.25).abs() < 1e-3, "{l:?}");
        assert!((l[0].runnable - 1.0).abs() < 1e-9);
        // Long after, the average is what is runnable.
        let (_, l) = sum_slots(&slots, 1, &[], |_| Some(0), 64_000 * ms, 1000 * ms);
        assert!((l[0].dcycle - 1.0).abs() < 1e-9);
    }

    #[test]
    fn counters_sum_by_domain_and_runs_in_progress_count() {
        // Two CPUs x two domains: slot index cpu * 2 + dom.
        let mut slots = vec![zero_slot(); 4];
        let enq = bpf_intf::dom_stat_idx_DSTAT_ENQUEUED as usize;
        slots[0].cnt[enq] = 3; // cpu 0, dom 0
        slots[2].cnt[enq] = 4; // cpu 1, dom 0
        slots[3].cnt[enq] = 1; // cpu 1, dom 1
        slots[1].cnt[RUN_NS] = 500; // cpu 0 ran dom 1's share earlier
        // CPU 0 (domain 0) has run a task since t=900 without a charge;
        // CPU 1 (domain 1) is idle.
        let (c, _) = sum_slots(&slots, 2, &[900, 0], Some, 1000, 1);
        assert_eq!(c[0][enq], 7);
        assert_eq!(c[1][enq], 1);
        assert_eq!(c[0][RUN_NS], 100);
        assert_eq!(c[1][RUN_NS], 500);
        // A stamp from a clock read later than ours counts 0, not 2^64.
        let (c, _) = sum_slots(&slots, 2, &[2000, 0], Some, 1000, 1);
        assert_eq!(c[0][RUN_NS], 0);
    }

    #[test]
    fn an_idle_domains_load_decays_to_exactly_zero() {
        let one = DCYCLE_ONE as i64;
        // Two tasks' worth of average, nothing runnable any more.
        let slots = [slot(0, 2 * one, 1000)];
        let read = |now| sum_slots(&slots, 1, &[], Some, now, 1000).1[0];
        // 9 half-lives: 2/512 of a task is still shown.
        let l = read(1000 + 9 * 1000);
        assert!(l.dcycle > 0.0 && l.load > 0.0, "{l:?}");
        // 150 half-lives: where 2.0e-45 came from. Zero, not tiny.
        let l = read(1000 + 150 * 1000);
        assert_eq!((l.dcycle, l.load), (0.0, 0.0), "{l:?}");
        // The JSON line says 0.0.
        let json = serde_json::to_string(&DomainStats {
            load: l.load,
            dcycle: l.dcycle,
            ..Default::default()
        })
        .unwrap();
        assert!(json.contains("\"load\":0.0,\"dcycle\":0.0"), "{json}");
    }

    #[test]
    fn negligible_values_flush_to_zero() {
        assert_eq!(flush_negligible(2.0e-45), 0.0);
        assert_eq!(flush_negligible(-1e-7), 0.0);
        assert_eq!(flush_negligible(0.25), 0.25);
        assert_eq!(flush_negligible(NEGLIGIBLE), NEGLIGIBLE);
    }
}
