//! scx_rebal: command line, start-up checks and the daemon's main loop.
//!
//! Order matters: everything that can be refused (bad options, bad
//! cpumasks, not root, no sched_ext, another scheduler running) is refused
//! before anything is loaded, so an error never leaves a half-loaded
//! scheduler behind. Then the loop: load, run until asked to stop or until
//! the kernel ejects us, and start again with a fresh topology when the
//! kernel asks for a restart (CPU hotplug).

use std::io::Write;
use std::mem::MaybeUninit;
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use log::{debug, info, warn};

use scx_rebal::balancer::{self, BalancerConfig, Reason};
use scx_rebal::bpf_intf;
use scx_rebal::demand::DemandTracker;
use scx_rebal::domains::{DomainOpts, Domains};
use scx_rebal::hotplug;
use scx_rebal::load;
use scx_rebal::monitor;
use scx_rebal::moves::MoveBook;
use scx_rebal::output::Output;
use scx_rebal::sched::{self, LoadConfig, Scheduler};
use scx_rebal::stats::{self, BalancerTotals, SchedStats};
use scx_rebal::topology::Topology;
use scx_rebal::tuner::{Tuner, TunerConfig, Tuning};

/// Loads tried in a row after a restart request before giving up.
const RESTART_RETRIES: u32 = 5;

/// Longest wait, after a restart request, for the hotplug operation that
/// asked for it to end (see hotplug.rs); then it loads anyway.
const RESTART_WAIT: Duration = Duration::from_secs(60);

