/*
 * arith.h - the pure arithmetic of scx_rebal, in one place for both sides.
 *
 * The BPF scheduler includes this file; build.rs also compiles it for the
 * host (src/arith.c), and the Rust daemon calls those same functions
 * (src/arith.rs). So the decay of a load average, the rate of an event and
 * the deadline of a task have one definition, and the host-side tests in
 * src/arith.rs check it (against exact floating point, and for the orders
 * the deadline must give) without a kernel.
 *
 * Plain C on integers: no BPF helpers, no floating point, no loops the
 * verifier would have to bound.
 */
#ifndef __REBAL_ARITH_H
#define __REBAL_ARITH_H

#include "intf.h"

#ifndef REBAL_ARITH_FN
#define REBAL_ARITH_FN static inline
#endif

/*
 * @now - @then for two readings of one clock, or 0 if @now reads earlier.
 * Every interval is taken through this: a clock read on two CPUs may step
 * backwards by a little, and an unsigned difference would then be 2^64.
 */
REBAL_ARITH_FN u64 rebal_elapsed(u64 now, u64 then)
{
	return now > then ? now - then : 0;
}

/* 2^(-i/16) in DCYCLE fixed point, for i in 0..16. */
REBAL_ARITH_FN u64 rebal_exp2_neg_16th(u32 i)
{
	switch (i) {
	case 0: return 65536;
	case 1: return 62757;
	case 2: return 60097;
	case 3: return 57549;
	case 4: return 55109;
	case 5: return 52773;
	case 6: return 50535;
	case 7: return 48393;
	case 8: return 46341;
	case 9: return 44376;
	case 10: return 42495;
	case 11: return 40693;
	case 12: return 38968;
	case 13: return 37316;
	case 14: return 35734;
	case 15: return 34219;
	default: return 32768;
	}
}

/*
 * 2^58 / @half_life, rounded up: what rebal_decay() multiplies by instead
 * of dividing by the half-life (a division per update, in every load
 * update of the hot path, is what this saves). Rounded up so that whole
 * half-lives come out exact. Computed once per load, by the daemon.
 */
REBAL_ARITH_FN u64 rebal_decay_recip(u64 half_life)
{
	u64 hl = half_life ? half_life : 1;

	return ((1ULL << 58) + hl - 1) / hl;
}

/*
 * 2^(-dt / half_life) in DCYCLE fixed point (DCYCLE_ONE = 1): what is left
 * of a running average after @dt; @recip is rebal_decay_recip(half_life).
 * Whole half-lives are a shift; inside a half-life, linear interpolation
 * between the sixteenths of the table. Interpolation, not a first-order
 * term on each sixteenth: it is within 0.03% of exact, continuous, and
 * never rises as @dt grows (1 - y ln 2 undershoots, and jumped up by 0.1%
 * at every sixteenth). Short steps decay too: updates come every few ms,
 * far below 1/16 of a half-life.
 */
REBAL_ARITH_FN u64 rebal_decay(u64 dt, u64 half_life, u64 recip)
{
	u64 hl = half_life ? half_life : 1, pos, x, hi, lo;
	u32 halves, i;

	if ((dt >> 5) >= hl)
		return 0;	/* 32 half-lives or more */
	/* dt / hl in 16.16 fixed point. dt < 32 hl and recip <= 2^58 / hl + 1,
	 * so the product stays below 2^63 + 32 hl: no overflow. */
	pos = (dt * recip) >> 42;
	halves = (u32)(pos >> 16);
	x = pos & 0xffff;
	i = (u32)(x >> 12);
	hi = rebal_exp2_neg_16th(i);
	lo = rebal_exp2_neg_16th(i + 1);
	if (halves >= 32)
		return 0;
	return (hi - (((hi - lo) * (x & 4095)) >> 12)) >> halves;
}

