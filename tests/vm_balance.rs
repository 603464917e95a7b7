//! VM test of the balancer (issue: moves take effect). Eight CPU hogs are made
//! to call domain 0 of a 2-node x 2-LLC guest home, then set free, once with
//! `--no-load-balance` and once with balancing, in one boot.
//!
//! Busy time per domain proves nothing here: idle CPUs steal, so every CPU is
//! busy either way (it is printed, as evidence that the load ran). What
//! balancing changes is each hog's home, and so whether it runs on its home
//! LLC or is dragged around by stealing. Checked, from the guest kernel's own
//! figures (not scx_rebal's), over the second half of each phase:
//! - the load ran: every hog got CPU time (/proc/PID/schedstat);
//! - where the hogs run: with balancing, the domains evenly loaded to
//!   within one hog, counting each hog in the domain it was found on most
//!   often and the CPU time of the daemon and the test's sampler where they
//!   were found (under TCG those two use up to a hog's worth), and each hog found
//!   on a CPU of its home (the domain the balancer had last moved it to when
//!   the sample was taken, from the timestamps of the daemon's log and of
//!   the samples). Moves that did not take effect, or that BPF undid, would
//!   leave hogs on domain 0's 2 CPUs of 8;
//! - hogs of a domain share its CPUs fairly: the most and least CPU time
//!   a hog of the same domain got (across domains the daemon and the test's
//!   sampler take their share beside some hogs);
//! - hogs change domains far less often than without balancing, where
//!   idle CPUs keep stealing them from domain 0 (consecutive samples of a
//!   hog's CPU, /proc/PID/stat, in different domains);
//! - with balancing no CPU idles while hogs wait: all threads together ran
//!   nearly 8 CPUs' worth (each thread's schedstat; /proc/stat's busy share
//!   is printed);
//! - and, from scx_rebal's counters: cross-domain steals per second fall,
//!   no hog is moved more than twice (no ping-pong between rounds).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::read;

/// Least share of the second half each hog must have run (schedstat): 8
/// hogs on 8 CPUs run nearly all the time; this only proves they ran.
const MIN_HOG_RUN_SHARE: f64 = 0.5;
/// Most apart two domains' loads may be with balancing (hogs found there
/// plus the daemon's and the sampler's CPU, in CPUs; all domains have 2
/// CPUs). Up to one hog apart is as even as whole hogs allow (moving one
/// would leave the pair as far apart the other way); the rest is room for
/// sampling: the CPU the daemon and the sampler used is spread over the
/// domains by 2 samples a second.
const MAX_DOM_GAP: f64 = 1.25;
/// Least CPU time all tasks together must get over the second half with
/// balancing, in CPUs of 8 (every thread's schedstat): no CPU idles while
/// hogs wait. Not /proc/schedstat's per-CPU run time: the kernel adds a
/// run to it when the run ends, and a hog that kept its CPU for the whole
/// window left one CPU at 0.0 (benches/vm/results/2026-12-01-checks).
const MIN_CPUS_RUN: f64 = 7.6;
/// Most CPU time a hog may get over another of the same domain with
/// balancing: they share the same two CPUs (1.00-1.04 in 9 runs; 3.03 with
/// a build that charges odd pids triple, benches/vm/results/2026-12-01-checks).
/// Across domains the hogs' shares differ by what else runs there (the
/// daemon, the test's sampler: up to 0.4 CPU each under TCG; 1.06-1.33
/// over the same runs), which is fair, not a fault of balancing; a domain
/// left with three hogs is caught by the placement check.
const MAX_RUN_SPREAD: f64 = 1.15;

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
    /// Per hog over the second half (guest /proc/PID/schedstat): share of
    /// the time it ran.
    run_share: BTreeMap<u32, f64>,
    /// Share of a hog's consecutive samples in the second half that found
    /// it in another domain than the sample before.
    dom_changes: f64,
    /// Hogs per domain, each in the domain it was found on most often in
    /// the last third.
    hogs_per_dom: Vec<usize>,
    /// That domain, per hog.
    hog_dom: BTreeMap<u32, usize>,
    /// CPU time of all threads over the second half, in CPUs.
    all_run: f64,
    /// Per domain, the hogs found there and the CPU the daemon and the
    /// sampler used there, in CPUs.
    dom_load: Vec<f64>,
    /// Mean load per domain over the settled part (t >= 20 s), scx_rebal's
    /// own figure: reported, not judged.
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

