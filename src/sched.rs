//! The thin layer between the daemon and the kernel: checks that loading can
//! work, hands the domains to the BPF program, loads and attaches it, reads
//! its counters and writes the balancer's moves and the tuner's slice.
//!
//! Policy lives elsewhere (domains, balancer, tuner); this file only moves
//! data across the user/kernel boundary, and makes sure that whatever goes
//! wrong, nothing stays loaded: the struct_ops link is dropped on every
//! exit path (Drop), which is what detaches the scheduler.

use std::fs;
use std::mem::MaybeUninit;
use std::path::Path;

use anyhow::{Context, Result, bail};
use libbpf_rs::{MapCore, MapFlags, OpenObject};
use log::{debug, info};
use scx_utils::{UserExitInfo, scx_ops_attach, scx_ops_load, scx_ops_open, uei_exited, uei_read};

use crate::bpf_intf;
use crate::bpf_skel::{BpfSkel, BpfSkelBuilder};
use crate::domains::{Domains, MAX_CPUS};
use crate::load::{DOMMASK_WORDS, TaskSample, read_candidates};
use crate::stats::{Sample, sum_dom_load, sum_percpu};
use crate::tuner::Tuning;

const SCX_SYSFS: &str = "/sys/kernel/sched_ext";

/// Settings fixed at load time.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub slice_us: u64,
    pub load_half_life_ns: u64,
    pub kick_node_greedy: bool,
    pub kick_xnode_greedy: bool,
    pub direct_node_greedy: bool,
    pub direct_xnode_greedy: bool,
    /// Plain FIFO per domain instead of deadlines (`--fifo`).
    pub fifo: bool,
    /// Never preempt a running task for a waking one (`--no-preempt`).
    pub no_preempt: bool,
    /// How much later a running task's deadline must be for a waking task
    /// to preempt it (`--preempt-margin-us`).
    pub preempt_margin_us: u64,
    /// A waking task's head start, in percent of a slice
    /// (`--sleeper-credit-pct`).
    pub sleeper_credit_pct: u8,
    /// Schedule only tasks that chose SCHED_EXT (`--partial`).
    pub partial: bool,
    pub verbose: u8,
}

/// Refuse early, with one clear line, what would fail half-way later.
pub fn preflight() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("must run as root: loading a BPF scheduler needs CAP_SYS_ADMIN and CAP_BPF");
    }
    if !Path::new(SCX_SYSFS).is_dir() {
        bail!(
            "this kernel has no sched_ext ({SCX_SYSFS} is missing; needs Linux 6.12+ built with \
             CONFIG_SCHED_CLASS_EXT=y). `scripts/vm-run` shows scx_rebal in a VM instead"
        );
    }
    if let Some(name) = running_scheduler()? {
        bail!("another sched_ext scheduler ({name}) is already running; stop it first");
    }
    Ok(())
}

/// The name of the sched_ext scheduler currently attached, if any.
pub fn running_scheduler() -> Result<Option<String>> {
    let state_path = format!("{SCX_SYSFS}/state");
    let state = fs::read_to_string(&state_path).with_context(|| format!("reading {state_path}"))?;
    if state.trim() == "disabled" {
        return Ok(None);
    }
    let ops = fs::read_to_string(format!("{SCX_SYSFS}/root/ops")).unwrap_or_default();
    let ops = ops.trim();
    Ok(Some(if ops.is_empty() {
        format!("state {}", state.trim())
    } else {
        ops.to_string()
    }))
}

pub struct Scheduler<'a> {
    skel: BpfSkel<'a>,
    link: Option<libbpf_rs::Link>,
    load_half_life_ns: u64,
    pub domains: Domains,
}

