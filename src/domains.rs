//! Scheduling domains: the unit every task belongs to and the unit the
//! balancer moves load between.
//!
//! A domain is the set of CPUs sharing a last-level cache inside one NUMA
//! node: tasks that stay in it keep their cache warm, and stealing inside a
//! node stays cheap. Built from a [`Topology`] or from cpumasks given by
//! hand (`--cpumasks`), which are checked against the online CPUs. Pure
//! data: no BPF, no I/O beyond what the caller passed in.
//!
//! From a topology, a CPU's domain cache is its L3, else its L2, provided
//! another online CPU of its node shares it. CPUs that share no cache with
//! anyone (machines whose cores each have their own L2 and no L3: old
//! multi-socket Opterons and Itaniums, arm64 servers whose system cache is
//! not a CPU cache) form one domain per node instead: single-CPU domains
//! would make every steal and every balancing move cross a domain, and a
//! domain's load would be one task's, while a node is still a unit of
//! memory locality worth keeping tasks in.
//!
//! Two refinements of "one per LLC", set by [`DomainOpts`]: an LLC shared
//! by performance and efficiency cores is split by core type (unless
//! `hybrid_together`), and an LLC with more than `max_domain_cpus` CPUs is
//! cut into the fewest even runs of whole cores ([`split_cores`]).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};
use serde::Serialize;

use crate::bpf_intf;
use crate::topology::{CoreKind, CpuInfo, Topology};

pub const MAX_CPUS: usize = bpf_intf::consts_MAX_CPUS as usize;
pub const MAX_DOMS: usize = bpf_intf::consts_MAX_DOMS as usize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Domain {
    pub id: usize,
    /// Kernel NUMA node id.
    pub node: usize,
    pub cpus: Vec<usize>,
    /// Core type of all its CPUs, on a hybrid machine; left out of the JSON
    /// when unknown or mixed, so non-hybrid output is unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<CoreKind>,
}

/// How [`Domains::from_topology`] cuts LLCs into domains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomainOpts {
    /// Keep the performance and efficiency cores of one LLC in one domain
    /// (`--hybrid-together`). Off by default: a task's speed and the load
    /// figures of a mixed domain depend on which kind of core it ran on.
    pub hybrid_together: bool,
    /// Cut every LLC with more CPUs than this into the fewest domains of at
    /// most this many CPUs (`--max-domain-cpus`).
    pub max_domain_cpus: Option<usize>,
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

/// The cache a domain is built around (hwloc logical indexes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SharedCache {
    L3(u32),
    L2(u32),
}

