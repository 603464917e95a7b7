//! Getting [`SchedStats`] out of the process: the scx_stats server on a
//! root-only UNIX socket, the table that `--stats` and `--monitor` print,
//! and the `--monitor` client loop.
//!
//! The daemon's loop refreshes one shared [`SchedStats`] at every tuner
//! tick; the server answers every request with a copy of it. The object
//! carries counters since load, not rates, so that any number of readers
//! can each take differences over their own period: the table printer does
//! exactly that, whether it reads the shared copy in-process (`--stats`) or
//! the socket from another terminal (`--monitor`).

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use scx_stats::prelude::*;

use crate::stats::{SchedStats, meta_only};

/// Where the scx tools look for a scheduler's stats socket
/// (scx_stats' default base, scheduler "root").
pub const SOCKET_PATH: &str = "/var/run/scx/root/stats";

/// The running server; dropping it closes the socket.
pub struct Server {
    _server: StatsServer<(), ()>,
    path: PathBuf,
}

impl Server {
    /// Serve `shared` on `path`. The socket (and a directory created for
    /// it) is made with umask 077, so only root can connect: the stats name
    /// task ids and the machine's load, and a reader could slow the daemon.
    pub fn launch(path: &Path, shared: Arc<Mutex<SchedStats>>) -> Result<Server> {
        let data = meta_only().add_stats(
            "top",
            Box::new(move |_args, _chan| {
                let s = shared
                    .lock()
                    .map_err(|_| anyhow::anyhow!("stats lock poisoned"))?
                    .clone();
                s.to_json()
            }),
        );
        // SAFETY: umask only swaps the process's file mode mask; no memory
        // is involved. Nothing else in the process creates files meanwhile
        // (the stats thread starts inside launch, after the bind).
        let old = unsafe { libc::umask(0o077) };
        let launched = StatsServer::new(data).set_path(path).launch();
        unsafe { libc::umask(old) };
        let server =
            launched.with_context(|| format!("starting the stats server on {}", path.display()))?;
        Ok(Server {
            _server: server,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn rate(prev: Option<(&SchedStats, f64)>, cur: u64, old: impl Fn(&SchedStats) -> u64) -> f64 {
    match prev {
        Some((p, dt)) if dt > 0.0 => cur.saturating_sub(old(p)) as f64 / dt,
        _ => 0.0,
    }
}

/// The compact table: one line of globals, one line per domain. Rates are
/// per second over the time since `prev` (same process, same restart), or
/// since start when there is no usable `prev`.
pub fn format_table(prev: Option<&SchedStats>, cur: &SchedStats) -> String {
    // After a restart the counters start again: compare with zero.
    let prev = prev.filter(|p| p.restarts == cur.restarts && p.t < cur.t);
    let (base, dt) = match prev {
        Some(p) => (Some(p), cur.t - p.t),
        None => (None, cur.t),
    };
    let zero = SchedStats::default();
    let base = base.unwrap_or(&zero);
    let with = Some((base, dt));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "[scx_rebal {:7.1}s] slice {}us waiting/cpu {:.2} | balancer: {} passes, moves {}/{} \
         planned/applied, last pass {:.0}us | greedy: direct {:.0}/s kick {:.0}/s | \
         preempt {:.0}/s dl_clamped {}{}",
        cur.t,
        cur.slice_us,
        cur.waiting_per_cpu,
        cur.passes,
        cur.moves_planned,
        cur.moves_applied,
        cur.pass_us,
        rate(with, cur.direct_greedy, |s| s.direct_greedy),
        rate(with, cur.kick_greedy, |s| s.kick_greedy),
        rate(with, cur.preempt, |s| s.preempt),
        cur.dl_clamped,
        if cur.restarts > 0 {
            format!(" restarts {}", cur.restarts)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "  {:>3} {:>4} {:>4} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>7} {:>7}",
        "dom",
        "node",
        "cpus",
        "load",
        "queued",
        "util%",
        "disp/s",
        "steal_in",
        "steal_out",
        "migr_in",
        "migr_out"
    );
    for d in &cur.domains {
        let p = base.domains.iter().find(|x| x.id == d.id);
        let r = |f: fn(&crate::stats::DomainStats) -> u64| match p {
            Some(p) if dt > 0.0 => f(d).saturating_sub(f(p)) as f64 / dt,
            _ if dt > 0.0 => f(d) as f64 / dt,
            _ => 0.0,
        };
        let util = if dt > 0.0 {
            r(|x| x.run_ns) / 1e9 / d.cpus.len().max(1) as f64
        } else {
            d.util
        };
        let _ = writeln!(
            out,
            "  {:>3} {:>4} {:>4} {:>6.2} {:>6} {:>6.1} {:>8.0} {:>8.1} {:>8.1} {:>7} {:>7}",
            d.id,
            d.node,
            d.cpus.len(),
            d.load,
            d.queued,
            util * 100.0,
            r(|x| x.dispatched),
            r(|x| x.steal_in),
            r(|x| x.steal_out),
            d.migrated_in,
            d.migrated_out
        );
    }
    out
}

/// Sleep up to `d`, waking early when `stop` is set.
fn nap(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// `--monitor`: print the table of the scx_rebal serving `path` every
/// `interval`, waiting for one to start (and to start again after it
/// stops) until `stop` is set.
pub fn monitor(path: &Path, interval: Duration, stop: &AtomicBool) -> Result<()> {
    let mut said_waiting = false;
    while !stop.load(Ordering::Relaxed) {
        let mut client = match StatsClient::new().set_path(path).connect(Some(5000)) {
            Ok(c) => c,
            Err(e) => {
                let kind = e.downcast_ref::<std::io::Error>().map(|e| e.kind());
                if kind == Some(ErrorKind::PermissionDenied) {
                    bail!(
                        "cannot open {}: permission denied (the stats socket is root-only; run \
                         --monitor as root)",
                        path.display()
                    );
                }
                if !said_waiting {
                    eprintln!(
                        "waiting for scx_rebal to start (no stats socket at {})",
                        path.display()
                    );
                    said_waiting = true;
                }
                nap(Duration::from_secs(1), stop);
                continue;
            }
        };
        said_waiting = false;
        let mut prev: Option<SchedStats> = None;
        while !stop.load(Ordering::Relaxed) {
            match client.request::<SchedStats>("stats", vec![]) {
                // No domains yet: the daemon is up but not attached.
                Ok(cur) if cur.domains.is_empty() => {}
                Ok(cur) => {
                    print!("{}", format_table(prev.as_ref(), &cur));
                    prev = Some(cur);
                }
                Err(e) => {
                    eprintln!("lost scx_rebal's stats socket ({e:#}); waiting for it again");
                    break;
                }
            }
            nap(interval, stop);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::DomainStats;

    fn stats(t: f64, dispatched: u64, run_ns: u64) -> SchedStats {
        SchedStats {
            t,
            slice_us: 5000,
            domains: vec![DomainStats {
                id: 0,
                cpus: vec![0, 1],
                dispatched,
                run_ns,
                queued: 3,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn table_shows_rates_over_the_period() {
        let a = stats(10.0, 1000, 0);
        // 2 s later: 500 more dispatches, both CPUs busy half the time.
        let b = stats(12.0, 1500, 2_000_000_000);
        let t = format_table(Some(&a), &b);
        let row = t.lines().nth(2).unwrap();
        let f: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(f[4], "3", "{t}"); // queued
        assert_eq!(f[5], "50.0", "{t}"); // util%
        assert_eq!(f[6], "250", "{t}"); // dispatched/s
    }

    #[test]
    fn table_after_restart_counts_from_zero() {
        let a = stats(10.0, 1000, 0);
        let mut b = stats(12.0, 24, 0);
        b.restarts = 1;
        let t = format_table(Some(&a), &b);
        assert!(t.contains("restarts 1"), "{t}");
        let f: Vec<&str> = t.lines().nth(2).unwrap().split_whitespace().collect();
        assert_eq!(f[6], "2", "{t}"); // 24 since start, over 12 s
    }

    #[test]
    fn server_answers_on_a_private_socket() {
        let dir = std::env::temp_dir().join(format!("rebal-stats-{}", std::process::id()));
        let path = dir.join("sub/stats");
        let shared = Arc::new(Mutex::new(stats(1.0, 7, 0)));
        let server = Server::launch(&path, shared.clone()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(server.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "socket mode {mode:o}");
        let mut c = StatsClient::new()
            .set_path(&path)
            .connect(Some(5000))
            .unwrap();
        let got: SchedStats = c.request("stats", vec![]).unwrap();
        assert_eq!(got.domains[0].dispatched, 7);
        shared.lock().unwrap().domains[0].dispatched = 9;
        let got: SchedStats = c.request("stats", vec![]).unwrap();
        assert_eq!(got.domains[0].dispatched, 9);
        drop(c);
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