/// "pid run_ns [wait_ns]" lines (balance.sh's .hogs0/1 with the wait,
/// .tasks0/1 without): pid -> run_ns.
fn run_ns(text: &str) -> BTreeMap<u32, f64> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<f64> = l
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            (f.len() == 2 || f.len() == 3).then(|| (f[0] as u32, f[1]))
        })
        .collect()
}

fn max_over_min<'a>(v: impl IntoIterator<Item = &'a f64>) -> f64 {
    ratio(&v.into_iter().copied().collect::<Vec<_>>())
}

fn measure(dir: &Path, name: &str) -> Phase {
    let lines = stats_lines(&read(&dir.join(format!("{name}.stats.jsonl"))));
    let doms = domains(lines.first());
    let settled: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["t"].as_f64().unwrap_or(0.0) >= 20.0)
        .collect();
    let cpu_busy = cpu_busy(dir, name);
    let window: f64 = read(&dir.join(format!("{name}.window")))
        .trim()
        .parse()
        .unwrap_or(f64::NAN);
    let (h0, h1) = (
        run_ns(&read(&dir.join(format!("{name}.hogs0")))),
        run_ns(&read(&dir.join(format!("{name}.hogs1")))),
    );
    let run_share: BTreeMap<u32, f64> = h1
        .iter()
        .filter_map(|(pid, run1)| Some((*pid, (run1 - h0.get(pid)?) / 1e9 / window)))
        .collect();
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
    let samples = read_samples(&read(&dir.join(format!("{name}.where"))));
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
    // Where each hog ran in the last third: the domain of most samples.
    let mut seen: BTreeMap<u32, BTreeMap<usize, usize>> = BTreeMap::new();
    for (_, pid, cpu) in samples.iter().filter(|s| since(s.0, t0) > last * 2.0 / 3.0) {
        if let Some((&d, _)) = doms.iter().find(|(_, cpus)| cpus.contains(cpu)) {
            *seen.entry(*pid).or_default().entry(d).or_default() += 1;
        }
    }
    let dom_of = |cpu: &usize| doms.iter().find(|(_, c)| c.contains(cpu)).map(|(d, _)| *d);
    let (mut pairs, mut changes) = (0, 0);
    let mut prev: BTreeMap<u32, Option<usize>> = BTreeMap::new();
    for (_, pid, cpu) in &late {
        let d = dom_of(cpu);
        if let Some(p) = prev.insert(*pid, d) {
            pairs += 1;
            changes += usize::from(p != d);
        }
    }
    let dom_changes = changes as f64 / pairs.max(1) as f64;
    let mut hogs_per_dom = vec![0; doms.len()];
    let mut hog_dom = BTreeMap::new();
    for (pid, counts) in &seen {
        if let Some((&d, _)) = counts.iter().max_by_key(|(_, n)| **n)
            && let Some(n) = hogs_per_dom.get_mut(d)
        {
            *n += 1;
            hog_dom.insert(*pid, d);
        }
    }
    let runs = thread_runs(dir, name, window);
    let all_run: f64 = runs.values().sum();
    // The load on each domain as the kernel saw it: a hog wants a whole
    // CPU wherever it is found; the daemon's threads and the sampler use
    // what schedstat says they ran, spread over the domains they were
    // found in (late samples of .others).
    let mut dom_load: Vec<f64> = hogs_per_dom.iter().map(|&n| n as f64).collect();
    let mut other_seen: BTreeMap<u32, BTreeMap<usize, usize>> = BTreeMap::new();
    for (_, tid, cpu) in read_samples(&read(&dir.join(format!("{name}.others"))))
        .iter()
        .filter(|s| since(s.0, t0) > last / 2.0)
    {
        if let Some(d) = dom_of(cpu) {
            *other_seen.entry(*tid).or_default().entry(d).or_default() += 1;
        }
    }
    for (tid, counts) in &other_seen {
        let n: usize = counts.values().sum();
        let share = runs.get(tid).copied().unwrap_or(0.0);
        for (d, k) in counts {
            if let Some(l) = dom_load.get_mut(*d) {
                *l += share * *k as f64 / n as f64;
            }
        }
    }

    let round = |v: &[f64]| {
        v.iter()
            .map(|x| (x * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    };
    let report = format!(
        "{name}: over the second half ({window:.1} s): CPUs busy {:?} (/proc/stat); all tasks \
         ran {all_run:.2} CPUs' worth (schedstat); hogs ran {:?} of the time, max/min {:.2}, \
         within a domain at most {:.2}; {:.0}% of samples in another domain than the last; \
         hogs per domain {hogs_per_dom:?}, with the daemon and the sampler {:?}; hogs at home in {at_home} of {} late samples ({:.0}%); \
         {:.0} steals/s; scx_rebal's settled load per domain {:?}; final homes {home:?}, \
         moves per hog {hog_moves:?}, {migrated} moves took effect\n",
        round(&cpu_busy),
        round(&run_share.values().copied().collect::<Vec<_>>()),
        max_over_min(run_share.values()),
        spread_within_doms(&run_share, &hog_dom),
        dom_changes * 100.0,
        round(&dom_load),
        late.len(),
        home_share * 100.0,
        steals_per_s,
        round(&settled_load),
    );
    Phase {
        run_share,
        dom_changes,
        hogs_per_dom,
        hog_dom,
        all_run,
        dom_load,
        settled_load,
        steals_per_s,
        home_share,
        hog_moves,
        migrated,
        report,
    }
}

/// (Busy, all) jiffies per CPU in a snapshot of /proc/stat's cpuN lines;
/// busy is user + nice + system + irq + softirq, all adds idle + iowait.
fn cpu_ticks(text: &str) -> BTreeMap<usize, (u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let cpu = f.first()?.strip_prefix("cpu")?.parse().ok()?;
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let busy = n(1) + n(2) + n(3) + n(6) + n(7);
            Some((cpu, (busy, busy + n(4) + n(5))))
        })
        .collect()
}

