//! Profiles (`--profile`): named sets of defaults for the options that
//! trade latency against throughput and power, one per mode of the scx
//! project's `scx_loader` (auto, gaming, lowlatency, powersave, server).
//!
//! A profile only changes defaults: an option given on the command line
//! always wins over the profile's value for it (src/cli.rs applies this
//! after parsing). Pure data and a pure merge, so the help text, the merge
//! and the tests all read the one table below; `auto` is the daemon's plain
//! defaults, whose numbers live in bpf/intf.h.
//!
//! Why each profile sets what it sets (the knobs are explained in
//! src/tuner.rs and bpf/intf.h):
//! - gaming: a frame or input thread that wakes should get a CPU at once.
//!   Wakeup preemption with a smaller margin, a shorter slice floor for when
//!   CPUs are oversubscribed, idle CPUs of busier neighbouring domains used
//!   for waking tasks, and a tuner that follows load twice as fast.
//! - lowlatency: the same further: more preemption, greedy placement on
//!   any idle CPU of the node, and a balancer that moves tasks off a
//!   crowded domain every second. Costs context switches. Its slices are
//!   gaming's: shorter ones buy no latency where waking tasks preempt.
//! - powersave: fewer wakeups of idle CPUs and fewer switches: idle CPUs of
//!   other domains are never kicked to steal work, waking tasks spread to
//!   other domains only when those are mostly idle, long slices, preemption
//!   only against long-running hogs, less sleeper credit, and a daemon that
//!   looks at the machine less often.
//! - server: throughput of many busy threads: longer slices, preemption
//!   only against long-running hogs, and half the sleeper credit (fewer
//!   context switches for request/response chains).

use std::fmt::Write as _;

use crate::bpf_intf;

/// Shortest --tune-interval accepted, in seconds.
pub const MIN_TUNE_INTERVAL_SECS: f64 = 0.01;

/// Seconds between two balancing rounds by default (`--interval`).
const BALANCE_INTERVAL_SECS_DFL: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Profile {
    /// The plain defaults: what scx_rebal does without --profile.
    #[default]
    Auto,
    /// Interactive threads (frames, input, audio) first, under background load.
    Gaming,
    /// Lowest wakeup latency, at the cost of more context switches.
    #[value(name = "lowlatency")]
    LowLatency,
    /// Fewer wakeups of idle CPUs and fewer context switches.
    #[value(name = "powersave")]
    PowerSave,
    /// Throughput of many busy threads: longer slices, less preemption.
    Server,
}

/// The options a profile sets, with their command-line meaning and units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// `--slice-min-us`
    pub slice_min_us: u64,
    /// `--slice-max-us`
    pub slice_max_us: u64,
    /// `--preempt-margin-us`
    pub preempt_margin_us: u64,
    /// `--sleeper-credit-pct`
    pub sleeper_credit_pct: u8,
    /// `--direct-greedy-under`
    pub direct_greedy_under: u8,
    /// `--kick-greedy-under`
    pub kick_greedy_under: u8,
    /// `--tune-interval`, seconds
    pub tune_interval: f64,
    /// `--interval`, seconds
    pub interval: f64,
}

/// The plain defaults (bpf/intf.h holds the numbers the BPF side shares).
pub const AUTO: Settings = Settings {
    slice_min_us: bpf_intf::consts_SLICE_MIN_US_DFL as u64,
    slice_max_us: bpf_intf::consts_SLICE_MAX_US_DFL as u64,
    preempt_margin_us: bpf_intf::consts_PREEMPT_MARGIN_US_DFL as u64,
    sleeper_credit_pct: bpf_intf::consts_SLEEPER_CREDIT_PCT_DFL as u8,
    direct_greedy_under: bpf_intf::consts_DIRECT_GREEDY_UNDER_DFL as u8,
    kick_greedy_under: bpf_intf::consts_KICK_GREEDY_UNDER_DFL as u8,
    tune_interval: bpf_intf::consts_TUNE_INTERVAL_MS_DFL as f64 / 1000.0,
    interval: BALANCE_INTERVAL_SECS_DFL,
};

