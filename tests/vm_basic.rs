//! Boots the 2-node, 4-LLC test VM, runs scx_rebal under CPU/fork/hackbench load
//! (tests/vm/basic.sh) and checks it attached, survived, detached cleanly and
//! dispatched on every LLC domain. The scheduler runs inside a cgroup cpuset of
//! CPUs 0-1: its domains (and a --dump-domains from the same cpuset) must still
//! cover all 8 CPUs, and every CPU must have been busy under the load (by the
//! guest's /proc/stat, not the scheduler's own figures). Then the binary
//! installed by scripts/install.sh must attach under every --profile, with the
//! profile's settings and no libbpf chatter in its default log, and
//! scripts/uninstall.sh must leave nothing. Needs a sched_ext kernel
//! (scripts/find-kernel.sh).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Checks, field, read};
use scx_rebal::profile::Profile;

/// The guest's online CPUs (the 2n4l shape).
const CPUS: usize = 8;

/// Least share of the load phase each CPU must have been busy (from the
/// guest's /proc/stat). With every CPU in a domain the load keeps all 8
/// well above it; with the daemon's domains limited to its cpuset, the CPUs
/// outside stayed far below it while CPUs 0-1 were nearly saturated (runs
/// in benches/vm/results/2026-11-30-topology/).
const MIN_BUSY: f64 = 0.5;

#[test]
fn vm_basic_2n4l() {
    let (dir, mut c) = common::run_guest_script("vm_basic_2n4l", "basic.sh", 900, &[]);

    let files = [
        "cpuset.txt",
        "domains-in-cpuset.json",
        "stat-before.txt",
        "stat-after.txt",
        "attached.txt",
        "second.log",
        "after_load.txt",
        "after_stop.txt",
        "hackbench.txt",
        "sched.log",
        "stats.jsonl",
        "dmesg.txt",
        "install.log",
        "profiles.txt",
        "profile-auto.log",
        "profile-gaming.log",
        "uninstall.log",
        "vm-run.log",
    ];

    let attached = read(&dir.join("attached.txt"));
    c.check(
        field(&attached, "state").as_deref() == Some("enabled"),
        "attached.txt: sched_ext state is not `enabled` after start",
    );
    c.check(
        field(&attached, "ops").as_deref() == Some("rebal"),
        "attached.txt: root/ops is not `rebal`",
    );
    // Every thread of the daemon runs at --daemon-nice's default, -20: the
    // stats server and the signal handler too, started after it was set.
    let nices = field(&attached, "threads_nice").unwrap_or_default();
    let nices: Vec<&str> = nices.split_whitespace().collect();
    c.check(
        nices.len() >= 2 && nices.iter().all(|n| *n == "-20"),
        format!("attached.txt: the daemon's threads should all run at nice -20, found {nices:?}"),
    );
    let second = read(&dir.join("second.log"));
    c.check(
        field(&second, "second_exit").as_deref() == Some("1"),
        "second.log: a second scx_rebal did not exit with status 1",
    );
    c.check(
        second.contains("another sched_ext scheduler (rebal) is already running"),
        "second.log: a second scx_rebal did not say that rebal is already running",
    );
    c.check(
        field(&second, "state_after").as_deref() == Some("enabled")
            && field(&second, "ops_after").as_deref() == Some("rebal"),
        "second.log: the refused second instance disturbed the running one",
    );
    let after_load = read(&dir.join("after_load.txt"));
    c.check(
        field(&after_load, "state").as_deref() == Some("enabled"),
        "after_load.txt: sched_ext state is not `enabled` after the load (ejected?)",
    );
    let after_stop = read(&dir.join("after_stop.txt"));
    c.check(
        field(&after_stop, "state").as_deref() == Some("disabled"),
        "after_stop.txt: sched_ext state is not `disabled` after SIGINT",
    );
    c.check(
        field(&after_stop, "exit_status").as_deref() == Some("0"),
        "after_stop.txt: the scheduler did not exit with status 0 on SIGINT",
    );
    c.check(
        read(&dir.join("sched.log")).contains("unregistered from user space"),
        "sched.log lacks `unregistered from user space` (no clean detach on SIGINT)",
    );

    // The load ran: stress-ng did work in each stressor and hackbench
    // completed runs.
    let load = read(&dir.join("hackbench.txt"));
    common::check_stress_ops(
        &mut c,
        "load",
        field(&load, "stress_ops").as_deref(),
        &["cpu", "fork", "affinity"],
    );
    c.check(
        field(&load, "stress_rc").as_deref() == Some("0"),
        "stress-ng failed",
    );
    let runs = load
        .lines()
        .filter(|l| l.starts_with("hackbench_ms:"))
        .collect::<Vec<_>>();
    c.check(
        !runs.is_empty() && runs.iter().all(|l| l.ends_with("rc: 0")),
        format!("hackbench runs: {runs:?}"),
    );
    // -v shows libbpf's start-up messages (at debug); see check_installed
    // for the default level, which must not.
    c.check(
        read(&dir.join("sched.log"))
            .lines()
            .any(|l| l.contains("[DEBUG] libbpf: struct_ops")),
        "sched.log (run with -v) has no libbpf debug line: -v no longer shows libbpf's messages",
    );

    common::check_dmesg(&mut c, &dir);

    check_stats(&mut c, &read(&dir.join("stats.jsonl")));
    check_cpuset(&mut c, &dir);
    check_busy(
        &mut c,
        &read(&dir.join("stat-before.txt")),
        &read(&dir.join("stat-after.txt")),
    );
    check_installed(&mut c, &dir);
    c.finish(&dir, &files);
}

