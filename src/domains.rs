//! Scheduling domains: the unit every task belongs to and the unit the
//! balancer moves load between.
//!
//! A domain is the set of CPUs sharing a last-level cache inside one NUMA
//! node: tasks that stay in it keep their cache warm, and stealing inside a
//! node stays cheap. Built from a [`Topology`] (one per L3 per node; no L3
//! means the L2; no cache at all means the node) or from cpumasks given by
//! hand (`--cpumasks`), which are checked against the online CPUs. Pure
//! data: no BPF, no I/O beyond what the caller passed in.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};
use serde::Serialize;

use crate::bpf_intf;
use crate::topology::Topology;

pub const MAX_CPUS: usize = bpf_intf::consts_MAX_CPUS as usize;
pub const MAX_DOMS: usize = bpf_intf::consts_MAX_DOMS as usize;
pub const MAX_NODES: usize = bpf_intf::consts_MAX_NODES as usize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Domain {
    pub id: usize,
    /// Kernel NUMA node id.
    pub node: usize,
    pub cpus: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Domains {
    pub domains: Vec<Domain>,
    /// Kernel node ids in use, ascending; a node's index here is the dense
    /// id the BPF side uses.
    #[serde(skip)]
    pub nodes: Vec<usize>,
    #[serde(skip)]
    pub smt: bool,
    /// For each domain, the other domains in the order its CPUs steal.
    #[serde(skip)]
    pub steal_order: Vec<Vec<usize>>,
}

impl Domains {
    /// One domain per (node, LLC): L3, else L2, else the node.
    pub fn from_topology(topo: &Topology) -> Result<Domains> {
        let mut groups: BTreeMap<(usize, Option<u32>), Vec<usize>> = BTreeMap::new();
        for c in &topo.cpus {
            let llc = c.l3.or(c.l2);
            groups.entry((c.node, llc)).or_default().push(c.cpu);
        }
        let cpus = groups
            .into_iter()
            .map(|((node, _), cpus)| (node, cpus))
            .collect();
        Self::assemble(cpus, topo)
    }

    /// Domains given by hand as hex cpumasks (`0xff`, `ff`, `ff,00000000`).
    /// Each must be well formed, non-empty, name only online CPUs, not
    /// overlap another, and together they must cover every online CPU:
    /// a CPU in no domain would never be given work.
    pub fn from_cpumasks(masks: &[String], topo: &Topology) -> Result<Domains> {
        let online: BTreeMap<usize, usize> = topo.cpus.iter().map(|c| (c.cpu, c.node)).collect();
        let mut owner: BTreeMap<usize, usize> = BTreeMap::new();
        let mut doms = Vec::new();
        for (i, m) in masks.iter().enumerate() {
            let cpus = parse_cpumask(m)?;
            if cpus.is_empty() {
                bail!("cpumask {m:?} is empty");
            }
            for &cpu in &cpus {
                if !online.contains_key(&cpu) {
                    bail!("cpumask {m:?} names CPU {cpu}, which does not exist or is offline");
                }
                if let Some(&j) = owner.get(&cpu) {
                    bail!("cpumask {m:?} overlaps cpumask {:?} on CPU {cpu}", masks[j]);
                }
                owner.insert(cpu, i);
            }
            let first = cpus.iter().next().copied().unwrap_or(0);
            let node = online.get(&first).copied().unwrap_or(0);
            if let Some(&other) = cpus.iter().find(|c| online.get(c) != Some(&node)) {
                log::warn!(
                    "cpumask {m:?} spans NUMA nodes (CPU {first} on node {node}, CPU {other} on \
                     node {}); treating it as node {node}",
                    online.get(&other).copied().unwrap_or(0)
                );
            }
            doms.push((node, cpus.into_iter().collect()));
        }
        if let Some(cpu) = online.keys().find(|c| !owner.contains_key(c)) {
            bail!("online CPU {cpu} is in none of the given cpumasks");
        }
        Self::assemble(doms, topo)
    }

    /// Number domains by (node, first CPU) and compute the steal order.
    fn assemble(mut groups: Vec<(usize, Vec<usize>)>, topo: &Topology) -> Result<Domains> {
        for (_, cpus) in groups.iter_mut() {
            cpus.sort_unstable();
        }
        groups.sort_by_key(|(node, cpus)| (*node, cpus.first().copied()));
        if groups.len() > MAX_DOMS {
            bail!(
                "{} domains, more than the {MAX_DOMS} the BPF side supports",
                groups.len()
            );
        }
        if let Some(cpu) = groups.iter().flat_map(|(_, c)| c).find(|&&c| c >= MAX_CPUS) {
            bail!("CPU {cpu} is beyond the {MAX_CPUS} CPUs the BPF side supports");
        }
        let nodes: Vec<usize> = groups
            .iter()
            .map(|(n, _)| *n)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if nodes.len() > MAX_NODES {
            bail!(
                "{} NUMA nodes, more than the {MAX_NODES} supported",
                nodes.len()
            );
        }
        let domains: Vec<Domain> = groups
            .into_iter()
            .enumerate()
            .map(|(id, (node, cpus))| Domain { id, node, cpus })
            .collect();
        let steal_order = steal_order(&domains, topo);
        Ok(Domains {
            domains,
            nodes,
            smt: topo.smt(),
            steal_order,
        })
    }

    /// Dense node index (what BPF uses) of a kernel node id.
    pub fn node_index(&self, node: usize) -> usize {
        self.nodes.iter().position(|&n| n == node).unwrap_or(0)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// Steal order of each domain: domains of its own node first, starting
/// after itself so that the domains of a node do not all raid the same
/// sibling, then the other nodes' domains by NUMA distance.
fn steal_order(domains: &[Domain], topo: &Topology) -> Vec<Vec<usize>> {
    let n = domains.len();
    domains
        .iter()
        .map(|d| {
            let mut others: Vec<usize> = (1..n).map(|k| (d.id + k) % n).collect();
            others.sort_by_key(|&o| {
                let od = &domains[o];
                let dist = if od.node == d.node {
                    0
                } else {
                    topo.distance(d.node, od.node)
                };
                (dist, (o + n - d.id) % n)
            });
            others
        })
        .collect()
}

/// Parse a hex cpumask: optional `0x`, groups separated by `,` or `_`
/// (as the kernel prints them), most significant group first.
pub fn parse_cpumask(s: &str) -> Result<BTreeSet<usize>> {
    let t = s.trim();
    let body = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let digits: String = body.chars().filter(|c| *c != ',' && *c != '_').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("cpumask {s:?} is not a hex mask (expected e.g. 0x0f or 0000ffff,00000000)");
    }
    let mut cpus = BTreeSet::new();
    for (i, c) in digits.chars().rev().enumerate() {
        let v = c.to_digit(16).unwrap_or(0) as usize;
        for b in 0..4 {
            if v & (1 << b) != 0 {
                cpus.insert(i * 4 + b);
            }
        }
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::CpuInfo;

    fn topo(spec: &[(usize, usize, Option<u32>, Option<u32>)]) -> Topology {
        Topology {
            cpus: spec
                .iter()
                .map(|&(cpu, node, l3, l2)| CpuInfo {
                    cpu,
                    node,
                    l3,
                    l2,
                    core: Some(cpu as u32),
                })
                .collect(),
            distances: BTreeMap::new(),
        }
    }

    #[test]
    fn one_domain_per_l3_per_node() {
        // An L3 spanning two nodes is split by node.
        let t = topo(&[
            (0, 0, Some(0), None),
            (1, 0, Some(0), None),
            (2, 1, Some(0), None),
            (3, 1, Some(1), None),
        ]);
        let d = Domains::from_topology(&t).unwrap();
        let got: Vec<_> = d.domains.iter().map(|d| (d.node, d.cpus.clone())).collect();
        assert_eq!(got, vec![(0, vec![0, 1]), (1, vec![2]), (1, vec![3])]);
    }

    #[test]
    fn falls_back_to_l2_then_node() {
        let t = topo(&[
            (0, 0, None, Some(0)),
            (1, 0, None, Some(1)),
            (2, 1, None, None),
            (3, 1, None, None),
        ]);
        let d = Domains::from_topology(&t).unwrap();
        let got: Vec<_> = d.domains.iter().map(|d| d.cpus.clone()).collect();
        assert_eq!(got, vec![vec![0], vec![1], vec![2, 3]]);
    }

    #[test]
    fn cpumask_parsing() {
        assert_eq!(
            parse_cpumask("0x0f")
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(
            parse_cpumask("1,00000000")
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec![32]
        );
        assert!(parse_cpumask("0xzz").is_err());
        assert!(parse_cpumask("").is_err());
        assert!(parse_cpumask("0x").is_err());
    }

    #[test]
    fn cpumask_errors() {
        let t = topo(&[
            (0, 0, Some(0), None),
            (1, 0, Some(0), None),
            (2, 0, Some(1), None),
            (3, 0, Some(1), None),
        ]);
        let m = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Domains::from_cpumasks(&m(&["0x3", "0xc"]), &t).is_ok());
        let err = |v: &[&str]| format!("{:#}", Domains::from_cpumasks(&m(v), &t).unwrap_err());
        assert!(err(&["0x0", "0xf"]).contains("empty"));
        assert!(err(&["0x3", "0x6", "0x8"]).contains("overlaps"));
        assert!(err(&["0x1f"]).contains("does not exist or is offline"));
        assert!(err(&["0x3"]).contains("in none of the given cpumasks"));
        assert!(err(&["xyz"]).contains("not a hex mask"));
    }

    #[test]
    fn steal_prefers_own_node() {
        let t = topo(&[
            (0, 0, Some(0), None),
            (1, 0, Some(1), None),
            (2, 1, Some(2), None),
            (3, 1, Some(3), None),
        ]);
        let d = Domains::from_topology(&t).unwrap();
        assert_eq!(d.steal_order[0], vec![1, 2, 3]);
        assert_eq!(d.steal_order[1], vec![0, 2, 3]);
        assert_eq!(d.steal_order[2], vec![3, 0, 1]);
        assert_eq!(d.steal_order[3], vec![2, 0, 1]);
    }
}
