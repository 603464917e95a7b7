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
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::atomic::{Ordering, fence};

use anyhow::{Context, Result, bail};
use libbpf_rs::{MapCore, MapFlags, OpenObject};
use log::{debug, info};
use scx_utils::{UserExitInfo, scx_ops_attach, scx_ops_load, scx_ops_open, uei_exited, uei_read};

use crate::bpf_intf;
use crate::bpf_skel::{BpfSkel, BpfSkelBuilder};
use crate::domains::{Domains, MAX_CPUS};
use crate::load::{DOMMASK_WORDS, TaskSample, read_candidates};
use crate::stats::{Sample, sum_slots};
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
    /// Put WAKE_SYNC wakees on the waker's CPU (`--sync-wakeups`).
    pub sync_wakeups: bool,
    /// Least tasks waiting in another node's domain for a CPU to steal
    /// from it (`--xnode-steal-min`).
    pub xnode_steal_min: u32,
    /// Schedule only tasks that chose SCHED_EXT (`--partial`).
    pub partial: bool,
    /// sched_ext's hotplug sequence number when the topology was read: the
    /// kernel refuses the load if a CPU came or went since (None: the
    /// number read when the program is opened, as scx_utils does).
    pub hotplug_seq: Option<u64>,
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
    /// The `pcpu_doms` map, mapped into our memory (see bpf/intf.h).
    slots: SlotMap,
    /// Domain of each CPU id, as given to BPF.
    cpu_dom: Vec<Option<usize>>,
    load_half_life_ns: u64,
    pub domains: Domains,
}

/// The `pcpu_doms` array map (BPF_F_MMAPABLE) mapped read-only: one
/// `struct pcpu_dom` per (CPU, domain), which BPF keeps writing. Reading it
/// costs no system call, where a per-CPU map would cost one per domain.
struct SlotMap {
    ptr: *mut libc::c_void,
    len: usize,
    count: usize,
}

impl SlotMap {
    fn new(map: &impl AsRawFd, count: usize) -> Result<SlotMap> {
        let bytes = count * std::mem::size_of::<bpf_intf::pcpu_dom>();
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let len = bytes.div_ceil(page).max(1) * page;
        // SAFETY: a fresh shared, read-only mapping of a map fd we hold;
        // the kernel checks the length against the map.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                map.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("mapping the pcpu_doms map ({len} bytes)"));
        }
        Ok(SlotMap { ptr, len, count })
    }

    /// A copy of every slot. Each is read with a volatile read, as BPF may
    /// be writing it: a slot read half-way through an update is off by
    /// that one update until the next reading.
    fn read(&self) -> Vec<bpf_intf::pcpu_dom> {
        let base = self.ptr.cast::<bpf_intf::pcpu_dom>();
        (0..self.count)
            // SAFETY: `count` slots of pcpu_dom (plain integers, 8-byte
            // aligned in a page-aligned mapping) lie within `len` bytes.
            .map(|i| unsafe { std::ptr::read_volatile(base.add(i)) })
            .collect()
    }
}

