/* SPDX-License-Identifier: GPL-2.0 */
/*
 * deadline.bpf.h - the order of a domain's queue and wakeup preemption.
 *
 * Virtual time: a task's vtime advances by the time it really ran, divided
 * by its weight (charge_run()). A waking task keeps its vtime but is not
 * allowed to fall far behind its domain's clock (place_vtime()).
 *
 * Deadline: the queue is ordered by vtime plus the task's expected run
 * length, shortened for tasks that others wait on (rebal_run_term() in
 * arith.h):
 *
 *   run      = max(avg_runtime, burst), both per hand-off (hand_off())
 *   level    = rebal_lat_level(blocked per second, wakes per second)
 *   deadline = vtime + run * WEIGHT_NICE0 / weight, capped at DL_RUN_MAX_US,
 *              times LAT_SCALE / (LAT_SCALE + level)
 *
 * Among tasks equally owed CPU time, the one that will give the CPU back
 * soonest goes first, which shortens everyone's mean wait; tasks others
 * wait on go before tasks that only wait for themselves. The boost divides
 * the run term and never moves vtime, so fairness (vtime, charged with
 * real runtime) is untouched: a boosted task that runs more than its share
 * falls behind in vtime like any other. Frequencies count in log2 (their
 * order of magnitude, not noise) and are bounded by the time since the
 * event was last seen, so a task that stops waking others loses its boost.
 */
#ifndef __REBAL_DEADLINE_BPF_H
#define __REBAL_DEADLINE_BPF_H

#include "rebal.bpf.h"
#include "load.bpf.h"

/* The deadline of the task each CPU is running if it is a CPU hog (0:
 * none, or not a hog), for should_preempt(). Written by the CPU itself,
 * read by others without a lock: a stale value costs one needless or
 * missed preemption, never correctness. */
u64 cpu_run_dl[MAX_CPUS];

/*
 * Whether this runs on behalf of the current task rather than of an
 * interrupt (hard or soft) that cut into it. The header's bpf_in_task()
 * would also serve, but it reads CONFIG_PREEMPT_RT through a Kconfig
 * extern, and libbpf then refuses to load where no kernel config can be
 * found (no /proc/config.gz, no /boot/config-*: the test VM). Without it,
 * a PREEMPT_RT kernel's threaded softirqs count as task context, which
 * they are, in a way.
 */
static bool in_task_context(void)
{
	return !(get_preempt_count() & (NMI_MASK | HARDIRQ_MASK | SOFTIRQ_OFFSET));
}

/*
 * A hand-off: the task gives the CPU, or work, to others: it blocks, or it
 * wakes another task. What it ran since its previous hand-off is one run
 * of the run term, and the next one starts now. @ran is how long it has
 * been running in its current window (0 when it is not running).
 *
 * Why waking counts, not only blocking: a producer that never blocks
 * (hackbench's senders, a decoder feeding a queue) would otherwise look
 * like a CPU hog after DL_RUN_MAX_US, with a far deadline and open to
 * wakeup preemption by its own consumers, each of which then runs for one
 * message and blocks again. A task that hands work on every 50 us runs
 * 50 us at a time, as far as anyone waiting for it can tell. A real hog
 * wakes nobody and stays a hog.
 */
static void hand_off(struct task_ctx *taskc, u64 ran, bool sleeping)
{
	taskc->avg_runtime = (taskc->avg_runtime * 3 + burst_now(taskc, ran)) / 4;
	taskc->burst = 0;
	taskc->burst_skip = sleeping ? 0 : ran;
}

/* @waker woke another task at @now (from task context: from an interrupt,
 * "current" is whoever the interrupt cut into, most often a CPU hog on a
 * busy machine, and crediting it would give the hog a producer's boost
 * and keep a woken frame thread from preempting it). */
static void note_waker(struct task_ctx *wakerc, u64 now)
{
	wakerc->waker_freq = rebal_freq_update(wakerc->waker_freq,
					       rebal_elapsed(now, wakerc->last_woke_at));
	wakerc->last_woke_at = now;
	hand_off(wakerc, rebal_elapsed(now, wakerc->running_at), false);
}

static void note_blocked(struct task_ctx *taskc, u64 now)
{
	taskc->blocked_freq = rebal_freq_update(taskc->blocked_freq,
						rebal_elapsed(now, taskc->last_blocked_at));
	taskc->last_blocked_at = now;
}

/* The latency level of @taskc as of @now. */
static u32 lat_level(struct task_ctx *taskc, u64 now)
{
	return rebal_lat_level(
		rebal_freq_now(taskc->blocked_freq, rebal_elapsed(now, taskc->last_blocked_at)),
		rebal_freq_now(taskc->waker_freq, rebal_elapsed(now, taskc->last_woke_at)));
}

/* The deadline of @p at @vtime, its run term judged on @burst (what it has
 * run since its last hand-off) and its average, shortened by @level.
 * *@hog: the run term hit the cap. */