impl<'a> Scheduler<'a> {
    pub fn init(
        cfg: &LoadConfig,
        domains: Domains,
        open_object: &'a mut MaybeUninit<OpenObject>,
    ) -> Result<Self> {
        let nr_cpu_ids = *scx_utils::NR_CPU_IDS;
        if nr_cpu_ids > MAX_CPUS {
            bail!(
                "this machine has {nr_cpu_ids} possible CPUs, more than the {MAX_CPUS} supported"
            );
        }

        let mut builder = BpfSkelBuilder::default();
        builder.obj_builder.debug(cfg.verbose > 1);
        crate::logging::route_libbpf(cfg.verbose);
        let mut skel = scx_ops_open!(builder, open_object, rebal_ops, None)
            .context("opening the BPF scheduler")?;

        // scx_utils appends a version suffix to the ops name; operators and
        // tests look for plain "rebal" in /sys/kernel/sched_ext/root/ops.
        let ops = skel.struct_ops.rebal_ops_mut();
        ops.name.fill(0);
        for (dst, src) in ops.name.iter_mut().zip(b"rebal") {
            *dst = *src as _;
        }
        if cfg.partial {
            let flag = *scx_utils::compat::SCX_OPS_SWITCH_PARTIAL;
            if flag == 0 {
                bail!("--partial: this kernel's sched_ext has no SCX_OPS_SWITCH_PARTIAL");
            }
            ops.flags |= flag;
        }

        let rodata = skel
            .maps
            .rodata_data
            .as_mut()
            .context("BPF object has no rodata")?;
        rodata.nr_doms = domains.domains.len() as u32;
        rodata.nr_cpu_ids = nr_cpu_ids as u32;
        rodata.smt_enabled = domains.smt;
        rodata.load_half_life_ns = cfg.load_half_life_ns;
        rodata.kick_node_greedy = cfg.kick_node_greedy;
        rodata.kick_xnode_greedy = cfg.kick_xnode_greedy;
        rodata.direct_node_greedy = cfg.direct_node_greedy;
        rodata.direct_xnode_greedy = cfg.direct_xnode_greedy;
        rodata.fifo_mode = cfg.fifo;
        rodata.no_preempt = cfg.no_preempt;
        rodata.preempt_margin_ns = cfg.preempt_margin_us * 1000;
        rodata.sleeper_credit_pct = u32::from(cfg.sleeper_credit_pct);

        for slot in rodata.cpu_dom.iter_mut() {
            *slot = bpf_intf::consts_NO_DOM;
        }
        for d in &domains.domains {
            for &cpu in &d.cpus {
                rodata.cpu_dom[cpu] = d.id as u32;
            }
            rodata.dom_node[d.id] = domains.node_index(d.node) as u32;
            for (i, &o) in domains.steal_order[d.id].iter().enumerate() {
                rodata.steal_order[d.id][i] = o as u32;
            }
        }
        let data = skel
            .maps
            .data_data
            .as_mut()
            .context("BPF object has no data section")?;
        data.slice_ns = cfg.slice_us * 1000;

        let mut skel = scx_ops_load!(skel, rebal_ops, uei).context("loading the BPF scheduler")?;
        let link = scx_ops_attach!(skel, rebal_ops).context("attaching the BPF scheduler")?;
        info!(
            "scx_rebal attached: {} domains on {} NUMA node(s), SMT {}",
            domains.domains.len(),
            domains.nodes.len(),
            if domains.smt { "on" } else { "off" }
        );
        Ok(Scheduler {
            skel,
            link: Some(link),
            load_half_life_ns: cfg.load_half_life_ns,
            domains,
        })
    }

    /// Whether the kernel has ejected the scheduler (or it exited itself).
    pub fn exited(&self) -> bool {
        uei_exited!(&self.skel, uei)
    }

    /// Detach (if still attached) and report why the scheduler ended: an
    /// "EXIT: ..." line on stderr whatever the kind of exit. An error exit
    /// (a stall, a BPF error, SysRq-S) is an ejection, not a failure of the
    /// daemon, so it is logged here rather than returned.
    pub fn finish(mut self) -> UserExitInfo {
        self.link.take();
        let uei = uei_read!(&self.skel, uei);
        if let Err(why) = uei.report() {
            log::error!("{why:#}");
        }
        uei
    }