impl Drop for SlotMap {
    fn drop(&mut self) {
        // SAFETY: ptr/len are the mapping made in new(), unmapped once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
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

        let nr_doms = domains.domains.len();
        let nr_slots = nr_cpu_ids * nr_doms;
        let t0 = std::time::Instant::now();
        let mut builder = BpfSkelBuilder::default();
        builder.obj_builder.debug(cfg.verbose > 1);
        crate::logging::route_libbpf(cfg.verbose);
        let mut skel = scx_ops_open!(builder, open_object, rebal_ops, None)
            .context("opening the BPF scheduler")?;

        // scx_utils appends a version suffix to the ops name; operators and
        // tests look for plain "rebal" in /sys/kernel/sched_ext/root/ops.
        let ops = skel.struct_ops.rebal_ops_mut();
        if let Some(seq) = cfg.hotplug_seq {
            ops.hotplug_seq = seq;
        }
        ops.name.fill(0);
        for (dst, src) in ops.name.iter_mut().zip(b"rebal") {
            *dst = *src as _;
        }
        skel.maps
            .pcpu_doms
            .set_max_entries(u32::try_from(nr_slots).context("too many CPUs x domains")?)
            .context("sizing the pcpu_doms map")?;
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
        rodata.nr_doms = nr_doms as u32;
        rodata.nr_cpu_ids = nr_cpu_ids as u32;
        rodata.smt_enabled = domains.smt;
        rodata.load_half_life_ns = cfg.load_half_life_ns;
        rodata.load_half_life_recip = crate::arith::decay_recip(cfg.load_half_life_ns);
        rodata.kick_node_greedy = cfg.kick_node_greedy;
        rodata.kick_xnode_greedy = cfg.kick_xnode_greedy;
        rodata.direct_node_greedy = cfg.direct_node_greedy;
        rodata.direct_xnode_greedy = cfg.direct_xnode_greedy;
        rodata.fifo_mode = cfg.fifo;
        rodata.no_preempt = cfg.no_preempt;
        rodata.preempt_margin_ns = cfg.preempt_margin_us * 1000;
        rodata.sleeper_credit_pct = u32::from(cfg.sleeper_credit_pct);
        rodata.sync_wakeups = cfg.sync_wakeups;
        rodata.xnode_steal_min = cfg.xnode_steal_min;

        for slot in rodata.cpu_dom.iter_mut() {
            *slot = bpf_intf::consts_NO_DOM;
        }
        for d in &domains.domains {
            for &cpu in &d.cpus {
                rodata.cpu_dom[cpu] = d.id as u32;
            }
            // The kernel's node id: BPF compares them, and gives them to
            // scx_bpf_create_dsq() as the node to allocate on.
            rodata.dom_node[d.id] = d.node as u32;
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

        let t1 = std::time::Instant::now();
        let mut skel = scx_ops_load!(skel, rebal_ops, uei).context("loading the BPF scheduler")?;
        let slots = SlotMap::new(&skel.maps.pcpu_doms.as_fd(), nr_slots)?;
        let t2 = std::time::Instant::now();
        let link = scx_ops_attach!(skel, rebal_ops).context("attaching the BPF scheduler")?;
        info!(
            "scx_rebal attached: {} domains on {} NUMA node(s), SMT {} (open {:.1} s, load \
             {:.1} s, attach {:.1} s)",
            domains.domains.len(),
            domains.nodes.len(),
            if domains.smt { "on" } else { "off" },
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            t2.elapsed().as_secs_f64()
        );
        let mut cpu_dom = vec![None; nr_cpu_ids];
        for d in &domains.domains {
            for &cpu in &d.cpus {
                if let Some(slot) = cpu_dom.get_mut(cpu) {
                    *slot = Some(d.id);
                }
            }
        }
        Ok(Scheduler {
            skel,
            link: Some(link),
            slots,
            cpu_dom,
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

    /// Read every domain's counters, load averages and queue length: the
    /// counters and loads from the mapped slots and the .bss (no system
    /// call), the queue lengths by running the `read_queues` program once.
    pub fn sample(&self) -> Result<Sample> {
        let nr_doms = self.domains.domains.len();
        let input = libbpf_rs::ProgramInput::default();
        self.skel
            .progs
            .read_queues
            .test_run(input)
            .context("running the read_queues BPF program")?;
        let bss = self
            .skel
            .maps
            .bss_data
            .as_ref()
            .context("BPF object has no bss")?;
        // A CPU's run counter and the start of its uncharged run change
        // together (charge_run in BPF, under cpu_charge_seq); read while
        // one of them changed, a run of up to a slice would be counted
        // twice or not at all, and a 100 ms tuner tick would see a busy
        // domain 10-20% idle. Read again then (a few times at most: BPF
        // holds the count odd for a few instructions).
        let mut tries = 0;
        let (slots, busy_at, now) = loop {
            let before = read_live(&bss.cpu_charge_seq);
            // The instant the snapshot is of: taken before the reads, so a
            // run that ends while they go on (the counter then has it, or
            // the sequence changed) is not also counted up to a later
            // `now` (this vCPU may wait a TCG round between two reads).
            let now = monotonic_ns();
            fence(Ordering::Acquire);
            let slots = self.slots.read();
            let busy_at = read_live(&bss.cpu_busy_at);
            fence(Ordering::Acquire);
            let after = read_live(&bss.cpu_charge_seq);
            tries += 1;
            if tries >= 8 || (before == after && before.iter().all(|s| s % 2 == 0)) {
                break (slots, busy_at, now);
            }
        };
        let (doms, loads) = sum_slots(
            &slots,
            nr_doms,
            &busy_at,
            |cpu| self.cpu_dom.get(cpu).copied().flatten(),
            now,
            self.load_half_life_ns,
        );
        Ok(Sample {
            at_ns: now,
            doms,
            loads,
            queued: (0..nr_doms)
                .map(|d| bss.dom_queued.get(d).copied().unwrap_or(0))
                .collect(),
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

    /// The largest weight BPF counts a task's duty cycle with in the
    /// domains' load averages (see load.rs).
    pub fn load_weight_cap(&self) -> u32 {
        self.skel
            .maps
            .data_data
            .as_ref()
            .map_or(bpf_intf::consts_WEIGHT_NICE0, |d| d.load_weight_cap)
    }

    pub fn set_load_weight_cap(&mut self, cap: u32) {
        if let Some(data) = self.skel.maps.data_data.as_mut() {
            data.load_weight_cap = cap.clamp(1, bpf_intf::consts_WEIGHT_MAX);
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

    /// Take back the moves BPF has not carried out yet (the task has not
    /// woken up since they were written) and return their pids: the next
    /// round's view supersedes them. A key that BPF consumes while this
    /// runs cannot be deleted any more, and so counts as carried out.
    pub fn take_unapplied_moves(&mut self) -> Vec<i32> {
        let map = &self.skel.maps.migrations;
        let stale: Vec<Vec<u8>> = map.keys().collect();
        stale
            .into_iter()
            .filter(|k| map.delete(k).is_ok())
            .filter_map(|k| Some(i32::from_ne_bytes(k.as_slice().try_into().ok()?)))
            .collect()
    }

    /// Write this round's moves (pid, destination domain); call
    /// [`Scheduler::take_unapplied_moves`] first.
    pub fn write_moves(&mut self, moves: &[(i32, usize)]) -> Result<()> {
        let map = &self.skel.maps.migrations;
        for &(pid, dom) in moves {
            map.update(
                &pid.to_ne_bytes(),
                &(dom as u32).to_ne_bytes(),
                MapFlags::ANY,
            )
            .with_context(|| format!("writing the move of pid {pid} to domain {dom}"))?;
        }
        // BPF counts this down as it carries the moves out, and stops
        // looking the map up at 0 (see maybe_migrate()).
        if let Some(bss) = self.skel.maps.bss_data.as_mut() {
            bss.migrations_pending = i32::try_from(moves.len()).unwrap_or(i32::MAX);
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

/// CLOCK_MONOTONIC in ns: the clock BPF stamps everything we read with
/// (bpf_ktime_get_ns(), see bpf/intf.h).
/// A copy of an array BPF writes in the mmapped .bss, each element read
/// with a volatile read (the compiler may not assume it unchanged).
fn read_live<T: Copy>(a: &[T]) -> Vec<T> {
    // SAFETY: each element is a valid, aligned T inside the slice.
    a.iter()
        .map(|v| unsafe { std::ptr::read_volatile(v) })
        .collect()
}

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