/// The installed binary under each profile, started without -v.
fn check_installed(c: &mut Checks, dir: &Path) {
    let install = read(&dir.join("install.log"));
    c.check(
        field(&install, "install_rc").as_deref() == Some("0")
            && install.contains("installed  /usr/local/bin/scx_rebal"),
        "install.log: scripts/install.sh failed or did not install the binary",
    );
    let profiles = read(&dir.join("profiles.txt"));
    for p in Profile::ALL {
        let name = p.name();
        c.check(
            field(&profiles, &format!("{name}_state")).as_deref() == Some("enabled")
                && field(&profiles, &format!("{name}_ops")).as_deref() == Some("rebal"),
            format!("profiles.txt: the installed binary did not attach with --profile {name}"),
        );
        c.check(
            field(&profiles, &format!("{name}_exit")).as_deref() == Some("0"),
            format!("profiles.txt: --profile {name} did not exit with status 0"),
        );
        let log = read(&dir.join(format!("profile-{name}.log")));
        let want = format!("profile {name}: {}", p.settings().as_flags());
        c.check(
            log.contains(&want),
            format!("profile-{name}.log lacks the settings line `{want}`"),
        );
        c.check(
            log.contains("scx_rebal attached") && log.contains("stopped at --run-for"),
            format!("profile-{name}.log: no attach, or not stopped by --run-for"),
        );
        // The quiet start: no libbpf or scx_utils chatter by default.
        for l in log.lines() {
            if l.contains("libbpf") || l.contains("kernel features") {
                c.0.push(format!(
                    "profile-{name}.log: chatter in the default log: {l}"
                ));
            }
        }
        c.check(
            !log.contains("\n\n"),
            format!("profile-{name}.log has blank lines"),
        );
    }
    let uninstall = read(&dir.join("uninstall.log"));
    c.check(
        field(&uninstall, "uninstall_rc").as_deref() == Some("0")
            && field(&uninstall, "left_behind").as_deref() == Some("0"),
        "uninstall.log: scripts/uninstall.sh failed or left files in the DESTDIR",
    );
}

/// The last stats line must list the 4 LLC domains of 2n4l, each with dispatches.
fn check_stats(c: &mut Checks, stats: &str) {
    let Some(last) = stats.lines().rev().find(|l| !l.trim().is_empty()) else {
        c.0.push("stats.jsonl is missing or empty".into());
        return;
    };
    let v: serde_json::Value = match serde_json::from_str(last) {
        Ok(v) => v,
        Err(e) => {
            c.0.push(format!(
                "last line of stats.jsonl is not JSON ({e}): {last}"
            ));
            return;
        }
    };
    let Some(domains) = v["domains"].as_array() else {
        c.0.push(format!("last stats line has no `domains` array: {last}"));
        return;
    };
    c.check(
        domains.len() == 4,
        format!(
            "expected 4 domains (one per LLC) in 2n4l, got {}",
            domains.len()
        ),
    );
    for d in domains {
        let n = d["dispatched"].as_u64();
        c.check(
            n.is_some_and(|n| n > 0),
            format!("domain {} has dispatched = {:?} (want > 0)", d["id"], n),
        );
    }
}

