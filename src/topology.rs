//! The hardware as scx_rebal needs it: for every online CPU, its NUMA node
//! and the caches and core it shares with others, plus the NUMA distances.
//!
//! hwloc reads the machine (or, with a sysfs root, a copy of `/sys` through
//! its `HWLOC_FSROOT` mechanism, which is how the fixtures in
//! `topology-fixtures/` are tested). The result is plain data: building
//! domains from it (src/domains.rs) never touches hwloc or the machine.
//!
//! Core types of hybrid CPUs are read here too, straight from sysfs: the
//! hybrid PMUs' CPU lists on Intel (`/sys/devices/cpu_core/cpus`,
//! `/sys/devices/cpu_atom/cpus`), else each CPU's `cpu_capacity` (arm64).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow, bail};
use hwloc2::{ObjectType, TopologyObject};
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

/// HWLOC_FSROOT is process-global; loads that set it must not overlap.
static HWLOC_ENV: Mutex<()> = Mutex::new(());

impl Topology {
    /// Read the topology of this machine, or of the sysfs copy under
    /// `sysfs_root` (a folder holding `sys/devices/system/...`).
    pub fn read(sysfs_root: Option<&Path>) -> Result<Topology> {
        let root = sysfs_root
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        if let Some(r) = sysfs_root {
            let cpu_dir = r.join("sys/devices/system/cpu");
            if !cpu_dir.is_dir() {
                bail!(
                    "{} is not a sysfs copy: {} is missing",
                    r.display(),
                    cpu_dir.display()
                );
            }
        }
        let online = read_online_cpus(&root)?;
        let mut cpus = load_hwloc(sysfs_root)?;
        cpus.retain(|c| online.contains(&c.cpu));
        if cpus.is_empty() {
            bail!("hwloc found no online CPU (sysfs root {})", root.display());
        }
        cpus.sort_by_key(|c| c.cpu);
        let online: Vec<usize> = cpus.iter().map(|c| c.cpu).collect();
        let kinds = read_core_kinds(&root, &online)?;
        for c in &mut cpus {
            c.kind = kinds.get(&c.cpu).copied();
        }
        let distances = read_distances(&root)?;
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

fn load_hwloc(sysfs_root: Option<&Path>) -> Result<Vec<CpuInfo>> {
    let _guard = HWLOC_ENV.lock().unwrap_or_else(|e| e.into_inner());
    let saved = std::env::var_os("HWLOC_FSROOT");
    if let Some(r) = sysfs_root {
        // SAFETY: serialized by HWLOC_ENV; nothing else in this process
        // reads HWLOC_FSROOT.
        unsafe { std::env::set_var("HWLOC_FSROOT", r) };
    }
    let topo = hwloc2::Topology::new();
    if sysfs_root.is_some() {
        // SAFETY: as above.
        unsafe {
            match &saved {
                Some(v) => std::env::set_var("HWLOC_FSROOT", v),
                None => std::env::remove_var("HWLOC_FSROOT"),
            }
        }
    }
    let topo = topo.ok_or_else(|| anyhow!("hwloc could not load the topology"))?;
    let pus = topo
        .objects_with_type(&ObjectType::PU)
        .map_err(|e| anyhow!("hwloc lists no CPUs: {e:?}"))?;

    let mut cpus = Vec::with_capacity(pus.len());
    for pu in pus {
        // NUMA nodes live at a virtual depth that hwloc2's bounds checks
        // reject; the PU's own nodeset names its node instead.
        let node = pu
            .nodeset()
            .map(|ns| ns.first())
            .filter(|&n| n >= 0)
            .unwrap_or(0) as usize;
        cpus.push(CpuInfo {
            cpu: pu.os_index() as usize,
            node,
            l3: ancestor(pu, ObjectType::L3Cache),
            l2: ancestor(pu, ObjectType::L2Cache),
            core: ancestor(pu, ObjectType::Core),
            kind: None,
        });
    }
    Ok(cpus)
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

/// Parse a kernel CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Result<BTreeSet<usize>> {
    let mut set = BTreeSet::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
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

/// Online CPUs from `<root>/sys/devices/system/cpu/online`.
pub fn read_online_cpus(root: &Path) -> Result<BTreeSet<usize>> {
    let path = root.join("sys/devices/system/cpu/online");
    let s = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_cpu_list(&s).with_context(|| format!("parsing {}", path.display()))
}

/// The contents of `path`, or `None` if it does not exist (a kernel or a
/// machine without that file); any other failure is an error naming it.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
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
                    .trim()
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

/// NUMA distances from `<root>/sys/devices/system/node/node*/distance`.
/// Each file lists distances in the order of `node/online`.
fn read_distances(root: &Path) -> Result<BTreeMap<usize, BTreeMap<usize, u32>>> {
    let dir = root.join("sys/devices/system/node");
    let online = match fs::read_to_string(dir.join("online")) {
        Ok(s) => parse_cpu_list(&s).with_context(|| format!("parsing {}/online", dir.display()))?,
        Err(_) => return Ok(BTreeMap::new()),
    };
    let order: Vec<usize> = online.into_iter().collect();
    let mut out = BTreeMap::new();
    for &n in &order {
        let path = dir.join(format!("node{n}/distance"));
        let Ok(s) = fs::read_to_string(&path) else {
            continue;
        };
        let row: Vec<u32> = s
            .split_whitespace()
            .map(|v| v.parse::<u32>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("parsing {}", path.display()))?;
        out.insert(n, order.iter().copied().zip(row).collect());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        let s = parse_cpu_list("0-3,8,10-11\n").unwrap();
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert!(parse_cpu_list("").unwrap().is_empty());
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
        write(&r, "sys/devices/cpu_atom/cpus", "4-7\n");
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
        for (c, v) in [(0, 446), (1, 446), (2, 871), (3, 1024)] {
            write(
                &r,
                &format!("sys/devices/system/cpu/cpu{c}/cpu_capacity"),
                &format!("{v}\n"),
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
}
