//! VM test of bad days (issue 6), guest side tests/vm/faults.sh: CPU hotplug
//! cycles under load (scx_rebal restarts with the new topology every time),
//! affinity / fork / nice / SCHED_FIFO / cgroup storms, and SIGKILL of the
//! daemon (fallback to the default scheduler, then a clean new start).
//!
//! CI runs it short. For the soak run: SCX_REBAL_SOAK_SECS=300 (storm
//! length, default 20) and SCX_REBAL_HOTPLUG_CYCLES (default 4).

mod common;

use common::{field, read};

fn env_u32(name: &str, default: u32) -> u32 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

#[test]
fn hotplug_storms_and_sigkill() {
    // Four cycles cover both kinds (odd: one CPU of domain 1 goes, even:
    // all of it) twice; each costs ~50 s of the CI budget.
    let cycles = env_u32("SCX_REBAL_HOTPLUG_CYCLES", 4);
    let soak = env_u32("SCX_REBAL_SOAK_SECS", 20);
    let (dir, mut c) = common::run_guest_script(
        "vm_faults",
        "faults.sh",
        900 + 120 * cycles + 2 * soak,
        &[&cycles.to_string(), &soak.to_string()],
    );
    let res = read(&dir.join("faults.txt"));
    for line in res.lines().filter(|l| l.contains("FAIL")) {
        c.0.push(line.to_string());
    }
    for i in 1..=cycles {
        for step in ["offline", "online"] {
            c.check(
                field(&res, &format!("cycle {i} {step}")).as_deref() == Some("ok"),
                format!("hotplug cycle {i} {step}: not seen back"),
            );
        }
        // The restarted daemon schedules on the CPUs that are online: odd
        // cycles take CPUs 3 and 6 away, even ones 2, 3 (all of domain 1)
        // and 6.
        let offline = if i % 2 == 1 {
            "[[0,1],[2],[4,5],[7]]"
        } else {
            "[[0,1],[4,5],[7]]"
        };
        for (step, want) in [
            ("offline", offline),
            ("online", "[[0,1],[2,3],[4,5],[6,7]]"),
        ] {
            let got = field(&res, &format!("cycle {i} {step} domains"));
            c.check(
                got.as_deref() == Some(want),
                format!("cycle {i} {step}: the daemon's domains {got:?}, want {want}"),
            );
        }
    }
    c.check(
        field(&res, "online").as_deref() == Some("0-7"),
        "not every CPU came back online",
    );
    for when in [
        "after hotplug",
        "after storms",
        "after task storm",
        "after SIGKILL",
    ] {
        // Each hog alive and given CPU time since the last check.
        c.check(
            common::all_ran(field(&res, when).as_deref()),
            format!("hogs {when}: {:?}", field(&res, when)),
        );
    }
    c.check(
        field(&res, "stress_rc").as_deref() == Some("0"),
        "stress-ng failed",
    );
    // stress-ng's own count of work done: it ran (a read-only cwd makes it
    // exit at once, successfully or not).
    common::check_stress_ops(
        &mut c,
        "storms",
        field(&res, "storm_ops").as_deref(),
        &["affinity", "fork"],
    );
    c.check(
        field(&res, "after_storms").as_deref() == Some("enabled")
            && field(&res, "after_storms_ops").as_deref() == Some("rebal"),
        "scx_rebal not attached after the storms",
    );
    c.check(
        field(&res, "storm_restarts").as_deref() == Some("0"),
        "scx_rebal was ejected during the storms",
    );
    c.check(
        field(&res, "forkstorm_rc").as_deref() == Some("0")
            && field(&res, "after_forkstorm").as_deref() == Some("enabled")
            && field(&res, "forkstorm_restarts").as_deref() == Some("0"),
        format!(
            "task storm: stress-ng {:?}, state after {:?}, ejected {:?} times",
            field(&res, "forkstorm_rc"),
            field(&res, "after_forkstorm"),
            field(&res, "forkstorm_restarts")
        ),
    );
    let forks = field(&res, "forks").and_then(|f| f.split_whitespace().next()?.parse::<u64>().ok());
    c.check(
        forks.is_some_and(|n| n > 0),
        format!("task storm: stress-ng forked {forks:?} tasks"),
    );
    c.check(
        field(&res, "after_kill_hackbench").as_deref() == Some("ran"),
        "tasks did not run after SIGKILL",
    );
    c.check(
        field(&res, "restarted_hackbench_rc").as_deref() == Some("0")
            && field(&res, "restarted_exit").as_deref() == Some("0"),
        "a new scx_rebal after SIGKILL did not run and stop cleanly",
    );
    common::check_dmesg(&mut c, &dir);
    let log = read(&dir.join("sched.log"));
    eprintln!(
        "{res}\nrestarts in the daemon's log: {}",
        log.matches("asked for a restart").count()
    );
    c.finish(
        &dir,
        &[
            "faults.txt",
            "sched.log",
            "stress-ng.log",
            "forkstorm.log",
            "dmesg.txt",
            "vm-run.log",
        ],
    );
}