impl Profile {
    pub const ALL: [Profile; 5] = [
        Profile::Auto,
        Profile::Gaming,
        Profile::LowLatency,
        Profile::PowerSave,
        Profile::Server,
    ];

    /// The name on the command line (and in scx_loader's modes).
    pub fn name(self) -> &'static str {
        match self {
            Profile::Auto => "auto",
            Profile::Gaming => "gaming",
            Profile::LowLatency => "lowlatency",
            Profile::PowerSave => "powersave",
            Profile::Server => "server",
        }
    }

    /// The profile's defaults.
    pub fn settings(self) -> Settings {
        match self {
            Profile::Auto => AUTO,
            Profile::Gaming => Settings {
                slice_min_us: 5_000,
                preempt_margin_us: 10_000,
                direct_greedy_under: 95,
                kick_greedy_under: 95,
                tune_interval: 0.05,
                ..AUTO
            },
            // Not shorter slices than gaming's: in the VM, 2-10 ms slices
            // made cyclictest's wakeups under hogs slower, not faster
            // (benches/vm/results/2026-11-30-profiles).
            Profile::LowLatency => Settings {
                slice_min_us: 5_000,
                preempt_margin_us: 5_000,
                direct_greedy_under: 100,
                kick_greedy_under: 100,
                tune_interval: 0.05,
                interval: 1.0,
                ..AUTO
            },
            Profile::PowerSave => Settings {
                slice_min_us: 20_000,
                slice_max_us: 40_000,
                preempt_margin_us: 50_000,
                sleeper_credit_pct: 25,
                direct_greedy_under: 30,
                kick_greedy_under: 0,
                tune_interval: 0.5,
                interval: 5.0,
            },
            Profile::Server => Settings {
                slice_min_us: 20_000,
                slice_max_us: 40_000,
                preempt_margin_us: 50_000,
                sleeper_credit_pct: 50,
                tune_interval: 0.2,
                ..AUTO
            },
        }
    }
}

/// The values given on the command line (None: not given), which win over
/// the profile's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Explicit {
    pub slice_min_us: Option<u64>,
    pub slice_max_us: Option<u64>,
    pub preempt_margin_us: Option<u64>,
    pub sleeper_credit_pct: Option<u8>,
    pub direct_greedy_under: Option<u8>,
    pub kick_greedy_under: Option<u8>,
    pub tune_interval: Option<f64>,
    pub interval: Option<f64>,
}

/// The settings in force: each explicit value, else the profile's. No
/// value the user gave is ever changed; contradictions between a given
/// value and a profile's (say `--slice-max-us` below the profile's floor)
/// are left for the option checks to refuse, naming where each came from.
pub fn resolve(profile: Profile, given: &Explicit) -> Settings {
    let p = profile.settings();
    Settings {
        slice_min_us: given.slice_min_us.unwrap_or(p.slice_min_us),
        slice_max_us: given.slice_max_us.unwrap_or(p.slice_max_us),
        preempt_margin_us: given.preempt_margin_us.unwrap_or(p.preempt_margin_us),
        sleeper_credit_pct: given.sleeper_credit_pct.unwrap_or(p.sleeper_credit_pct),
        direct_greedy_under: given.direct_greedy_under.unwrap_or(p.direct_greedy_under),
        kick_greedy_under: given.kick_greedy_under.unwrap_or(p.kick_greedy_under),
        tune_interval: given.tune_interval.unwrap_or(p.tune_interval),
        interval: given.interval.unwrap_or(p.interval),
    }
}

impl Settings {
    /// The settings as the options that would give them, for logs and help.
    pub fn as_flags(&self) -> String {
        format!(
            "--slice-min-us {} --slice-max-us {} --preempt-margin-us {} --sleeper-credit-pct {} \
             --direct-greedy-under {} --kick-greedy-under {} --tune-interval {} --interval {}",
            self.slice_min_us,
            self.slice_max_us,
            self.preempt_margin_us,
            self.sleeper_credit_pct,
            self.direct_greedy_under,
            self.kick_greedy_under,
            self.tune_interval,
            self.interval
        )
    }
}

