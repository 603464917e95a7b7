//! Boots the 2-node, 4-LLC test VM, runs scx_rebal under CPU/fork/hackbench load
//! (tests/vm/basic.sh) and checks it attached, survived, detached cleanly and
//! dispatched on every LLC domain. Needs a sched_ext kernel (scripts/find-kernel.sh).

mod common;

use common::{Checks, field, read};

#[test]
fn vm_basic_2n4l() {
    let (dir, mut c) = common::run_guest_script("vm_basic_2n4l", "basic.sh", 900, &[]);

    let files = [
        "attached.txt",
        "second.log",
        "after_load.txt",
        "after_stop.txt",
        "hackbench.txt",
        "sched.log",
        "stats.jsonl",
        "dmesg.txt",
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

    common::check_dmesg(&mut c, &dir);

    check_stats(&mut c, &read(&dir.join("stats.jsonl")));
    c.finish(&dir, &files);
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
