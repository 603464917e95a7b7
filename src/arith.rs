//! The arithmetic the BPF scheduler and the daemon share: the decay of a
//! running average, event rates, latency levels and the run term of a
//! deadline. There is one definition, in C (`bpf/arith.h`): the BPF side
//! includes it, build.rs compiles it for this host (`src/arith.c`), and
//! these wrappers call it. So the daemon reads BPF's load averages with
//! exactly the decay BPF applied, and the tests below check the one
//! definition against exact floating point and for the orders a deadline
//! must give, without a kernel.

#[allow(non_camel_case_types, dead_code)]
mod sys {
    include!(concat!(env!("OUT_DIR"), "/arith_sys.rs"));
}

/// `now - then` for two readings of one clock; 0 if `now` reads earlier.
pub fn elapsed(now: u64, then: u64) -> u64 {
    // SAFETY: a pure function of its integer arguments.
    unsafe { sys::rebal_elapsed(now, then) }
}

/// The reciprocal of a half-life that [`decay`]'s C twin multiplies by
/// (BPF gets it computed once, at load).
pub fn decay_recip(half_life: u64) -> u64 {
    // SAFETY: a pure function of its integer arguments.
    unsafe { sys::rebal_decay_recip(half_life) }
}

/// 2^(-dt / half_life) in DCYCLE fixed point (`DCYCLE_ONE` = 1).
pub fn decay(dt: u64, half_life: u64) -> u64 {
    // SAFETY: a pure function of its integer arguments.
    unsafe { sys::rebal_decay(dt, half_life, decay_recip(half_life)) }
}

/// A running average `avg` decayed for `dt` towards `target`, the value
/// it was fed meanwhile (both in any fixed point).
pub fn decay_towards(avg: i64, target: i64, dt: u64, half_life: u64) -> i64 {
    // SAFETY: a pure function of its integer arguments.
    unsafe { sys::rebal_decay_apply(avg, target, decay(dt, half_life)) }
}

/// The multiplier 2^(-dt / half_life) as a float, from [`decay`].
pub fn decay_f64(dt: u64, half_life: u64) -> f64 {
    decay(dt, half_life) as f64 / crate::bpf_intf::consts_DCYCLE_ONE as f64
}

/// Events per second after one more event `dt` ns after the previous one.
pub fn freq_update(freq: u32, dt: u64) -> u32 {
    // SAFETY: a pure function of its integer arguments.
    unsafe { sys::rebal_freq_update(freq, dt) }
}

/// `freq` as of `dt` ns after the last event.
pub fn freq_now(freq: u32, dt: u64) -> u32 {
    // SAFETY: a pure function of its integer arguments.
    unsafe { sys::rebal_freq_now(freq, dt) }
}

/// A task's latency level from its blocking and waking rates.
pub fn lat_level(blocked_freq: u32, waker_freq: u32) -> u32 {
    // SAFETY: a pure function of its integer arguments.
    unsafe { sys::rebal_lat_level(blocked_freq, waker_freq) }
}

/// Whether a task running `run_ns` between hand-offs at `weight` is a CPU hog.
pub fn is_hog(run_ns: u64, weight: u32) -> bool {
    // SAFETY: a pure function of its integer arguments.
    unsafe { sys::rebal_is_hog(run_ns, weight) != 0 }
}

