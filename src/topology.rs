//! The hardware as scx_rebal needs it: for every online CPU, its NUMA node
//! and the caches and core it shares with others, plus the NUMA distances.
//!
//! hwloc is the one source for which CPUs are online, their nodes, cores
//! and caches, and the set of NUMA nodes: it reads the machine's `/sys`, or,
//! with a sysfs root, a copy of it through its `HWLOC_FSROOT` mechanism
//! (how `--dump-domains --sysfs-root` checks a machine before loading and
//! how the fixtures in `topology-fixtures/` are tested). hwloc copes with
//! what real snapshots hold: files ending in NUL, no `cpu/online` (it
//! derives the online set from the `cpuN` folders and their `online`
//! files), old file names. Only what hwloc2 (the crate) does not expose is
//! read here by hand, from the same root and after hwloc named the CPUs and
//! nodes: NUMA distances and the core types of hybrid CPUs (the hybrid
//! PMUs' CPU lists on Intel, `/sys/devices/cpu_core/cpus` and
//! `/sys/devices/cpu_atom/cpus`, else each CPU's `cpu_capacity` on arm64).
//!
//! hwloc is loaded with its Linux sysfs backend only, on a snapshot and on
//! this machine alike: its x86 backend runs CPUID on the CPUs it runs on
//! and would mix this machine's caches into a snapshot of another, and on a
//! live machine it binds the loading thread to every CPU in turn (it cannot
//! reach the CPUs outside the daemon's cpuset, and must wait for each CPU
//! under load) to learn what the kernel's sysfs already says. CPUs and
//! nodes outside the daemon's own cpuset (cgroup) are included: the BPF
//! scheduler runs on every online CPU, whatever cgroup started it.
//!
//! The result is plain data: building domains from it (src/domains.rs)
//! never touches hwloc or the machine.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow, bail};
use hwloc2::{ObjectType, TopologyFlag, TopologyObject};
use serde::Serialize;

/// The type of a core on a hybrid CPU. Known only where the machine has
/// more than one type: on a homogeneous machine every CPU has `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CoreKind {
    /// Intel P-core (`cpu_core`), or a CPU of the highest `cpu_capacity`.
    Performance,
    /// Intel E-core (`cpu_atom`), or any CPU of a lower `cpu_capacity`.
    Efficiency,
}

impl CoreKind {
    pub fn name(self) -> &'static str {
        match self {
            CoreKind::Performance => "performance",
            CoreKind::Efficiency => "efficiency",
        }
    }
}

/// One online CPU. Cache and core ids are hwloc logical indexes: only
/// equality between CPUs matters, and their order is hwloc's topology
/// order (cores under one L2, L2s under one L3 come out consecutive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    pub cpu: usize,
    pub node: usize,
    pub l3: Option<u32>,
    pub l2: Option<u32>,
    pub core: Option<u32>,
    /// Core type on a hybrid CPU; `None` when the machine is not hybrid or
    /// does not say.
    pub kind: Option<CoreKind>,
}

#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Online CPUs in ascending id order.
    pub cpus: Vec<CpuInfo>,
    /// Kernel NUMA node id -> distance to every other node (kernel ids).
    /// Empty when the machine reports no distances.
    pub distances: BTreeMap<usize, BTreeMap<usize, u32>>,
}

/// The hwloc components loaded: the Linux sysfs backend and nothing else
/// ("stop" ends the list; see the module comment for why not x86).
const HWLOC_COMPONENTS: &str = "linux,stop";

/// HWLOC_FSROOT and HWLOC_COMPONENTS are process-global; loads that set
/// them must not overlap.
static HWLOC_ENV: Mutex<()> = Mutex::new(());