/// The scheduler and the --dump-domains really ran confined to CPUs 0-1, and
/// both still gave every online CPU a domain.
fn check_cpuset(c: &mut Checks, dir: &std::path::Path) {
    let cpuset = read(&dir.join("cpuset.txt"));
    c.check(
        field(&cpuset, "cpuset_effective").as_deref() == Some("0-1"),
        "cpuset.txt: the cgroup's effective cpuset is not 0-1",
    );
    c.check(
        field(&cpuset, "sched_cpus_allowed").is_some_and(|v| v.ends_with("\t0-1")),
        "cpuset.txt: the scheduler's Cpus_allowed_list is not 0-1 (not confined)",
    );
    c.check(
        cpuset.contains("Cpus_allowed_list:\t0-1"),
        "cpuset.txt: a process started in the cpuset is not confined to 0-1",
    );
    c.check(
        field(&cpuset, "dump_exit").as_deref() == Some("0"),
        "cpuset.txt: --dump-domains in the cpuset did not exit 0",
    );
    let all: BTreeSet<usize> = (0..CPUS).collect();
    let dump = read(&dir.join("domains-in-cpuset.json"));
    let dumped: Option<BTreeSet<usize>> = serde_json::from_str::<serde_json::Value>(&dump)
        .ok()
        .and_then(|v| {
            v["domains"].as_array().map(|ds| {
                ds.iter()
                    .flat_map(|d| d["cpus"].as_array().cloned().unwrap_or_default())
                    .filter_map(|cpu| cpu.as_u64().map(|n| n as usize))
                    .collect()
            })
        });
    c.check(
        dumped.as_ref() == Some(&all),
        format!("--dump-domains in a 0-1 cpuset does not cover CPUs 0-7: {dump}"),
    );
    // "domain 0 node 0 cpus [0, 1]" lines, logged at load.
    let log = read(&dir.join("sched.log"));
    let loaded: BTreeSet<usize> = log
        .lines()
        .filter_map(|l| l.split_once("] domain ").map(|(_, r)| r))
        .filter_map(|r| r.split_once("cpus [").map(|(_, r)| r))
        .filter_map(|r| r.split_once(']').map(|(list, _)| list))
        .flat_map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect::<Vec<usize>>()
        })
        .collect();
    c.check(
        loaded == all,
        format!(
            "the scheduler started in a 0-1 cpuset loaded domains over CPUs {loaded:?}, not 0-7"
        ),
    );
}

/// Per-CPU busy share of the load phase from two /proc/stat snapshots:
/// every CPU must have run the load, not only the daemon's own two.
fn check_busy(c: &mut Checks, before: &str, after: &str) {
    let parse = |s: &str| -> Vec<(String, u64, u64)> {
        s.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let v: Vec<u64> = f.get(1..)?.iter().filter_map(|x| x.parse().ok()).collect();
                // user nice system idle iowait irq softirq steal
                if v.len() < 8 {
                    return None;
                }
                let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
                Some((f[0].to_string(), busy, busy + v[3] + v[4]))
            })
            .collect()
    };
    let (b, a) = (parse(before), parse(after));
    c.check(
        a.len() == CPUS && b.len() == CPUS,
        format!(
            "/proc/stat snapshots list {} and {} CPUs, want {CPUS}",
            b.len(),
            a.len()
        ),
    );
    let mut shares = Vec::new();
    for ((name, b_busy, b_total), (_, a_busy, a_total)) in b.iter().zip(&a) {
        let total = a_total.saturating_sub(*b_total).max(1);
        let share = a_busy.saturating_sub(*b_busy) as f64 / total as f64;
        shares.push(format!("{name} {:.0}%", share * 100.0));
        c.check(
            share >= MIN_BUSY,
            format!(
                "{name} was busy {:.0}% of the load phase (< {:.0}%): not scheduled?",
                share * 100.0,
                MIN_BUSY * 100.0
            ),
        );
    }
    eprintln!(
        "busy share per CPU over the load phase: {}",
        shares.join(", ")
    );
}