static __always_inline u64 task_deadline(struct task_struct *p, struct task_ctx *taskc, u64 vtime,
					 u64 burst, u32 level, int *hog)
{
	u64 run = burst > taskc->avg_runtime ? burst : taskc->avg_runtime;

	return vtime + rebal_run_term(run, task_weight(p), level, hog);
}

/*
 * Record, for should_preempt(), the deadline of @p, which @cpu runs, as of
 * @now: the time it has run in its window counts as if charged already.
 * Only a CPU hog (its run term at the cap: it has run DL_RUN_MAX_US without
 * a hand-off, or does so on average) is ever preempted for a waking task.
 * Tasks that block on their own soon give the CPU back anyway, and
 * preempting them is what makes a pipeline ping-pong.
 */
static void note_running_dl(struct task_struct *p, struct task_ctx *taskc, s32 cpu, u64 now)
{
	u64 *run_dl = MEMBER_VPTR(cpu_run_dl, [cpu]);
	u64 ran, burst, run, dl;
	int hog;

	if (!run_dl || fifo_mode || no_preempt)
		return;
	ran = rebal_elapsed(now, taskc->running_at);
	burst = burst_now(taskc, ran);
	run = burst > taskc->avg_runtime ? burst : taskc->avg_runtime;
	/* Most tasks are not hogs: say so without working out a deadline. */
	if (!rebal_is_hog(run, task_weight(p))) {
		*run_dl = 0;
		return;
	}
	/* The level as of its last enqueue: a hog that keeps its CPU neither
	 * blocks nor, much, wakes others, so it has not moved since. */
	dl = task_deadline(p, taskc, taskc->vtime + ran * WEIGHT_NICE0 / task_weight(p),
			   burst, taskc->lat_level, &hog);
	*run_dl = dl;
}

/*
 * Whether waking @p (deadline @dl, home @dom) should cut short the task
 * that @cpu runs. Without preemption it would wait for a slice to end on
 * one of the domain's CPUs: a whole slice in the worst case, which is
 * exactly the wakeup latency a game's frame thread or an audio callback
 * cannot afford. So if @cpu runs a hog due more than preempt_margin_ns
 * after @p, that hog has had its turn. The margin keeps tasks of about the
 * same standing from preempting each other back and forth. One lookup, no
 * search: select_cpu already chose the CPU.
 */
static bool should_preempt(s32 cpu, u32 dom, u64 dl)
{
	u64 *run_dl = MEMBER_VPTR(cpu_run_dl, [cpu]);

	if (fifo_mode || no_preempt || !run_dl || !*run_dl ||
	    cpu_to_dom(cpu) != dom || !time_before(dl + preempt_margin_ns, *run_dl))
		return false;
	*run_dl = 0;	/* once per running task is enough */
	stat_add(dom, DSTAT_PREEMPT, 1);
	return true;
}

/* How far @wakerc's vtime is behind its domain's clock (0 if ahead). */
static u64 waker_lag(struct task_ctx *wakerc)
{
	u64 clock;

	if (wakerc->dom >= MAX_DOMS)
		return ~0ULL;
	clock = dom_clock(wakerc->dom);
	return time_before(wakerc->vtime, clock) ? clock - wakerc->vtime : 0;
}

/*
 * Keep @p's vtime at most sleeper_credit_pct of a slice behind its
 * domain's clock (a sleeper gets the CPU soon, not a head start as long as
 * its sleep) and return its deadline. The credit is also never more than
 * the time @p slept: a task that blocked for a moment (a consumer waiting
 * for the next message) has no time to make up, and crediting it a whole
 * slice puts it ahead of the producer it waits for, to run one message and
 * block again, at the cost of two context switches per message. Nor more
 * than its waker's own lag behind the clock: a consumer woken by a
 * producer that has used its share (hackbench's senders) would otherwise
 * go ahead of every task queued with the producer, to find one message;
 * behind them, it finds many. A link of a pipeline woken by a link that
 * was itself credited keeps that credit, and a wakeup from an interrupt
 * (a timer, a device) is not bounded by whatever task it interrupted.
 */
static u64 place_vtime(struct task_struct *p, struct task_ctx *taskc, u32 dom, u64 slice,
		       u64 now)
{
	u64 credit = slice * sleeper_credit_pct / 100;
	u64 slept = rebal_elapsed(now, taskc->last_blocked_at);
	u64 vtime = taskc->vtime, floor;
	int hog;

	if (credit > slept)
		credit = slept;
	if (credit > taskc->wake_credit)
		credit = taskc->wake_credit;
	floor = dom_clock(dom) - credit;
	if (time_before(vtime, floor))
		vtime = floor;
	taskc->vtime = vtime;
	taskc->lat_level = lat_level(taskc, now);
	vtime = task_deadline(p, taskc, vtime, taskc->burst, taskc->lat_level, &hog);
	if (hog)
		stat_add(dom, DSTAT_DL_CLAMPED, 1);
	return vtime;
}

#endif /* __REBAL_DEADLINE_BPF_H */