/// The run term of a deadline, and whether the CPU-hog cap applied.
pub fn run_term(run_ns: u64, weight: u32, level: u32) -> (u64, bool) {
    let mut capped = 0;
    // SAFETY: pure arithmetic; `capped` is a valid, writable int.
    let t = unsafe { sys::rebal_run_term(run_ns, weight, level, &mut capped) };
    (t, capped != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf_intf::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn elapsed_reads_a_backward_step_as_zero() {
        assert_eq!(elapsed(10, 3), 7);
        assert_eq!(elapsed(3, 10), 0);
        assert_eq!(elapsed(0, u64::MAX), 0);
    }

    #[test]
    fn decay_of_whole_half_lives_is_exact() {
        let one = consts_DCYCLE_ONE as u64;
        assert_eq!(decay(0, 1000), one);
        assert_eq!(decay(1000, 1000), one / 2);
        assert_eq!(decay(3000, 1000), one / 8);
        assert_eq!(decay(32 * 1000, 1000), 0);
        assert_eq!(decay(u64::MAX, 1000), 0);
        // A half-life of 0 is read as 1 ns, not a division by zero.
        assert_eq!(decay(5, 0), one >> 5);
    }

    proptest! {
        /// Within 0.05% of exact over the range the options allow (steps of
        /// ns to hours, half-lives of 1 ms to a day: --load-half-life).
        #[test]
        fn decay_is_close_to_exact(dt in 0u64..3_600_000 * MS, hl in MS..86_400_000 * MS) {
            let exact = 0.5f64.powf(dt as f64 / hl as f64);
            let got = decay_f64(dt, hl);
            prop_assert!((got - exact).abs() < 0.0005, "dt {dt} hl {hl}: {got} vs {exact}");
        }

        /// Decay never grows and never rises as time goes on.
        #[test]
        fn decay_is_monotonic(dt in 0u64..10_000 * MS, step in 1u64..100 * MS, hl in MS..10_000 * MS) {
            prop_assert!(decay(dt + step, hl) <= decay(dt, hl));
            prop_assert!(decay(dt, hl) <= consts_DCYCLE_ONE as u64);
        }

        /// Short steps decay too (the linear part): 1 ms of a 1 s half-life
        /// loses ~0.07%, not nothing.
        #[test]
        fn short_steps_decay(dt in MS..10 * MS) {
            prop_assert!(decay(dt, 1000 * MS) < consts_DCYCLE_ONE as u64);
        }

        /// An average fed a constant converges to it, from either side.
        #[test]
        fn decay_towards_converges(avg in -(1i64 << 40)..(1i64 << 40), target in -(1i64 << 40)..(1i64 << 40)) {
            let hl = 1000 * MS;
            let half = decay_towards(avg, target, hl, hl);
            prop_assert!((half - (avg + target) / 2).abs() <= 2, "{avg} -> {target}: {half}");
            prop_assert_eq!(decay_towards(avg, target, 64 * hl, hl), target);
        }
    }

    #[test]
    fn rates_follow_the_interval_and_lapse() {
        let mut f = 0;
        for _ in 0..40 {
            f = freq_update(f, MS); // every 1 ms: 1000/s
        }
        assert!((990..=1000).contains(&f), "{f}");
        // Nothing for a second: at most once a second, whatever the average.
        assert_eq!(freq_now(f, 1000 * MS), 1);
        assert_eq!(freq_now(f, 0), f);
        assert_eq!(freq_update(0, 0), consts_FREQ_MAX / 4);
    }

    #[test]
    fn waking_others_counts_twice_blocking_once_pipeline_most() {
        let (quiet, consumer, producer) = (lat_level(0, 0), lat_level(1000, 0), lat_level(0, 1000));
        let middle = lat_level(1000, 1000);
        assert_eq!(quiet, 0);
        assert!(consumer < producer, "{consumer} {producer}");
        assert!(producer < middle, "{producer} {middle}");
        assert_eq!(producer, 2 * consumer);
        assert!(lat_level(u32::MAX, u32::MAX) <= consts_LAT_LEVEL_MAX);
    }

    #[test]
    fn run_term_orders_by_run_weight_and_level() {
        let w0 = consts_WEIGHT_NICE0;
        let (short, _) = run_term(100_000, w0, 0);
        let (long, _) = run_term(5 * MS, w0, 0);
        assert!(short < long);
        // Nice -5 (weight ~3x) is due sooner for the same run.
        assert!(run_term(5 * MS, 3 * w0, 0).0 < long);
        // A latency level shortens the term, never to 0 for a real run.
        let (boosted, _) = run_term(5 * MS, w0, 12);
        assert_eq!(boosted, long * 4 / 16);
        // A hog is capped (and said to be), however long it ran.
        let cap = consts_DL_RUN_MAX_US as u64 * 1000;
        assert_eq!(run_term(100 * cap, w0, 0), (cap, true));
        assert!(!run_term(cap / 2, w0, 0).1);
        assert_eq!(is_hog(cap, w0), run_term(cap, w0, 0).1);
        assert!(is_hog(cap, w0) && !is_hog(cap - 1, w0));
        // A nice 19 task (weight 1) is a hog a hundred times sooner.
        assert!(is_hog(cap / 100, 1));
        // Weight 0 (never given by the kernel) is read as 1, not a fault.
        assert!(run_term(2_000_000, 0, 0).1);
    }
}