impl Topology {
    /// Read the topology of this machine, or of the sysfs copy under
    /// `sysfs_root` (a folder holding `sys/devices/system/...`).
    pub fn read(sysfs_root: Option<&Path>) -> Result<Topology> {
        let root = sysfs_root.unwrap_or(Path::new("/"));
        if sysfs_root.is_some() {
            let cpu_dir = root.join("sys/devices/system/cpu");
            if !cpu_dir.is_dir() {
                bail!(
                    "{} is not a sysfs copy: {} is missing",
                    root.display(),
                    cpu_dir.display()
                );
            }
        }
        let (mut cpus, nodes) = load_hwloc(root)?;
        if cpus.is_empty() {
            bail!("hwloc found no online CPU (sysfs root {})", root.display());
        }
        cpus.sort_by_key(|c| c.cpu);
        let online: Vec<usize> = cpus.iter().map(|c| c.cpu).collect();
        let kinds = read_core_kinds(root, &online)?;
        for c in &mut cpus {
            c.kind = kinds.get(&c.cpu).copied();
        }
        let distances = read_distances(root, &nodes)?;
        Ok(Topology { cpus, distances })
    }

    /// Kernel node ids present, ascending.
    pub fn nodes(&self) -> Vec<usize> {
        let set: BTreeSet<usize> = self.cpus.iter().map(|c| c.node).collect();
        set.into_iter().collect()
    }

    /// Whether some core runs more than one hardware thread.
    pub fn smt(&self) -> bool {
        let mut per_core: BTreeMap<u32, usize> = BTreeMap::new();
        for c in &self.cpus {
            if let Some(core) = c.core {
                *per_core.entry(core).or_default() += 1;
            }
        }
        per_core.values().any(|&n| n > 1)
    }

    pub fn distance(&self, a: usize, b: usize) -> u32 {
        match self.distances.get(&a).and_then(|row| row.get(&b)) {
            Some(&d) => d,
            None if a == b => 10,
            None => 20,
        }
    }
}

