//! The command line: every option of scx_rebal, its help text and the
//! checks between options that clap cannot express. A library module (not
//! part of src/main.rs) so that the daemon, the tests and the generators of
//! the man page and shell completions all read the same definition.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

use crate::bpf_intf;

/// scx_rebal: a sched_ext scheduler that keeps each task on one last-level
/// cache (a "domain") and balances load between domains and NUMA nodes.
///
/// Every task waits in the dispatch queue of its domain, ordered by virtual
/// time; idle CPUs steal from sibling domains of their own NUMA node first.
/// Stop it with Ctrl-C (SIGINT) or SIGTERM: the kernel's default scheduler
/// takes over again at once.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
pub struct Opts {
    /// Print the domains that would be used, as JSON, and exit without
    /// loading anything. Works on any Linux machine.
    #[arg(long)]
    pub dump_domains: bool,

    /// Read the topology from a copy of /sys under DIR (a folder holding
    /// sys/devices/system/{cpu,node}) instead of this machine.
    #[arg(long, value_name = "DIR")]
    pub sysfs_root: Option<PathBuf>,

    /// Define the domains by hand, one hex cpumask each (e.g. 0x0f 0xf0).
    /// Together they must cover every online CPU, without overlap.
    #[arg(long, value_name = "MASK", num_args = 1..)]
    pub cpumasks: Vec<String>,

    /// On a hybrid CPU, keep performance and efficiency cores that share a
    /// last-level cache in one domain. By default each core type gets its
    /// own domain: on a mixed one a task's speed depends on which kind of
    /// core it landed on, and the load figures the balancer compares lie.
    /// Keep them together when one bigger pool of CPUs matters more than
    /// even speed (throughput batch work that any core will do), or when
    /// one type has too few cores to be worth a domain of its own. Not
    /// with --cpumasks.
    #[arg(long, conflicts_with = "cpumasks")]
    pub hybrid_together: bool,