/// Busy share of each CPU over a phase's second half, measured by the
/// guest kernel (not by scx_rebal). Shares, not jiffies: under TCG the
/// guest loses ticks, so only the split between busy and idle is reliable.
fn cpu_busy(dir: &Path, name: &str) -> Vec<f64> {
    let a = cpu_ticks(&read(&dir.join(format!("{name}.stat0"))));
    let b = cpu_ticks(&read(&dir.join(format!("{name}.stat1"))));
    b.iter()
        .map(|(cpu, &(busy, all))| {
            let (busy0, all0) = a.get(cpu).copied().unwrap_or((0, 0));
            busy.saturating_sub(busy0) as f64 / all.saturating_sub(all0).max(1) as f64
        })
        .collect()
}

/// CPU time per thread between balance.sh's .tasks0 and .tasks1 ("tid
/// run_ns" lines), in CPUs over `window` seconds. A thread born in between
/// counts from 0; one that died in between is lost (the test's short-lived
/// ps and head, a few ms).
fn thread_runs(dir: &Path, name: &str, window: f64) -> BTreeMap<u32, f64> {
    let a = run_ns(&read(&dir.join(format!("{name}.tasks0"))));
    let b = run_ns(&read(&dir.join(format!("{name}.tasks1"))));
    b.iter()
        .map(|(tid, ns)| {
            (
                *tid,
                (ns - a.get(tid).copied().unwrap_or(0.0)) / 1e9 / window,
            )
        })
        .collect()
}