/// scx_rebal: a sched_ext scheduler that keeps each task on one last-level
/// cache (a "domain") and balances load between domains and NUMA nodes.
///
/// Every task waits in the dispatch queue of its domain, ordered by virtual
/// time; idle CPUs steal from sibling domains of their own NUMA node first.
/// Stop it with Ctrl-C (SIGINT) or SIGTERM: the kernel's default scheduler
/// takes over again at once.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Opts {
    /// Print the domains that would be used, as JSON, and exit without
    /// loading anything. Works on any Linux machine.
    #[arg(long)]
    dump_domains: bool,

    /// Read the topology from a copy of /sys under DIR (a folder holding
    /// sys/devices/system/{cpu,node}) instead of this machine.
    #[arg(long, value_name = "DIR")]
    sysfs_root: Option<PathBuf>,

    /// Define the domains by hand, one hex cpumask each (e.g. 0x0f 0xf0).
    /// Together they must cover every online CPU, without overlap.
    #[arg(long, value_name = "MASK", num_args = 1..)]
    cpumasks: Vec<String>,

    /// On a hybrid CPU, keep performance and efficiency cores that share a
    /// last-level cache in one domain. By default each core type gets its
    /// own domain: on a mixed one a task's speed depends on which kind of
    /// core it landed on, and the load figures the balancer compares lie.
    /// Keep them together when one bigger pool of CPUs matters more than
    /// even speed (throughput batch work that any core will do), or when
    /// one type has too few cores to be worth a domain of its own. Not
    /// with --cpumasks.
    #[arg(long, conflicts_with = "cpumasks")]
    hybrid_together: bool,

    /// Split every last-level cache with more than N CPUs into the fewest
    /// domains of at most N CPUs each, as even as possible, cut along core
    /// order: SMT siblings stay together (N smaller than a core's thread
    /// count is an error), and so do cores sharing an L2 where N allows.
    /// For very large LLCs (e.g. 56 cores on one L3), where one domain
    /// would make every steal and every balance decision machine-wide.
    /// Not with --cpumasks.
    #[arg(long, value_name = "N", conflicts_with = "cpumasks",
          value_parser = clap::value_parser!(u64).range(1..=bpf_intf::consts_MAX_CPUS as u64))]
    max_domain_cpus: Option<u64>,

    /// Fixed time slice in microseconds. Without it, the tuner varies the
    /// slice between --slice-min-us and --slice-max-us: shorter the more
    /// tasks wait for a CPU.
    #[arg(long, value_name = "US", conflicts_with_all = ["slice_min_us", "slice_max_us"],
          value_parser = clap::value_parser!(u64).range(50..=1_000_000))]
    slice_us: Option<u64>,

    /// Shortest slice the tuner gives, when many tasks wait (microseconds).
    #[arg(long, value_name = "US", default_value_t = bpf_intf::consts_SLICE_MIN_US_DFL as u64,
          value_parser = clap::value_parser!(u64).range(50..=1_000_000))]
    slice_min_us: u64,

    /// Longest slice the tuner gives, when no task waits (microseconds).
    #[arg(long, value_name = "US", default_value_t = bpf_intf::consts_SLICE_MAX_US_DFL as u64,
          value_parser = clap::value_parser!(u64).range(50..=1_000_000))]
    slice_max_us: u64,

    /// Seconds between two tuner ticks (slice and lightly-used domains).
    #[arg(long, value_name = "SECS",
          default_value_t = bpf_intf::consts_TUNE_INTERVAL_MS_DFL as f64 / 1000.0,
          allow_negative_numbers = true, value_parser = tune_secs)]
    tune_interval: f64,

    /// A domain whose CPUs were busy less than PCT percent of the last tuner
    /// tick may run waking tasks of full domains on its idle CPUs
    /// ("direct greedy"). 0 turns it off.
    #[arg(long, value_name = "PCT",
          default_value_t = bpf_intf::consts_DIRECT_GREEDY_UNDER_DFL as u8,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    direct_greedy_under: u8,

    /// A domain busy less than PCT percent has its idle CPUs woken to steal
    /// work queued in full domains ("kick greedy"). 0 turns it off.
    #[arg(long, value_name = "PCT",
          default_value_t = bpf_intf::consts_KICK_GREEDY_UNDER_DFL as u8,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    kick_greedy_under: u8,

    /// Plain FIFO per domain instead of deadlines (the scx_simple policy),
    /// for comparison.
    #[arg(long)]
    fifo: bool,

    /// Never cut a running task's slice short for a waking task with a
    /// much earlier deadline (wakeup preemption is on by default: it is what
    /// keeps a frame or audio thread from waiting a whole slice).
    #[arg(long)]
    no_preempt: bool,

    /// A waking task preempts a running one only if the running task's
    /// deadline is later by more than US microseconds: a CPU hog against
    /// an interactive task, not two halves of a pipeline.
    #[arg(long, value_name = "US",
          default_value_t = bpf_intf::consts_PREEMPT_MARGIN_US_DFL as u64,
          value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    preempt_margin_us: u64,

    /// How far behind its domain's virtual clock a waking task may be
    /// placed, in percent of a slice: the head start a sleeper gets over the
    /// tasks that kept running. It is never more than the time the task
    /// slept, so a consumer that blocked for a moment gets next to none and
    /// waits behind the producer it waits for, taking more work per run
    /// (fewer context switches), while a task that slept long (a frame
    /// thread, an interactive program) gets up to this share of a slice.
    #[arg(long, value_name = "PCT",
          default_value_t = bpf_intf::consts_SLEEPER_CREDIT_PCT_DFL as u8,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    sleeper_credit_pct: u8,

    /// For a task woken with WAKE_SYNC (pipes, sockets: the waker says it
    /// is about to sleep) when its domain has no idle CPU, aim it at the
    /// waker's CPU, to run there once the waker blocks, instead of
    /// preempting a CPU hog elsewhere to run it at once. Only for wakers that
    /// block after most of their wakeups.
    #[arg(long)]
    sync_wakeups: bool,

    /// An idle CPU steals from a domain of another NUMA node only when that
    /// domain has at least N tasks waiting. The default, 1, takes whatever
    /// waits: an idle CPU costs more than a task running one node away from
    /// its memory for a slice. Raise it for memory-bound work on machines
    /// with real NUMA penalties, at the price of idle time on the far node
    /// while one node is overloaded.
    #[arg(long, value_name = "N",
          default_value_t = bpf_intf::consts_XNODE_STEAL_MIN_DFL,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    xnode_steal_min: u32,

    /// Schedule only the tasks that chose SCHED_EXT; leave the rest to the
    /// kernel's default scheduler.
    #[arg(long)]
    partial: bool,

    /// Half-life of the load averages, in seconds.
    #[arg(long, value_name = "SECS",
          default_value_t = bpf_intf::consts_LOAD_HALF_LIFE_MS_DFL as f64 / 1000.0,
          allow_negative_numbers = true, value_parser = positive_secs)]
    load_half_life: f64,

    /// Seconds between two balancing rounds (and two --stats-json lines).
    #[arg(long, value_name = "SECS", default_value_t = 2.0, allow_negative_numbers = true,
          value_parser = positive_secs)]
    interval: f64,

    /// When a domain has no idle CPU for new work, do not wake idle CPUs of
    /// other (lightly used) domains in the same NUMA node to steal it.
    #[arg(long)]
    no_kick_node: bool,

    /// Also wake idle CPUs of other NUMA nodes to steal work (off by default:
    /// crossing nodes costs memory locality).
    #[arg(long)]
    kick_xnode: bool,

    /// When a waking task's domain has no idle CPU, do not run it on an idle
    /// CPU of another domain of the same NUMA node.
    #[arg(long)]
    no_direct_node: bool,

    /// Let waking tasks run on idle CPUs of other NUMA nodes too.
    #[arg(long)]
    direct_xnode: bool,

    /// Compute and report the balancer's plan every interval, but move no
    /// task.
    #[arg(long)]
    no_load_balance: bool,

    /// Append one JSON object per interval (and one at exit) to FILE, or to
    /// stdout with "-". The fields are those of --help-stats.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<String>,

    /// Print a table of the scheduler's figures every SECS seconds while
    /// scheduling (to stdout; the same table as --monitor).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = positive_secs)]
    stats: Option<f64>,

    /// Load nothing: attach to the scx_rebal running on this machine (its
    /// stats socket, /var/run/scx/root/stats, root only) and print its table
    /// every SECS seconds, waiting for one to start if none is running.
    /// Stop with Ctrl-C.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = positive_secs,
          conflicts_with_all = ["dump_domains", "stats", "stats_json", "run_for", "cpumasks",
                                "sysfs_root", "help_stats"])]
    monitor: Option<f64>,

    /// Describe every field of the stats (--stats-json lines, the stats
    /// socket, the --stats table) and exit.
    #[arg(long)]
    help_stats: bool,

    /// Stop by itself after scheduling for SECS seconds (counted from the
    /// moment it attached).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = positive_secs)]
    run_for: Option<f64>,

    /// More logging (-v: per-interval summaries, -vv: libbpf debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn positive_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 || v > 86_400.0 {
        return Err(format!("{s} must be more than 0 and at most 86400 seconds"));
    }
    Ok(v)
}

