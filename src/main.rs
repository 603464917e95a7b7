//! scx_rebal: start-up checks and the daemon's main loop (the options
//! themselves are in src/cli.rs).
//!
//! Order matters: everything that can be refused (bad options, bad
//! cpumasks, not root, no sched_ext, another scheduler running) is refused
//! before anything is loaded, so an error never leaves a half-loaded
//! scheduler behind. Then the loop: load, run until asked to stop or until
//! the kernel ejects us, and start again with a fresh topology when the
//! kernel asks for a restart (CPU hotplug).

use std::mem::MaybeUninit;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use log::{debug, info, warn};

use scx_rebal::balancer::{self, BalancerConfig, Reason};
use scx_rebal::bpf_intf;
use scx_rebal::cli::{self, Opts, check_opts};
use scx_rebal::demand::DemandTracker;
use scx_rebal::domains::{DomainOpts, Domains};
use scx_rebal::hotplug;
use scx_rebal::load;
use scx_rebal::logging;
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
        let mut bal = BalancerTotals {
            weight_cap: sched.load_weight_cap(),
            ..Default::default()
        };

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
                let readings = stats::tuner_readings(&sched.domains, &prev_tune, &cur);
                let t = tuner.step(&readings);
                for (i, r) in readings.iter().enumerate() {
                    if t.direct.get(i) == Some(&true) || t.kick.get(i) == Some(&true) {
                        log::trace!(
                            "tuner tick ending at {:.3} s (CLOCK_MONOTONIC): domain {i} {:.0}% busy over {:.0} ms, marked lightly used",
                            cur.at_ns as f64 / 1e9,
                            r.util * 100.0,
                            r.secs * 1e3
                        );
                    }
                }
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

/// `-vv`: what a balancing round saw, so that a plan (or the lack of one)
/// can be explained from the log: each domain's load as BPF counted it and
/// as the balancer weighs it (demand caps and weight caps taken off), and
/// the candidates above a hundredth of a CPU with their duty cycle, their
/// demand from schedstat and the load they weigh. Not at -v: reading each
/// candidate's name and writing two long lines a round doubled the
/// daemon's CPU time in the TCG guest (vm_balance: 0.2 -> 0.5 of a CPU).
fn log_round_inputs(
    reports: &[stats::DomReport],
    tasks: &[load::TaskSample],
    demand: &std::collections::HashMap<i32, f64>,
    loads: &load::Loads,
) {
    let doms: Vec<String> = reports
        .iter()
        .zip(&loads.dom_loads)
        .map(|(r, l)| format!("{} {:.2}->{l:.2}", r.id, r.load))
        .collect();
    log::trace!(
        "round: dom loads (BPF -> weighed, weighted {}, weight cap {}) {}",
        loads.weighted,
        loads.weight_cap,
        doms.join(", ")
    );
    let mut cands: Vec<String> = Vec::new();
    for (t, l) in tasks.iter().zip(&loads.task_loads) {
        if *l < 0.01 && t.dcycle < 0.01 {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", t.pid)).unwrap_or_default();
        cands.push(format!(
            "{}({}) dom {} dc {:.2} demand {} load {l:.2}",
            t.pid,
            comm.trim(),
            t.dom,
            t.dcycle,
            demand
                .get(&t.pid)
                .map_or_else(|| "-".to_string(), |d| format!("{d:.2}"))
        ));
    }
    log::trace!("round: candidates {}", cands.join("; "));
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
    let loads = load::compute_loads(reports, &tasks, nr_cpus, &demand, sched.load_weight_cap());
    sched.set_load_weight_cap(loads.weight_cap);
    if log::log_enabled!(log::Level::Trace) {
        log_round_inputs(reports, &tasks, &demand, &loads);
    }
    let snap = load::snapshot(&sched.domains, &loads, &tasks, &hold);

    let t0 = Instant::now();
    let plan = balancer::balance(&snap, &BalancerConfig::default())
        .map_err(|e| anyhow::anyhow!("the balancer refused the snapshot: {e}"))?;
    totals.pass_us = t0.elapsed().as_secs_f64() * 1e6;
    totals.passes += 1;
    totals.planned += plan.moves.len() as u64;
    totals.weighted = loads.weighted;
    totals.weight_cap = loads.weight_cap;
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

/// Give this thread, and so every thread started after it (the stats
/// server, the signal handler), nice value @nice (--daemon-nice). A refusal
/// (no CAP_SYS_NICE in a container) is not fatal: the scheduler works at
/// any nice value, only its interval may stretch under overload.
fn set_own_nice(nice: i32) {
    // SAFETY: plain syscalls on the calling thread (who = 0); errno is
    // read at once.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        let now = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        warn!("could not set the daemon's nice value to {nice} ({err}); it runs at nice {now}");
    } else {
        info!("daemon at nice {nice} (--daemon-nice)");
    }
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
    if opts.man {
        cli::write_man(&mut std::io::stdout()).context("writing the man page")?;
        return Ok(done);
    }
    if let Some(shell) = opts.completions {
        cli::write_completions(shell, &mut std::io::stdout());
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
    // Before any thread is started: they inherit it.
    set_own_nice(opts.daemon_nice);
    info!(
        "profile {}: {}",
        opts.profile.name(),
        opts.settings().as_flags()
    );
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
                logging::line(&format!("scx_rebal: error: {e:#}"));
                return Ok(Outcome {
                    status: 1,
                    summary: Some(daemon.summary_line("FAILED")),
                });
            }
            Err(e) => return Err(e),
        }
    }
}

fn main() -> ExitCode {
    // Exit status 2 means "the kernel ejected the scheduler" to harnesses,
    // so a bad command line exits 1 like every other refusal (clap's own
    // default would be 2). --help and --version exit 0.
    let opts = match cli::parse() {
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
    logging::init(opts.verbose);
    match run(&opts) {
        Ok(o) => {
            if let Some(line) = &o.summary {
                logging::last_word(line);
            }
            ExitCode::from(o.status)
        }
        Err(e) => {
            logging::last_word(&format!("scx_rebal: error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}
