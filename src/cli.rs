//! The command line: every option of scx_rebal, its help text and the
//! checks between options that clap cannot express. A library module (not
//! part of src/main.rs) so that the daemon, the tests and the generators of
//! the man page and shell completions all read the same definition.
//!
//! [`parse`] is the way in: clap parses, then the `--profile`'s defaults
//! (src/profile.rs) fill every option the command line did not give.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use crate::bpf_intf;
use crate::profile::{self, AUTO, Explicit, MIN_TUNE_INTERVAL_SECS, Profile};

/// Bounds of every slice option, in microseconds.
pub const MIN_SLICE_US: u64 = 50;
pub const MAX_SLICE_US: u64 = 1_000_000;

/// What `--version` prints after the name: the crate's version and the git
/// commit it was built from (build.rs finds it).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SCX_REBAL_GIT_COMMIT"),
    ")"
);

/// scx_rebal: a sched_ext scheduler that keeps each task on one last-level
/// cache (a "domain") and balances load between domains and NUMA nodes.
///
/// Every task waits in the dispatch queue of its domain, ordered by virtual
/// time; idle CPUs steal from sibling domains of their own NUMA node first.
/// Stop it with Ctrl-C (SIGINT) or SIGTERM: the kernel's default scheduler
/// takes over again at once.
#[derive(Debug, Parser)]
#[command(version = VERSION, about, long_about)]
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
          value_parser = clap::value_parser!(u64).range(MIN_SLICE_US..=MAX_SLICE_US))]
    pub slice_us: Option<u64>,

    /// Shortest slice the tuner gives, when many tasks wait (microseconds).
    /// Set by --profile.
    #[arg(long, value_name = "US", default_value_t = AUTO.slice_min_us,
          value_parser = clap::value_parser!(u64).range(MIN_SLICE_US..=MAX_SLICE_US))]
    pub slice_min_us: u64,

    /// Longest slice the tuner gives, when no task waits (microseconds).
    /// Set by --profile.
    #[arg(long, value_name = "US", default_value_t = AUTO.slice_max_us,
          value_parser = clap::value_parser!(u64).range(MIN_SLICE_US..=MAX_SLICE_US))]
    pub slice_max_us: u64,

    /// Seconds between two tuner ticks (slice and lightly-used domains).
    /// Set by --profile.
    #[arg(long, value_name = "SECS", default_value_t = AUTO.tune_interval,
          allow_negative_numbers = true, value_parser = tune_secs)]
    pub tune_interval: f64,

    /// A domain whose CPUs were busy less than PCT percent of the last tuner
    /// tick may run waking tasks of full domains on its idle CPUs
    /// ("direct greedy"). 0 turns it off. Set by --profile.
    #[arg(long, value_name = "PCT", default_value_t = AUTO.direct_greedy_under,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub direct_greedy_under: u8,

    /// A domain busy less than PCT percent has its idle CPUs woken to steal
    /// work queued in full domains ("kick greedy"). 0 turns it off. Set by
    /// --profile.
    #[arg(long, value_name = "PCT", default_value_t = AUTO.kick_greedy_under,
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
    /// an interactive task, not two halves of a pipeline. Set by --profile.
    #[arg(long, value_name = "US", default_value_t = AUTO.preempt_margin_us,
          value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub preempt_margin_us: u64,

    /// How far behind its domain's virtual clock a waking task may be
    /// placed, in percent of a slice: the head start a sleeper gets over the
    /// tasks that kept running. It is never more than the time the task
    /// slept, so a consumer that blocked for a moment gets next to none and
    /// waits behind the producer it waits for, taking more work per run
    /// (fewer context switches), while a task that slept long (a frame
    /// thread, an interactive program) gets up to this share of a slice.
    /// Set by --profile.
    #[arg(long, value_name = "PCT", default_value_t = AUTO.sleeper_credit_pct,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub sleeper_credit_pct: u8,

    /// For a task woken with WAKE_SYNC (pipes, sockets: the waker says it
    /// is about to sleep) when its domain has no idle CPU, aim it at the
    /// waker's CPU, to run there once the waker blocks, instead of
    /// preempting a CPU hog elsewhere to run it at once. Only for wakers that
    /// block after most of their wakeups.
    #[arg(long)]
    pub sync_wakeups: bool,

    /// An idle CPU steals from a domain of another NUMA node only when that
    /// domain has at least N tasks waiting. The default, 1, takes whatever
    /// waits: an idle CPU costs more than a task running one node away from
    /// its memory for a slice. Raise it for memory-bound work on machines
    /// with real NUMA penalties, at the price of idle time on the far node
    /// while one node is overloaded.
    #[arg(long, value_name = "N",
          default_value_t = bpf_intf::consts_XNODE_STEAL_MIN_DFL,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub xnode_steal_min: u32,

    /// Schedule only the tasks that chose SCHED_EXT; leave the rest to the
    /// kernel's default scheduler.
    #[arg(long)]
    pub partial: bool,

    /// Nice value (-20 to 19) of the scheduler's own process, set at start
    /// for every thread it runs. The balancer and the slice tuner matter
    /// most when the machine is overloaded, which is when, at nice 0 among
    /// hundreds of runnable tasks, they would wait longest for a CPU
    /// (seconds per interval under hackbench in the test VM). The nice
    /// value changes when they run, not how much: their CPU time is what
    /// their work per interval costs (`daemon CPU` in the summary).
    #[arg(long, value_name = "N", default_value_t = -20, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub daemon_nice: i32,

    /// Half-life of the load averages, in seconds.
    #[arg(long, value_name = "SECS",
          default_value_t = bpf_intf::consts_LOAD_HALF_LIFE_MS_DFL as f64 / 1000.0,
          allow_negative_numbers = true, value_parser = positive_secs)]
    pub load_half_life: f64,

    /// Seconds between two balancing rounds (and two --stats-json lines).
    /// Set by --profile.
    #[arg(long, value_name = "SECS", default_value_t = AUTO.interval, allow_negative_numbers = true,
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
                                "sysfs_root", "help_stats", "profile"])]
    pub monitor: Option<f64>,

    /// Describe every field of the stats (--stats-json lines, the stats
    /// socket, the --stats table) and exit.
    #[arg(long)]
    pub help_stats: bool,

    /// Stop by itself after scheduling for SECS seconds (counted from the
    /// moment it attached).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = positive_secs)]
    pub run_for: Option<f64>,

    /// Defaults for what the machine is for: auto (the plain defaults),
    /// gaming, lowlatency, powersave or server. Options given on the command
    /// line win over the profile's values.
    #[arg(long, value_name = "PROFILE", value_enum, default_value_t = Profile::Auto,
          long_help = profile::long_help())]
    pub profile: Profile,

    /// More logging. Without it: the domains, the attach, restarts and the
    /// balancer's moves. -v adds a summary per domain every interval and
    /// libbpf's messages while loading; -vv adds libbpf's debug output, the
    /// tuner's marked ticks and what each balancing round saw (domain loads
    /// and candidates).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print a completion script for SHELL to stdout and exit (scripts/install.sh
    /// installs them for bash, zsh and fish).
    #[arg(long, value_name = "SHELL", exclusive = true)]
    pub completions: Option<clap_complete::Shell>,

    /// Print the manual page (roff, section 8) to stdout and exit
    /// (`scx_rebal --man | man -l -`).
    #[arg(long, exclusive = true)]
    pub man: bool,

    /// The options whose value came from --profile rather than the command
    /// line (long names), for error messages.
    #[arg(skip)]
    pub from_profile: Vec<String>,
}

