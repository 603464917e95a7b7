//! Counters read from the BPF side and the figures derived from them.
//!
//! BPF keeps per-CPU, per-domain counters that only grow (see
//! `enum dom_stat_idx` in bpf/intf.h). A [`Sample`] is one reading of all
//! of them with its time; the difference of two samples gives rates, the
//! domains' load (average runnable weight) and utilisation. The JSON lines
//! written by `--stats-json` are built here, so the harnesses and the VM
//! tests read exactly what the daemon saw.

use std::time::Instant;

use serde::Serialize;

use crate::bpf_intf;
use crate::domains::Domains;

pub const NR_DSTATS: usize = bpf_intf::dom_stat_idx_NR_DSTATS as usize;
const WEIGHT_NICE0: f64 = bpf_intf::consts_WEIGHT_NICE0 as f64;

pub type DomCounters = [u64; NR_DSTATS];

/// Names of the counters in `dom_stat_idx` order, as they appear in JSON.
pub const DSTAT_NAMES: [&str; NR_DSTATS] = [
    "enqueued",
    "dispatched",
    "direct",
    "pinned",
    "steal_in",
    "steal_out",
    "steal_xnode",
    "kicks",
    "greedy_in",
    "migrated_in",
    "migrated_out",
    "load_wns",
    "runnable_ns",
    "run_ns",
    "dl_clamped",
];

#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub doms: Vec<DomCounters>,
}

/// What one domain did between two samples.
#[derive(Debug, Clone, Serialize)]
pub struct DomReport {
    pub id: usize,
    pub node: usize,
    pub cpus: Vec<usize>,
    /// Average runnable weight over the interval, in nice-0 tasks.
    pub load: f64,
    /// Average number of runnable tasks over the interval (weight-blind).
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
            let load = delta(bpf_intf::dom_stat_idx_DSTAT_LOAD_WNS) / dt_ns / WEIGHT_NICE0;
            let dcycle = delta(bpf_intf::dom_stat_idx_DSTAT_RUNNABLE_NS) / dt_ns;
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
                load,
                dcycle,
                util,
                totals,
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