const HELP_INTRO: &str = "Defaults for what the machine is for (the modes of scx_loader). A \
     profile sets only defaults: any of these options given on the command line wins over it.";

/// The long help of `--profile`: what each profile sets, from the table.
pub fn long_help() -> String {
    let mut s = format!(
        "{HELP_INTRO}\n\n\
         profile    slice us     preempt  sleeper %  greedy %   tune  balance\n\
         \x20          min-max      margin   credit  direct/kick  secs  secs\n",
    );
    for p in Profile::ALL {
        let v = p.settings();
        let _ = writeln!(
            s,
            "{:<10} {:>11}  {:>7}  {:>7}  {:>11}  {:<4}  {}",
            p.name(),
            format!("{}-{}", v.slice_min_us, v.slice_max_us),
            v.preempt_margin_us,
            v.sleeper_credit_pct,
            format!("{}/{}", v.direct_greedy_under, v.kick_greedy_under),
            v.tune_interval,
            v.interval
        );
    }
    s.push_str(
        "\nThe columns are --slice-min-us/--slice-max-us, --preempt-margin-us, \
         --sleeper-credit-pct, --direct-greedy-under/--kick-greedy-under, --tune-interval and \
         --interval. The start-up log names the profile and the values in force.",
    );
    s
}

/// The same for the man page, where the table's lines would be run
/// together into one paragraph: one paragraph per profile, as options.
pub fn man_help() -> String {
    let mut s = format!("{HELP_INTRO}\n\n");
    for p in Profile::ALL {
        let _ = write!(s, "{}: {}\n\n", p.name(), p.settings().as_flags());
    }
    s.push_str("The start-up log names the profile and the values in force.");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{MAX_SLICE_US, MIN_SLICE_US};

    #[test]
    fn auto_is_the_plain_defaults() {
        assert_eq!(Profile::default(), Profile::Auto);
        assert_eq!(Profile::Auto.settings(), AUTO);
        assert_eq!(resolve(Profile::Auto, &Explicit::default()), AUTO);
    }

    #[test]
    fn every_profile_is_valid_on_its_own() {
        for p in Profile::ALL {
            let v = p.settings();
            let slices = MIN_SLICE_US..=MAX_SLICE_US;
            assert!(slices.contains(&v.slice_min_us), "{p:?}");
            assert!(slices.contains(&v.slice_max_us), "{p:?}");
            assert!(v.slice_min_us <= v.slice_max_us, "{p:?}");
            assert!(v.sleeper_credit_pct <= 100, "{p:?}");
            assert!(v.direct_greedy_under <= 100, "{p:?}");
            assert!(v.kick_greedy_under <= 100, "{p:?}");
            assert!(v.tune_interval >= MIN_TUNE_INTERVAL_SECS, "{p:?}");
            assert!(v.tune_interval <= v.interval, "{p:?}");
            // Preemption must be able to happen at all: a hog's deadline
            // is at most DL_RUN_MAX_US past its vtime.
            assert!(
                v.preempt_margin_us < bpf_intf::consts_DL_RUN_MAX_US as u64,
                "{p:?}"
            );
        }
    }

    #[test]
    fn profiles_lean_the_way_their_names_say() {
        let (auto, game, low, power, server) = (
            AUTO,
            Profile::Gaming.settings(),
            Profile::LowLatency.settings(),
            Profile::PowerSave.settings(),
            Profile::Server.settings(),
        );
        // Latency: more preemption and shorter slices than the defaults,
        // lowlatency more so than gaming.
        assert!(game.preempt_margin_us < auto.preempt_margin_us);
        assert!(low.preempt_margin_us < game.preempt_margin_us);
        assert!(game.slice_min_us < auto.slice_min_us);
        assert!(low.slice_min_us <= game.slice_min_us);
        assert!(low.direct_greedy_under >= game.direct_greedy_under);
        // Throughput and power: longer slices, less preemption.
        for s in [power, server] {
            assert!(s.slice_min_us > auto.slice_min_us);
            assert!(s.preempt_margin_us > auto.preempt_margin_us);
            assert!(s.sleeper_credit_pct < auto.sleeper_credit_pct);
        }
        // Power: idle CPUs are not woken to steal, and the daemon looks less often.
        assert_eq!(power.kick_greedy_under, 0);
        assert!(power.interval > auto.interval && power.tune_interval > auto.tune_interval);
    }

    #[test]
    fn explicit_values_win_one_by_one() {
        let p = Profile::PowerSave;
        let base = p.settings();
        let cases: [(Explicit, Settings); 8] = [
            (
                Explicit {
                    slice_min_us: Some(777),
                    ..Default::default()
                },
                Settings {
                    slice_min_us: 777,
                    ..base
                },
            ),
            (
                Explicit {
                    slice_max_us: Some(88_000),
                    ..Default::default()
                },
                Settings {
                    slice_max_us: 88_000,
                    ..base
                },
            ),
            (
                Explicit {
                    preempt_margin_us: Some(0),
                    ..Default::default()
                },
                Settings {
                    preempt_margin_us: 0,
                    ..base
                },
            ),
            (
                Explicit {
                    sleeper_credit_pct: Some(100),
                    ..Default::default()
                },
                Settings {
                    sleeper_credit_pct: 100,
                    ..base
                },
            ),
            (
                Explicit {
                    direct_greedy_under: Some(90),
                    ..Default::default()
                },
                Settings {
                    direct_greedy_under: 90,
                    ..base
                },
            ),
            (
                Explicit {
                    kick_greedy_under: Some(90),
                    ..Default::default()
                },
                Settings {
                    kick_greedy_under: 90,
                    ..base
                },
            ),
            (
                Explicit {
                    tune_interval: Some(0.1),
                    ..Default::default()
                },
                Settings {
                    tune_interval: 0.1,
                    ..base
                },
            ),
            (
                Explicit {
                    interval: Some(9.0),
                    ..Default::default()
                },
                Settings {
                    interval: 9.0,
                    ..base
                },
            ),
        ];
        for (given, want) in cases {
            assert_eq!(resolve(p, &given), want, "{given:?}");
        }
    }

    #[test]
    fn an_explicit_value_equal_to_the_auto_default_still_wins() {
        // `--profile server --slice-min-us 10000`: 10000 is auto's value,
        // but it was given, so server's 20000 must not replace it.
        let given = Explicit {
            slice_min_us: Some(AUTO.slice_min_us),
            ..Default::default()
        };
        let v = resolve(Profile::Server, &given);
        assert_eq!(v.slice_min_us, AUTO.slice_min_us);
        assert_eq!(v.slice_max_us, Profile::Server.settings().slice_max_us);
    }

    #[test]
    fn the_readme_table_matches() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).expect("reading README.md");
        for p in Profile::ALL {
            let v = p.settings();
            let row = format!(
                "| `{}` | {}-{} | {} | {} | {}/{} | {} / {} |",
                p.name(),
                v.slice_min_us,
                v.slice_max_us,
                v.preempt_margin_us,
                v.sleeper_credit_pct,
                v.direct_greedy_under,
                v.kick_greedy_under,
                v.tune_interval,
                v.interval
            );
            assert!(
                readme.contains(&row),
                "README.md's profile table lacks {row}"
            );
        }
    }

    #[test]
    fn help_lists_every_profile_with_its_numbers() {
        let h = long_help();
        for p in Profile::ALL {
            let v = p.settings();
            let line = h
                .lines()
                .find(|l| l.split_whitespace().next() == Some(p.name()))
                .unwrap_or_else(|| panic!("no line for {}", p.name()));
            assert!(
                line.contains(&format!("{}-{}", v.slice_min_us, v.slice_max_us)),
                "{line}"
            );
            assert!(
                line.contains(&format!(
                    "{}/{}",
                    v.direct_greedy_under, v.kick_greedy_under
                )),
                "{line}"
            );
        }
    }
}
