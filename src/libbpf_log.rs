//! Where libbpf's own messages go. Loading the scheduler makes libbpf print
//! a line for every struct_ops callback this kernel does not have ("member
//! ... not found in kernel, skipping") and a warning that the skeleton's
//! struct_ops link is not set (scx_utils attaches it itself). An operator
//! can do nothing about either, so they go to the debug log (`-v`), and
//! libbpf's debug output to trace (`-vv`). Any other warning (a program the
//! verifier rejected, a map that failed) still reaches the default log:
//! without it, a failed load would say no more than an errno.

use libbpf_rs::PrintLevel;
use log::Level;

/// libbpf warnings that are expected on every start, and harmless.
const EXPECTED_WARNINGS: &[&str] = &["BPF map skeleton link is uninitialized"];

/// The log level for one libbpf message.
pub fn level_for(level: PrintLevel, msg: &str) -> Level {
    match level {
        PrintLevel::Debug => Level::Trace,
        PrintLevel::Info => Level::Debug,
        PrintLevel::Warn if EXPECTED_WARNINGS.iter().any(|w| msg.contains(w)) => Level::Debug,
        PrintLevel::Warn => Level::Warn,
    }
}

fn forward(level: PrintLevel, msg: String) {
    // libbpf ends its messages with a newline; the logger adds its own.
    let msg = msg.trim_end();
    if !msg.is_empty() {
        log::log!(level_for(level, msg), "{msg}");
    }
}

/// Sends libbpf's messages to the log from now on. libbpf formats its
/// debug messages only with `-vv` (`verbose` >= 2).
pub fn route_to_log(verbose: u8) {
    let min = if verbose >= 2 {
        PrintLevel::Debug
    } else {
        PrintLevel::Info
    };
    libbpf_rs::set_print(Some((min, forward)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_up_chatter_is_debug() {
        let skipping = "libbpf: struct_ops rebal_ops: member dump not found in kernel, \
                        skipping it as it's set to zero";
        assert_eq!(level_for(PrintLevel::Info, skipping), Level::Debug);
        let link = "libbpf: map 'rebal_ops': BPF map skeleton link is uninitialized";
        assert_eq!(level_for(PrintLevel::Warn, link), Level::Debug);
        assert_eq!(
            level_for(PrintLevel::Debug, "libbpf: loading"),
            Level::Trace
        );
    }

    #[test]
    fn real_warnings_stay_warnings() {
        let failed = "libbpf: prog 'rebal_enqueue': BPF program load failed: Permission denied";
        assert_eq!(level_for(PrintLevel::Warn, failed), Level::Warn);
    }
}
