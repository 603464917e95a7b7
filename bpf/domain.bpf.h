/* SPDX-License-Identifier: GPL-2.0 */
/*
 * domain.bpf.h - which domain is a task's home, and how that changes: at
 * fork (dealt round-robin), when its affinity changes, when the balancer
 * moves it (the `migrations` map), and, for one task at a time, when an
 * idle CPU steals it from another domain's queue without changing its
 * home.
 */
#ifndef __REBAL_DOMAIN_BPF_H
#define __REBAL_DOMAIN_BPF_H

#include "rebal.bpf.h"
#include "load.bpf.h"

/* Where each CPU's next forked task goes (see fork_dom()). */
u32 fork_rr[MAX_CPUS];

/* Recompute which domains @cpus reaches. Slow path (affinity changes). */
static void refresh_dom_mask(struct task_ctx *taskc, const struct cpumask *cpus)
{
	u32 d;

	for (d = 0; d < DOMMASK_WORDS; d++)
		taskc->dom_mask[d] = 0;

	bpf_for(d, 0, nr_doms) {
		const struct cpumask *dm = dom_cpumask(d);

		if (dm && bpf_cpumask_intersects(cpus, dm) && d < MAX_DOMS)
			taskc->dom_mask[d / 64] |= 1ULL << (d % 64);
	}
}

/* First allowed domain, preferring @near_node. */
static u32 first_allowed_dom(struct task_ctx *taskc, u32 near_node)
{
	u32 d, found = NO_DOM;

	bpf_for(d, 0, nr_doms) {
		if (!dom_in_mask(taskc->dom_mask, d))
			continue;
		if (node_of(d) == near_node)
			return d;
		if (found == NO_DOM)
			found = d;
	}
	return found;
}

/*
 * Home for a task being forked. The parent's own domain would be the
 * obvious choice, and the wrong one for a burst of forks (hackbench, a
 * build, a thread pool): every child would wait in one queue while the
 * other domains could only steal them one at a time, and the balancer,
 * which moves a few tasks per interval, takes seconds to catch up. Queue
 * lengths do not help choose: such children often block at once, waiting
 * for a start signal, so every queue looks empty while the burst lands.
 * So deal the children out round-robin over the domains they may use,
 * from a cursor per forking CPU; the balancer then corrects by load, and
 * NUMA placement by its cross-node pass.
 */
static u32 fork_dom(struct task_ctx *taskc)
{
	u32 cpu = bpf_get_smp_processor_id(), *cur, d, i;

	cur = MEMBER_VPTR(fork_rr, [cpu]);
	if (!cur)
		return NO_DOM;
	bpf_for(i, 0, nr_doms) {
		d = (*cur + i + 1) % nr_doms;
		if (dom_in_mask(taskc->dom_mask, d)) {
			*cur = d;
			return d;
		}
	}
	return NO_DOM;
}

/* Make @dom the task's home: its CPU mask becomes allowed & domain. */
static int set_home(struct task_ctx *taskc, u32 dom, const struct cpumask *cpus)
{
	const struct cpumask *dm = dom_cpumask(dom);
	struct bpf_cpumask *tm = taskc->mask;

	if (!dm || !tm)
		return -ENOENT;
	bpf_cpumask_and(tm, cpus, dm);
	taskc->dom = dom;
	return 0;
}

/*
 * No home: every CPU the task may use is offline (a per-CPU kthread of an
 * unplugged CPU, typically, seen when the scheduler restarts after a
 * hotplug). It cannot run until one comes back, and that is another
 * hotplug, which restarts the scheduler; meanwhile enqueue sends it to the
 * fallback queues and no domain counts it.
 */
static void set_no_home(struct task_ctx *taskc)
{
	if (taskc->mask)
		bpf_cpumask_clear(taskc->mask);
	taskc->dom = NO_DOM;
}

/*
 * Carry out a move the balancer asked for, if one is pending for @p. The
 * task keeps its place in time: its lag behind the old domain's clock
 * becomes its lag behind the new one's, so a move neither rewards nor
 * punishes it. migrations_pending counts the moves not yet carried out,
 * so that once they are all done, no task looks the map up until the next
 * round writes new ones.
 */
static void maybe_migrate(struct task_struct *p, struct task_ctx *taskc)
{
	s32 pid = p->pid;
	u32 *target, to, from = taskc->dom;

	if (migrations_pending <= 0)
		return;
	target = bpf_map_lookup_elem(&migrations, &pid);
	if (!target)
		return;
	to = *target;
	if (bpf_map_delete_elem(&migrations, &pid))
		return;	/* another CPU took it first */
	__sync_fetch_and_sub(&migrations_pending, 1);

	if (to == from || to >= nr_doms || from >= MAX_DOMS || to >= MAX_DOMS ||
	    !dom_in_mask(taskc->dom_mask, to))
		return;
	if (set_home(taskc, to, p->cpus_ptr))
		return;
	dom_load_xfer(taskc, from, to, now_ns());
	taskc->vtime = taskc->vtime - dom_clock(from) + dom_clock(to);
	stat_add(from, DSTAT_MIGRATED_OUT, 1);
	stat_add(to, DSTAT_MIGRATED_IN, 1);
}

/*
 * Take one task queued in another domain onto this CPU (of domain @dom),
 * the nearest first (steal_order: the same node's domains, then the others
 * by NUMA distance). A domain of another node only when it has at least
 * xnode_steal_min tasks waiting: a task that crosses a node leaves its
 * memory behind, and a machine whose tasks are memory-bound may prefer its
 * idle CPUs to wait for a second task to queue up over there. By default
 * (1) whatever waits is taken: in the VM a threshold of 2 left the other
 * node's CPUs idle up to 3% of the time under an overload on one node,
 * against none without.
 */
static bool steal(u32 dom)
{
	u32 my_node = node_of(dom), i;

	bpf_for(i, 0, nr_doms - 1) {
		const volatile u32 *vp = MEMBER_VPTR(steal_order, [dom][i]);
		u32 victim;
		bool xnode;

		if (!vp || (victim = *vp) >= MAX_DOMS)
			break;
		xnode = node_of(victim) != my_node;
		if (xnode && xnode_steal_min > 1 &&
		    scx_bpf_dsq_nr_queued(victim) < xnode_steal_min)
			continue;
		if (scx_bpf_dsq_move_to_local(victim, 0)) {
			stat_add(dom, DSTAT_STEAL_IN, 1);
			stat_add(victim, DSTAT_STEAL_OUT, 1);
			if (xnode)
				stat_add(dom, DSTAT_STEAL_XNODE, 1);
			return true;
		}
	}
	return false;
}

#endif /* __REBAL_DOMAIN_BPF_H */