fn tune_secs(s: &str) -> Result<f64, String> {
    let v = positive_secs(s)?;
    if v < 0.01 {
        return Err(format!("{s} is too short: at least 0.01 seconds"));
    }
    Ok(v)
}

/// Checks between options that clap cannot express.
fn check_opts(opts: &Opts) -> Result<()> {
    if opts.slice_min_us > opts.slice_max_us {
        anyhow::bail!(
            "--slice-min-us {} is more than --slice-max-us {}",
            opts.slice_min_us,
            opts.slice_max_us
        );
    }
    if opts.stats.is_some() && opts.stats_json.as_deref() == Some("-") {
        anyhow::bail!(
            "--stats and --stats-json - both write to stdout; give --stats-json a file instead"
        );
    }
    if opts.tune_interval > opts.interval {
        anyhow::bail!(
            "--tune-interval {} s is longer than --interval {} s: the slice would follow load \
             more slowly than the balancer moves it",
            opts.tune_interval,
            opts.interval
        );
    }
    Ok(())
}

fn tuner_config(opts: &Opts) -> TunerConfig {
    TunerConfig {
        slice_min_us: opts.slice_min_us,
        slice_max_us: opts.slice_max_us,
        fixed_slice_us: opts.slice_us,
        direct_under: f64::from(opts.direct_greedy_under) / 100.0,
        kick_under: f64::from(opts.kick_greedy_under) / 100.0,
    }
}

