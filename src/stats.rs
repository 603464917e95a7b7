//! Counters read from the BPF side and the figures derived from them.
//!
//! BPF keeps per-CPU, per-domain counters that only grow (see
//! `enum dom_stat_idx` in bpf/intf.h) and per-CPU shares of each domain's
//! load average (`struct dom_load`). A [`Sample`] is one reading of both
//! with its time; the difference of two samples gives rates and
//! utilisation, the load averages are read as they are. The JSON lines
//! written by `--stats-json` are built here, so the harnesses and the VM
//! tests read exactly what the daemon saw.

use std::time::Instant;

use serde::Serialize;

use crate::bpf_intf;
use crate::domains::Domains;
use crate::tuner::DomReading;

pub const NR_DSTATS: usize = bpf_intf::dom_stat_idx_NR_DSTATS as usize;
const WEIGHT_NICE0: f64 = bpf_intf::consts_WEIGHT_NICE0 as f64;
const DCYCLE_ONE: f64 = bpf_intf::consts_DCYCLE_ONE as f64;

pub type DomCounters = [u64; NR_DSTATS];

/// Names of the counters in `dom_stat_idx` order, as they appear in JSON.
pub const DSTAT_NAMES: [&str; NR_DSTATS] = [
    "enqueued",
    "dispatched",
    "kept",
    "direct",
    "pinned",
    "steal_in",
    "steal_out",
    "steal_xnode",
    "kicks",
    "kick_greedy",
    "greedy_in",
    "preempt",
    "migrated_in",
    "migrated_out",
    "run_ns",
    "dl_clamped",
];

#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub doms: Vec<DomCounters>,
    /// Each domain's load averages at `at`, by domain id.
    pub loads: Vec<DomLoad>,
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

/// Sum the per-CPU shares of one domain's `struct dom_load` (as the kernel
/// returns a PERCPU_ARRAY value), each decayed from its own update time to
/// `now_ns`: v(now) = runnable + (avg - runnable) * 2^(-dt / half-life).
pub fn sum_dom_load(values: &[Vec<u8>], now_ns: u64, half_life_ns: u64) -> DomLoad {
    let mut out = DomLoad::default();
    for v in values {
        if v.len() < std::mem::size_of::<bpf_intf::dom_load>() {
            continue;
        }
        // SAFETY: the buffer holds at least one dom_load (checked above),
        // a plain C struct of integers for which any bit pattern is valid;
        // read_unaligned copes with the Vec<u8>'s alignment.
        let l: bpf_intf::dom_load = unsafe { std::ptr::read_unaligned(v.as_ptr().cast()) };
        if l.at == 0 {
            continue;
        }
        let dt = now_ns.saturating_sub(l.at) as f64;
        let keep = 0.5f64.powf(dt / half_life_ns.max(1) as f64);
        let at_now = |r: i64, a: i64| r as f64 + (a as f64 - r as f64) * keep;
        out.dcycle += at_now(l.runnable, l.avg);
        out.load += at_now(l.runnable_w, l.avg_w);
        out.runnable += l.runnable as f64;
    }
    // A share can be negative (a task that became runnable on one CPU and
    // left on another); the sum cannot, but for rounding.
    DomLoad {
        dcycle: (out.dcycle / DCYCLE_ONE).max(0.0),
        load: (out.load / DCYCLE_ONE / WEIGHT_NICE0).max(0.0),
        runnable: (out.runnable / DCYCLE_ONE).max(0.0),
    }
}

/// What one domain did between two samples.
#[derive(Debug, Clone, Serialize)]
pub struct DomReport {
    pub id: usize,
    pub node: usize,
    pub cpus: Vec<usize>,
    /// Average runnable weight (load half-life), in nice-0 tasks.
    pub load: f64,
    /// Average number of runnable tasks (load half-life; weight-blind).
    pub dcycle: f64,
    /// Share of the domain's CPU time its tasks spent running (0..1).
    pub util: f64,
    /// Counters since the scheduler started, by name.
    #[serde(flatten)]
    pub totals: serde_json::Map<String, serde_json::Value>,
}

/// Sum the per-CPU copies of one domain's counters, laid out as the
/// kernel returns a PERCPU_ARRAY value: one `struct dom_stats` per CPU.
pub fn sum_percpu(values: &[Vec<u8>]) -> DomCounters {
    let mut out = [0u64; NR_DSTATS];
    for v in values {
        for (i, chunk) in v.chunks_exact(8).take(NR_DSTATS).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            out[i] = out[i].wrapping_add(u64::from_ne_bytes(b));
        }
    }
    out
}