/*
 * A running average @avg (any fixed point) after a stretch during which it
 * was fed @target, @keep (a rebal_decay() factor) being what is left of the
 * old value: the average of a signal that was @target meanwhile.
 */
REBAL_ARITH_FN s64 rebal_decay_apply(s64 avg, s64 target, u64 keep)
{
	return target + (((avg - target) * (s64)keep) >> DCYCLE_SHIFT);
}

/*
 * How often something happens, in events per second: a running average
 * of the rate each new interval @dt (ns since the previous event) implies,
 * a quarter weight for the newest, capped at FREQ_MAX.
 */
REBAL_ARITH_FN u32 rebal_freq_update(u32 freq, u64 dt)
{
	u64 inst = dt ? 1000000000ULL / dt : FREQ_MAX;

	if (inst > FREQ_MAX)
		inst = FREQ_MAX;
	return (u32)(((u64)freq * 3 + inst) / 4);
}

/* @freq as of @dt after the last event: a task that has not done it for a
 * while does it at most once per that while, whatever its average says. */
REBAL_ARITH_FN u32 rebal_freq_now(u32 freq, u64 dt)
{
	u64 bound = dt ? 1000000000ULL / dt : FREQ_MAX;

	return bound < freq ? (u32)bound : freq;
}

/* floor(log2(@v)), 0 for 0 and 1. */
REBAL_ARITH_FN u32 rebal_log2(u32 v)
{
	u32 r = 0;

	if (v >= 1 << 16) { v >>= 16; r += 16; }
	if (v >= 1 << 8) { v >>= 8; r += 8; }
	if (v >= 1 << 4) { v >>= 4; r += 4; }
	if (v >= 1 << 2) { v >>= 2; r += 2; }
	if (v >= 1 << 1) { r += 1; }
	return r;
}

/*
 * A task's latency level from how often it blocks and how often it wakes
 * others (events per second, as of now): log2 of each, the waking twice
 * over, plus the smaller of the two, capped at LAT_LEVEL_MAX. Blocking
 * often marks a consumer, whose delay is its own: a small boost. Waking
 * others marks a producer, whose delay holds up every task it would wake:
 * twice the boost. Doing both marks a link in the middle of a pipeline,
 * delayed from both sides: the min() term gives it the most. Logs, so that
 * the order of magnitude counts, not noise.
 */
REBAL_ARITH_FN u32 rebal_lat_level(u32 blocked_freq, u32 waker_freq)
{
	u32 b = rebal_log2(1 + blocked_freq), w = rebal_log2(1 + waker_freq);
	u32 level = b + 2 * w + (b < w ? b : w);

	return level < LAT_LEVEL_MAX ? level : LAT_LEVEL_MAX;
}

/* Whether a task that runs @run_ns between hand-offs, at @weight, is a CPU
 * hog: its weighted run reaches the DL_RUN_MAX_US cap. */
REBAL_ARITH_FN int rebal_is_hog(u64 run_ns, u32 weight)
{
	return run_ns * WEIGHT_NICE0 / (weight ? weight : 1) >= DL_RUN_MAX_US * 1000ULL;
}

/*
 * The run-length term of a deadline: @run_ns (the task's expected run
 * until its next hand-off), scaled by nice like vtime (@weight, nice 0 =
 * WEIGHT_NICE0), capped at DL_RUN_MAX_US, then shortened by the latency
 * @level: run * LAT_SCALE / (LAT_SCALE + level). *@capped tells whether
 * the cap applied (a CPU hog, for the preemption rule and the stats).
 */
REBAL_ARITH_FN u64 rebal_run_term(u64 run_ns, u32 weight, u32 level, int *capped)
{
	u64 run = run_ns * WEIGHT_NICE0 / (weight ? weight : 1);

	*capped = rebal_is_hog(run_ns, weight);
	if (*capped)
		run = DL_RUN_MAX_US * 1000ULL;
	return run * LAT_SCALE / (LAT_SCALE + level);
}

#endif /* __REBAL_ARITH_H */
