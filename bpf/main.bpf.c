/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_rebal - the BPF half of an LLC-domain load-balancing scheduler.
 *
 * The machine is cut into *domains*, one per last-level cache inside a NUMA
 * node (user space decides the cut; see src/domains.rs). Every task belongs
 * to exactly one domain, its home, and waits in that domain's dispatch queue
 * (DSQ id == domain id), ordered by a virtual deadline. Keeping a task on
 * one LLC keeps its cache warm; deciding *which* LLC is the Rust balancer's
 * job, which runs every few seconds, sees the whole machine, and moves
 * tasks by writing the `migrations` map. This file is the hot path:
 *
 *   wakeup ─► select_cpu: idle CPU in the home domain? ─► run it there now
 *                 │ no          (else an idle CPU of a     (local DSQ)
 *                 ▼              lightly used neighbour)
 *             enqueue: home DSQ by deadline, then kick an idle CPU of the
 *                 │    domain (or of a lightly used neighbour) to take it
 *                 ▼
 *   CPU free ─► dispatch: own domain's DSQ ─► the task that just ran, if
 *                         it may go on ─► steal: sibling domains of the
 *                         node, then other nodes' long queues
 *
 * Work conservation: no CPU idles while a task it may run waits in its
 * domain. A task queued there wakes an idle CPU of the domain; a task
 * whose slice ends with nothing else queued for its CPU keeps running
 * (dispatch renews it at home; enqueue keeps a visitor unless its home
 * has an idle CPU waiting for it, see SCX_ENQ_LAST below).
 *
 * The rest, one header per concern:
 *   rebal.bpf.h     globals, maps, per-task context (documented in intf.h)
 *   load.bpf.h      duty cycles, per-CPU shares of domain load, candidates
 *                   for the balancer, CPU time charged per domain
 *   deadline.bpf.h  vtime, deadlines, wakeup preemption of CPU hogs
 *   domain.bpf.h    homes: fork, affinity, balancer moves, stealing
 *   idle.bpf.h      idle CPU selection and kicks
 *   arith.h         the pure arithmetic, shared with the daemon
 *
 * Tasks that may run on one CPU only (per-CPU kthreads, pinned tasks) go
 * straight to that CPU's local DSQ: a domain DSQ could only strand them.
 *
 * Time slices: the daemon's tuner rewrites slice_ns every ~100 ms, short
 * when tasks wait for CPUs (they get a turn sooner), long when they do not
 * (fewer switches, warmer caches), and marks the lightly used domains.
 *
 * CPU hotplug is not handled here on purpose: without cpu_online/offline
 * the kernel ejects the scheduler with a restart request, and the daemon
 * rebuilds the domains from the new topology and loads again.
 */
#include "rebal.bpf.h"
#include "load.bpf.h"
#include "deadline.bpf.h"
#include "domain.bpf.h"
#include "idle.bpf.h"

char _license[] SEC("license") = "GPL";

UEI_DEFINE(uei);

s32 BPF_STRUCT_OPS(rebal_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	struct task_ctx *taskc = lookup_task_ctx(p);
	const struct cpumask *mask;
	s32 cpu;

	if (!taskc)
		return prev_cpu;
	maybe_migrate(p, taskc);
	if (p->nr_cpus_allowed == 1)
		return prev_cpu;
	mask = cast_mask(taskc->mask);
	if (!mask)
		return prev_cpu;

	cpu = pick_idle_cpu(mask, prev_cpu);
	if (cpu < 0)
		cpu = pick_idle_greedy(p, taskc);
	if (cpu >= 0) {
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice_ns, 0);
		stat_add(taskc->dom, DSTAT_DIRECT, 1);
		return cpu;
	}
	if (sync_wakeups && (wake_flags & SCX_WAKE_SYNC) &&
	    (cpu = pick_sync_cpu(taskc, now_ns())) >= 0) {
		taskc->searched_idle = true;
		stat_add(taskc->dom, DSTAT_SYNC, 1);
		return cpu;
	}
	taskc->searched_idle = true;
	/* No idle CPU: queue on a CPU of the home domain so that the CPU
	 * that finally takes it usually pulls from its own runqueue. */
	if (prev_cpu >= 0 && bpf_cpumask_test_cpu(prev_cpu, mask))
		return prev_cpu;
	cpu = bpf_cpumask_any_distribute(mask);
	return cpu < nr_cpu_ids ? cpu : prev_cpu;
}

/* Queue @p on domain @dom's DSQ: by deadline, or in order with --fifo. */
static void insert_dom(struct task_struct *p, struct task_ctx *taskc, u32 dom, u64 slice,
		       u64 enq_flags, u64 now)
{
	if (fifo_mode)
		scx_bpf_dsq_insert(p, dom, slice, enq_flags);
	else
		scx_bpf_dsq_insert_vtime(p, dom, slice, place_vtime(p, taskc, dom, slice, now),
					 enq_flags);
}

