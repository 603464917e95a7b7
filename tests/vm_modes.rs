//! VM test of the latency knobs (issue 4): the tuner's slice follows load
//! (short while tasks wait, back to the longest once they are gone), a
//! pinned periodic thread preempts CPU hogs when it wakes, `--fifo`
//! schedules, and `--partial` leaves every task alone but those that chose
//! SCHED_EXT. Guest side: tests/vm/modes.sh, which also records the
//! kernel's side (sched_switch, bpftrace): printed, not judged (see below).

mod common;

use common::{all_ran, field, read};

/// The witness script's output (tests/vm/modes.sh): histograms (ms bucket
/// -> count, summed over every print) of the hogs' stints on a CPU, by the
/// CPU time they ran, and of those that ended with the pinned cyclictest
/// thread taking the CPU.
struct Witness {
    runs: Vec<(u64, u64)>,
    to_cyclictest: Vec<(u64, u64)>,
}

fn witness(text: &str) -> Witness {
    let mut maps: std::collections::BTreeMap<String, std::collections::BTreeMap<u64, u64>> =
        Default::default();
    let mut current = String::new();
    for l in text.lines() {
        if let Some(name) = l.strip_prefix('@') {
            current = name.split(':').next().unwrap_or_default().to_string();
            continue;
        }
        // "[10, 11)   123 |@@@@   |"
        let Some(rest) = l.trim().strip_prefix('[') else {
            continue;
        };
        let Some((lo, rest)) = rest.split_once(',') else {
            continue;
        };
        let n = rest
            .split_once(')')
            .and_then(|(_, r)| r.split_whitespace().next()?.parse::<u64>().ok());
        if let (Ok(lo), Some(n)) = (lo.trim().parse::<u64>(), n) {
            *maps
                .entry(current.clone())
                .or_default()
                .entry(lo)
                .or_insert(0) += n;
        }
    }
    let mut take = |name: &str| maps.remove(name).unwrap_or_default().into_iter().collect();
    Witness {
        runs: take("run_ms"),
        to_cyclictest: take("to_cyclictest_ms"),
    }
}

/// The most frequent bucket of a histogram.
fn mode(hist: &[(u64, u64)]) -> Option<u64> {
    hist.iter().max_by_key(|(_, n)| *n).map(|(b, _)| *b)
}

/// cyclictest -h's summary lines ("# Total: 000000200") by name.
fn hist_field(hist: &str, name: &str) -> Option<u64> {
    hist.lines()
        .find_map(|l| l.strip_prefix(&format!("# {name}:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

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
    c.check(
        all_ran(field(&modes, "tuner_hogs").as_deref()),
        format!("tuner phase: hogs {:?}", field(&modes, "tuner_hogs")),
    );
    // What the kernel did, from sched_switch (tests/vm/modes.sh): the hogs'
    // stints by CPU time. Reported, not judged: in this 8-vCPU TCG guest
    // they come in two heaps, ~6.5 ms and ~15 ms, for a slice of ~8.9 ms
    // (benches/vm/results/2026-11-30-trust): the kernel charges a stint the
    // time that passed while QEMU ran the other vCPUs, so a slice ends on
    // the tick after one or two of QEMU's rounds, and a 5 ms slice would
    // look the same. The slice check above is the daemon's own figure.
    let w = witness(&read(&dir.join("witness.txt")));
    let low_slices: Vec<u64> = low
        .zip(back)
        .map(|(j, k)| slices[j..j + k].to_vec())
        .unwrap_or_default();
    let reported_ms = {
        let mut v = low_slices.clone();
        v.sort_unstable();
        v.get(v.len() / 2).map(|us| *us as f64 / 1000.0)
    };
    let ran_ms = mode(&w.runs).map(|b| b as f64 + 0.5);
    // Wakeup preemption: each wakeup of the pinned periodic thread finds a
    // hog on its CPU, due far later, and should preempt it; scx_rebal's
    // preempt counter must grow by at least half its wakeups. It also
    // counts other wakers' (the daemon's threads, kworkers: ~37/s under
    // hogs alone), so this shows that preemption happens under hogs, not
    // that the pinned thread's wakeups preempted: the kernel's side (the
    // hogs' stints that ended with the thread taking the CPU, by CPU time)
    // is printed, but for the reason above it cannot tell a stint cut
    // short from one that ended on its slice in this guest.
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
    // The thread's own record: every loop measured, none off the histogram.
    let hist = read(&dir.join("cyclictest.hist"));
    c.check(
        hist_field(&hist, "Total") == Some(loops)
            && hist_field(&hist, "Histogram Overflows") == Some(0),
        format!(
            "cyclictest: {:?} samples for {loops} loops, {:?} beyond 100 ms",
            hist_field(&hist, "Total"),
            hist_field(&hist, "Histogram Overflows")
        ),
    );

    // --fifo
    c.check(
        field(&modes, "fifo_state").as_deref() == Some("enabled")
            && field(&modes, "fifo_ops").as_deref() == Some("rebal"),
        "--fifo: scheduler not attached",
    );
    c.check(
        field(&modes, "fifo_hackbench_rc").as_deref() == Some("0")
            && field(&modes, "fifo_hackbench_time").is_some_and(|t| t.parse::<f64>().is_ok()),
        format!(
            "--fifo: hackbench failed or did not say how long it ran ({:?})",
            field(&modes, "fifo_hackbench_time")
        ),
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
    for kind in ["plain", "ext"] {
        let h = field(&modes, &format!("partial_{kind}_hogs"));
        c.check(
            all_ran(h.as_deref()),
            format!("--partial ({kind}): hogs {h:?}"),
        );
    }
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
    eprintln!(
        "slices {slices:?}\nhog stints per ms of CPU time (kernel) {:?}, most at {ran_ms:?} ms \
         vs reported {reported_ms:?} ms\nstints ended by the pinned thread, per ms {:?}; \
         scx_rebal's preempt counter +{preempts:?}; cyclictest avg {:?} us, max {:?} us\npartial: \
         plain {plain} events, ext {ext} events",
        w.runs,
        w.to_cyclictest,
        hist_field(&hist, "Avg Latencies"),
        hist_field(&hist, "Max Latencies"),
    );

    common::check_dmesg(&mut c, &dir);
    c.finish(
        &dir,
        &[
            "modes.txt",
            "witness.txt",
            "cyclictest.hist",
            "tuner.log",
            "fifo.log",
            "partial-plain.log",
            "partial-ext.log",
            "vm-run.log",
        ],
    );
}
