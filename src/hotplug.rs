//! Waiting out a CPU hotplug before the scheduler is loaded again.
//!
//! The kernel asks for a restart from inside the hotplug operation itself:
//! sched_cpu_activate() / sched_cpu_deactivate() call handle_hotplug(),
//! which calls scx_ops_exit(SCX_ECODE_ACT_RESTART | SCX_ECODE_RSN_HOTPLUG),
//! while _cpu_up() / _cpu_down() hold the CPU hotplug lock for writing
//! (kernel/sched/ext.c and kernel/cpu.c, 6.12). The operation goes on after
//! the daemon has seen the exit. Loading at once meets it twice: the
//! topology read then may be half-way (a CPU listed online whose caches are
//! not there yet, or gone by the time BPF loads), and the enable path
//! (scx_ops_enable_workfn) takes cpus_read_lock() and waits for the
//! operation, and for any queued behind it, with the scheduler's state
//! "enabling" and the attach call blocked.
//!
//! Both ends can be seen from user space, so the daemon waits for them
//! rather than for a fixed time:
//! - sched_ext's state reads `disabled`: the old instance is fully gone;
//! - every CPU's `hotplug/state` equals its `hotplug/target`: no CPU is
//!   on its way up or down (kernel/cpu.c sets the target first and walks
//!   the state to it).
//!
//! What is left is a hotplug that starts after the wait: the daemon reads
//! sched_ext's hotplug sequence number before the topology and hands it to
//! the kernel with the scheduler, which refuses the load (and asks for
//! another restart) if a CPU came or went in between.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// What [`wait_settled`] saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// How long it waited.
    pub waited: Duration,
    /// Whether both conditions held at the end (false: timed out).
    pub settled: bool,
    /// The sched_ext state and the CPUs still in transit at the end (for
    /// the log when it timed out).
    pub state: String,
    pub in_transit: Vec<usize>,
}

/// Where the files are: `root` is `/` on a live system.
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Self::new("/")
    }
}

impl Sysfs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// sched_ext's state ("enabled", "disabling", "disabled", ...).
    pub fn scx_state(&self) -> String {
        fs::read_to_string(self.path("sys/kernel/sched_ext/state"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "missing".to_string())
    }

    /// sched_ext's count of hotplug events so far.
    pub fn hotplug_seq(&self) -> Result<u64> {
        let p = self.path("sys/kernel/sched_ext/hotplug_seq");
        let s = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        s.trim()
            .parse()
            .with_context(|| format!("{} holds {s:?}, not a number", p.display()))
    }

    /// CPUs whose hotplug state is not (yet) their target. CPUs without the
    /// files (no CONFIG_HOTPLUG_CPU) are never in transit.
    pub fn cpus_in_transit(&self) -> Vec<usize> {
        let dir = self.path("sys/devices/system/cpu");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out: Vec<usize> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let cpu: usize = name.to_str()?.strip_prefix("cpu")?.parse().ok()?;
                let read = |f: &str| {
                    fs::read_to_string(e.path().join("hotplug").join(f))
                        .ok()
                        .map(|s| s.trim().to_string())
                };
                match (read("state"), read("target")) {
                    (Some(s), Some(t)) if s != t => Some(cpu),
                    _ => None,
                }
            })
            .collect();
        out.sort_unstable();
        out
    }
}

/// Waits until sched_ext is `disabled` and no CPU is in a hotplug
/// operation, polling every `poll`, for at most `timeout`.
pub fn wait_settled(sys: &Sysfs, poll: Duration, timeout: Duration) -> Settled {
    let start = Instant::now();
    loop {
        let state = sys.scx_state();
        let in_transit = sys.cpus_in_transit();
        let settled = state == "disabled" && in_transit.is_empty();
        if settled || start.elapsed() >= timeout {
            return Settled {
                waited: start.elapsed(),
                settled,
                state,
                in_transit,
            };
        }
        std::thread::sleep(poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn tree(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rebal-hotplug-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("sys/kernel/sched_ext")).unwrap();
        d
    }

    fn put(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn cpu(root: &Path, n: usize, state: u32, target: u32) {
        put(
            root,
            &format!("sys/devices/system/cpu/cpu{n}/hotplug/state"),
            &format!("{state}\n"),
        );
        put(
            root,
            &format!("sys/devices/system/cpu/cpu{n}/hotplug/target"),
            &format!("{target}\n"),
        );
    }

    const POLL: Duration = Duration::from_millis(5);

    #[test]
    fn settled_at_once_when_disabled_and_every_cpu_at_its_target() {
        let root = tree("idle");
        put(&root, "sys/kernel/sched_ext/state", "disabled\n");
        put(&root, "sys/kernel/sched_ext/hotplug_seq", "42\n");
        for n in 0..4 {
            cpu(&root, n, 239, 239);
        }
        put(&root, "sys/devices/system/cpu/online", "0-3\n");
        let sys = Sysfs::new(&root);
        let s = wait_settled(&sys, POLL, Duration::from_secs(5));
        assert!(s.settled, "{s:?}");
        assert!(s.waited < Duration::from_secs(1));
        assert_eq!(sys.hotplug_seq().unwrap(), 42);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn waits_for_a_cpu_coming_up_and_for_the_old_instance() {
        let root = tree("busy");
        put(&root, "sys/kernel/sched_ext/state", "disabling\n");
        cpu(&root, 0, 239, 239);
        cpu(&root, 2, 100, 239);
        let sys = Sysfs::new(&root);
        // Still going: times out, and says why.
        let s = wait_settled(&sys, POLL, Duration::from_millis(30));
        assert!(!s.settled);
        assert_eq!(
            (s.state.as_str(), s.in_transit.clone()),
            ("disabling", vec![2])
        );
        // The old instance is gone, but the CPU is still on its way.
        put(&root, "sys/kernel/sched_ext/state", "disabled\n");
        let s = wait_settled(&sys, POLL, Duration::from_millis(30));
        assert!(!s.settled, "{s:?}");
        assert_eq!(s.in_transit, vec![2]);
        // The operation ends while we wait.
        let r = root.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            cpu(&r, 2, 239, 239);
        });
        let s = wait_settled(&sys, POLL, Duration::from_secs(10));
        t.join().unwrap();
        assert!(s.settled, "{s:?}");
        assert!(s.waited >= Duration::from_millis(40), "{s:?}");
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn a_cpu_going_down_is_in_transit_too() {
        let root = tree("down");
        cpu(&root, 1, 150, 0);
        cpu(&root, 3, 0, 0);
        assert_eq!(Sysfs::new(&root).cpus_in_transit(), vec![1]);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn a_missing_hotplug_seq_is_an_error_that_says_where() {
        let root = tree("noseq");
        let e = Sysfs::new(&root).hotplug_seq().unwrap_err();
        assert!(format!("{e:#}").contains("hotplug_seq"), "{e:#}");
        let _ = fs::remove_dir_all(&root);
    }
}