/// Sets environment variables for as long as it lives, then puts back what
/// was there.
struct EnvOverride(Vec<(&'static str, Option<OsString>)>);

impl EnvOverride {
    /// # Safety
    /// No other thread may read or write the environment while it lives:
    /// the caller holds HWLOC_ENV, and the daemon's other threads (signal
    /// handler, stats server) never read it.
    unsafe fn set(vars: &[(&'static str, &std::ffi::OsStr)]) -> EnvOverride {
        let mut saved = Vec::with_capacity(vars.len());
        for &(k, v) in vars {
            saved.push((k, std::env::var_os(k)));
            // SAFETY: as the function's contract says.
            unsafe { std::env::set_var(k, v) };
        }
        EnvOverride(saved)
    }
}

impl Drop for EnvOverride {
    fn drop(&mut self) {
        for (k, v) in self.0.drain(..) {
            // SAFETY: as EnvOverride::set's contract says.
            unsafe {
                match v {
                    Some(v) => std::env::set_var(k, v),
                    None => std::env::remove_var(k),
                }
            }
        }
    }
}

/// Online CPUs (node, caches, core) and all NUMA node ids, ascending, as
/// hwloc's Linux backend reads them under `root`.
fn load_hwloc(root: &Path) -> Result<(Vec<CpuInfo>, Vec<usize>)> {
    let _guard = HWLOC_ENV.lock().unwrap_or_else(|e| e.into_inner());
    let topo = {
        // SAFETY: HWLOC_ENV is held; see EnvOverride::set.
        let _env = unsafe {
            EnvOverride::set(&[
                ("HWLOC_FSROOT", root.as_os_str()),
                ("HWLOC_COMPONENTS", HWLOC_COMPONENTS.as_ref()),
            ])
        };
        hwloc2::Topology::with_flags(vec![TopologyFlag::IncludeDisallowed])
    };
    let topo =
        topo.ok_or_else(|| anyhow!("hwloc could not load the topology under {}", root.display()))?;
    let pus = topo
        .objects_with_type(&ObjectType::PU)
        .map_err(|e| anyhow!("hwloc lists no CPUs under {}: {e:?}", root.display()))?;

    let nodes: Vec<usize> = match topo.object_at_root().nodeset() {
        Some(ns) => ns.into_iter().map(|n| n as usize).collect(),
        None => Vec::new(),
    };
    // A CPU with no local node (its node's memory offline or absent from
    // a snapshot) is put on the machine's first node: a node that exists.
    let first_node = nodes.first().copied().unwrap_or(0);
    let mut cpus = Vec::with_capacity(pus.len());
    for pu in pus {
        // NUMA nodes live at a virtual depth that hwloc2's bounds checks
        // reject; the PU's own nodeset names its node instead. Where a
        // CPU has several local nodes (memory-only HBM or CXL nodes beside
        // its DRAM), the lowest id is taken: firmware and the kernel number
        // such memory-only nodes after the nodes holding CPUs.
        let node = pu
            .nodeset()
            .map(|ns| ns.first())
            .filter(|&n| n >= 0)
            .map_or(first_node, |n| n as usize);
        cpus.push(CpuInfo {
            cpu: pu.os_index() as usize,
            node,
            l3: ancestor(pu, ObjectType::L3Cache),
            l2: ancestor(pu, ObjectType::L2Cache),
            core: ancestor(pu, ObjectType::Core),
            kind: None,
        });
    }
    Ok((cpus, nodes))
}

fn ancestor(obj: &TopologyObject, ty: ObjectType) -> Option<u32> {
    let mut cur = obj.parent();
    while let Some(o) = cur {
        if o.object_type() == ty {
            return Some(o.logical_index());
        }
        cur = o.parent();
    }
    None
}

/// A sysfs value without the trailing newline, blanks and NUL bytes some
/// kernels (and snapshot tools) leave after it.
fn sysfs_value(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
}

/// Parse a kernel CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Result<BTreeSet<usize>> {
    let mut set = BTreeSet::new();
    for part in sysfs_value(s).split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let lo: usize = lo
            .trim()
            .parse()
            .with_context(|| format!("bad CPU list {s:?}"))?;
        let hi: usize = hi
            .trim()
            .parse()
            .with_context(|| format!("bad CPU list {s:?}"))?;
        if hi < lo {
            bail!("bad CPU list {s:?}: range {lo}-{hi} runs backwards");
        }
        set.extend(lo..=hi);
    }
    Ok(set)
}

/// The value in `path` (see [`sysfs_value`]), or `None` if the file does
/// not exist (a kernel or a machine without it); any other failure is an
/// error naming it.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(sysfs_value(&s).to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Core type of each of the `online` CPUs, empty unless the machine shows
/// more than one type.
///
/// Intel hybrid parts register one PMU per core type, and its `cpus` file
/// is the kernel's own answer: `<root>/sys/devices/cpu_core/cpus` lists the
/// P-cores, `cpu_atom/cpus` the E-cores. Without them, arm64 big.LITTLE /
/// DynamIQ parts give each CPU a `cpu_capacity` (1024 for the fastest):
/// CPUs of the highest capacity are performance cores, all others
/// efficiency cores (a three-tier part thus puts its middle tier with the
/// little cores). Absent files mean "no hybrid information", not an error;
/// a file that is there but malformed is an error naming it.
pub fn read_core_kinds(root: &Path, online: &[usize]) -> Result<BTreeMap<usize, CoreKind>> {
    let mut kinds = BTreeMap::new();
    let pmus = [
        ("sys/devices/cpu_core/cpus", CoreKind::Performance),
        ("sys/devices/cpu_atom/cpus", CoreKind::Efficiency),
    ];
    let mut any_pmu = false;
    for (rel, kind) in pmus {
        let path = root.join(rel);
        if let Some(s) = read_optional(&path)? {
            any_pmu = true;
            let cpus = parse_cpu_list(&s).with_context(|| format!("parsing {}", path.display()))?;
            for cpu in cpus.into_iter().filter(|c| online.contains(c)) {
                kinds.insert(cpu, kind);
            }
        }
    }
    if !any_pmu {
        let mut capacity = BTreeMap::new();
        for &cpu in online {
            let path = root.join(format!("sys/devices/system/cpu/cpu{cpu}/cpu_capacity"));
            if let Some(s) = read_optional(&path)? {
                let v: u32 = s
                    .parse()
                    .with_context(|| format!("parsing {} ({s:?})", path.display()))?;
                capacity.insert(cpu, v);
            }
        }
        if let Some(&top) = capacity.values().max() {
            for (cpu, v) in capacity {
                let kind = if v == top {
                    CoreKind::Performance
                } else {
                    CoreKind::Efficiency
                };
                kinds.insert(cpu, kind);
            }
        }
    }
    // One type everywhere (a homogeneous arm64 machine at capacity 1024, an
    // Intel hybrid part with its E-cores off) is no hybrid information.
    let distinct: BTreeSet<CoreKind> = kinds.values().copied().collect();
    if distinct.len() < 2 {
        kinds.clear();
    }
    Ok(kinds)
}

/// NUMA distances from `<root>/sys/devices/system/node/nodeN/distance`
/// for the `nodes` hwloc found. The numbers in each file follow the
/// kernel's online nodes in ascending order, which can be more than hwloc
/// shows (it leaves out, say, GPU memory nodes): so the columns are read
/// from `node/online`, or, in a snapshot without it, from the `nodeN`
/// folders, as hwloc itself derives the nodes. A node without the file has
/// no row; a row whose length does not match the columns is left out with
/// a warning (the default distances apply to it); a malformed number is an
/// error naming the file.
fn read_distances(root: &Path, nodes: &[usize]) -> Result<BTreeMap<usize, BTreeMap<usize, u32>>> {
    let dir = root.join("sys/devices/system/node");
    let mut out = BTreeMap::new();
    if nodes.is_empty() || !dir.is_dir() {
        return Ok(out);
    }
    let online = dir.join("online");
    let columns: Vec<usize> = match read_optional(&online)? {
        Some(s) => parse_cpu_list(&s)
            .with_context(|| format!("parsing {}", online.display()))?
            .into_iter()
            .collect(),
        None => {
            let mut v: Vec<usize> = fs::read_dir(&dir)
                .with_context(|| format!("listing {}", dir.display()))?
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix("node").and_then(|n| n.parse().ok())
                })
                .collect();
            v.sort_unstable();
            v
        }
    };
    for &n in nodes {
        let path = dir.join(format!("node{n}/distance"));
        let Some(s) = read_optional(&path)? else {
            continue;
        };
        let row: Vec<u32> = s
            .split_whitespace()
            .map(|v| v.parse::<u32>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("parsing {} ({s:?})", path.display()))?;
        if row.len() != columns.len() {
            log::warn!(
                "{}: {} distances for the {} online NUMA nodes {columns:?}; ignoring that row",
                path.display(),
                row.len(),
                columns.len()
            );
            continue;
        }
        out.insert(n, columns.iter().copied().zip(row).collect());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn cpu_lists() {
        let s = parse_cpu_list("0-3,8,10-11\n").unwrap();
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert!(parse_cpu_list("").unwrap().is_empty());
        // As some kernels and snapshot tools leave them: a NUL after the
        // newline (node/online of an 8-node machine read "0-7\n\0").
        let s = parse_cpu_list("0-7\n\0").unwrap();
        assert_eq!(s.len(), 8);
        assert!(parse_cpu_list("\0").unwrap().is_empty());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
    }

    /// A scratch sysfs root in the temp dir, removed when dropped.
    struct Scratch(PathBuf);

    impl std::ops::Deref for Scratch {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("scx_rebal-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn intel_pmus_give_core_kinds() {
        let r = scratch("kinds-intel");
        write(&r, "sys/devices/cpu_core/cpus", "0-3\n");
        // As some kernels and snapshot tools leave files: a NUL after the
        // newline.
        write(&r, "sys/devices/cpu_atom/cpus", "4-7\n\0");
        // Offline CPU 7 is left out.
        let k = read_core_kinds(&r, &[0, 1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(k.len(), 7);
        assert_eq!(k[&0], CoreKind::Performance);
        assert_eq!(k[&6], CoreKind::Efficiency);
    }

    #[test]
    fn one_core_type_is_no_hybrid_information() {
        let r = scratch("kinds-one");
        write(&r, "sys/devices/cpu_core/cpus", "0-3\n");
        assert!(read_core_kinds(&r, &[0, 1, 2, 3]).unwrap().is_empty());
        let r = scratch("kinds-none");
        assert!(read_core_kinds(&r, &[0, 1]).unwrap().is_empty());
        let r = scratch("kinds-cap-equal");
        for c in 0..2 {
            write(
                &r,
                &format!("sys/devices/system/cpu/cpu{c}/cpu_capacity"),
                "1024\n",
            );
        }
        assert!(read_core_kinds(&r, &[0, 1]).unwrap().is_empty());
    }

    #[test]
    fn cpu_capacity_gives_core_kinds() {
        let r = scratch("kinds-cap");
        // CPU 3's file ends in a NUL after the newline.
        for (c, v) in [(0, "446\n"), (1, "446\n"), (2, "871\n"), (3, "1024\n\0")] {
            write(
                &r,
                &format!("sys/devices/system/cpu/cpu{c}/cpu_capacity"),
                v,
            );
        }
        let k = read_core_kinds(&r, &[0, 1, 2, 3]).unwrap();
        assert_eq!(k[&0], CoreKind::Efficiency);
        assert_eq!(k[&2], CoreKind::Efficiency);
        assert_eq!(k[&3], CoreKind::Performance);
    }

    #[test]
    fn malformed_kind_files_are_errors_naming_the_file() {
        let r = scratch("kinds-bad-pmu");
        write(&r, "sys/devices/cpu_core/cpus", "0-x\n");
        let e = format!("{:#}", read_core_kinds(&r, &[0]).unwrap_err());
        assert!(e.contains("cpu_core/cpus"), "{e}");
        let r = scratch("kinds-bad-cap");
        write(&r, "sys/devices/system/cpu/cpu1/cpu_capacity", "big\n");
        let e = format!("{:#}", read_core_kinds(&r, &[0, 1]).unwrap_err());
        assert!(e.contains("cpu1/cpu_capacity"), "{e}");
    }

    #[test]
    fn distances_follow_the_online_nodes() {
        let r = scratch("dist");
        // Sparse ids; node 2's file ends in NUL; node 9 has none; node 5
        // is online but not among the nodes hwloc shows (a GPU's memory).
        write(&r, "sys/devices/system/node/online", "0,2,5,9\n\0");
        write(
            &r,
            "sys/devices/system/node/node0/distance",
            "10 21 80 31\n",
        );
        write(
            &r,
            "sys/devices/system/node/node2/distance",
            "21 10 80 31\n\0",
        );
        let d = read_distances(&r, &[0, 2, 9]).unwrap();
        assert_eq!(d[&0][&9], 31);
        assert_eq!(d[&2][&0], 21);
        assert!(!d.contains_key(&9));
        let t = Topology {
            cpus: Vec::new(),
            distances: d,
        };
        assert_eq!(t.distance(2, 9), 31);
        // No row: the defaults.
        assert_eq!(t.distance(9, 9), 10);
        assert_eq!(t.distance(9, 0), 20);
        // Without node/online the nodeN folders give the columns: here
        // 0, 2 and 9 (node 9's folder exists, without a distance file).
        fs::remove_file(r.join("sys/devices/system/node/online")).unwrap();
        fs::create_dir_all(r.join("sys/devices/system/node/node9")).unwrap();
        write(&r, "sys/devices/system/node/node0/distance", "10 21 31\n");
        let d = read_distances(&r, &[0, 2, 9]).unwrap();
        assert_eq!(d[&0][&9], 31);
        // Node 2's row has 4 numbers for 3 columns: left out, not misread.
        assert!(!d.contains_key(&2), "{d:?}");
        // A malformed number is an error naming the file.
        write(&r, "sys/devices/system/node/node0/distance", "10 x 31\n");
        let e = format!("{:#}", read_distances(&r, &[0, 2, 9]).unwrap_err());
        assert!(e.contains("node0/distance"), "{e}");
    }
}
