//! Boots the 2-node, 4-LLC test VM, runs scx_rebal under CPU/fork/hackbench load
//! (tests/vm/basic.sh) and checks it attached, survived, detached cleanly and
//! dispatched on every LLC domain; then that the binary installed by
//! scripts/install.sh attaches under every --profile, with the profile's
//! settings and no libbpf chatter in its default log, and that
//! scripts/uninstall.sh leaves nothing. Needs a sched_ext kernel
//! (scripts/find-kernel.sh).

mod common;

use std::path::Path;

use common::{Checks, field, read};
use scx_rebal::profile::Profile;

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
