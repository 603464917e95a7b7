//! VM test of bad days (issue 6), guest side tests/vm/faults.sh: CPU hotplug
//! cycles under load (scx_rebal restarts with the new topology every time),
//! affinity / fork / nice / SCHED_FIFO / cgroup storms, and SIGKILL of the
//! daemon (fallback to the default scheduler, then a clean new start).
//!
//! CI runs it short. For the soak run: SCX_REBAL_SOAK_SECS=300 (storm
//! length, default 20) and SCX_REBAL_HOTPLUG_CYCLES (default 10).

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
    let cycles = env_u32("SCX_REBAL_HOTPLUG_CYCLES", 10);
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
        // While CPUs were out, the domains it would build had changed.
        let doms = read(&dir.join(format!("domains-{i}.json")));
        c.check(
            !doms.contains("\"cpus\":[0,1,2,3") && !doms.is_empty(),
            format!("cycle {i}: --dump-domains while offline: {doms}"),
        );
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
        c.check(
            field(&res, when).as_deref() == Some("0 dead"),
            format!("hogs lost {when}: {:?}", field(&res, when)),
        );
    }
    c.check(
        field(&res, "stress_rc").as_deref() == Some("0"),
        "stress-ng failed",
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