    /// Split every last-level cache with more than N CPUs into the fewest
    /// domains of at most N CPUs each, as even as possible, cut along core
    /// order: SMT siblings stay together (N smaller than a core's thread
    /// count is an error), and so do cores sharing an L2 where N allows.
    /// For very large LLCs (e.g. 56 cores on one L3), where one domain
    /// would make every steal and every balance decision machine-wide.
    /// Not with --cpumasks.
    #[arg(long, value_name = "N", conflicts_with = "cpumasks",
          value_parser = clap::value_parser!(u64).range(1..=bpf_intf::consts_MAX_CPUS as u64))]
    pub max_domain_cpus: Option<u64>,

    /// Fixed time slice in microseconds. Without it, the tuner varies the
    /// slice between --slice-min-us and --slice-max-us: shorter the more
    /// tasks wait for a CPU.
    #[arg(long, value_name = "US", conflicts_with_all = ["slice_min_us", "slice_max_us"],
          value_parser = clap::value_parser!(u64).range(50..=1_000_000))]
    pub slice_us: Option<u64>,

    /// Shortest slice the tuner gives, when many tasks wait (microseconds).
    #[arg(long, value_name = "US", default_value_t = bpf_intf::consts_SLICE_MIN_US_DFL as u64,
          value_parser = clap::value_parser!(u64).range(50..=1_000_000))]
    pub slice_min_us: u64,

    /// Longest slice the tuner gives, when no task waits (microseconds).
    #[arg(long, value_name = "US", default_value_t = bpf_intf::consts_SLICE_MAX_US_DFL as u64,
          value_parser = clap::value_parser!(u64).range(50..=1_000_000))]
    pub slice_max_us: u64,

    /// Seconds between two tuner ticks (slice and lightly-used domains).
    #[arg(long, value_name = "SECS",
          default_value_t = bpf_intf::consts_TUNE_INTERVAL_MS_DFL as f64 / 1000.0,
          allow_negative_numbers = true, value_parser = tune_secs)]
    pub tune_interval: f64,

    /// A domain whose CPUs were busy less than PCT percent of the last tuner
    /// tick may run waking tasks of full domains on its idle CPUs
    /// ("direct greedy"). 0 turns it off.
    #[arg(long, value_name = "PCT",
          default_value_t = bpf_intf::consts_DIRECT_GREEDY_UNDER_DFL as u8,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub direct_greedy_under: u8,

    /// A domain busy less than PCT percent has its idle CPUs woken to steal
    /// work queued in full domains ("kick greedy"). 0 turns it off.
    #[arg(long, value_name = "PCT",
          default_value_t = bpf_intf::consts_KICK_GREEDY_UNDER_DFL as u8,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub kick_greedy_under: u8,

    /// Plain FIFO per domain instead of deadlines (the scx_simple policy),
    /// for comparison.
    #[arg(long)]
    pub fifo: bool,

    /// Never cut a running task's slice short for a waking task with a
    /// much earlier deadline (wakeup preemption is on by default: it is what
    /// keeps a frame or audio thread from waiting a whole slice).
    #[arg(long)]
    pub no_preempt: bool,

    /// A waking task preempts a running one only if the running task's
    /// deadline is later by more than US microseconds: a CPU hog against
    /// an interactive task, not two halves of a pipeline.
    #[arg(long, value_name = "US",
          default_value_t = bpf_intf::consts_PREEMPT_MARGIN_US_DFL as u64,
          value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub preempt_margin_us: u64,

    /// How far behind its domain's virtual clock a waking task may be
    /// placed, in percent of a slice: the head start a sleeper gets over the
    /// tasks that kept running. Lower values make woken consumers wait
    /// their turn and take more work per run (fewer context switches: 0.40x
    /// EEVDF's instead of 0.49x in hackbench, in the VM), at the cost of
    /// producer/consumer chains (a pipe chain under CPU hogs 1.25x slower
    /// at 0).
    #[arg(long, value_name = "PCT",
          default_value_t = bpf_intf::consts_SLEEPER_CREDIT_PCT_DFL as u8,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub sleeper_credit_pct: u8,

    /// Schedule only the tasks that chose SCHED_EXT; leave the rest to the
    /// kernel's default scheduler.
    #[arg(long)]
    pub partial: bool,

    /// Half-life of the load averages, in seconds.
    #[arg(long, value_name = "SECS",
          default_value_t = bpf_intf::consts_LOAD_HALF_LIFE_MS_DFL as f64 / 1000.0,
          allow_negative_numbers = true, value_parser = positive_secs)]
    pub load_half_life: f64,

    /// Seconds between two balancing rounds (and two --stats-json lines).
    #[arg(long, value_name = "SECS", default_value_t = 2.0, allow_negative_numbers = true,
          value_parser = positive_secs)]
    pub interval: f64,

    /// When a domain has no idle CPU for new work, do not wake idle CPUs of
    /// other (lightly used) domains in the same NUMA node to steal it.
    #[arg(long)]
    pub no_kick_node: bool,

    /// Also wake idle CPUs of other NUMA nodes to steal work (off by default:
    /// crossing nodes costs memory locality).
    #[arg(long)]
    pub kick_xnode: bool,

    /// When a waking task's domain has no idle CPU, do not run it on an idle
    /// CPU of another domain of the same NUMA node.
    #[arg(long)]
    pub no_direct_node: bool,

    /// Let waking tasks run on idle CPUs of other NUMA nodes too.
    #[arg(long)]
    pub direct_xnode: bool,

    /// Compute and report the balancer's plan every interval, but move no
    /// task.
    #[arg(long)]
    pub no_load_balance: bool,

    /// Append one JSON object per interval (and one at exit) to FILE, or to
    /// stdout with "-". The fields are those of --help-stats.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<String>,

    /// Print a table of the scheduler's figures every SECS seconds while
    /// scheduling (to stdout; the same table as --monitor).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = positive_secs)]
    pub stats: Option<f64>,

    /// Load nothing: attach to the scx_rebal running on this machine (its
    /// stats socket, /var/run/scx/root/stats, root only) and print its table
    /// every SECS seconds, waiting for one to start if none is running.
    /// Stop with Ctrl-C.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = positive_secs,
          conflicts_with_all = ["dump_domains", "stats", "stats_json", "run_for", "cpumasks",
                                "sysfs_root", "help_stats"])]
    pub monitor: Option<f64>,

    /// Describe every field of the stats (--stats-json lines, the stats
    /// socket, the --stats table) and exit.
    #[arg(long)]
    pub help_stats: bool,

    /// Stop by itself after scheduling for SECS seconds (counted from the
    /// moment it attached).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = positive_secs)]
    pub run_for: Option<f64>,

    /// More logging (-v: per-interval summaries, -vv: libbpf debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

pub fn positive_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 || v > 86_400.0 {
        return Err(format!("{s} must be more than 0 and at most 86400 seconds"));
    }
    Ok(v)
}

pub fn tune_secs(s: &str) -> Result<f64, String> {
    let v = positive_secs(s)?;
    if v < 0.01 {
        return Err(format!("{s} is too short: at least 0.01 seconds"));
    }
    Ok(v)
}

/// Checks between options that clap cannot express.
pub fn check_opts(opts: &Opts) -> Result<()> {
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