impl Domains {
    /// One domain per (node, shared LLC): the L3, else the L2, shared with
    /// another CPU of the node, else the node (see the module comment);
    /// then, as `opts` say, one per core type inside a hybrid LLC, and LLCs
    /// larger than `max_domain_cpus` cut into runs of whole cores.
    pub fn from_topology(topo: &Topology, opts: &DomainOpts) -> Result<Domains> {
        let mut sharers: BTreeMap<(usize, SharedCache), usize> = BTreeMap::new();
        for c in &topo.cpus {
            let caches = [c.l3.map(SharedCache::L3), c.l2.map(SharedCache::L2)];
            for cache in caches.into_iter().flatten() {
                *sharers.entry((c.node, cache)).or_default() += 1;
            }
        }
        let shared = |c: &CpuInfo| {
            [c.l3.map(SharedCache::L3), c.l2.map(SharedCache::L2)]
                .into_iter()
                .flatten()
                .find(|&cache| sharers.get(&(c.node, cache)).is_some_and(|&n| n > 1))
        };
        type Key = (usize, Option<SharedCache>, Option<CoreKind>);
        let mut groups: BTreeMap<Key, Vec<&CpuInfo>> = BTreeMap::new();
        for c in &topo.cpus {
            let kind = if opts.hybrid_together { None } else { c.kind };
            groups.entry((c.node, shared(c), kind)).or_default().push(c);
        }
        let mut doms = Vec::new();
        for ((node, _, _), cpus) in groups {
            match opts.max_domain_cpus {
                Some(max) if cpus.len() > max => {
                    for part in split_cores(&cpus, max)? {
                        doms.push((node, part));
                    }
                }
                _ => doms.push((node, cpus.iter().map(|c| c.cpu).collect())),
            }
        }
        Self::assemble(doms, topo)
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
        let kind_of: BTreeMap<usize, Option<CoreKind>> =
            topo.cpus.iter().map(|c| (c.cpu, c.kind)).collect();
        let domains: Vec<Domain> = groups
            .into_iter()
            .enumerate()
            .map(|(id, (node, cpus))| {
                // The domain's kind if all its CPUs have the same known one
                // (hand-made cpumasks included).
                let kinds: BTreeSet<Option<CoreKind>> = cpus
                    .iter()
                    .map(|c| kind_of.get(c).copied().flatten())
                    .collect();
                let kind = match kinds.into_iter().collect::<Vec<_>>()[..] {
                    [k] => k,
                    _ => None,
                };
                Domain {
                    id,
                    node,
                    cpus,
                    kind,
                }
            })
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

/// Cut the CPUs of one LLC (one node, one core type) into domains of at
/// most `max` CPUs, returned as CPU lists in topology order.
///
/// The unit is the core: SMT siblings are never parted, and a core with
/// more threads than `max` is an error rather than a silent round-up, so
/// that `--max-domain-cpus` never yields domains larger than asked. Cores
/// are taken in hwloc's topology order (core logical index) and cut into
/// consecutive runs. Among the cuts giving the fewest runs, it prefers, in
/// this order: the fewest runs that part cores sharing an L2 (E-core
/// clusters stay whole whenever the count allows), the smallest largest
/// run, the largest smallest run, and then larger runs first.
pub fn split_cores(cpus: &[&CpuInfo], max: usize) -> Result<Vec<Vec<usize>>> {
    if max == 0 {
        bail!("--max-domain-cpus must be at least 1");
    }
    // Cores in topology order; a CPU hwloc put under no core is its own.
    let mut cores: BTreeMap<(u32, usize), (Option<u32>, Vec<usize>)> = BTreeMap::new();
    let mut core_key: BTreeMap<u32, (u32, usize)> = BTreeMap::new();
    for c in cpus {
        let key = match c.core {
            Some(core) => *core_key.entry(core).or_insert((core, c.cpu)),
            None => (u32::MAX, c.cpu),
        };
        let e = cores.entry(key).or_insert((c.l2, Vec::new()));
        e.1.push(c.cpu);
    }
    let cores: Vec<(Option<u32>, Vec<usize>)> = cores.into_values().collect();
    if let Some((_, t)) = cores.iter().find(|(_, t)| t.len() > max) {
        bail!(
            "--max-domain-cpus {max} is less than the {} hardware threads of one core (CPUs \
             {t:?}): SMT siblings always share a domain, so use at least {}",
            t.len(),
            t.len()
        );
    }
    let w: Vec<usize> = cores.iter().map(|(_, t)| t.len()).collect();
    // A cut before core e parts an L2 if cores e-1 and e share one.
    let parts_l2: Vec<bool> = (0..=w.len())
        .map(|e| e > 0 && e < w.len() && cores[e - 1].0.is_some() && cores[e - 1].0 == cores[e].0)
        .collect();
    let runs = cut_runs(&w, &parts_l2, max);
    let mut out = Vec::new();
    let mut start = 0;
    for len in runs {
        let mut part: Vec<usize> = cores[start..start + len]
            .iter()
            .flat_map(|(_, t)| t.iter().copied())
            .collect();
        part.sort_unstable();
        out.push(part);
        start += len;
    }
    Ok(out)
}

/// Lengths (in cores) of the runs [`split_cores`] cuts the weights `w`
/// (threads per core, each at most `max`) into; `parts_l2[e]` says whether
/// a cut before core e would part an L2.
fn cut_runs(w: &[usize], parts_l2: &[bool], max: usize) -> Vec<usize> {
    let n = w.len();
    let total: usize = w.iter().sum();
    // Filling each run greedily gives the fewest runs.
    let mut k = 0;
    let mut fill = max;
    for &x in w {
        if fill + x > max {
            k += 1;
            fill = 0;
        }
        fill += x;
    }
    // best[p][j]: fewest L2-parting cuts splitting cores j.. into exactly p
    // runs of lo..=hi CPUs each (None: impossible).
    let table = |lo: usize, hi: usize| -> Vec<Vec<Option<u32>>> {
        let mut best = vec![vec![None; n + 1]; k + 1];
        best[0][n] = Some(0);
        for p in 1..=k {
            for j in (0..n).rev() {
                let mut size = 0;
                let mut b: Option<u32> = None;
                for e in j + 1..=n {
                    size += w[e - 1];
                    if size > hi {
                        break;
                    }
                    if size < lo {
                        continue;
                    }
                    if let Some(rest) = best[p - 1][e] {
                        let c = rest + u32::from(e < n && parts_l2[e]);
                        b = Some(b.map_or(c, |b: u32| b.min(c)));
                    }
                }
                best[p][j] = b;
            }
        }
        best
    };
    let cost = |lo: usize, hi: usize| table(lo, hi)[k][0];
    // The greedy cut exists, so (1, max) is feasible; tightening either
    // bound can only raise the cost, hence binary searches.
    let target = cost(1, max);
    let (mut a, mut b) = (total.div_ceil(k), max);
    while a < b {
        let mid = (a + b) / 2;
        if cost(1, mid) == target {
            b = mid;
        } else {
            a = mid + 1;
        }
    }
    let hi = a;
    let (mut a, mut b) = (1, total / k);
    while a < b {
        let mid = (a + b).div_ceil(2);
        if cost(mid, hi) == target {
            a = mid;
        } else {
            b = mid - 1;
        }
    }
    let lo = a;
    // Walk the table, taking the longest first run that stays optimal.
    let best = table(lo, hi);
    let mut runs = Vec::with_capacity(k);
    let mut j = 0;
    for p in (1..=k).rev() {
        let mut size = 0;
        let mut pick = None;
        for e in j + 1..=n {
            size += w[e - 1];
            if size > hi {
                break;
            }
            if size < lo {
                continue;
            }
            if let (Some(rest), Some(here)) = (best[p - 1][e], best[p][j])
                && rest + u32::from(e < n && parts_l2[e]) == here
            {
                pick = Some(e);
            }
        }
        // Some e always fits: best[p][j] was reached through one.
        let e = pick.unwrap_or(n);
        runs.push(e - j);
        j = e;
    }
    runs
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
                    kind: None,
                })
                .collect(),
            distances: BTreeMap::new(),
        }
    }

    const DFL: DomainOpts = DomainOpts {
        hybrid_together: false,
        max_domain_cpus: None,
    };

    fn max(n: usize) -> DomainOpts {
        DomainOpts {
            hybrid_together: false,
            max_domain_cpus: Some(n),
        }
    }

    /// One node, one L3 of `cores` cores with `smt` threads each, Linux
    /// server numbering (sibling k of core i is CPU i + k * cores), L2 per
    /// core unless `l2_per` cores share one, on `node`; CPUs start at
    /// `base` (for building several nodes).
    fn llc(node: usize, base: usize, cores: usize, smt: usize, l2_per: usize) -> Vec<CpuInfo> {
        let mut v = Vec::new();
        for i in 0..cores {
            for k in 0..smt {
                v.push(CpuInfo {
                    cpu: base + i + k * cores,
                    node,
                    l3: Some(node as u32),
                    l2: Some((base + i / l2_per) as u32),
                    core: Some((base + i) as u32),
                    kind: None,
                });
            }
        }
        v
    }

    fn of(cpus: Vec<CpuInfo>) -> Topology {
        let mut cpus = cpus;
        cpus.sort_by_key(|c| c.cpu);
        Topology {
            cpus,
            distances: BTreeMap::new(),
        }
    }

    fn cpus_of(d: &Domains) -> Vec<Vec<usize>> {
        d.domains.iter().map(|d| d.cpus.clone()).collect()
    }

    fn by_node(d: &Domains) -> Vec<(usize, Vec<usize>)> {
        d.domains.iter().map(|d| (d.node, d.cpus.clone())).collect()
    }

    fn sizes(d: &Domains) -> Vec<usize> {
        d.domains.iter().map(|d| d.cpus.len()).collect()
    }

    /// 12700H-like: P cores 0-11 (siblings 2i, 2i+1), E cores 12-19 in two
    /// L2 clusters of 4, one L3.
    fn hybrid() -> Topology {
        let mut v = Vec::new();
        for cpu in 0..20 {
            let p = cpu < 12;
            v.push(CpuInfo {
                cpu,
                node: 0,
                l3: Some(0),
                l2: Some(if p {
                    cpu as u32 / 2
                } else {
                    6 + (cpu as u32 - 12) / 4
                }),
                core: Some(if p { cpu as u32 / 2 } else { cpu as u32 - 6 }),
                kind: Some(if p {
                    CoreKind::Performance
                } else {
                    CoreKind::Efficiency
                }),
            });
        }
        of(v)
    }

    #[test]
    fn one_domain_per_l3_per_node() {
        // An L3 spanning two nodes is split by node.
        let t = topo(&[
            (0, 0, Some(0), None),
            (1, 0, Some(0), None),
            (2, 1, Some(0), None),
            (3, 1, Some(0), None),
            (4, 1, Some(1), None),
            (5, 1, Some(1), None),
        ]);
        let d = Domains::from_topology(&t, &DFL).unwrap();
        assert_eq!(
            by_node(&d),
            vec![(0, vec![0, 1]), (1, vec![2, 3]), (1, vec![4, 5])]
        );
    }

    #[test]
    fn falls_back_to_a_shared_l2_then_node() {
        // No L3: L2s shared by two CPUs each are the domains.
        let t = topo(&[
            (0, 0, None, Some(0)),
            (1, 0, None, Some(0)),
            (2, 0, None, Some(1)),
            (3, 0, None, Some(1)),
        ]);
        let d = Domains::from_topology(&t, &DFL).unwrap();
        assert_eq!(cpus_of(&d), vec![vec![0, 1], vec![2, 3]]);
        // No cache at all, or none shared: one domain per node.
        let t = topo(&[
            (0, 0, None, Some(0)),
            (1, 0, None, Some(1)),
            (2, 1, None, None),
            (3, 1, None, None),
        ]);
        let d = Domains::from_topology(&t, &DFL).unwrap();
        assert_eq!(by_node(&d), vec![(0, vec![0, 1]), (1, vec![2, 3])]);
    }

    #[test]
    fn cpus_sharing_no_cache_make_one_domain_per_node() {
        // 8 nodes of 2 cores, each core its own L2, no L3 (an old 8-socket
        // Opteron): 8 domains of 2, not 16 of one.
        let spec: Vec<_> = (0..16).map(|c| (c, c / 2, None, Some(c as u32))).collect();
        let d = Domains::from_topology(&topo(&spec), &DFL).unwrap();
        let want: Vec<_> = (0..8).map(|n| (n, vec![2 * n, 2 * n + 1])).collect();
        assert_eq!(by_node(&d), want);
        // Still cut by --max-domain-cpus like any other group.
        let spec: Vec<_> = (0..8).map(|c| (c, 0, None, Some(c as u32))).collect();
        let d = Domains::from_topology(&topo(&spec), &max(3)).unwrap();
        assert_eq!(sizes(&d), vec![3, 3, 2]);
    }

    #[test]
    fn a_cache_counts_as_shared_only_within_the_node() {
        // L3 0 spans nodes 0 and 1 but holds only CPU 2 in node 1; CPU 3
        // has an L3 of its own. In node 1 neither shares a cache with
        // another CPU of the node: one domain, not {2} and {3}. CPU 4 (node
        // 2, sibling offline) shares nothing and has the node to itself.
        let t = topo(&[
            (0, 0, Some(0), None),
            (1, 0, Some(0), None),
            (2, 1, Some(0), None),
            (3, 1, Some(1), None),
            (4, 2, Some(2), None),
        ]);
        let d = Domains::from_topology(&t, &DFL).unwrap();
        assert_eq!(cpus_of(&d), vec![vec![0, 1], vec![2, 3], vec![4]]);
        // An L3 and an L2 with the same logical index are different caches.
        let t = topo(&[
            (0, 0, Some(0), None),
            (1, 0, Some(0), None),
            (2, 0, None, Some(0)),
            (3, 0, None, Some(0)),
        ]);
        let d = Domains::from_topology(&t, &DFL).unwrap();
        assert_eq!(cpus_of(&d), vec![vec![0, 1], vec![2, 3]]);
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
        let spec: Vec<_> = (0..8)
            .map(|c| (c, c / 4, Some(c as u32 / 2), None))
            .collect();
        let d = Domains::from_topology(&topo(&spec), &DFL).unwrap();
        assert_eq!(d.domains.len(), 4);
        assert_eq!(d.steal_order[0], vec![1, 2, 3]);
        assert_eq!(d.steal_order[1], vec![0, 2, 3]);
        assert_eq!(d.steal_order[2], vec![3, 0, 1]);
        assert_eq!(d.steal_order[3], vec![2, 0, 1]);
    }

    #[test]
    fn hybrid_llc_is_split_by_core_type() {
        let t = hybrid();
        let d = Domains::from_topology(&t, &DFL).unwrap();
        assert_eq!(
            cpus_of(&d),
            vec![(0..12).collect::<Vec<_>>(), (12..20).collect()]
        );
        assert_eq!(d.domains[0].kind, Some(CoreKind::Performance));
        assert_eq!(d.domains[1].kind, Some(CoreKind::Efficiency));
        assert!(d.to_json().contains(r#""kind":"efficiency""#));

        let together = DomainOpts {
            hybrid_together: true,
            max_domain_cpus: None,
        };
        let d = Domains::from_topology(&t, &together).unwrap();
        assert_eq!(cpus_of(&d), vec![(0..20).collect::<Vec<_>>()]);
        assert_eq!(d.domains[0].kind, None);
        assert!(!d.to_json().contains("kind"));
    }

    #[test]
    fn kinds_are_left_out_where_unknown() {
        let t = topo(&[(0, 0, Some(0), None), (1, 0, Some(0), None)]);
        let d = Domains::from_topology(&t, &DFL).unwrap();
        assert_eq!(
            d.to_json(),
            r#"{"domains":[{"id":0,"node":0,"cpus":[0,1]}]}"#
        );
    }

    #[test]
    fn cpumask_domains_get_the_kind_of_their_cpus() {
        let t = hybrid();
        let m: Vec<String> = ["0xff", "0xff00", "0xf0000"].map(String::from).to_vec();
        let d = Domains::from_cpumasks(&m, &t).unwrap();
        let kinds: Vec<_> = d.domains.iter().map(|d| d.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Some(CoreKind::Performance),
                None,
                Some(CoreKind::Efficiency)
            ]
        );
    }

    #[test]
    fn max_cpus_at_or_above_the_llc_size_changes_nothing() {
        let t = of(llc(0, 0, 8, 2, 1));
        for n in [16, 17, 1024] {
            let d = Domains::from_topology(&t, &max(n)).unwrap();
            assert_eq!(sizes(&d), vec![16], "N = {n}");
        }
        assert_eq!(
            Domains::from_topology(&t, &max(16)).unwrap(),
            Domains::from_topology(&t, &DFL).unwrap()
        );
    }

    #[test]
    fn smt_llc_is_cut_into_even_runs_of_whole_cores() {
        // 56 cores x 2 threads, siblings i and i+56 (a big Xeon L3).
        let t = of(llc(0, 0, 56, 2, 1));
        let d = Domains::from_topology(&t, &max(16)).unwrap();
        assert_eq!(sizes(&d), vec![16; 7]);
        let first: Vec<usize> = (0..8).chain(56..64).collect();
        assert_eq!(d.domains[0].cpus, first);
        // Not a multiple: 112 into at most 24 needs 5 domains; 56 cores / 5.
        let d = Domains::from_topology(&t, &max(24)).unwrap();
        assert_eq!(sizes(&d), vec![24, 22, 22, 22, 22]);
        // Odd N rounds each domain down to whole cores: 112 / 15 -> 8
        // domains of 7 cores (14 CPUs).
        let d = Domains::from_topology(&t, &max(15)).unwrap();
        assert_eq!(sizes(&d), vec![14; 8]);
        // N = 2: one core each.
        let d = Domains::from_topology(&t, &max(2)).unwrap();
        assert_eq!(d.domains.len(), 56);
        for (i, dom) in d.domains.iter().enumerate() {
            assert_eq!(dom.cpus, vec![i, i + 56]);
        }
    }

    #[test]
    fn smt_siblings_are_never_parted() {
        let t = of(llc(0, 0, 6, 2, 1));
        for n in 2..=12 {
            let d = Domains::from_topology(&t, &max(n)).unwrap();
            for dom in &d.domains {
                assert!(dom.cpus.len() <= n);
                for &c in &dom.cpus {
                    let sib = if c < 6 { c + 6 } else { c - 6 };
                    assert!(dom.cpus.contains(&sib), "N = {n}: {:?}", dom.cpus);
                }
            }
            // The fewest domains of whole cores: ceil(6 cores / (N / 2)).
            assert_eq!(d.domains.len(), 6usize.div_ceil(n / 2), "N = {n}");
        }
    }

    #[test]
    fn n_below_the_threads_of_a_core_is_an_error() {
        let t = of(llc(0, 0, 4, 2, 1));
        let e = format!("{:#}", Domains::from_topology(&t, &max(1)).unwrap_err());
        assert!(
            e.contains("--max-domain-cpus 1 is less than the 2 hardware threads"),
            "{e}"
        );
        assert!(e.contains("CPUs [0, 4]"), "{e}");
        // 4-way SMT needs at least 4.
        let t = of(llc(0, 0, 2, 4, 1));
        let e = format!("{:#}", Domains::from_topology(&t, &max(3)).unwrap_err());
        assert!(e.contains("use at least 4"), "{e}");
        assert_eq!(
            sizes(&Domains::from_topology(&t, &max(4)).unwrap()),
            vec![4, 4]
        );
    }

    #[test]
    fn n_of_one_without_smt_gives_one_domain_per_cpu() {
        let t = of(llc(0, 0, 5, 1, 1));
        let d = Domains::from_topology(&t, &max(1)).unwrap();
        assert_eq!(
            cpus_of(&d),
            vec![vec![0], vec![1], vec![2], vec![3], vec![4]]
        );
    }

    #[test]
    fn odd_sizes_are_cut_as_evenly_as_possible() {
        // 7 single-thread cores: N = 3 -> 3 domains 3/2/2 (not 3/3/1).
        let t = of(llc(0, 0, 7, 1, 1));
        assert_eq!(
            sizes(&Domains::from_topology(&t, &max(3)).unwrap()),
            vec![3, 2, 2]
        );
        // N = 6 -> 2 domains 4/3 (not 6/1).
        assert_eq!(
            sizes(&Domains::from_topology(&t, &max(6)).unwrap()),
            vec![4, 3]
        );
        // 13 cores, N = 4 -> 4 domains 4/3/3/3.
        let t = of(llc(0, 0, 13, 1, 1));
        assert_eq!(
            sizes(&Domains::from_topology(&t, &max(4)).unwrap()),
            vec![4, 3, 3, 3]
        );
    }

    #[test]
    fn l2_clusters_stay_whole_where_n_allows() {
        // 12 cores in 3 clusters of 4 sharing an L2, N = 8: two domains
        // either way; 8/4 keeps every cluster whole where 6/6 would part
        // one (and 8/4 before 4/8: larger runs first).
        let t = of(llc(0, 0, 12, 1, 4));
        let d = Domains::from_topology(&t, &max(8)).unwrap();
        assert_eq!(
            cpus_of(&d),
            vec![(0..8).collect::<Vec<_>>(), (8..12).collect()]
        );
        // 16 cores in 4 clusters, N = 8: 8/8 on cluster lines.
        let t = of(llc(0, 0, 16, 1, 4));
        let d = Domains::from_topology(&t, &max(8)).unwrap();
        assert_eq!(sizes(&d), vec![8, 8]);
        // N = 2 is smaller than a cluster: clusters are parted, the fewest
        // domains still win.
        let t = of(llc(0, 0, 8, 1, 4));
        let d = Domains::from_topology(&t, &max(2)).unwrap();
        assert_eq!(sizes(&d), vec![2, 2, 2, 2]);
        // 3 clusters, N = 6: two domains must part one cluster; then even.
        let t = of(llc(0, 0, 12, 1, 4));
        assert_eq!(
            sizes(&Domains::from_topology(&t, &max(6)).unwrap()),
            vec![6, 6]
        );
    }

    #[test]
    fn hybrid_split_then_max_cpus() {
        let t = hybrid();
        // By type first: P 12 -> 6/6, E 8 -> the two L2 clusters.
        let d = Domains::from_topology(&t, &max(6)).unwrap();
        assert_eq!(
            cpus_of(&d),
            vec![
                (0..6).collect::<Vec<_>>(),
                (6..12).collect(),
                (12..16).collect(),
                (16..20).collect()
            ]
        );
        // Together, N = 8: 20 CPUs need 3 domains; 6/6/8 parts no L2 and
        // lines up with the core types (8/8/4 or 8/4/8 would be less even).
        let opts = DomainOpts {
            hybrid_together: true,
            max_domain_cpus: Some(8),
        };
        let d = Domains::from_topology(&t, &opts).unwrap();
        assert_eq!(sizes(&d), vec![6, 6, 8]);
        assert_eq!(d.domains[2].kind, Some(CoreKind::Efficiency));
    }

    #[test]
    fn max_cpus_applies_per_node_and_keeps_the_numbering() {
        // Two nodes, each one L3 of 8 cores x 2 threads: CPUs of node 0 are
        // 0-7 and 8-15, of node 1 100-107 and 108-115.
        let mut v = llc(0, 0, 8, 2, 1);
        v.extend(llc(1, 100, 8, 2, 1));
        let t = of(v);
        let d = Domains::from_topology(&t, &max(6)).unwrap();
        let got: Vec<(usize, Vec<usize>)> =
            d.domains.iter().map(|d| (d.node, d.cpus.clone())).collect();
        assert_eq!(
            got,
            vec![
                (0, vec![0, 1, 2, 8, 9, 10]),
                (0, vec![3, 4, 5, 11, 12, 13]),
                (0, vec![6, 7, 14, 15]),
                (1, vec![100, 101, 102, 108, 109, 110]),
                (1, vec![103, 104, 105, 111, 112, 113]),
                (1, vec![106, 107, 114, 115]),
            ]
        );
        assert_eq!(d.steal_order[0], vec![1, 2, 3, 4, 5]);
        assert_eq!(d.steal_order[3], vec![4, 5, 0, 1, 2]);
    }

    #[test]
    fn too_many_domains_are_refused() {
        let t = of(llc(0, 0, 130, 1, 1));
        let e = format!("{:#}", Domains::from_topology(&t, &max(2)).unwrap_err());
        assert!(e.contains("65 domains, more than the 64"), "{e}");
        assert_eq!(
            Domains::from_topology(&t, &max(3)).unwrap().domains.len(),
            44
        );
    }

    /// The cut `cut_runs` must return, found by trying every way to cut
    /// `w` into consecutive runs: the fewest runs of at most `max` CPUs,
    /// then the fewest L2-parting cuts, the smallest largest run, the
    /// largest smallest run, and then longer runs first.
    fn best_cut_by_search(w: &[usize], parts_l2: &[bool], max: usize) -> Vec<usize> {
        type Key = (usize, u32, usize, std::cmp::Reverse<usize>);
        let n = w.len();
        let mut best: Option<(Key, Vec<usize>)> = None;
        // Bit i of `cuts` set: a cut before core i + 1.
        for cuts in 0u32..1 << (n - 1) {
            let mut runs = Vec::new();
            let (mut start, mut l2) = (0, 0u32);
            for (e, &parts) in parts_l2.iter().enumerate().take(n + 1).skip(1) {
                if e == n || cuts & (1 << (e - 1)) != 0 {
                    runs.push(e - start);
                    if e < n && parts {
                        l2 += 1;
                    }
                    start = e;
                }
            }
            let mut at = 0;
            let cpus: Vec<usize> = runs
                .iter()
                .map(|len| {
                    at += len;
                    w[at - len..at].iter().sum()
                })
                .collect();
            if cpus.iter().any(|&c| c > max) {
                continue;
            }
            let (hi, lo) = (cpus.iter().max().unwrap(), cpus.iter().min().unwrap());
            let key = (runs.len(), l2, *hi, std::cmp::Reverse(*lo));
            let better = match &best {
                None => true,
                // Equal keys: the longer runs first (lexicographically larger).
                Some((k, r)) => key < *k || (key == *k && runs > *r),
            };
            if better {
                best = Some((key, runs));
            }
        }
        best.expect("every core fits max, so some cut exists").1
    }

    #[test]
    fn cut_runs_is_the_best_cut_an_exhaustive_search_finds() {
        // Fixed cases, then pseudo-random weights (1-4 threads per core)
        // and L2 sharing, up to 10 cores; every N from the largest core to
        // beyond the total.
        let mut cases: Vec<(Vec<usize>, Vec<bool>)> = [
            &[1usize; 9][..],
            &[2, 2, 1, 1, 1, 2, 2],
            &[4, 4, 4],
            &[1, 2, 1, 2, 1],
        ]
        .iter()
        .map(|w| (w.to_vec(), vec![false; w.len() + 1]))
        .collect();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % m) as usize
        };
        for _ in 0..300 {
            let n = 1 + next(10);
            let w: Vec<usize> = (0..n).map(|_| 1 + next(4)).collect();
            let mut l2 = vec![false; n + 1];
            for cut in l2.iter_mut().take(n).skip(1) {
                *cut = next(2) == 1;
            }
            cases.push((w, l2));
        }
        for (w, l2) in &cases {
            let total: usize = w.iter().sum();
            for max in *w.iter().max().unwrap()..=total + 1 {
                assert_eq!(
                    cut_runs(w, l2, max),
                    best_cut_by_search(w, l2, max),
                    "weights {w:?}, L2-parting cuts {l2:?}, N {max}"
                );
            }
        }
    }

    #[test]
    fn a_full_size_llc_is_cut() {
        // MAX_CPUS CPUs on one L3, the largest input the cut ever sees.
        let t = of(llc(0, 0, MAX_CPUS, 1, 1));
        assert_eq!(
            sizes(&Domains::from_topology(&t, &max(1000)).unwrap()),
            vec![512, 512]
        );
        let mut want = vec![93; 11];
        want[0] = 94;
        assert_eq!(sizes(&Domains::from_topology(&t, &max(100)).unwrap()), want);
    }
}
