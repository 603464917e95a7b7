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
//!
//! Every line on stderr, log or not, goes out whole through [`line`]: the
//! daemon has threads of its own (the stats server's) that log while it
//! shuts down, and a line written in pieces could be cut by the exit or
//! by another thread's line. The daemon's [`last_word`] (how it ended) is
//! the last line on stderr: harnesses read it there.

use std::io::Write;
use std::sync::Mutex;

use libbpf_rs::PrintLevel;
use log::{Level, LevelFilter, Log, Metadata, Record};

/// libbpf warnings that are expected on every start, and harmless.
const EXPECTED_WARNINGS: &[&str] = &["BPF map skeleton link is uninitialized"];

/// Log targets whose info messages are demoted to debug.
const CHATTY_TARGETS: &[&str] = &["scx_utils"];

/// Whole lines to one output, and none after the last word.
struct Lines {
    closed: bool,
}

impl Lines {
    const fn new() -> Self {
        Lines { closed: false }
    }

    /// Writes `text` and a newline to `out` in one write, unless the last
    /// word has been said. A write error is ignored: stderr may be a
    /// closed pipe, and the scheduler must not stop for that.
    fn line(&mut self, out: &mut impl Write, text: &str) {
        if !self.closed {
            let mut buf = String::with_capacity(text.len() + 1);
            buf.push_str(text);
            buf.push('\n');
            let _ = out.write_all(buf.as_bytes());
        }
    }

    /// Writes the last line; later ones are dropped.
    fn last_word(&mut self, out: &mut impl Write, text: &str) {
        self.line(out, text);
        self.closed = true;
    }
}

static STDERR: Mutex<Lines> = Mutex::new(Lines::new());

/// One whole line on stderr (see [`Lines::line`]).
pub fn line(text: &str) {
    let mut l = STDERR.lock().unwrap_or_else(|p| p.into_inner());
    l.line(&mut std::io::stderr(), text);
}

/// The daemon's last line on stderr: a thread still logging while the
/// process exits can no longer write after it.
pub fn last_word(text: &str) {
    let mut l = STDERR.lock().unwrap_or_else(|p| p.into_inner());
    l.last_word(&mut std::io::stderr(), text);
}

/// Sets up the log on stderr: info by default, debug with -v, trace with -vv.
pub fn init(verbose: u8) {
    let level = match verbose {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    if log::set_boxed_logger(Box::new(Logger { level })).is_ok() {
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

/// One log line: "HH:MM:SS.mmm [LEVEL] message". The time of day (UTC, to
/// the ms) lets moves and restarts be lined up with what else happened on
/// the machine (the VM tests match moves against their own timestamped
/// samples).
pub fn format(t: time::OffsetDateTime, level: Level, msg: &std::fmt::Arguments) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03} [{level}] {msg}",
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Logs every record at its [`demoted`] level, whole lines on stderr.
struct Logger {
    level: LevelFilter,
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        demoted(m.target(), m.level()) <= self.level
    }

    fn log(&self, r: &Record) {
        let level = demoted(r.target(), r.level());
        if level <= self.level {
            line(&format(time::OffsetDateTime::now_utc(), level, r.args()));
        }
    }

    fn flush(&self) {}
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
    fn a_line_has_the_time_of_day_the_level_and_the_message() {
        let t = time::macros::datetime!(2026-12-01 04:55:07.123456 UTC);
        assert_eq!(
            format(
                t,
                Level::Info,
                &format_args!("move pid {} dom {} -> {}", 18, 3, 2)
            ),
            "04:55:07.123 [INFO] move pid 18 dom 3 -> 2"
        );
        assert_eq!(
            format(t, Level::Debug, &format_args!("x")),
            "04:55:07.123 [DEBUG] x"
        );
    }

    /// A stats server thread logging while the daemon exits: its line
    /// must not follow the daemon's last word (harnesses read it there).
    #[test]
    fn nothing_follows_the_last_word() {
        let (mut lines, mut out) = (Lines::new(), Vec::new());
        lines.line(&mut out, "05:00:00.000 [ERROR] EXIT: disabled by sysrq-S");
        lines.last_word(&mut out, "scx_rebal: EJECTED by the kernel");
        lines.line(&mut out, "05:00:00.100 [DEBUG] listener exiting");
        lines.last_word(&mut out, "scx_rebal: error: late");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "05:00:00.000 [ERROR] EXIT: disabled by sysrq-S\nscx_rebal: EJECTED by the kernel\n"
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