/// Per-domain figures between `prev` and `cur`.
pub fn domain_reports(domains: &Domains, prev: &Sample, cur: &Sample) -> Vec<DomReport> {
    let dt_ns = cur.at.duration_since(prev.at).as_nanos().max(1) as f64;
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
            let totals = DSTAT_NAMES
                .iter()
                .zip(c.iter())
                .map(|(n, v)| (n.to_string(), serde_json::Value::from(*v)))
                .collect();
            DomReport {
                id: d.id,
                node: d.node,
                cpus: d.cpus.clone(),
                load: l.load,
                dcycle: l.dcycle,
                util,
                totals,
            }
        })
        .collect()
}

/// What the tuner needs of each domain between two samples: tasks runnable
/// now and the share of its CPUs' time spent running them.
pub fn tuner_readings(domains: &Domains, prev: &Sample, cur: &Sample) -> Vec<DomReading> {
    let dt_ns = cur.at.duration_since(prev.at).as_nanos().max(1) as f64;
    let run = bpf_intf::dom_stat_idx_DSTAT_RUN_NS as usize;
    domains
        .domains
        .iter()
        .map(|d| {
            let ran = |s: &Sample| s.doms.get(d.id).map_or(0, |c| c[run]);
            let nr_cpus = d.cpus.len().max(1);
            DomReading {
                nr_cpus,
                runnable: cur.loads.get(d.id).map_or(0.0, |l| l.runnable),
                util: (ran(cur).saturating_sub(ran(prev)) as f64 / dt_ns / nr_cpus as f64)
                    .clamp(0.0, 1.0),
            }
        })
        .collect()
}

/// One line of `--stats-json`.
#[derive(Debug, Serialize)]
pub struct StatsLine<'a> {
    /// Seconds since the scheduler started.
    pub t: f64,
    pub slice_us: u64,
    pub domains: &'a [DomReport],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balancer: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuner: Option<&'a serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_intf() {
        assert_eq!(DSTAT_NAMES.len(), NR_DSTATS);
        assert_eq!(
            DSTAT_NAMES[bpf_intf::dom_stat_idx_DSTAT_DISPATCHED as usize],
            "dispatched"
        );
        assert_eq!(
            DSTAT_NAMES[bpf_intf::dom_stat_idx_DSTAT_DL_CLAMPED as usize],
            "dl_clamped"
        );
    }

    fn dom_load_bytes(runnable: i64, avg: i64, at: u64) -> Vec<u8> {
        let l = bpf_intf::dom_load {
            runnable,
            runnable_w: runnable * 100,
            avg,
            avg_w: avg * 100,
            at,
        };
        // SAFETY: dom_load is plain integers; viewing it as bytes is sound.
        unsafe {
            std::slice::from_raw_parts(
                (&l as *const bpf_intf::dom_load).cast::<u8>(),
                std::mem::size_of_val(&l),
            )
        }
        .to_vec()
    }

    #[test]
    fn dom_load_shares_decay_and_add_up() {
        let one = DCYCLE_ONE as i64;
        // CPU 0 saw two tasks become runnable (average still 0 at t=1000);
        // CPU 1 saw one of them leave again, with an average of -0.5.
        let cpus = [
            dom_load_bytes(2 * one, 0, 1000),
            dom_load_bytes(-one, -one / 2, 1000),
            dom_load_bytes(0, 0, 0), // never touched
        ];
        // One half-life later: CPU 0 at 2 - 2/2 = 1, CPU 1 at -1 + 0.5/2.
        let l = sum_dom_load(&cpus, 2000, 1000);
        assert!((l.dcycle - 0.25).abs() < 1e-9, "{l:?}");
        assert!((l.load - 0.25).abs() < 1e-9, "{l:?}");
        assert!((l.runnable - 1.0).abs() < 1e-9);
        // Long after, the average is what is runnable.
        let l = sum_dom_load(&cpus, 1000 + 64 * 1000, 1000);
        assert!((l.dcycle - 1.0).abs() < 1e-9);
    }

    #[test]
    fn percpu_sum() {
        let mut a = vec![0u8; NR_DSTATS * 8];
        a[0..8].copy_from_slice(&3u64.to_ne_bytes());
        let mut b = vec![0u8; NR_DSTATS * 8];
        b[0..8].copy_from_slice(&4u64.to_ne_bytes());
        b[8..16].copy_from_slice(&1u64.to_ne_bytes());
        let s = sum_percpu(&[a, b]);
        assert_eq!(s[0], 7);
        assert_eq!(s[1], 1);
    }
}
