/* SPDX-License-Identifier: GPL-2.0 */
/*
 * idle.bpf.h - finding and waking idle CPUs. A waking task runs at once on
 * an idle CPU of its home domain when there is one (select_cpu); failing
 * that, on an idle CPU of a lightly used domain nearby ("direct greedy").
 * A task queued on its domain wakes an idle CPU that can take it: one of
 * the domain, else one of a lightly used domain nearby, which finds the
 * work by stealing ("kick greedy"). Which domains are lightly used is the
 * tuner's call (greedy_direct / greedy_kick, every --tune-interval).
 */
#ifndef __REBAL_IDLE_BPF_H
#define __REBAL_IDLE_BPF_H

#include "rebal.bpf.h"

/*
 * An idle CPU for a waking task within @mask (its home CPUs): a whole idle
 * core first (no SMT sibling to share the core with), then @prev_cpu whose
 * caches are warm, then any idle CPU of the domain.
 */
static s32 pick_idle_cpu(const struct cpumask *mask, s32 prev_cpu)
{
	bool prev_ok = prev_cpu >= 0 && bpf_cpumask_test_cpu(prev_cpu, mask);
	s32 cpu;

	if (smt_enabled) {
		const struct cpumask *smt = scx_bpf_get_idle_smtmask();
		bool prev_core_idle = prev_ok && bpf_cpumask_test_cpu(prev_cpu, smt);

		scx_bpf_put_idle_cpumask(smt);
		if (prev_core_idle && scx_bpf_test_and_clear_cpu_idle(prev_cpu))
			return prev_cpu;
		cpu = scx_bpf_pick_idle_cpu(mask, SCX_PICK_IDLE_CORE);
		if (cpu >= 0)
			return cpu;
	}
	if (prev_ok && scx_bpf_test_and_clear_cpu_idle(prev_cpu))
		return prev_cpu;
	return scx_bpf_pick_idle_cpu(mask, 0);
}

/*
 * The home domain is full: rather than leave work waiting while a nearby
 * LLC idles, find an idle CPU in another domain that the tuner marked as
 * lightly used (@kick picks which mark), nearest first: steal_order lists
 * the same node's domains, then the others by NUMA distance. Other nodes
 * only when @xnode (a task that crosses them leaves its memory behind).
 * The home does not change: lasting imbalance is the balancer's job.
 */
static s32 pick_idle_elsewhere(struct task_ctx *taskc, bool kick, bool node, bool xnode)
{
	u32 home = taskc->dom, my_node = node_of(home), i;

	if (!node && !xnode)
		return -1;
	bpf_for(i, 0, nr_doms - 1) {
		const volatile u32 *vp = MEMBER_VPTR(steal_order, [home][i]);
		const struct cpumask *dm;
		bool same;
		u32 d;
		s32 cpu;

		if (!vp || (d = *vp) >= MAX_DOMS)
			break;
		same = node_of(d) == my_node;
		if (!same && !xnode)
			break;	/* the rest of the order is other nodes */
		if ((same && !node) || !dom_greedy(kick, d) ||
		    !dom_in_mask(taskc->dom_mask, d) || !(dm = dom_cpumask(d)))
			continue;
		cpu = scx_bpf_pick_idle_cpu(dm, 0);
		if (cpu >= 0)
			return cpu;
	}
	return -1;
}

/* A lightly used domain's idle CPU to run waking @p on right now. */
static s32 pick_idle_greedy(struct task_struct *p, struct task_ctx *taskc)
{
	s32 cpu = pick_idle_elsewhere(taskc, false, direct_node_greedy, direct_xnode_greedy);

	if (cpu >= 0 && !bpf_cpumask_test_cpu(cpu, p->cpus_ptr)) {
		/* Its idle bit is taken and @p may not run there: let the CPU
		 * look for other work instead of sleeping on. */
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
		cpu = -1;
	}
	if (cpu >= 0)
		stat_add(cpu_to_dom(cpu), DSTAT_GREEDY_IN, 1);
	return cpu;
}

/*
 * WAKE_SYNC (pipes, sockets): the waker says it is about to sleep, so the
 * wakee can have its CPU in a moment. When the wakee's home has no idle
 * CPU, aim it at the waker's CPU rather than at its previous one: queued
 * on its domain (not on the CPU, so any CPU of the domain may still take
 * it if the waker goes on running), it is picked up when the waker blocks,
 * without an IPI to preempt a hog elsewhere. Only for a waker that does
 * block after most of its wakeups: a producer that keeps going (hackbench's
 * senders) would keep its wakees waiting for its slice to end.
 * Returns the waker's CPU, or -1.
 */
static s32 pick_sync_cpu(struct task_ctx *taskc, u64 now)
{
	const struct cpumask *mask = cast_mask(taskc->mask);
	struct task_struct *waker = (void *)bpf_get_current_task_btf();
	struct task_ctx *wakerc;
	s32 cpu = bpf_get_smp_processor_id();
	u32 blocks, wakes;

	if (!mask || !bpf_cpumask_test_cpu(cpu, mask) || (waker->flags & PF_EXITING) ||
	    !(wakerc = lookup_task_ctx(waker)))
		return -1;
	blocks = rebal_freq_now(wakerc->blocked_freq,
				rebal_elapsed(now, wakerc->last_blocked_at));
	wakes = rebal_freq_now(wakerc->waker_freq, rebal_elapsed(now, wakerc->last_woke_at));
	return 2 * blocks >= wakes ? cpu : -1;
}

/* Whether the tuner marked the same domains for kicks as for direct
 * placement, and the options open the same ones (see kick_idle()). */
static bool greedy_marks_equal(void)
{
	int i;

	if (kick_node_greedy != direct_node_greedy || kick_xnode_greedy != direct_xnode_greedy)
		return false;
	for (i = 0; i < DOMMASK_WORDS; i++)
		if (greedy_kick[i] != greedy_direct[i])
			return false;
	return true;
}

/*
 * Wake an idle CPU that can take work just queued in @taskc's home: one of
 * the domain first, then one of a lightly used domain nearby, which finds the
 * work by stealing in dispatch; @greedy allows the latter. If select_cpu
 * searched the domain for this very wakeup a moment ago and found nothing
 * (@searched), the search is not repeated (nor the greedy one, when the
 * marks for direct placement and for kicks are the same).
 */
static bool kick_idle(struct task_ctx *taskc, bool greedy, bool searched)
{
	const struct cpumask *mask = cast_mask(taskc->mask);
	s32 cpu = -1;

	if (mask && !searched)
		cpu = scx_bpf_pick_idle_cpu(mask, 0);
	if (cpu < 0 && greedy && !(searched && greedy_marks_equal())) {
		cpu = pick_idle_elsewhere(taskc, true, kick_node_greedy, kick_xnode_greedy);
		if (cpu >= 0)
			stat_add(cpu_to_dom(cpu), DSTAT_KICK_GREEDY, 1);
	}
	if (cpu < 0)
		return false;
	scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
	stat_add(cpu_to_dom(cpu), DSTAT_KICKS, 1);
	return true;
}

#endif /* __REBAL_IDLE_BPF_H */
