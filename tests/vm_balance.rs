//! VM test of the balancer (issue: moves take effect). Eight CPU hogs start
//! in domain 0 of a 2-node x 2-LLC guest; the busy time of every domain is
//! measured from the guest's /proc/stat, not from scx_rebal's counters, with
//! balancing off and then on, in one boot. With balancing, the busiest domain
//! must end within 1.25x the least busy, and every hog the balancer moved
//! must really have run on a CPU of the domain it was moved to.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{Checks, fresh_rwdir, read, repo_root, sched_binary, vm_run};

/// Busy jiffies per CPU at each sampling window.
fn parse_stat(text: &str) -> Vec<BTreeMap<usize, u64>> {
    let mut windows = Vec::new();
    for line in text.lines() {
        if line.starts_with("t ") {
            windows.push(BTreeMap::new());
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(cpu) = f
            .first()
            .and_then(|c| c.strip_prefix("cpu"))
            .and_then(|c| c.parse().ok())
        else {
            continue;
        };
        let v: Vec<u64> = f[1..].iter().filter_map(|x| x.parse().ok()).collect();
        if v.len() < 8 {
            continue;
        }
        // user nice system idle iowait irq softirq steal
        let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
        if let Some(w) = windows.last_mut() {
            w.insert(cpu, busy);
        }
    }
    windows
}

/// Domains (id -> cpus) from the first line of a --stats-json file.
fn domains(stats: &str) -> BTreeMap<usize, BTreeSet<usize>> {
    let mut out = BTreeMap::new();
    if let Some(line) = stats.lines().next() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        for d in v["domains"].as_array().into_iter().flatten() {
            let id = d["id"].as_u64().unwrap_or(0) as usize;
            let cpus = d["cpus"].as_array().into_iter().flatten();
            out.insert(
                id,
                cpus.filter_map(|c| c.as_u64())
                    .map(|c| c as usize)
                    .collect(),
            );
        }
    }
    out
}

/// Busy jiffies of each domain between windows `from` and `to`.
fn dom_busy(
    w: &[BTreeMap<usize, u64>],
    doms: &BTreeMap<usize, BTreeSet<usize>>,
    from: usize,
    to: usize,
) -> Vec<u64> {
    doms.values()
        .map(|cpus| {
            cpus.iter()
                .map(|c| w[to].get(c).copied().unwrap_or(0) - w[from].get(c).copied().unwrap_or(0))
                .sum()
        })
        .collect()
}

fn ratio(busy: &[u64]) -> f64 {
    let max = busy.iter().copied().max().unwrap_or(0) as f64;
    let min = busy.iter().copied().min().unwrap_or(0) as f64;
    if min == 0.0 { f64::INFINITY } else { max / min }
}

/// Per-window imbalance and the settled ratio (windows 5.., i.e. after four
/// balancing intervals) of one phase, as text for the report.
fn phase_report(dir: &Path, name: &str, doms: &BTreeMap<usize, BTreeSet<usize>>) -> (f64, String) {
    let w = parse_stat(&read(&dir.join(format!("{name}.stat"))));
    if w.len() < 6 {
        return (
            f64::INFINITY,
            format!("{name}: only {} windows sampled\n", w.len()),
        );
    }
    let mut s = format!("{name}: busy jiffies per domain per ~2 s window\n");
    for i in 1..w.len() {
        let b = dom_busy(&w, doms, i - 1, i);
        s.push_str(&format!("  window {i:2}: {b:?} max/min {:.2}\n", ratio(&b)));
    }
    let settled = dom_busy(&w, doms, 4, w.len() - 1);
    let r = ratio(&settled);
    s.push_str(&format!(
        "  settled (windows 5..{}): {settled:?} max/min {r:.2}\n",
        w.len() - 1
    ));
    (r, s)
}

#[test]
fn balancer_evens_out_domains_and_moves_take_effect() {
    let dir = fresh_rwdir("vm_balance");
    let script = repo_root().join("tests/vm/balance.sh");
    let run = vm_run(
        "2n4l",
        &dir,
        900,
        &[
            "sh",
            &script.to_string_lossy(),
            &sched_binary().to_string_lossy(),
            &dir.to_string_lossy(),
        ],
    );
    let mut c = Checks::default();
    c.check(
        run.status == Some(0),
        format!("guest script exit status {:?}", run.status),
    );

    let doms = domains(&read(&dir.join("balance.stats.jsonl")));
    c.check(doms.len() == 4, format!("expected 4 domains, got {doms:?}"));
    let (r_off, rep_off) = phase_report(&dir, "nobalance", &doms);
    let (r_on, rep_on) = phase_report(&dir, "balance", &doms);
    let report = format!("{rep_off}{rep_on}");
    let _ = std::fs::write(dir.join("balance-summary.txt"), &report);
    eprintln!("{report}");
    c.check(
        r_on <= 1.25,
        format!("with balancing, busiest/least busy domain = {r_on:.2} > 1.25"),
    );

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

    // Moves the balancer logged: "move pid P dom A -> B (...)". The last one
    // of each pid counts.
    let log = read(&dir.join("balance.sched.log"));
    let hogs: BTreeSet<u32> = read(&dir.join("balance.pids"))
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let mut dest: BTreeMap<u32, usize> = BTreeMap::new();
    for l in log.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let Some(i) = f.iter().position(|w| *w == "move") else {
            continue;
        };
        if f.get(i + 1) == Some(&"pid") && f.get(i + 4) == Some(&"dom") {
            let pid = f.get(i + 2).and_then(|p| p.parse().ok());
            let to = f.get(i + 6).and_then(|d| d.parse().ok());
            if let (Some(pid), Some(to)) = (pid, to) {
                dest.insert(pid, to);
            }
        }
    }
    let moved_hogs: Vec<_> = dest.iter().filter(|(p, _)| hogs.contains(p)).collect();
    c.check(
        !moved_hogs.is_empty(),
        "the balancer moved none of the hogs",
    );
    let where_ = read(&dir.join("balance.where"));
    for (pid, to) in &moved_hogs {
        let cpus = doms.get(to).cloned().unwrap_or_default();
        let ran_there = where_.lines().any(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            f.len() == 3 && f[1] == **pid as u64 && cpus.contains(&(f[2] as usize))
        });
        c.check(
            ran_there,
            format!("hog {pid} was moved to domain {to} but never seen on its CPUs {cpus:?}"),
        );
    }
    let dmesg = read(&dir.join("dmesg.txt"));
    for bad in ["runnable task stall", "scx_bpf_error", "BUG:"] {
        c.check(!dmesg.contains(bad), format!("dmesg contains {bad:?}"));
    }
    eprintln!("moved hogs: {moved_hogs:?}; settled ratio off {r_off:.2}, on {r_on:.2}");
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