fn build_domains(opts: &Opts) -> Result<Domains> {
    let topo = Topology::read(opts.sysfs_root.as_deref()).context("reading the CPU topology")?;
    if opts.cpumasks.is_empty() {
        let dopts = DomainOpts {
            hybrid_together: opts.hybrid_together,
            max_domain_cpus: opts.max_domain_cpus.map(|n| n as usize),
        };
        Domains::from_topology(&topo, &dopts)
    } else {
        Domains::from_cpumasks(&opts.cpumasks, &topo).context("invalid --cpumasks")
    }
}

/// The domains to load, and sched_ext's hotplug sequence number read just
/// before the topology: a CPU that comes or goes after it makes the kernel
/// refuse the load rather than schedule a stale topology (see hotplug.rs).
struct Topo {
    domains: Domains,
    hotplug_seq: Option<u64>,
}

fn read_topology(opts: &Opts) -> Result<Topo> {
    let hotplug_seq = hotplug::Sysfs::default().hotplug_seq().ok();
    let t0 = Instant::now();
    let domains = build_domains(opts)?;
    debug!("topology read in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(Topo {
        domains,
        hotplug_seq,
    })
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 | 1 => simplelog::LevelFilter::Info,
        _ => simplelog::LevelFilter::Debug,
    };
    // Time of day (UTC, ms) on every line: moves and restarts can then be
    // lined up with what else happened on the machine (and the VM tests
    // match moves against their own timestamped samples).
    let cfg = simplelog::ConfigBuilder::new()
        .set_time_level(simplelog::LevelFilter::Error)
        .set_time_format_custom(time::macros::format_description!(
            "[hour]:[minute]:[second].[subsecond digits:3]"
        ))
        .set_target_level(simplelog::LevelFilter::Off)
        .set_thread_level(simplelog::LevelFilter::Off)
        .set_location_level(simplelog::LevelFilter::Off)
        .build();
    let _ = simplelog::WriteLogger::init(level, cfg, std::io::stderr());
}

/// Why one run of the scheduler ended.
enum Ended {
    /// Stopped by signal or --run-for; the scheduler ran throughout.
    Stopped,
    /// The kernel ejected it; `restart` if it asked to be loaded again.
    Ejected { restart: bool },
}

/// What lives across loads of the BPF program (restarts after hotplug):
/// the outputs, the --run-for deadline and the totals for the summary.
struct Daemon<'a> {
    opts: &'a Opts,
    shutdown: Arc<AtomicBool>,
    /// First attach; --run-for and the stats' `t` count from here.
    first_attach: Option<Instant>,
    deadline: Option<Instant>,
    /// --stats-json and the --stats table (see output.rs).
    json: Option<Output>,
    table: Option<Output>,
    /// What the stats socket serves, refreshed every tuner tick.
    shared: Arc<Mutex<SchedStats>>,
    /// --stats: the last table's figures and when the next is due.
    printed: Option<SchedStats>,
    next_print: Option<Instant>,
    restarts: u64,
    summary: Summary,
    /// Domains for the next load, read once before anything was loaded (a
    /// topology that cannot be read is refused up front); after a restart
    /// the topology is read afresh.
    domains: Option<Topo>,
}

/// Totals over the whole life of the daemon, for the last line.
#[derive(Default)]
struct Summary {
    secs: f64,
    passes: u64,
    planned: u64,
    applied: u64,
    dispatched: u64,
    steals: u64,
}