/*
 * SCX_ENQ_LAST: @p's slice ended and nothing else is queued for its CPU
 * (dispatch found nothing, and did not renew @p: it is a visitor, stolen
 * earlier or just moved by the balancer). Sending it home would leave this
 * CPU idle while @p waits there, unless its home has an idle CPU to take
 * it: then home it goes, to its own cache. Otherwise it keeps this CPU.
 */
static void enqueue_last(struct task_struct *p, struct task_ctx *taskc, u32 dom, u64 slice,
			 u64 enq_flags, u64 now)
{
	const struct cpumask *mask = cast_mask(taskc->mask);
	s32 cpu = mask ? scx_bpf_pick_idle_cpu(mask, 0) : -1;

	if (cpu >= 0) {
		insert_dom(p, taskc, dom, slice, enq_flags, now);
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
		stat_add(dom, DSTAT_WENT_HOME, 1);
		return;
	}
	scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice, enq_flags);
	stat_add(cpu_to_dom(bpf_get_smp_processor_id()), DSTAT_KEPT, 1);
}

void BPF_STRUCT_OPS(rebal_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *taskc = lookup_task_ctx(p);
	u64 dl = 0, slice = slice_ns, now;
	s32 cpu, this_cpu = bpf_get_smp_processor_id();
	bool searched;
	u32 dom;

	if (!taskc) {
		/* Should not happen (init_task creates it); keep the task
		 * running on the kernel's fallback queue rather than lose it. */
		scx_bpf_dsq_insert(p, SCX_DSQ_GLOBAL, slice, enq_flags);
		return;
	}
	maybe_migrate(p, taskc);
	dom = taskc->dom;
	cpu = scx_bpf_task_cpu(p);
	now = now_rq(cpu);
	/* select_cpu's finding holds for this wakeup only: taken once, here. */
	searched = taskc->searched_idle && (enq_flags & SCX_ENQ_WAKEUP);
	taskc->searched_idle = false;

	/*
	 * A task that may run on one CPU only goes to that CPU's local queue.
	 * It may still preempt that CPU's hog like any other waking task:
	 * without that, it waits out the hog's slice (a pinned frame or audio
	 * thread, cyclictest's measuring thread). SCX_ENQ_PREEMPT reschedules
	 * the CPU itself, by IPI if it is another one.
	 */
	if (p->nr_cpus_allowed == 1) {
		if ((enq_flags & SCX_ENQ_WAKEUP) && dom < MAX_DOMS &&
		    should_preempt(cpu, dom, place_vtime(p, taskc, dom, slice, now)))
			enq_flags |= SCX_ENQ_PREEMPT;
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice, enq_flags);
		stat_add(dom, DSTAT_PINNED, 1);
		return;
	}
	if (dom >= MAX_DOMS) {
		scx_bpf_dsq_insert(p, SCX_DSQ_GLOBAL, slice, enq_flags);
		return;
	}
	if (enq_flags & SCX_ENQ_LAST) {
		enqueue_last(p, taskc, dom, slice, enq_flags, now);
		return;
	}
	if (!fifo_mode)
		dl = place_vtime(p, taskc, dom, slice, now);
	/*
	 * A wakeup that is to preempt the task running on this very CPU (a
	 * timer interrupt waking a frame thread over a CPU hog, typically)
	 * goes straight to this CPU's local queue with SCX_ENQ_PREEMPT: the
	 * kernel marks the current task for rescheduling and the woken task
	 * runs on the way out of the interrupt. Queueing it on the domain and
	 * kicking this CPU would go through an IPI to ourselves: on a real
	 * machine a few microseconds more, under QEMU's TCG the end of this
	 * vCPU's turn (benches/vm/results/2026-11-24-preemption).
	 */
	if ((enq_flags & SCX_ENQ_WAKEUP) && cpu == this_cpu && should_preempt(cpu, dom, dl)) {
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice, enq_flags | SCX_ENQ_PREEMPT);
		return;
	}

	if (fifo_mode)
		scx_bpf_dsq_insert(p, dom, slice, enq_flags);
	else
		scx_bpf_dsq_insert_vtime(p, dom, slice, dl, enq_flags);
	stat_add(dom, DSTAT_ENQUEUED, 1);
	/*
	 * Wake a CPU to take it. A task re-queued at the end of its slice on
	 * a CPU of its own domain (another task of the domain took its turn)
	 * wakes an idle CPU of the domain if there is one, and no other: a
	 * greedy kick elsewhere would only drag it to another LLC (seen in
	 * the VM: hogs kept wandering between domains once the balancer had
	 * given each its share).
	 */
	if (scx_bpf_task_running(p) && cpu_to_dom(this_cpu) == dom) {
		kick_idle(taskc, false, false);
		return;
	}
	/* Another CPU: an idle one of the domain or a lightly used one
	 * nearby, else preempt the one select_cpu chose, by IPI. */
	if (!kick_idle(taskc, true, searched) && (enq_flags & SCX_ENQ_WAKEUP) &&
	    should_preempt(cpu, dom, dl))
		scx_bpf_kick_cpu(cpu, SCX_KICK_PREEMPT);
}