/// Parses the process's arguments (see [`parse_from`]).
pub fn parse() -> Result<Opts, clap::Error> {
    parse_from(std::env::args_os())
}

/// Parses `args` (the program name first) and applies `--profile`: every
/// option it sets that the command line did not give takes the profile's
/// value.
pub fn parse_from<I, T>(args: I) -> Result<Opts, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut cmd = Opts::command();
    let m = cmd.try_get_matches_from_mut(args)?;
    let mut opts = Opts::from_arg_matches(&m).map_err(|e| e.format(&mut cmd))?;
    apply_profile(&mut opts, &m);
    Ok(opts)
}

/// The options a profile sets, by clap id (the field's name).
const PROFILE_IDS: [&str; 8] = [
    "slice_min_us",
    "slice_max_us",
    "preempt_margin_us",
    "sleeper_credit_pct",
    "direct_greedy_under",
    "kick_greedy_under",
    "tune_interval",
    "interval",
];

fn apply_profile(opts: &mut Opts, m: &ArgMatches) {
    let given = |id: &str| {
        matches!(
            m.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let g = Explicit {
        slice_min_us: given("slice_min_us").then_some(opts.slice_min_us),
        slice_max_us: given("slice_max_us").then_some(opts.slice_max_us),
        preempt_margin_us: given("preempt_margin_us").then_some(opts.preempt_margin_us),
        sleeper_credit_pct: given("sleeper_credit_pct").then_some(opts.sleeper_credit_pct),
        direct_greedy_under: given("direct_greedy_under").then_some(opts.direct_greedy_under),
        kick_greedy_under: given("kick_greedy_under").then_some(opts.kick_greedy_under),
        tune_interval: given("tune_interval").then_some(opts.tune_interval),
        interval: given("interval").then_some(opts.interval),
    };
    let s = profile::resolve(opts.profile, &g);
    opts.slice_min_us = s.slice_min_us;
    opts.slice_max_us = s.slice_max_us;
    opts.preempt_margin_us = s.preempt_margin_us;
    opts.sleeper_credit_pct = s.sleeper_credit_pct;
    opts.direct_greedy_under = s.direct_greedy_under;
    opts.kick_greedy_under = s.kick_greedy_under;
    opts.tune_interval = s.tune_interval;
    opts.interval = s.interval;
    opts.from_profile = PROFILE_IDS
        .iter()
        .filter(|id| !given(id))
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
}

impl Opts {
    /// The profile's settings as they are in force (explicit options
    /// included), for the start-up log.
    pub fn settings(&self) -> profile::Settings {
        profile::Settings {
            slice_min_us: self.slice_min_us,
            slice_max_us: self.slice_max_us,
            preempt_margin_us: self.preempt_margin_us,
            sleeper_credit_pct: self.sleeper_credit_pct,
            direct_greedy_under: self.direct_greedy_under,
            kick_greedy_under: self.kick_greedy_under,
            tune_interval: self.tune_interval,
            interval: self.interval,
        }
    }

    /// " (FLAG from --profile NAME)" when `flag`'s value was the profile's
    /// (a non-auto one), for errors about values the user did not type.
    fn origin(&self, flag: &str) -> String {
        if self.profile != Profile::Auto && self.from_profile.iter().any(|f| f == flag) {
            format!(" (from --profile {})", self.profile.name())
        } else {
            String::new()
        }
    }
}

/// Writes the man page (section 8: a system daemon) to `out`.
pub fn write_man(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = Opts::command().mut_arg("profile", |a| a.long_help(profile::man_help()));
    clap_mangen::Man::new(cmd).section("8").render(out)
}

/// Writes the completion script for `shell` to `out`.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    let mut cmd = Opts::command();
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
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
    if v < MIN_TUNE_INTERVAL_SECS {
        return Err(format!(
            "{s} is too short: at least {MIN_TUNE_INTERVAL_SECS} seconds"
        ));
    }
    Ok(v)
}

/// Checks between options that clap cannot express.
pub fn check_opts(opts: &Opts) -> Result<()> {
    if opts.slice_min_us > opts.slice_max_us {
        anyhow::bail!(
            "--slice-min-us {}{} is more than --slice-max-us {}{}",
            opts.slice_min_us,
            opts.origin("--slice-min-us"),
            opts.slice_max_us,
            opts.origin("--slice-max-us")
        );
    }
    if opts.stats.is_some() && opts.stats_json.as_deref() == Some("-") {
        anyhow::bail!(
            "--stats and --stats-json - both write to stdout; give --stats-json a file instead"
        );
    }
    if opts.tune_interval > opts.interval {
        anyhow::bail!(
            "--tune-interval {} s{} is longer than --interval {} s{}: the slice would follow \
             load more slowly than the balancer moves it",
            opts.tune_interval,
            opts.origin("--tune-interval"),
            opts.interval,
            opts.origin("--interval")
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

    fn parse(args: &[&str]) -> Opts {
        parse_from(std::iter::once("scx_rebal").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Every option a profile sets, with a value no profile uses and what
    /// giving it must change.
    #[allow(clippy::type_complexity)]
    const OVERRIDES: [(&str, &str, fn(&mut profile::Settings)); 8] = [
        ("--slice-min-us", "1234", |s| s.slice_min_us = 1234),
        ("--slice-max-us", "98765", |s| s.slice_max_us = 98765),
        ("--preempt-margin-us", "4321", |s| {
            s.preempt_margin_us = 4321
        }),
        ("--sleeper-credit-pct", "7", |s| s.sleeper_credit_pct = 7),
        ("--direct-greedy-under", "13", |s| {
            s.direct_greedy_under = 13
        }),
        ("--kick-greedy-under", "17", |s| s.kick_greedy_under = 17),
        ("--tune-interval", "0.03", |s| s.tune_interval = 0.03),
        ("--interval", "7.5", |s| s.interval = 7.5),
    ];

    #[test]
    fn without_profile_the_defaults_are_auto() {
        let o = parse(&[]);
        assert_eq!(o.profile, Profile::Auto);
        assert_eq!(o.settings(), AUTO);
    }

    #[test]
    fn each_profile_sets_its_defaults() {
        for p in Profile::ALL {
            let o = parse(&["--profile", p.name()]);
            assert_eq!(o.profile, p);
            assert_eq!(o.settings(), p.settings(), "{}", p.name());
            assert_eq!(o.from_profile.len(), PROFILE_IDS.len());
        }
    }

    #[test]
    fn explicit_options_override_the_profile() {
        for p in Profile::ALL {
            for (flag, value, set) in OVERRIDES {
                let mut want = p.settings();
                set(&mut want);
                // Before and after --profile: the order does not matter.
                for args in [
                    ["--profile", p.name(), flag, value],
                    [flag, value, "--profile", p.name()],
                ] {
                    let o = parse(&args);
                    assert_eq!(o.settings(), want, "{args:?}");
                    assert!(!o.from_profile.iter().any(|f| f == flag), "{args:?}");
                }
            }
        }
    }

    #[test]
    fn an_explicit_value_equal_to_the_default_still_wins() {
        let o = parse(&["--profile", "server", "--slice-min-us", "10000"]);
        assert_eq!(o.slice_min_us, 10_000);
        assert_eq!(o.slice_max_us, Profile::Server.settings().slice_max_us);
    }

    #[test]
    fn fixed_slice_and_switches_are_left_alone_by_profiles() {
        let o = parse(&[
            "--profile",
            "lowlatency",
            "--slice-us",
            "3000",
            "--no-preempt",
        ]);
        assert_eq!(o.slice_us, Some(3000));
        assert!(o.no_preempt);
        assert_eq!(
            o.preempt_margin_us,
            Profile::LowLatency.settings().preempt_margin_us
        );
    }

    #[test]
    fn contradictions_name_the_profile() {
        let o = parse(&["--profile", "powersave", "--slice-max-us", "8000"]);
        let e = format!("{:#}", check_opts(&o).unwrap_err());
        assert!(
            e.contains(
                "--slice-min-us 20000 (from --profile powersave) is more than --slice-max-us 8000"
            ),
            "{e}"
        );
        let o = parse(&["--profile", "powersave", "--interval", "0.2"]);
        let e = format!("{:#}", check_opts(&o).unwrap_err());
        assert!(
            e.contains(
                "--tune-interval 0.5 s (from --profile powersave) is longer than --interval 0.2 s:"
            ),
            "{e}"
        );
        // Without a profile, the message is as it always was.
        let o = parse(&["--slice-min-us", "30000"]);
        let e = format!("{:#}", check_opts(&o).unwrap_err());
        assert!(
            e.contains("--slice-min-us 30000 is more than --slice-max-us 20000"),
            "{e}"
        );
        // Every profile passes the checks on its own.
        for p in Profile::ALL {
            check_opts(&parse(&["--profile", p.name()])).unwrap();
        }
    }

    #[test]
    fn unknown_profile_is_refused() {
        let e = parse_from(["scx_rebal", "--profile", "turbo"]).unwrap_err();
        assert!(e.to_string().contains("invalid value 'turbo'"), "{e}");
    }

    #[test]
    fn version_names_the_commit() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")));
        assert!(VERSION.contains(" (git "), "{VERSION}");
    }

    #[test]
    fn man_page_and_completions_cover_the_options() {
        let mut man = Vec::new();
        write_man(&mut man).unwrap();
        let man = String::from_utf8(man).unwrap();
        assert!(
            man.contains(".TH scx_rebal 8"),
            "{}",
            &man[..200.min(man.len())]
        );
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            write_completions(shell, &mut out);
            let out = String::from_utf8(out).unwrap();
            assert!(out.contains("lowlatency"), "{shell}: no profile names");
            assert!(out.contains("slice-min-us"), "{shell}: no --slice-min-us");
        }
        for flag in ["profile", "slice\\-min\\-us", "lowlatency"] {
            assert!(man.contains(flag), "man page lacks {flag}");
        }
    }
}
