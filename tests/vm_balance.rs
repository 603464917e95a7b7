//! VM test of the balancer (issue: moves take effect). Eight CPU hogs are made
//! to call domain 0 of a 2-node x 2-LLC guest home, then set free, once with
//! `--no-load-balance` and once with balancing, in one boot.
//!
//! Busy time per domain proves nothing here: idle CPUs steal, so every CPU is
//! busy either way. What balancing changes is each hog's home, and so whether
//! it runs on its home LLC or is dragged around by stealing. Checked:
//! - busy time per domain over the second half, from the guest's /proc/stat,
//!   within 1.25x (the measure; it holds without balancing too,
//!   since idle CPUs steal, so it is reported for both phases);
//! - the domains' loads (scx_rebal's own figures) end even with balancing and
//!   stay piled on domain 0 without it;
//! - measured by the guest kernel, not by scx_rebal: in the second half of
//!   each phase, how often a hog is found on a CPU of its home domain (the
//!   domain the balancer had last moved it to when the sample was taken,
//!   from the timestamps of the daemon's log and of the samples). Moves that
//!   did not take effect, or that BPF undid, would leave this at domain 0's
//!   2 CPUs of 8;
//! - cross-domain steals per second fall once homes are even;
//! - no hog is moved more than twice (no ping-pong between rounds).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::read;

/// The stats lines of a phase, without the last one (the whole-run summary).
fn stats_lines(text: &str) -> Vec<serde_json::Value> {
    let mut v: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    v.pop();
    v
}

/// Domains (id -> cpus) from a stats line.
fn domains(line: Option<&serde_json::Value>) -> BTreeMap<usize, BTreeSet<usize>> {
    let mut out = BTreeMap::new();
    for d in line
        .and_then(|l| l["domains"].as_array())
        .into_iter()
        .flatten()
    {
        let id = d["id"].as_u64().unwrap_or(0) as usize;
        let cpus = d["cpus"].as_array().into_iter().flatten();
        out.insert(
            id,
            cpus.filter_map(|c| c.as_u64())
                .map(|c| c as usize)
                .collect(),
        );
    }
    out
}

fn dom_field(line: &serde_json::Value, field: &str) -> Vec<f64> {
    line["domains"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d[field].as_f64().unwrap_or(0.0))
        .collect()
}

/// Seconds since midnight UTC of an "HH:MM:SS.mmm" log timestamp.
fn time_of_day(stamp: &str) -> Option<f64> {
    let mut f = stamp.split(':');
    let h: f64 = f.next()?.parse().ok()?;
    let m: f64 = f.next()?.parse().ok()?;
    let s: f64 = f.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// `t` relative to `t0`, both times of day, across a midnight between them.
fn since(t: f64, t0: f64) -> f64 {
    let d = t - t0;
    if d > 43200.0 {
        d - 86400.0
    } else if d < -43200.0 {
        d + 86400.0
    } else {
        d
    }
}

/// The moves a log reports ("HH:MM:SS.mmm [INFO] move pid P dom A -> B
/// (...)"), in order, with their time of day.
fn moves(log: &str) -> Vec<(f64, u32, usize)> {
    let mut out = Vec::new();
    for l in log.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let Some(i) = f.iter().position(|w| *w == "move") else {
            continue;
        };
        // "would move" (--no-load-balance) did not happen.
        if i > 0 && f[i - 1] == "would" {
            continue;
        }
        if f.get(i + 1) == Some(&"pid") && f.get(i + 3) == Some(&"dom") {
            let at = f.first().and_then(|t| time_of_day(t));
            let pid = f.get(i + 2).and_then(|p| p.parse().ok());
            let to = f.get(i + 6).and_then(|d| d.parse().ok());
            if let (Some(at), Some(pid), Some(to)) = (at, pid, to) {
                out.push((at, pid, to));
            }
        }
    }
    out
}

/// What one phase measured.
struct Phase {
    /// Busy jiffies per domain over the second half (guest /proc/stat).
    busy: Vec<f64>,
    /// Mean load per domain over the settled part (t >= 20 s).
    settled_load: Vec<f64>,
    /// Steals into any domain per second over the settled part.
    steals_per_s: f64,
    /// Share of hog samples in the second half found on their home's CPUs.
    home_share: f64,
    /// Moves per hog.
    hog_moves: BTreeMap<u32, usize>,
    /// Balancer moves that took effect (BPF's migrated_in counters).
    migrated: f64,
    report: String,
}