void BPF_STRUCT_OPS(rebal_dispatch, s32 cpu, struct task_struct *prev)
{
	struct task_ctx *taskc;
	u32 dom = cpu_to_dom(cpu);

	if (dom >= nr_doms || dom >= MAX_DOMS)
		return;
	if (scx_bpf_dsq_move_to_local(dom, 0)) {
		stat_add(dom, DSTAT_DISPATCHED, 1);
		return;
	}

	/*
	 * Nothing else queued here, and the task whose slice just ended may
	 * go on if this is its home: renew its slice rather than steal.
	 * dispatch runs before the kernel re-queues @prev, so stealing now
	 * would put another domain's task on this CPU and leave @prev for
	 * whichever CPU comes next, possibly on another LLC. A visitor is not
	 * renewed here: enqueue gets it with SCX_ENQ_LAST and decides.
	 */
	if (prev && (prev->scx.flags & SCX_TASK_QUEUED) && (taskc = lookup_task_ctx(prev))) {
		maybe_migrate(prev, taskc);
		if (taskc->dom == dom) {
			u64 now = now_rq(cpu);

			prev->scx.slice = slice_ns;
			charge_run(prev, taskc, cpu, now, true);
			dom_clock_advance(dom, taskc->vtime);
			publish_candidate(prev, taskc, now);
			note_running_dl(prev, taskc, cpu, now);
			stat_add(dom, DSTAT_KEPT, 1);
			return;
		}
	}
	steal(dom);
}

void BPF_STRUCT_OPS(rebal_runnable, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *taskc = lookup_task_ctx(p);
	u64 now;

	if (!taskc)
		return;
	now = now_rq(scx_bpf_task_cpu(p));
	if (enq_flags & SCX_ENQ_WAKEUP) {
		struct task_struct *waker = bpf_get_current_task_btf();
		struct task_ctx *wakerc;

		taskc->burst = 0;
		taskc->wake_credit = ~0ULL;
		/* Only a task wakes others (note_waker()). */
		if (waker != p && in_task_context() && (wakerc = lookup_task_ctx(waker))) {
			note_waker(wakerc, now);
			taskc->wake_credit = waker_lag(wakerc);
		}
	}
	dcycle_update(taskc, now);
	taskc->runnable = true;
	taskc->acct_weight = load_weight(p);
	dom_load_runnable(taskc, taskc->dom, 1, now);
}

void BPF_STRUCT_OPS(rebal_running, struct task_struct *p)
{
	struct task_ctx *taskc = lookup_task_ctx(p);
	/*
	 * The task's CPU, not necessarily this one: when the scheduler is
	 * enabled, every running task is switched over from whichever CPU
	 * enables it (seen: 7 such calls at each start).
	 */
	s32 cpu = scx_bpf_task_cpu(p);
	u64 *busy = MEMBER_VPTR(cpu_busy_at, [cpu]);
	u32 w;

	if (!taskc)
		return;
	taskc->running_at = now_rq(cpu);
	if (busy)
		*busy = taskc->running_at;
	if (taskc->runnable && (w = load_weight(p)) != taskc->acct_weight)
		dom_load_reweight(taskc, w, taskc->running_at);
	dom_clock_advance(taskc->dom, taskc->vtime);
	note_running_dl(p, taskc, cpu, taskc->running_at);
}

void BPF_STRUCT_OPS(rebal_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *taskc = lookup_task_ctx(p);
	u64 now;
	s32 cpu;

	if (!taskc)
		return;
	cpu = scx_bpf_task_cpu(p);
	now = now_rq(cpu);
	charge_run(p, taskc, cpu, now, false);
	if (runnable) {
		/* Preempted or out of slice: publish its figures now; a task
		 * going to sleep does so in quiescent(), once. */
		publish_candidate(p, taskc, now);
	} else {
		hand_off(taskc, 0, true);	/* going to sleep */
	}
}

void BPF_STRUCT_OPS(rebal_quiescent, struct task_struct *p, u64 deq_flags)
{
	struct task_ctx *taskc = lookup_task_ctx(p);
	u64 now;

	if (!taskc)
		return;
	now = now_rq(scx_bpf_task_cpu(p));
	if (deq_flags & SCX_DEQ_SLEEP)
		note_blocked(taskc, now);
	dcycle_update(taskc, now);
	dom_load_runnable(taskc, taskc->dom, -1, now);
	taskc->runnable = false;
	publish_candidate(p, taskc, now);
}