impl Daemon<'_> {
    fn t(&self) -> f64 {
        self.first_attach.map_or(0.0, |a| a.elapsed().as_secs_f64())
    }

    fn stats(
        &self,
        sched: &Scheduler,
        reports: &[stats::DomReport],
        bal: &BalancerTotals,
        tuning: Option<&Tuning>,
    ) -> SchedStats {
        SchedStats::build(
            self.t(),
            self.restarts,
            sched.slice_us(),
            reports,
            bal,
            tuning,
        )
    }

    fn publish(&mut self, s: SchedStats) {
        if let Some(every) = self.opts.stats {
            let now = Instant::now();
            if self.next_print.is_none_or(|n| now >= n) {
                if let Some(out) = self.table.as_mut() {
                    out.write(&monitor::format_table(self.printed.as_ref(), &s));
                }
                self.printed = Some(s.clone());
                self.next_print = Some(now + Duration::from_secs_f64(every));
            }
        }
        if let Ok(mut g) = self.shared.lock() {
            *g = s;
        }
    }

    fn write_json(&mut self, s: &SchedStats) {
        if let Some(out) = self.json.as_mut() {
            match serde_json::to_string(s) {
                Ok(line) => out.line(&line),
                Err(e) => warn!("cannot encode the stats as JSON: {e}"),
            }
        }
    }

    /// Load, attach and schedule until stopped or ejected.
    fn run_once(&mut self) -> Result<Ended> {
        let opts = self.opts;
        let Topo {
            domains,
            hotplug_seq,
        } = match self.domains.take() {
            Some(t) => t,
            None => read_topology(opts)?,
        };
        for d in &domains.domains {
            let kind = d.kind.map(|k| format!(" kind {}", k.name()));
            info!(
                "domain {} node {} cpus {:?}{}",
                d.id,
                d.node,
                d.cpus,
                kind.unwrap_or_default()
            );
        }
        let mut tuner = Tuner::new(tuner_config(opts));
        let cfg = LoadConfig {
            // Until the tuner's first tick, a middle value.
            slice_us: opts.slice_us.unwrap_or(
                (bpf_intf::consts_SLICE_DFL_US as u64).clamp(opts.slice_min_us, opts.slice_max_us),
            ),
            load_half_life_ns: (opts.load_half_life * 1e9) as u64,
            kick_node_greedy: !opts.no_kick_node,
            kick_xnode_greedy: opts.kick_xnode,
            direct_node_greedy: !opts.no_direct_node,
            direct_xnode_greedy: opts.direct_xnode,
            fifo: opts.fifo,
            no_preempt: opts.no_preempt,
            preempt_margin_us: opts.preempt_margin_us,
            sleeper_credit_pct: opts.sleeper_credit_pct,
            sync_wakeups: opts.sync_wakeups,
            xnode_steal_min: opts.xnode_steal_min,
            partial: opts.partial,
            hotplug_seq,
            verbose: opts.verbose,
        };
        let mut open_object = MaybeUninit::uninit();
        let mut sched = Scheduler::init(&cfg, domains, &mut open_object)?;
        let mut book = MoveBook::new(
            (opts.interval * 1e9) as u64,
            (opts.load_half_life * 1e9) as u64,
        );
        let mut demand = DemandTracker::default();
        let mut bal = BalancerTotals::default();

        let started = Instant::now();
        // --run-for counts time scheduled, from the first attach (loading
        // can take seconds on a loaded machine), across restarts.
        if self.first_attach.is_none() {
            self.first_attach = Some(started);
            self.deadline = opts.run_for.map(|s| started + Duration::from_secs_f64(s));
        }
        let interval = Duration::from_secs_f64(opts.interval);
        let tune_interval = Duration::from_secs_f64(opts.tune_interval);
        let first = sched.sample()?;
        let mut prev = first.clone();
        let mut prev_tune = first.clone();
        let mut tuning: Option<Tuning> = None;
        let mut next_tick = started + interval;
        let mut next_tune = started + tune_interval;
        let stopped = loop {
            if self.shutdown.load(Ordering::Relaxed)
                || self.deadline.is_some_and(|d| Instant::now() >= d)
            {
                break true;
            }
            if sched.exited() {
                break false;
            }
            let now = Instant::now();
            if now >= next_tune {
                let cur = sched.sample()?;
                let t = tuner.step(&stats::tuner_readings(&sched.domains, &prev_tune, &cur));
                sched.apply_tuning(&t);
                tuning = Some(t);
                let reports = stats::domain_reports(&sched.domains, &prev_tune, &cur);
                let s = self.stats(&sched, &reports, &bal, tuning.as_ref());
                self.publish(s);
                prev_tune = cur;
                next_tune = (next_tune + tune_interval).max(now);
            }
            if now >= next_tick {
                let cur = sched.sample()?;
                let reports = stats::domain_reports(&sched.domains, &prev, &cur);
                if opts.verbose > 0 {
                    for r in &reports {
                        info!(
                            "dom {} load {:.2} util {:.0}% queued {} dispatched {} steal_in {}",
                            r.id,
                            r.load,
                            r.util * 100.0,
                            r.queued,
                            r.total(bpf_intf::dom_stat_idx_DSTAT_DISPATCHED),
                            r.total(bpf_intf::dom_stat_idx_DSTAT_STEAL_IN)
                        );
                    }
                }
                // A round that fails (a snapshot the balancer refuses, a
                // move the map will not take) leaves tasks where they are;
                // it is no reason to stop scheduling.
                if let Err(e) =
                    balance_round(&mut sched, &reports, opts, &mut book, &mut demand, &mut bal)
                {
                    warn!("balancing round skipped: {e:#}");
                }
                let s = self.stats(&sched, &reports, &bal, tuning.as_ref());
                self.write_json(&s);
                prev = cur;
                next_tick += interval;
                if next_tick < now {
                    next_tick = now + interval;
                }
            }
            // Sleep until the next thing is due. A signal or an ejection is
            // noticed at the next tuner tick (100 ms by default) at worst.
            let wake = [Some(next_tick), Some(next_tune), self.deadline]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(next_tune);
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
        };

        // A last line covering the whole run, so short runs report too.
        let last = sched.sample()?;
        let reports = stats::domain_reports(&sched.domains, &first, &last);
        let s = self.stats(&sched, &reports, &bal, tuning.as_ref());
        self.write_json(&s);
        let sum = &mut self.summary;
        sum.secs += started.elapsed().as_secs_f64();
        sum.passes += bal.passes;
        sum.planned += bal.planned;
        sum.applied += s.moves_applied;
        sum.dispatched += s.domains.iter().map(|d| d.dispatched).sum::<u64>();
        sum.steals += s.domains.iter().map(|d| d.steal_in).sum::<u64>();
        self.publish(s);
        let uei = sched.finish();
        Ok(if stopped {
            Ended::Stopped
        } else {
            Ended::Ejected {
                restart: uei.should_restart(),
            }
        })
    }

    /// The one-line summary printed last, for people and harnesses.
    fn summary_line(&self, how: &str) -> String {
        let s = &self.summary;
        let mut line = format!(
            "scx_rebal: {how} after {:.1} s of scheduling; {} restart(s), {} balancer passes, \
             {} moves planned, {} took effect, {} tasks dispatched, {} steals",
            s.secs, self.restarts, s.passes, s.planned, s.applied, s.dispatched, s.steals
        );
        for out in [&self.json, &self.table].into_iter().flatten() {
            if let Some(why) = out.lost() {
                line.push_str(&format!("; stats output LOST ({why})"));
            }
        }
        line
    }
}