fn measure(dir: &Path, name: &str) -> Phase {
    let lines = stats_lines(&read(&dir.join(format!("{name}.stats.jsonl"))));
    let doms = domains(lines.first());
    let settled: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["t"].as_f64().unwrap_or(0.0) >= 20.0)
        .collect();
    let busy = domain_busy(dir, name, &doms);
    let mut settled_load = vec![0.0; doms.len()];
    for l in &settled {
        for (acc, v) in settled_load.iter_mut().zip(dom_field(l, "load")) {
            *acc += v / settled.len() as f64;
        }
    }
    let steals = |l: &serde_json::Value| dom_field(l, "steal_in").iter().sum::<f64>();
    let steals_per_s = match (settled.first(), settled.last()) {
        (Some(a), Some(b)) if b["t"].as_f64() > a["t"].as_f64() => {
            (steals(b) - steals(a))
                / (b["t"].as_f64().unwrap_or(0.0) - a["t"].as_f64().unwrap_or(0.0))
        }
        _ => f64::NAN,
    };
    let migrated = lines
        .last()
        .map(|l| dom_field(l, "migrated_in").iter().sum())
        .unwrap_or(0.0);

    let log = read(&dir.join(format!("{name}.sched.log")));
    let hogs: BTreeSet<u32> = read(&dir.join(format!("{name}.pids")))
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let log_moves = moves(&log);
    let mut home: BTreeMap<u32, usize> = hogs.iter().map(|&p| (p, 0)).collect();
    let mut hog_moves: BTreeMap<u32, usize> = BTreeMap::new();
    for &(_, pid, to) in &log_moves {
        if hogs.contains(&pid) {
            home.insert(pid, to);
            *hog_moves.entry(pid).or_default() += 1;
        }
    }
    // "time-of-day pid cpu" lines; judge the second half (by time), once
    // moves are mostly done, each sample against the home of that moment.
    let samples: Vec<(f64, u32, usize)> = read(&dir.join(format!("{name}.where")))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.parse().ok()?,
                f.get(1)?.parse().ok()?,
                f.get(2)?.parse().ok()?,
            ))
        })
        .collect();
    let t0 = samples.first().map(|s| s.0).unwrap_or(0.0);
    // A hog's home at a moment: the last move of it logged before then.
    let home_at = |pid: u32, t: f64| {
        log_moves
            .iter()
            .filter(|(at, p, _)| *p == pid && since(*at, t0) <= since(t, t0))
            .map(|(_, _, to)| *to)
            .next_back()
            .unwrap_or(0)
    };
    let last = samples.iter().map(|s| since(s.0, t0)).fold(0.0, f64::max);
    let late: Vec<_> = samples
        .iter()
        .filter(|s| since(s.0, t0) > last / 2.0)
        .collect();
    let at_home = late
        .iter()
        .filter(|(t, pid, cpu)| {
            doms.get(&home_at(*pid, *t))
                .is_some_and(|cpus| cpus.contains(cpu))
        })
        .count();
    let home_share = at_home as f64 / late.len().max(1) as f64;

    let report = format!(
        "{name}: busy jiffies per domain (2nd half, /proc/stat) {busy:?}, busiest/least {:.2}; \
         settled load per domain {:?}, {:.0} steals/s, hogs at home in {at_home} of {} \
         late samples ({:.0}%), final homes {home:?}, moves per hog {hog_moves:?}, {migrated} moves took \
         effect\n",
        ratio(&busy),
        settled_load
            .iter()
            .map(|l| (l * 100.0).round() / 100.0)
            .collect::<Vec<_>>(),
        steals_per_s,
        late.len(),
        home_share * 100.0
    );
    Phase {
        busy,
        settled_load,
        steals_per_s,
        home_share,
        hog_moves,
        migrated,
        report,
    }
}

/// Busy jiffies (user + nice + system + irq + softirq) per CPU in a
/// snapshot of /proc/stat's cpuN lines.
fn busy_per_cpu(text: &str) -> BTreeMap<usize, u64> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let cpu = f.first()?.strip_prefix("cpu")?.parse().ok()?;
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            Some((cpu, n(1) + n(2) + n(3) + n(6) + n(7)))
        })
        .collect()
}

