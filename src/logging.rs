//! The daemon's log: its format, its levels, and what is kept out of the
//! default output.
//!
//! By default an operator sees what scx_rebal does: the profile in force,
//! the domains, the attach, restarts and the balancer's moves. Loading the
//! scheduler also makes libbpf print a line for every struct_ops callback
//! this kernel does not have ("member ... not found in kernel, skipping")
//! and warn that the skeleton's struct_ops link is not set (scx_utils
//! attaches it itself), and scx_utils report BPF library features this
//! kernel lacks, none of which scx_rebal uses. An operator can do nothing
//! about any of these, so they go to the debug log (`-v`), and libbpf's
//! debug output to trace (`-vv`). Any other libbpf warning (a program the
//! verifier rejected, a map that failed) still reaches the default log:
//! without it, a failed load would say no more than an errno.

use libbpf_rs::PrintLevel;
use log::{Level, LevelFilter, Log, Metadata, Record};

/// libbpf warnings that are expected on every start, and harmless.
const EXPECTED_WARNINGS: &[&str] = &["BPF map skeleton link is uninitialized"];

/// Log targets whose info messages are demoted to debug.
const CHATTY_TARGETS: &[&str] = &["scx_utils"];

/// Sets up the log on stderr: info by default, debug with -v, trace with -vv.
pub fn init(verbose: u8) {
    let level = match verbose {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    // Time of day (UTC, ms) on every line: moves and restarts can then be
    // lined up with what else happened on the machine (and the VM tests
    // match moves against their own timestamped samples).
    let cfg = simplelog::ConfigBuilder::new()
        .set_time_level(LevelFilter::Error)
        .set_time_format_custom(time::macros::format_description!(
            "[hour]:[minute]:[second].[subsecond digits:3]"
        ))
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .build();
    let inner = simplelog::WriteLogger::new(level, cfg, std::io::stderr());
    if log::set_boxed_logger(Box::new(Demoting { inner })).is_ok() {
        log::set_max_level(level);
    }
}

/// The level a message from `target` is logged at.
pub fn demoted(target: &str, level: Level) -> Level {
    if level == Level::Info && CHATTY_TARGETS.iter().any(|t| target.starts_with(t)) {
        Level::Debug
    } else {
        level
    }
}

/// Passes every record to `inner` at its [`demoted`] level.
struct Demoting<L: Log> {
    inner: Box<L>,
}

impl<L: Log> Log for Demoting<L> {
    fn enabled(&self, m: &Metadata) -> bool {
        let level = demoted(m.target(), m.level());
        self.inner
            .enabled(&Metadata::builder().level(level).target(m.target()).build())
    }

    fn log(&self, r: &Record) {
        let level = demoted(r.target(), r.level());
        if level == r.level() {
            self.inner.log(r);
        } else {
            self.inner.log(
                &Record::builder()
                    .args(*r.args())
                    .level(level)
                    .target(r.target())
                    .module_path(r.module_path())
                    .file(r.file())
                    .line(r.line())
                    .build(),
            );
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// The log level for one libbpf message.
pub fn libbpf_level(level: PrintLevel, msg: &str) -> Level {
    match level {
        PrintLevel::Debug => Level::Trace,
        PrintLevel::Info => Level::Debug,
        PrintLevel::Warn if EXPECTED_WARNINGS.iter().any(|w| msg.contains(w)) => Level::Debug,
        PrintLevel::Warn => Level::Warn,
    }
}

fn forward_libbpf(level: PrintLevel, msg: String) {
    // libbpf ends its messages with a newline; the logger adds its own.
    let msg = msg.trim_end();
    if !msg.is_empty() {
        log::log!(libbpf_level(level, msg), "{msg}");
    }
}

/// Sends libbpf's messages to the log from now on. libbpf formats its
/// debug messages only with `-vv` (`verbose` >= 2).
pub fn route_libbpf(verbose: u8) {
    let min = if verbose >= 2 {
        PrintLevel::Debug
    } else {
        PrintLevel::Info
    };
    libbpf_rs::set_print(Some((min, forward_libbpf)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libbpf_start_up_chatter_is_debug() {
        let skipping = "libbpf: struct_ops rebal_ops: member priv not found in kernel, \
                        skipping it as it's set to zero";
        assert_eq!(libbpf_level(PrintLevel::Info, skipping), Level::Debug);
        let link = "libbpf: map 'rebal_ops': BPF map skeleton link is uninitialized";
        assert_eq!(libbpf_level(PrintLevel::Warn, link), Level::Debug);
        assert_eq!(
            libbpf_level(PrintLevel::Debug, "libbpf: loading"),
            Level::Trace
        );
    }

    #[test]
    fn real_libbpf_warnings_stay_warnings() {
        let failed = "libbpf: prog 'rebal_enqueue': BPF program load failed: Permission denied";
        assert_eq!(libbpf_level(PrintLevel::Warn, failed), Level::Warn);
    }

    #[test]
    fn scx_utils_info_is_debug_but_its_warnings_are_not() {
        assert_eq!(demoted("scx_utils::compat", Level::Info), Level::Debug);
        assert_eq!(demoted("scx_utils::compat", Level::Warn), Level::Warn);
        assert_eq!(demoted("scx_rebal::sched", Level::Info), Level::Info);
        assert_eq!(demoted("scx_rebal", Level::Info), Level::Info);
    }
}