/// One round: loads -> snapshot -> plan -> moves written to BPF.
fn balance_round(
    sched: &mut Scheduler,
    reports: &[stats::DomReport],
    opts: &Opts,
    book: &mut MoveBook,
    demand: &mut DemandTracker,
    totals: &mut BalancerTotals,
) -> Result<()> {
    // Last round's moves that BPF has not carried out are taken back; the
    // book then says which tasks must stay put (see moves.rs).
    let unapplied = sched.take_unapplied_moves();
    let now = sched::monotonic_ns();
    book.settle(&unapplied, now);
    let hold = book.held(now);
    let half_life_ns = (opts.load_half_life * 1e9) as u64;
    let tasks = sched.candidates(half_life_ns, book.cand_max_age_ns());
    let nr_cpus: usize = sched.domains.domains.iter().map(|d| d.cpus.len()).sum();
    let demand = demand.update(tasks.iter().map(|t| t.pid), now);
    let loads = load::compute_loads(reports, &tasks, nr_cpus, &demand);
    let snap = load::snapshot(&sched.domains, &loads, &tasks, &hold);

    let t0 = Instant::now();
    let plan = balancer::balance(&snap, &BalancerConfig::default())
        .map_err(|e| anyhow::anyhow!("the balancer refused the snapshot: {e}"))?;
    totals.pass_us = t0.elapsed().as_secs_f64() * 1e6;
    totals.passes += 1;
    totals.planned += plan.moves.len() as u64;
    totals.weighted = loads.weighted;
    totals.spread_before = snap.spread();
    totals.spread_after = plan.apply(&snap).spread();

    for m in &plan.moves {
        let why = match m.reason {
            Reason::CrossNode {
                from_node,
                to_node,
                imbalance: i,
            } => format!(
                "node {from_node} at {:.2}/CPU vs node {to_node} at {:.2}/CPU (avg {:.2})",
                i.src_load_pc, i.dst_load_pc, i.avg_load_pc
            ),
            Reason::IntraNode { node, imbalance: i } => format!(
                "in node {node}: {:.2}/CPU vs {:.2}/CPU (avg {:.2})",
                i.src_load_pc, i.dst_load_pc, i.avg_load_pc
            ),
        };
        info!(
            "{} pid {} dom {} -> {} (load {:.2}): {why}",
            if opts.no_load_balance {
                "would move"
            } else {
                "move"
            },
            m.pid,
            m.from_dom,
            m.to_dom,
            m.load
        );
    }
    if !opts.no_load_balance {
        let moves: Vec<(i32, usize)> = plan.moves.iter().map(|m| (m.pid, m.to_dom)).collect();
        sched.write_moves(&moves)?;
        book.planned(moves.iter().map(|(p, _)| *p), sched::monotonic_ns());
    }
    Ok(())
}

