//! VM test of the latency knobs (issue 4): the tuner's slice follows load
//! (short while tasks wait, back to the longest once they are gone), a
//! pinned periodic thread preempts CPU hogs when it wakes,
//! `--fifo` schedules, and `--partial` leaves every task alone but those
//! that chose SCHED_EXT. Guest side: tests/vm/modes.sh.

mod common;

use common::{field, read};

fn lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Events scx_rebal handled over a whole run (the last line's totals).
fn scheduled(stats: &str) -> u64 {
    let last = lines(stats).pop().unwrap_or_default();
    last["domains"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            ["enqueued", "direct", "pinned", "kept"]
                .iter()
                .map(|k| d[k].as_u64().unwrap_or(0))
                .sum::<u64>()
        })
        .sum()
}

#[test]
fn tuner_fifo_and_partial() {
    let (dir, mut c) = common::run_guest_script("vm_modes", "modes.sh", 900, &[]);
    let modes = read(&dir.join("modes.txt"));

    // Tuner: longest slice idle, shorter under 16 hogs on 8 CPUs, longest again.
    let slices: Vec<u64> = lines(&read(&dir.join("tuner.stats.jsonl")))
        .iter()
        .filter_map(|l| l["slice_us"].as_u64())
        .collect();
    let max = scx_rebal::bpf_intf::consts_SLICE_MAX_US_DFL as u64;
    let first_max = slices.iter().position(|&s| s == max);
    let low = first_max.and_then(|i| {
        slices[i..]
            .iter()
            .position(|&s| s <= max / 2)
            .map(|j| i + j)
    });
    let back = low.and_then(|j| slices[j..].iter().position(|&s| s == max));
    c.check(
        back.is_some(),
        format!(
            "slice did not go {max} -> <= {} -> {max}: {slices:?}",
            max / 2
        ),
    );
    c.check(
        field(&modes, "tuner_exit").as_deref() == Some("0"),
        "tuner phase: scheduler did not exit cleanly",
    );

    // Wakeup preemption: each wakeup of the pinned periodic thread finds a
    // hog on its CPU, due far later, and should preempt it; the counter must
    // grow by at least half its wakeups. It also counts other wakers' (the
    // daemon's threads, kworkers: ~37/s under hogs alone), so this shows
    // that preemption happens under hogs, not that every wakeup preempted.
    let num = |k: &str| field(&modes, k).and_then(|v| v.parse::<u64>().ok());
    let loops = num("preempt_loops").unwrap_or(0);
    let preempts = num("preempt_after")
        .zip(num("preempt_before"))
        .map(|(a, b)| a.saturating_sub(b));
    c.check(
        field(&modes, "cyclictest_rc").as_deref() == Some("0"),
        "preemption: cyclictest failed (see cyclictest.hist)",
    );
    c.check(
        preempts.is_some_and(|n| n * 2 >= loops),
        format!(
            "preemption: {preempts:?} preemptions for {loops} wakeups of a pinned thread under hogs"
        ),
    );

    // --fifo
    c.check(
        field(&modes, "fifo_state").as_deref() == Some("enabled")
            && field(&modes, "fifo_ops").as_deref() == Some("rebal"),
        "--fifo: scheduler not attached",
    );
    c.check(
        field(&modes, "fifo_hackbench_rc").as_deref() == Some("0"),
        "--fifo: hackbench failed",
    );
    c.check(
        field(&modes, "fifo_exit").as_deref() == Some("0"),
        "--fifo: --run-for did not end with status 0",
    );
    c.check(
        scheduled(&read(&dir.join("fifo.stats.jsonl"))) > 100,
        "--fifo: scx_rebal scheduled next to nothing",
    );

    // --partial
    for kind in ["plain", "ext"] {
        c.check(
            field(&modes, &format!("partial_{kind}_state")).as_deref() == Some("enabled"),
            format!("--partial ({kind}): not attached"),
        );
        c.check(
            field(&modes, &format!("partial_{kind}_exit")).as_deref() == Some("0"),
            format!("--partial ({kind}): did not exit cleanly"),
        );
    }
    c.check(
        field(&modes, "ext_policy").as_deref() == Some("7"),
        "the SCHED_EXT hog's policy is not 7",
    );
    let plain = scheduled(&read(&dir.join("partial-plain.stats.jsonl")));
    let ext = scheduled(&read(&dir.join("partial-ext.stats.jsonl")));
    // Four ordinary hogs for 8 s: nothing of theirs reaches scx_rebal. One
    // SCHED_EXT hog for 8 s: a slice of at most 20 ms, renewed (kept) or
    // queued again at its end, so hundreds of events.
    c.check(
        plain < 20,
        format!("--partial scheduled {plain} events of ordinary tasks"),
    );
    c.check(
        ext >= 100,
        format!("--partial scheduled only {ext} events of a SCHED_EXT hog"),
    );
    eprintln!("slices {slices:?}\npartial: plain {plain} events, ext {ext} events");

    common::check_dmesg(&mut c, &dir);
    c.finish(
        &dir,
        &[
            "modes.txt",
            "tuner.log",
            "fifo.log",
            "partial-plain.log",
            "partial-ext.log",
            "vm-run.log",
        ],
    );
}