/// Busy share of each domain's CPUs over a phase's second half, measured
/// by the guest kernel (not by scx_rebal).
fn domain_busy(dir: &Path, name: &str, doms: &BTreeMap<usize, BTreeSet<usize>>) -> Vec<f64> {
    let a = busy_per_cpu(&read(&dir.join(format!("{name}.stat0"))));
    let b = busy_per_cpu(&read(&dir.join(format!("{name}.stat1"))));
    doms.values()
        .map(|cpus| {
            cpus.iter()
                .map(|c| {
                    b.get(c)
                        .unwrap_or(&0)
                        .saturating_sub(*a.get(c).unwrap_or(&0)) as f64
                })
                .sum::<f64>()
        })
        .collect()
}

fn ratio(v: &[f64]) -> f64 {
    let max = v.iter().copied().fold(f64::MIN, f64::max);
    let min = v.iter().copied().fold(f64::MAX, f64::min);
    if min <= 0.0 { f64::INFINITY } else { max / min }
}

#[test]
fn balancer_evens_out_domains_and_moves_take_effect() {
    let (dir, mut c) = common::run_guest_script("vm_balance", "balance.sh", 900, &[]);
    for phase in ["nobalance", "balance"] {
        let st = read(&dir.join(format!("{phase}.state.txt")));
        c.check(
            st.contains("attached: enabled"),
            format!("{phase}: scheduler not attached"),
        );
        c.check(
            st.contains("loaded: enabled"),
            format!("{phase}: scheduler not attached under load"),
        );
        c.check(
            st.contains("exit_status: 0"),
            format!("{phase}: scheduler did not exit cleanly"),
        );
    }

    let off = measure(&dir, "nobalance");
    let on = measure(&dir, "balance");
    let report = format!("{}{}", off.report, on.report);
    let _ = std::fs::write(dir.join("balance-summary.txt"), &report);
    eprintln!("{report}");

    c.check(on.settled_load.len() == 4, "expected 4 domains");
    // Without balancing the hogs' load stays in domain 0 and nothing moves.
    c.check(
        off.settled_load.first().copied().unwrap_or(0.0) >= 5.0,
        "--no-load-balance: domain 0 should keep the hogs' load",
    );
    c.check(off.migrated == 0.0, "--no-load-balance: a task was moved");
    c.check(
        read(&dir.join("nobalance.sched.log")).contains("would move"),
        "--no-load-balance: no move was reported",
    );
    // With it, loads end near even: ideally 2 hogs per 2-CPU domain, but
    // the guest's own kthreads and the harness's samplers add up to ~1 of
    // load unevenly, and the balancer evens *that* too, within its
    // thresholds (20% between nodes). Seen in CI: hogs 3/2/2/1 with loads
    // [3.11, 2.27, 2.19, 1.96] (1.59) while busy time was even to 1.04; so
    // 1.75 here, and evenness itself is the busy-time check below.
    c.check(
        ratio(&on.settled_load) <= 1.75,
        format!(
            "with balancing, busiest/least loaded domain = {:.2} > 1.75",
            ratio(&on.settled_load)
        ),
    );
    // The measure, from the guest kernel: busy time per domain even
    // to 1.25x. (Stealing evens busy time without balancing too, so this
    // alone would not prove the moves; the home checks below do.)
    c.check(
        on.busy.len() == 4 && ratio(&on.busy) <= 1.25,
        format!(
            "with balancing, busiest/least busy domain (/proc/stat) = {:.2} > 1.25: {:?}",
            ratio(&on.busy),
            on.busy
        ),
    );
    c.check(
        on.migrated >= 6.0,
        format!("only {} moves took effect", on.migrated),
    );
    // The moves took effect: hogs run at their new homes. Without balancing
    // a hog's last CPU is often still in domain 0 (it waits there until an
    // idle CPU steals it), so its share at home varies from run to run
    // (34% and 53% seen); compare the share *away* from home instead.
    c.check(
        on.home_share >= 0.8 && (1.0 - on.home_share) <= 0.5 * (1.0 - off.home_share),
        format!(
            "hogs at home {:.0}% of the time with balancing vs {:.0}% without",
            on.home_share * 100.0,
            off.home_share * 100.0
        ),
    );
    c.check(
        on.steals_per_s <= 0.5 * off.steals_per_s,
        format!(
            "steals/s {:.0} with balancing vs {:.0} without",
            on.steals_per_s, off.steals_per_s
        ),
    );
    for (pid, n) in &on.hog_moves {
        c.check(*n <= 2, format!("hog {pid} was moved {n} times"));
    }
    common::check_dmesg(&mut c, &dir);
    c.finish(
        &dir,
        &[
            "balance-summary.txt",
            "balance.sched.log",
            "nobalance.state.txt",
            "balance.state.txt",
            "vm-run.log",
        ],
    );
}