/// How the process ends: exit status and the summary to print last.
/// Status 0: ran until stopped; 2: ejected by the kernel; 1: anything
/// else (refused to start, or failed while running).
struct Outcome {
    status: u8,
    summary: Option<String>,
}

fn install_stop_handler() -> Result<Arc<AtomicBool>> {
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = shutdown.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("installing the SIGINT/SIGTERM handler")?;
    Ok(shutdown)
}

fn run(opts: &Opts) -> Result<Outcome> {
    let done = Outcome {
        status: 0,
        summary: None,
    };
    if opts.help_stats {
        stats::meta_only().describe_meta(&mut std::io::stdout(), None)?;
        return Ok(done);
    }
    if opts.dump_domains {
        println!("{}", build_domains(opts)?.to_json());
        return Ok(done);
    }
    if let Some(secs) = opts.monitor {
        let stop = install_stop_handler()?;
        monitor::monitor(
            Path::new(monitor::SOCKET_PATH),
            Duration::from_secs_f64(secs),
            &stop,
        )?;
        return Ok(done);
    }
    // The options first (a bad one is reported wherever it is run), then
    // the machine: root, sched_ext, nobody else attached.
    check_opts(opts)?;
    let topo = read_topology(opts)?;
    let json = opts
        .stats_json
        .as_deref()
        .map(Output::open_json)
        .transpose()?;
    let table = opts.stats.map(|_| Output::stdout("--stats (stdout)"));
    sched::preflight()?;
    let shutdown = install_stop_handler()?;

    let shared = Arc::new(Mutex::new(SchedStats::default()));
    // The stats are for watching; a machine where the socket cannot be
    // made (read-only /var/run, say) still gets scheduled.
    let _server = match monitor::Server::launch(Path::new(monitor::SOCKET_PATH), shared.clone()) {
        Ok(s) => {
            info!(
                "stats served on {} (scx_rebal --monitor SECS)",
                s.path().display()
            );
            Some(s)
        }
        Err(e) => {
            warn!("no stats socket: {e:#}");
            None
        }
    };
    let mut daemon = Daemon {
        opts,
        shutdown: shutdown.clone(),
        first_attach: None,
        deadline: None,
        json,
        table,
        shared,
        printed: None,
        next_print: None,
        restarts: 0,
        summary: Summary::default(),
        domains: Some(topo),
    };
    let mut failed = 0u32;
    loop {
        match daemon.run_once() {
            Ok(Ended::Stopped) => {
                let how = if shutdown.load(Ordering::Relaxed) {
                    "stopped by signal"
                } else {
                    "stopped at --run-for"
                };
                return Ok(Outcome {
                    status: 0,
                    summary: Some(daemon.summary_line(how)),
                });
            }
            Ok(Ended::Ejected { restart: true }) => {
                daemon.restarts += 1;
                failed = 0;
                warn!(
                    "the kernel asked for a restart (CPU hotplug?): re-reading the topology \
                     (restart {})",
                    daemon.restarts
                );
                // The kernel asks from inside the hotplug operation, which
                // goes on after we are out: wait until it is over.
                let w = hotplug::wait_settled(
                    &hotplug::Sysfs::default(),
                    Duration::from_millis(10),
                    RESTART_WAIT,
                );
                if w.settled {
                    info!(
                        "hotplug settled after {:.2} s; loading again",
                        w.waited.as_secs_f64()
                    );
                } else {
                    warn!(
                        "after {:.0} s sched_ext is still {} and CPUs {:?} are still in a \
                         hotplug operation; loading anyway",
                        w.waited.as_secs_f64(),
                        w.state,
                        w.in_transit
                    );
                }
            }
            Ok(Ended::Ejected { restart: false }) => {
                return Ok(Outcome {
                    status: 2,
                    summary: Some(daemon.summary_line(
                        "EJECTED by the kernel (see the EXIT line above; exit status 2)",
                    )),
                });
            }
            // Right after a hotplug the topology may still be settling (a
            // CPU read as online is gone by the time BPF loads): try again,
            // a few times, rather than leave the machine to the default
            // scheduler for good.
            Err(e) if daemon.restarts > 0 && failed < RESTART_RETRIES => {
                if shutdown.load(Ordering::Relaxed) {
                    return Ok(Outcome {
                        status: 0,
                        summary: Some(daemon.summary_line("stopped by signal")),
                    });
                }
                failed += 1;
                warn!(
                    "restart {} failed ({e:#}); trying again in 1 s",
                    daemon.restarts
                );
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) if daemon.first_attach.is_some() => {
                say(&format!("scx_rebal: error: {e:#}"));
                return Ok(Outcome {
                    status: 1,
                    summary: Some(daemon.summary_line("FAILED")),
                });
            }
            Err(e) => return Err(e),
        }
    }
}

/// A last word on stderr. Unlike eprintln!, it does not panic when stderr
/// is gone (a closed pipe): the exit status must still say how it ended.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn main() -> ExitCode {
    // Exit status 2 means "the kernel ejected the scheduler" to harnesses,
    // so a bad command line exits 1 like every other refusal (clap's own
    // default would be 2). --help and --version exit 0.
    let opts = match Opts::try_parse() {
        Ok(o) => o,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(opts.verbose);
    match run(&opts) {
        Ok(o) => {
            if let Some(line) = &o.summary {
                say(line);
            }
            ExitCode::from(o.status)
        }
        Err(e) => {
            say(&format!("scx_rebal: error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Opts::command().debug_assert();
    }

    #[test]
    fn seconds_parser() {
        assert!(positive_secs("0").is_err());
        assert!(positive_secs("-1").is_err());
        assert!(positive_secs("nan").is_err());
        assert!(positive_secs("x").is_err());
        assert_eq!(positive_secs("0.5"), Ok(0.5));
    }
}