void BPF_STRUCT_OPS(rebal_set_cpumask, struct task_struct *p, const struct cpumask *cpumask)
{
	struct task_ctx *taskc = lookup_task_ctx(p);
	u32 dom, from;

	if (!taskc)
		return;
	refresh_dom_mask(taskc, cpumask);
	dom = from = taskc->dom;
	if (!dom_in_mask(taskc->dom_mask, dom))
		dom = first_allowed_dom(taskc, node_of(dom));
	if (dom == NO_DOM)
		set_no_home(taskc);
	else if (set_home(taskc, dom, cpumask))
		return;
	if (dom != from)
		dom_load_xfer(taskc, from, dom, now_ns());
}

s32 BPF_STRUCT_OPS(rebal_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	struct task_ctx *taskc;
	struct bpf_cpumask *mask;
	u32 dom;

	taskc = bpf_task_storage_get(&task_ctxs, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!taskc)
		return -ENOMEM;

	mask = bpf_cpumask_create();
	if (!mask)
		return -ENOMEM;
	mask = bpf_kptr_xchg(&taskc->mask, mask);
	if (mask)
		bpf_cpumask_release(mask);

	refresh_dom_mask(taskc, p->cpus_ptr);
	dom = cpu_to_dom(scx_bpf_task_cpu(p));
	if (args->fork) {
		u32 f = fork_dom(taskc);

		if (f != NO_DOM)
			dom = f;
	}
	if (dom >= nr_doms || !dom_in_mask(taskc->dom_mask, dom))
		dom = first_allowed_dom(taskc, node_of(dom < MAX_DOMS ? dom : 0));
	if (dom == NO_DOM)
		set_no_home(taskc);
	else if (set_home(taskc, dom, p->cpus_ptr))
		return -ENOENT;
	taskc->vtime = dom_clock(dom);
	taskc->dcycle_at = now_ns();
	taskc->acct_weight = load_weight(p);
	return 0;
}

/* Build the cpumask of domain @dom's CPUs and store it in @w. */
static int build_dom_mask(struct mask_wrapper *w, u32 dom)
{
	struct bpf_cpumask *mask;
	u32 cpu;

	mask = bpf_cpumask_create();
	if (!mask)
		return -ENOMEM;
	bpf_for(cpu, 0, nr_cpu_ids) {
		if (cpu_to_dom(cpu) == dom)
			bpf_cpumask_set_cpu(cpu, mask);
	}
	mask = bpf_kptr_xchg(&w->mask, mask);
	if (mask)
		bpf_cpumask_release(mask);
	return 0;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(rebal_init)
{
	u32 i;
	s32 ret;

	bpf_for(i, 0, nr_doms) {
		struct mask_wrapper *w = bpf_map_lookup_elem(&dom_masks, &i);

		/* The DSQ's memory on the domain's NUMA node (a kernel id). */
		ret = scx_bpf_create_dsq(i, node_of(i));
		if (ret) {
			scx_bpf_error("failed to create DSQ for domain %u (%d)", i, ret);
			return ret;
		}
		if (!w || build_dom_mask(w, i))
			return -ENOMEM;
	}
	return 0;
}

void BPF_STRUCT_OPS(rebal_exit, struct scx_exit_info *ei)
{
	UEI_RECORD(uei, ei);
}

/*
 * Run by the daemon (BPF_PROG_RUN) when it samples: how many tasks wait in
 * each domain's queue, for the stats. Asking here, once per sample, keeps
 * the question off the hot path.
 */
SEC("syscall")
int read_queues(void *ctx)
{
	u32 d;

	bpf_for(d, 0, nr_doms) {
		u32 *q = MEMBER_VPTR(dom_queued, [d]);

		if (q)
			*q = scx_bpf_dsq_nr_queued(d);
	}
	return 0;
}

SCX_OPS_DEFINE(rebal_ops,
	       .select_cpu		= (void *)rebal_select_cpu,
	       .enqueue			= (void *)rebal_enqueue,
	       .dispatch		= (void *)rebal_dispatch,
	       .runnable		= (void *)rebal_runnable,
	       .running			= (void *)rebal_running,
	       .stopping		= (void *)rebal_stopping,
	       .quiescent		= (void *)rebal_quiescent,
	       .set_cpumask		= (void *)rebal_set_cpumask,
	       .init_task		= (void *)rebal_init_task,
	       .init			= (void *)rebal_init,
	       .exit			= (void *)rebal_exit,
	       .flags			= SCX_OPS_ENQ_LAST,
	       .name			= "rebal");
