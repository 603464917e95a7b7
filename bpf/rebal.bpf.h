/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rebal.bpf.h - the state every part of the BPF scheduler shares: the
 * globals the daemon sets (documented in intf.h), the maps, the per-task
 * context, and the small accessors around them. main.bpf.c includes this
 * first, then one header per concern (load.bpf.h, deadline.bpf.h,
 * domain.bpf.h, idle.bpf.h), and keeps only the ops callbacks.
 */
#ifndef __REBAL_BPF_H
#define __REBAL_BPF_H

#include <scx/common.bpf.h>
#include <scx/compat.bpf.h>
#include <bpf_experimental.h>	/* get_preempt_count() */
#include "intf.h"
#include "arith.h"

/* A compiler barrier: the compiler keeps memory accesses on their side. */
#ifndef barrier
#define barrier() asm volatile("" ::: "memory")
#endif

/* Set by the daemon before load (intf.h says what each is). */
const volatile u32 nr_doms = 1;
const volatile u32 nr_cpu_ids = 1;
const volatile bool smt_enabled;
const volatile u64 load_half_life_ns = LOAD_HALF_LIFE_MS_DFL * 1000000ULL;
/* rebal_decay_recip(load_half_life_ns), from the daemon. */
const volatile u64 load_half_life_recip = 1;
const volatile u64 cand_publish_ns = 10 * 1000000ULL;
const volatile bool kick_node_greedy = true;
const volatile bool kick_xnode_greedy;
const volatile bool direct_node_greedy = true;
const volatile bool direct_xnode_greedy;
const volatile bool fifo_mode;
const volatile bool no_preempt;
const volatile u64 preempt_margin_ns = PREEMPT_MARGIN_US_DFL * 1000ULL;
const volatile u32 sleeper_credit_pct = SLEEPER_CREDIT_PCT_DFL;
const volatile bool sync_wakeups;
const volatile u32 xnode_steal_min = XNODE_STEAL_MIN_DFL;
const volatile u32 cpu_dom[MAX_CPUS];
const volatile u32 dom_node[MAX_DOMS];
const volatile u32 steal_order[MAX_DOMS][MAX_DOMS];

/* Written by the daemon while running. */
volatile u64 slice_ns = SLICE_DFL_US * 1000ULL;
/* All set until the tuner first speaks. */
volatile u64 greedy_direct[DOMMASK_WORDS] = { [0 ... DOMMASK_WORDS - 1] = ~0ULL };
volatile u64 greedy_kick[DOMMASK_WORDS] = { [0 ... DOMMASK_WORDS - 1] = ~0ULL };
/* Until the balancer's first round: as on a machine with idle CPUs. */
volatile u32 load_weight_cap = WEIGHT_NICE0;

/* Written by both (intf.h). */
s32 migrations_pending;

/* Written by BPF, read by the daemon through the mmapped .bss. */
struct cand_slot cands[MAX_DOMS][NR_CANDS_PER_DOM];
u64 cpu_busy_at[MAX_CPUS];
u32 cpu_charge_seq[MAX_CPUS];
u32 dom_queued[MAX_DOMS];

/* BPF only. Each domain's virtual clock: the largest vtime that started
 * running there. */
u64 dom_vtime[MAX_DOMS];

struct mask_wrapper {
	struct bpf_cpumask __kptr *mask;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, u32);
	__type(value, struct mask_wrapper);
	__uint(max_entries, MAX_DOMS);
} dom_masks SEC(".maps");

/* Sized by the daemon to nr_cpu_ids * nr_doms before load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, u32);
	__type(value, struct pcpu_dom);
	__uint(max_entries, 1);
} pcpu_doms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, s32);
	__type(value, u32);
	__uint(max_entries, 4096);
} migrations SEC(".maps");

struct task_ctx {
	/* The CPUs the task may use in its home domain: allowed & domain. */
	struct bpf_cpumask __kptr *mask;
	/* Domains the task's affinity reaches at all. */
	u64 dom_mask[DOMMASK_WORDS];
	u32 dom;
	bool runnable;
	/* select_cpu() found no idle CPU for this wakeup (see kick_idle()). */
	bool searched_idle;
	/* Latency level as of its last enqueue (rebal_lat_level()), which
	 * preemption reuses rather than work it out at every switch. */
	u32 lat_level;
	u64 vtime;
	/* Start of the current charge window: running(), or the last slice
	 * renewal (charge_run()). */
	u64 running_at;
	/* The weight counted in the home domain's runnable_w while runnable:
	 * load_weight() as of when it last became runnable or ran (the cap and
	 * the task's nice may change in between). */
	u32 acct_weight;
	/* Decayed share of time runnable, DCYCLE_ONE = always. */
	u32 dcycle;
	u64 dcycle_at;
	u64 published_at;

	/* Latency (deadline.bpf.h). */
	u64 avg_runtime;	/* ns run per hand-off, running average */
	u64 burst;		/* ns run since its last hand-off (see hand_off()) */
	u64 burst_skip;		/* ns of the current window that came before it */
	u32 waker_freq;		/* other tasks woken per second, average */
	u32 blocked_freq;	/* times blocked per second, average */
	u64 last_woke_at;
	u64 last_blocked_at;
	/* The most sleeper credit its last wakeup may give it: how far its
	 * waker was behind its own domain's clock (place_vtime()). */
	u64 wake_credit;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_ctxs SEC(".maps");

/* The one clock (intf.h). */
static __always_inline u64 now_ns(void)
{
	return bpf_ktime_get_ns();
}