/// "time-of-day pid cpu" lines (balance.sh's .where and .others).
fn read_samples(text: &str) -> Vec<(f64, u32, usize)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.parse().ok()?,
                f.get(1)?.parse().ok()?,
                f.get(2)?.parse().ok()?,
            ))
        })
        .collect()
}

/// The largest max/min of the hogs' run shares inside one domain.
fn spread_within_doms(run_share: &BTreeMap<u32, f64>, hog_dom: &BTreeMap<u32, usize>) -> f64 {
    let mut by_dom: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for (pid, share) in run_share {
        if let Some(d) = hog_dom.get(pid) {
            by_dom.entry(*d).or_default().push(*share);
        }
    }
    by_dom.values().map(|v| ratio(v)).fold(1.0, f64::max)
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
    // The load ran, in both phases: every hog got CPU time (a hog that
    // never ran would make every other check moot).
    for (name, p) in [("--no-load-balance", &off), ("with balancing", &on)] {
        c.check(
            p.run_share.len() == 8 && p.run_share.values().all(|&r| r >= MIN_HOG_RUN_SHARE),
            format!(
                "{name}: hogs ran {:?} of the second half (want 8 hogs, each >= {MIN_HOG_RUN_SHARE})",
                p.run_share
            ),
        );
    }
    // With balancing no CPU idles while a hog waits in another domain: all
    // threads together ran nearly 8 CPUs' worth (their schedstat). Not by
    // /proc/stat's busy ticks: under TCG those lose ticks unevenly (a CPU
    // read 84% busy while each of its two hogs ran 99% of the time). Not
    // the hogs' total either: what the daemon and the sampler use is
    // theirs by right (in one run 0.4 and 0.3 of a CPU, leaving the hogs
    // 6.97).
    c.check(
        on.all_run >= MIN_CPUS_RUN,
        format!(
            "with balancing, all tasks ran {:.2} CPUs' worth of 8 (schedstat; want >= \
             {MIN_CPUS_RUN})",
            on.all_run
        ),
    );
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
    // With it, as the guest kernel saw them: the hogs (a CPU each where
    // they were found) and the CPU time of the daemon and the sampler
    // spread evenly over the 2-CPU domains, to within one hog (see
    // MAX_DOM_GAP). Not "two hogs each": under TCG those two use up to a
    // hog's worth between them, and 3/2/1/2 with them beside the lone hog
    // is as even as 2/2/2/2.
    let gap = on.dom_load.iter().copied().fold(f64::MIN, f64::max)
        - on.dom_load.iter().copied().fold(f64::MAX, f64::min);
    c.check(
        on.dom_load.len() == 4 && gap <= MAX_DOM_GAP,
        format!(
            "with balancing, load per domain (hogs {:?} where the kernel found them, with the \
             daemon's and the sampler's CPU) {:?}: apart by {gap:.2} > {MAX_DOM_GAP}",
            on.hogs_per_dom, on.dom_load
        ),
    );
    // ... and hogs of a domain share its CPUs fairly (see MAX_RUN_SPREAD).
    let within = spread_within_doms(&on.run_share, &on.hog_dom);
    c.check(
        within <= MAX_RUN_SPREAD,
        format!(
            "with balancing, the CPU time (schedstat) of hogs of one domain spread {within:.2} > \
             {MAX_RUN_SPREAD}: {:?} in domains {:?}",
            on.run_share, on.hog_dom
        ),
    );
    // ... and far fewer changes of domain than when idle CPUs keep
    // stealing hogs from domain 0.
    c.check(
        on.dom_changes <= 0.5 * off.dom_changes,
        format!(
            "hogs found in another domain than the sample before: {:.0}% with balancing vs \
             {:.0}% without",
            on.dom_changes * 100.0,
            off.dom_changes * 100.0
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
