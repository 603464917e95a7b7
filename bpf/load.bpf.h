/* SPDX-License-Identifier: GPL-2.0 */
/*
 * load.bpf.h - what the balancer and the tuner need to see: each task's
 * duty cycle (decayed share of time runnable), each domain's load average
 * split into per-CPU shares (struct dom_load in intf.h says why that is
 * exact), the table of migration candidates, and the CPU time charged to
 * each domain. All on the one clock (now_ns(), now_rq()), since the daemon
 * reads these timestamps against its own.
 */
#ifndef __REBAL_LOAD_BPF_H
#define __REBAL_LOAD_BPF_H

#include "rebal.bpf.h"

/* Fold the time since the last update into the task's duty cycle; the task
 * was runnable during it iff taskc->runnable. */
static void dcycle_update(struct task_ctx *taskc, u64 now)
{
	u64 keep = load_decay(rebal_elapsed(now, taskc->dcycle_at));
	u64 dc = (u64)taskc->dcycle * keep;

	if (taskc->runnable)
		dc += (u64)DCYCLE_ONE * (DCYCLE_ONE - keep);
	taskc->dcycle = dc >> DCYCLE_SHIFT;
	taskc->dcycle_at = now;
}

/* This CPU's share of @dom's load, its averages brought up to @now so that
 * a change can be applied from @now on. */
static struct dom_load *dom_load_at(u32 dom, u64 now)
{
	struct pcpu_dom *s = my_slot(dom);
	struct dom_load *l;
	u64 dt, keep;

	if (!s)
		return NULL;
	l = &s->load;
	dt = rebal_elapsed(now, l->at);
	if (dt) {
		keep = load_decay(dt);	/* once, for both averages */
		l->avg = rebal_decay_apply(l->avg, l->runnable, keep);
		l->avg_w = rebal_decay_apply(l->avg_w, l->runnable_w, keep);
		l->at = now;
	}
	return l;
}

/* @taskc became runnable (@sign 1) or stopped being runnable (-1) in @dom. */
static void dom_load_runnable(struct task_ctx *taskc, u32 dom, s64 sign, u64 now)
{
	struct dom_load *l = dom_load_at(dom, now);

	if (l) {
		l->runnable += sign * DCYCLE_ONE;
		l->runnable_w += sign * (s64)taskc->acct_weight * DCYCLE_ONE;
	}
}

/*
 * @taskc, runnable, is to count with weight @w from @now on (the balancer
 * moved load_weight_cap, or the task was reniced, while it stayed
 * runnable: a CPU hog may never go quiescent). What its old weight added
 * to the average so far decays away like any other past.
 */
static void dom_load_reweight(struct task_ctx *taskc, u32 w, u64 now)
{
	struct dom_load *l = dom_load_at(taskc->dom, now);

	if (!l)
		return;
	l->runnable_w += ((s64)w - (s64)taskc->acct_weight) * DCYCLE_ONE;
	taskc->acct_weight = w;
}

/* Add (@sign 1) or take out (-1) @taskc's share of a domain's load. */
static void dom_load_add(struct dom_load *l, struct task_ctx *taskc, s64 sign)
{
	s64 dc = taskc->dcycle;

	l->avg += sign * dc;
	l->avg_w += sign * dc * taskc->acct_weight;
	if (taskc->runnable) {
		l->runnable += sign * DCYCLE_ONE;
		l->runnable_w += sign * (s64)taskc->acct_weight * DCYCLE_ONE;
	}
}

/*
 * Move @taskc's share of load from domain @from to @to: its duty cycle out
 * of one average and into the other, and, if it is runnable, its +1.
 * Either side may be NO_DOM: a task whose CPUs are all offline has no
 * home, and no domain counts its load.
 */
static void dom_load_xfer(struct task_ctx *taskc, u32 from, u32 to, u64 now)
{
	struct dom_load *l;

	dcycle_update(taskc, now);
	if ((l = dom_load_at(from, now)))
		dom_load_add(l, taskc, -1);
	if ((l = dom_load_at(to, now)))
		dom_load_add(l, taskc, 1);
}

/* Write @p into its domain's candidate table (at most every
 * cand_publish_ns), with its duty cycle brought up to @now: only then, as a
 * task that keeps running changes nothing else that needs it. */
static void publish_candidate(struct task_struct *p, struct task_ctx *taskc, u64 now)
{
	struct cand_slot *slot;
	u32 dom = taskc->dom;
	u32 idx = (u32)p->pid % NR_CANDS_PER_DOM;
	int i;

	if (rebal_elapsed(now, taskc->published_at) < cand_publish_ns)
		return;
	slot = MEMBER_VPTR(cands, [dom][idx]);
	if (!slot)
		return;
	taskc->published_at = now;
	if (taskc->dcycle_at != now)
		dcycle_update(taskc, now);

	slot->pid = p->pid;
	slot->dom = dom;
	slot->weight = task_weight(p);
	slot->dcycle = taskc->dcycle;
	slot->updated_ns = now;
	for (i = 0; i < DOMMASK_WORDS; i++)
		slot->dom_mask[i] = taskc->dom_mask[i];
}

/* The burst so far of @taskc, running for @ran in the current window. */
static u64 burst_now(struct task_ctx *taskc, u64 ran)
{
	return taskc->burst + (ran > taskc->burst_skip ? ran - taskc->burst_skip : 0);
}

/*
 * Charge what @p ran on @cpu since its window started: to its vtime (by
 * weight), to its burst (deadline.bpf.h), and to the domain of @cpu as
 * CPU time (utilisation is of the CPUs, whoever's task ran). Called when
 * @p stops and when dispatch renews its slice: a task that keeps its CPU
 * for seconds gets no stopping() in between, and its time must not show
 * up in one lump when it finally stops (the tuner would see a busy domain
 * as idle until then). While @p goes on running, cpu_busy_at marks the
 * new window for the daemon; when it stops, the CPU is marked idle.
 */
static u64 charge_run(struct task_struct *p, struct task_ctx *taskc, s32 cpu, u64 now,
		      bool still_running)
{
	u64 used = rebal_elapsed(now, taskc->running_at);
	u64 *busy = MEMBER_VPTR(cpu_busy_at, [cpu]);
	u32 *seq = MEMBER_VPTR(cpu_charge_seq, [cpu]);

	taskc->vtime += used * WEIGHT_NICE0 / task_weight(p);
	taskc->burst = burst_now(taskc, used);
	taskc->burst_skip = 0;
	taskc->running_at = now;
	/*
	 * The counter and the window start change together for the daemon:
	 * a sequence count around them, odd in between (a seqlock with one
	 * writer, this CPU). x86 keeps stores in order; the barriers keep
	 * the compiler from moving them.
	 */
	if (seq)
		WRITE_ONCE(*seq, *seq + 1);
	barrier();
	stat_add(cpu_to_dom(cpu), DSTAT_RUN_NS, used);
	if (busy)
		WRITE_ONCE(*busy, still_running ? now : 0);
	barrier();
	if (seq)
		WRITE_ONCE(*seq, *seq + 1);
	return used;
}

#endif /* __REBAL_LOAD_BPF_H */