/*
 * A cheaper reading of the same clock, for callbacks that hold the
 * runqueue lock of @cpu (the task's CPU in runnable, enqueue, running,
 * stopping and quiescent; the dispatching CPU in dispatch).
 *
 * Why: bpf_ktime_get_ns() reads the clock source, and where that is not
 * the TSC (QEMU guests whose TSC is marked unstable fall back to the HPET)
 * every read is a device access, tens of times dearer than the rest of a
 * callback (benches/vm/results/2026-12-07-clock). The kernel already keeps
 * a runqueue clock (rq->clock, sched_clock based) that it updates under
 * that lock at every schedule, wakeup and tick, and reading it is one load.
 * So each CPU keeps an anchor: one real reading and rq->clock at that
 * moment; later readings are the anchor plus how far rq->clock moved, and
 * a real reading renews the anchor every CLOCK_ANCHOR_NS of rq->clock.
 *
 * The result stays on the one clock (intf.h) to within how far rq->clock
 * lagged at the anchor or at the reading (the time since that CPU's last
 * update_rq_clock(): microseconds on hardware), plus the rate difference
 * of the two clocks over one anchor period. Errors do not add up: each
 * new anchor is a real reading, so the intervals charged back to back on
 * a CPU sum to the real time they span. A backward step this may cause is
 * read as 0 by rebal_elapsed(). scx_bpf_now() (6.14+) does much the same
 * but returns rq->clock itself; this stays on CLOCK_MONOTONIC because the
 * daemon compares these timestamps with its own clock_gettime().
 */
#define CLOCK_ANCHOR_NS (10ULL * 1000 * 1000)

struct clock_anchor {
	u64 mono;	/* bpf_ktime_get_ns() */
	u64 rq;		/* rq->clock at that moment */
};

/* BPF only: one per CPU, written under that CPU's runqueue lock. */
struct clock_anchor clock_anchors[MAX_CPUS];

static u64 now_rq(s32 cpu)
{
	struct clock_anchor *a = MEMBER_VPTR(clock_anchors, [cpu]);
	struct rq *rq;
	u64 rqc, now;

	if (!a || !(rq = bpf_per_cpu_ptr(&runqueues, cpu)))
		return now_ns();
	rqc = rq->clock;
	if (a->mono && rqc >= a->rq && rqc - a->rq < CLOCK_ANCHOR_NS)
		return a->mono + (rqc - a->rq);
	now = now_ns();
	a->mono = now;
	a->rq = rqc;
	return now;
}

static struct task_ctx *lookup_task_ctx(struct task_struct *p)
{
	return bpf_task_storage_get(&task_ctxs, p, 0, 0);
}

static const struct cpumask *dom_cpumask(u32 dom)
{
	struct mask_wrapper *w = bpf_map_lookup_elem(&dom_masks, &dom);

	return w ? cast_mask(w->mask) : NULL;
}

/*
 * Array accesses by a runtime index go through MEMBER_VPTR, whose bounds
 * check the compiler cannot optimise away (it otherwise drops checks it
 * already saw, and the verifier refuses).
 */
static u32 cpu_to_dom(s32 cpu)
{
	const volatile u32 *d = MEMBER_VPTR(cpu_dom, [cpu]);

	return d ? *d : NO_DOM;
}

static u32 node_of(u32 dom)
{
	const volatile u32 *n = MEMBER_VPTR(dom_node, [dom]);

	return n ? *n : 0;
}

/* What this CPU keeps of domain @dom (struct pcpu_dom). */
static struct pcpu_dom *my_slot(u32 dom)
{
	u32 idx;

	if (dom >= nr_doms)
		return NULL;
	idx = bpf_get_smp_processor_id() * nr_doms + dom;
	return bpf_map_lookup_elem(&pcpu_doms, &idx);
}

static void stat_add(u32 dom, u32 idx, u64 v)
{
	struct pcpu_dom *s = my_slot(dom);

	if (s && idx < NR_DSTATS)
		s->cnt[idx] += v;
}

static bool dom_in_mask(const u64 *dom_mask, u32 dom)
{
	return dom < MAX_DOMS && (dom_mask[dom / 64] & (1ULL << (dom % 64)));
}

/* Whether the tuner marked @dom lightly used, for kicks or for direct
 * placement of other domains' tasks. */
static bool dom_greedy(bool kick, u32 dom)
{
	volatile u64 *w = kick ? MEMBER_VPTR(greedy_kick, [dom / 64]) :
				 MEMBER_VPTR(greedy_direct, [dom / 64]);

	return w && (*w & (1ULL << (dom % 64)));
}

static u64 dom_clock(u32 dom)
{
	u64 *v = MEMBER_VPTR(dom_vtime, [dom]);

	return v ? *v : 0;
}

static void dom_clock_advance(u32 dom, u64 vtime)
{
	u64 *v = MEMBER_VPTR(dom_vtime, [dom]);

	if (v && time_before(*v, vtime))
		*v = vtime;
}

/* What is left of a load average after @dt (arith.h). */
static u64 load_decay(u64 dt)
{
	return rebal_decay(dt, load_half_life_ns, load_half_life_recip);
}

/* @p's weight, never 0. */
static u32 task_weight(struct task_struct *p)
{
	return p->scx.weight ?: 1;
}

/*
 * The weight @p's duty cycle counts with in the domains' load averages:
 * its own, up to the largest weight any task can use (load_weight_cap,
 * the balancer's). A task of a high priority that runs a few percent of
 * the time (the daemon itself at --daemon-nice -20, an audio thread) gets
 * those few percent whatever its weight; counted at its full weight it
 * would weigh like a dozen CPU hogs, and the balancer would empty its
 * domain. Candidates are published with their own weight, from which the
 * balancer finds the cap.
 */
static u32 load_weight(struct task_struct *p)
{
	u32 w = task_weight(p), cap = load_weight_cap;

	return w < cap ? w : cap ?: 1;
}

#endif /* __REBAL_BPF_H */