    /// Read every domain's counters and load averages.
    pub fn sample(&self) -> Result<Sample> {
        let mut doms = Vec::with_capacity(self.domains.domains.len());
        let mut loads = Vec::with_capacity(self.domains.domains.len());
        for d in &self.domains.domains {
            let key = (d.id as u32).to_ne_bytes();
            let shares = self
                .skel
                .maps
                .dom_loads
                .lookup_percpu(&key, MapFlags::ANY)
                .with_context(|| format!("reading the load of domain {}", d.id))?;
            loads.push(
                shares
                    .map(|v| sum_dom_load(&v, monotonic_ns(), self.load_half_life_ns))
                    .unwrap_or_default(),
            );
            let vals = self
                .skel
                .maps
                .dom_stats
                .lookup_percpu(&key, MapFlags::ANY)
                .with_context(|| format!("reading counters of domain {}", d.id))?;
            doms.push(
                vals.map(|v| sum_percpu(&v))
                    .unwrap_or([0; crate::stats::NR_DSTATS]),
            );
        }
        let queued = self
            .skel
            .maps
            .bss_data
            .as_ref()
            .map(|b| {
                self.domains
                    .domains
                    .iter()
                    .map(|d| b.dom_queued.get(d.id).copied().unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Sample {
            at: std::time::Instant::now(),
            doms,
            loads,
            queued,
        })
    }

    pub fn slice_us(&self) -> u64 {
        self.skel
            .maps
            .data_data
            .as_ref()
            .map(|d| d.slice_ns / 1000)
            .unwrap_or(0)
    }

    /// Hand the tuner's answer to BPF: the slice, and which domains are
    /// lightly used enough for greedy placement and kicks.
    pub fn apply_tuning(&mut self, t: &Tuning) {
        // (The masks start all-set in BPF, so they live in .data too.)
        if let Some(data) = self.skel.maps.data_data.as_mut() {
            data.slice_ns = t.slice_us * 1000;
            data.greedy_direct = dom_bits(&t.direct);
            data.greedy_kick = dom_bits(&t.kick);
        }
    }

    /// Migration candidates BPF published, decayed to now.
    pub fn candidates(&self, half_life_ns: u64, max_age_ns: u64) -> Vec<TaskSample> {
        let Some(bss) = self.skel.maps.bss_data.as_ref() else {
            return Vec::new();
        };
        let n = self.domains.domains.len().min(bss.cands.len());
        // The skeleton has its own copy of struct cand_slot (from BTF);
        // convert to the bindgen one the policy code speaks.
        let owned: Vec<Vec<bpf_intf::cand_slot>> = bss.cands[..n]
            .iter()
            .map(|t| {
                t.iter()
                    .map(|c| bpf_intf::cand_slot {
                        pid: c.pid,
                        dom: c.dom,
                        weight: c.weight,
                        dcycle: c.dcycle,
                        updated_ns: c.updated_ns,
                        dom_mask: c.dom_mask,
                    })
                    .collect()
            })
            .collect();
        let tables: Vec<&[bpf_intf::cand_slot]> = owned.iter().map(Vec::as_slice).collect();
        read_candidates(&tables, monotonic_ns(), half_life_ns, max_age_ns)
    }

    /// Replace the pending moves with `moves` (pid, destination domain).
    /// Moves of the previous round that have not happened yet (the task has
    /// not woken up since) are dropped: this round's view supersedes them.
    pub fn write_moves(&mut self, moves: &[(i32, usize)]) -> Result<()> {
        let map = &self.skel.maps.migrations;
        let stale: Vec<Vec<u8>> = map.keys().collect();
        for k in stale {
            // A key BPF consumed in the meantime is already gone: fine.
            let _ = map.delete(&k);
        }
        for &(pid, dom) in moves {
            map.update(
                &pid.to_ne_bytes(),
                &(dom as u32).to_ne_bytes(),
                MapFlags::ANY,
            )
            .with_context(|| format!("writing the move of pid {pid} to domain {dom}"))?;
        }
        if let Some(bss) = self.skel.maps.bss_data.as_mut() {
            bss.migrations_pending = u32::from(!moves.is_empty());
        }
        Ok(())
    }
}

/// A bitmap of the domains whose flag is set (bit `i` of word `i / 64`).
fn dom_bits(flags: &[bool]) -> [u64; DOMMASK_WORDS] {
    let mut w = [0u64; DOMMASK_WORDS];
    for (i, _) in flags.iter().enumerate().filter(|(_, f)| **f) {
        if let Some(word) = w.get_mut(i / 64) {
            *word |= 1 << (i % 64);
        }
    }
    w
}

/// CLOCK_MONOTONIC in ns: the clock BPF's scx_bpf_now() follows.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Drop for Scheduler<'_> {
    fn drop(&mut self) {
        if self.link.take().is_some() {
            debug!("detached the BPF scheduler");
        }
    }
}
