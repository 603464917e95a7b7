//! VM test of work conservation and of the tuner's busy figure (guest side
//! tests/vm/conserve.sh), judged by the guest kernel's own accounting:
//! - with more CPU hogs than CPUs, no CPU idles: every CPU's idle share
//!   (/proc/stat) stays under 5%, with the hogs homed in one domain so that
//!   the other CPUs run them as visitors (the path where a CPU went idle
//!   when a visitor's slice ended: 25% idle on one CPU before it was fixed,
//!   against 0.5% at most under EEVDF and 0.8% after, in one boot);
//! - with one hog per CPU kept on its CPU, the utilisation scx_rebal
//!   reports per domain matches /proc/stat (within 10 points) at every
//!   interval, and the tuner marks no busy domain as lightly used (before
//!   the fix such hogs were charged only when they stopped: util 0% for
//!   seconds, then 597%);
//! - the load ran: the hogs' own CPU time (/proc/PID/stat) makes up most of
//!   the CPUs' time in every phase.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::read;

/// Per-CPU (busy, idle) jiffies in a "cpuN busy idle" file.
fn cpu_times(text: &str) -> BTreeMap<usize, (u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let cpu = f.first()?.strip_prefix("cpu")?.parse().ok()?;
            Some((cpu, (f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?)))
        })
        .collect()
}

/// "pid ticks" lines.
fn hog_ticks(text: &str) -> BTreeMap<u32, u64> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

/// What the guest kernel says of one phase's measured window.
struct Window {
    /// Idle share of each CPU.
    idle: BTreeMap<usize, f64>,
    /// Busy share of each CPU.
    busy: BTreeMap<usize, f64>,
    /// The hogs' CPU time as a share of all CPUs' time.
    hog_share: f64,
    /// Hogs whose CPU time did not grow.
    stuck: Vec<u32>,
}

fn window(dir: &Path, name: &str) -> Window {
    let a = cpu_times(&read(&dir.join(format!("{name}.cpu0"))));
    let b = cpu_times(&read(&dir.join(format!("{name}.cpu1"))));
    let mut idle = BTreeMap::new();
    let mut busy = BTreeMap::new();
    let mut total = 0u64;
    for (cpu, &(b1, i1)) in &b {
        let (b0, i0) = a.get(cpu).copied().unwrap_or((0, 0));
        let (db, di) = (b1.saturating_sub(b0), i1.saturating_sub(i0));
        total += db + di;
        let t = (db + di).max(1) as f64;
        idle.insert(*cpu, di as f64 / t);
        busy.insert(*cpu, db as f64 / t);
    }
    let h0 = hog_ticks(&read(&dir.join(format!("{name}.hogs0"))));
    let h1 = hog_ticks(&read(&dir.join(format!("{name}.hogs1"))));
    let mut ran = 0u64;
    let mut stuck = Vec::new();
    for (pid, t0) in &h0 {
        let d = h1.get(pid).map_or(0, |t1| t1.saturating_sub(*t0));
        if d == 0 {
            stuck.push(*pid);
        }
        ran += d;
    }
    // No hog at all is not "none stuck".
    if h0.is_empty() {
        stuck.push(0);
    }
    Window {
        idle,
        busy,
        hog_share: ran as f64 / total.max(1) as f64,
        stuck,
    }
}

fn check_attached(c: &mut common::Checks, dir: &Path, name: &str) {
    let st = read(&dir.join(format!("{name}.state.txt")));
    c.check(
        st.contains("attached: enabled") && st.contains("loaded: enabled"),
        format!("{name}: scheduler not attached throughout"),
    );
    c.check(
        st.contains("exit_status: 0"),
        format!("{name}: scheduler did not exit cleanly"),
    );
}

fn check_load_ran(c: &mut common::Checks, name: &str, w: &Window) {
    c.check(
        w.stuck.is_empty(),
        format!("{name}: hogs made no progress: {:?}", w.stuck),
    );
    // 8 CPUs of hogs and a little else (the daemon, kworkers).
    c.check(
        w.hog_share >= 0.8,
        format!(
            "{name}: the hogs had {:.0}% of the CPUs' time",
            w.hog_share * 100.0
        ),
    );
}

fn worst(m: &BTreeMap<usize, f64>) -> (usize, f64) {
    m.iter()
        .map(|(c, v)| (*c, *v))
        .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a })
}

#[test]
fn no_cpu_idles_while_tasks_wait() {
    let (dir, mut c) = common::run_guest_script("vm_conserve", "conserve.sh", 900, &[]);
    let eevdf = window(&dir, "visitors-eevdf");
    let visitors = window(&dir, "visitors");
    let steady = window(&dir, "steady");
    for (name, w) in [
        ("visitors-eevdf", &eevdf),
        ("visitors", &visitors),
        ("steady", &steady),
    ] {
        check_load_ran(&mut c, name, w);
        eprintln!(
            "{name}: idle per CPU {:?}, hogs {:.0}% of CPU time",
            w.idle
                .values()
                .map(|v| (v * 1000.0).round() / 10.0)
                .collect::<Vec<_>>(),
            w.hog_share * 100.0
        );
    }
    check_attached(&mut c, &dir, "visitors");
    check_attached(&mut c, &dir, "steady");
    c.check(eevdf.idle.len() == 8, "expected 8 CPUs in /proc/stat");

    for (name, w) in [("visitors", &visitors), ("steady", &steady)] {
        let (cpu, idle) = worst(&w.idle);
        c.check(
            idle <= 0.05,
            format!(
                "{name}: CPU {cpu} idle {:.1}% of the time while tasks waited (EEVDF's worst: {:.1}%)",
                idle * 100.0,
                worst(&eevdf.idle).1 * 100.0
            ),
        );
    }

    // The tuner's view of the steady phase against the kernel's.
    let text = read(&dir.join("steady.stats.jsonl"));
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    lines.pop(); // the whole-run summary
    let judged: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["t"].as_f64().is_some_and(|t| t >= 6.0))
        .collect();
    c.check(
        judged.len() >= 5,
        format!("steady: only {} stats lines to judge", judged.len()),
    );
    for l in &judged {
        let t = l["t"].as_f64().unwrap_or(0.0);
        for d in l["domains"].as_array().into_iter().flatten() {
            let util = d["util"].as_f64().unwrap_or(-1.0);
            let cpus: Vec<usize> = d["cpus"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_u64().map(|v| v as usize))
                .collect();
            let kernel = cpus
                .iter()
                .map(|c| steady.busy.get(c).copied().unwrap_or(0.0))
                .sum::<f64>()
                / cpus.len().max(1) as f64;
            c.check(
                (util - kernel).abs() <= 0.1,
                format!(
                    "steady, t={t:.1}: domain {} util {util:.2}, /proc/stat busy {kernel:.2}",
                    d["id"]
                ),
            );
        }
        for key in ["greedy_direct_doms", "greedy_kick_doms"] {
            let marked = l[key].as_array().map_or(0, Vec::len);
            c.check(
                marked == 0,
                format!(
                    "steady, t={t:.1}: {key} = {} while every CPU was busy",
                    l[key]
                ),
            );
        }
    }
    common::check_dmesg(&mut c, &dir);
    c.finish(
        &dir,
        &[
            "visitors.log",
            "steady.log",
            "steady.stats.jsonl",
            "visitors.state.txt",
            "steady.state.txt",
            "vm-run.log",
        ],
    );
}
