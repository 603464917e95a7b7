/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_rebal - the BPF half of an LLC-domain load-balancing scheduler.
 *
 * The machine is cut into *domains*, one per last-level cache inside a NUMA
 * node (user space decides the cut; see src/domains.rs). Every task belongs
 * to exactly one domain, its home, and waits in that domain's dispatch queue
 * (DSQ id == domain id), ordered by virtual time. Keeping a task on one LLC
 * keeps its cache warm; deciding *which* LLC is the Rust balancer's job,
 * which runs every few seconds, sees the whole machine, and moves tasks by
 * writing the `migrations` map. This file is only the hot path:
 *
 *   wakeup ─► select_cpu: idle core in the home domain? ─► run it there now
 *                 │ no                                     (local DSQ)
 *                 ▼
 *             enqueue: home DSQ by vtime, then kick an idle CPU of the
 *                 │    domain (or, failing that, of the node) to take it
 *                 ▼
 *   CPU free ─► dispatch: own domain's DSQ ─► the task that just ran, if
 *                         it can go on ─► sibling domains of the node
 *                         ─► domains of other nodes
 *
 * Tasks that may run on one CPU only (per-CPU kthreads, pinned tasks) go
 * straight to that CPU's local DSQ: a domain DSQ could only strand them.
 *
 * Wakeup preemption: a waking task due long before the CPU hog running
 * where it wakes cuts the hog's slice short (should_preempt()); only hogs,
 * so that producers and consumers do not preempt each other.
 *
 * Virtual time: a task's vtime advances by the time it really ran, divided
 * by its weight (nice). A task that slept keeps its vtime but is not allowed
 * to fall more than one slice behind its domain's clock, so sleepers get the
 * CPU soon after waking without starving the rest (place_vtime()).
 *
 * Deadlines: a domain's queue is ordered not by vtime itself but by a
 * virtual deadline, vtime plus the task's expected run length (what it
 * really ran per hand-off, weighted by nice), shortened for tasks that others
 * wait on. Fairness still comes from vtime, which only real runtime moves;
 * the deadline decides who goes first among tasks that are owed time. See
 * task_deadline() for the formula and why.
 *
 * Time slices: the daemon's tuner rewrites slice_ns every ~100 ms, short
 * when tasks wait for CPUs (they get a turn sooner), long when they do not
 * (fewer switches, warmer caches). It also marks the domains that are
 * lightly used (greedy_direct / greedy_kick), the only ones where a waking
 * task of a full domain may be run at once, or whose idle CPUs are kicked
 * to steal work queued elsewhere.
 *
 * Load: the daemon needs each domain's load and each task's share of it.
 * Per task, a duty cycle (share of time runnable, decayed with a half-life)
 * is kept in task storage and published to the bounded `cands` table, from
 * which the balancer picks what to move. Per domain, the same average is
 * kept of the number (and weight) of its runnable tasks, updated only at
 * runnable/quiescent and split per CPU (see struct dom_load in intf.h), so
 * the daemon reads a domain's load without walking its tasks, and a move
 * carries the task's share from one domain's sum to the other's at once.
 *
 * CPU hotplug is not handled here on purpose: without cpu_online/offline
 * the kernel ejects the scheduler with a restart request, and the daemon
 * rebuilds the domains from the new topology and loads again.
 */
#include <scx/common.bpf.h>
#include <scx/compat.bpf.h>
#include <bpf_experimental.h>	/* get_preempt_count() */
#include "intf.h"

char _license[] SEC("license") = "GPL";

UEI_DEFINE(uei);

/* Filled in by the daemon before load. */
const volatile u32 nr_doms = 1;
const volatile u32 nr_cpu_ids = 1;
const volatile bool smt_enabled;
const volatile u64 load_half_life_ns = LOAD_HALF_LIFE_MS_DFL * 1000000ULL;
const volatile u64 cand_publish_ns = 10 * 1000000ULL;
const volatile bool kick_node_greedy = true;
const volatile bool kick_xnode_greedy;
const volatile bool direct_node_greedy = true;
const volatile bool direct_xnode_greedy;
/* --fifo: plain FIFO per domain (the scx_simple policy), for comparison. */
const volatile bool fifo_mode;
/* --no-preempt: never cut a running task short for a waking one. */
const volatile bool no_preempt;
const volatile u64 preempt_margin_ns = PREEMPT_MARGIN_US_DFL * 1000ULL;
const volatile u32 sleeper_credit_pct = SLEEPER_CREDIT_PCT_DFL;
const volatile u32 cpu_dom[MAX_CPUS];
const volatile u32 dom_node[MAX_DOMS];
/* For each domain, the other domains in the order its CPUs steal from them:
 * same node first, then by NUMA distance. nr_doms - 1 entries used. */
const volatile u32 steal_order[MAX_DOMS][MAX_DOMS];

/* Written by the daemon while running. */
volatile u64 slice_ns = SLICE_DFL_US * 1000ULL;
volatile u32 migrations_pending;
/* Domains lightly used enough to take other domains' tasks at wakeup
 * (direct) or to have their idle CPUs kicked for them (kick). All set
 * until the tuner first speaks. */
volatile u64 greedy_direct[DOMMASK_WORDS] = { [0 ... DOMMASK_WORDS - 1] = ~0ULL };
volatile u64 greedy_kick[DOMMASK_WORDS] = { [0 ... DOMMASK_WORDS - 1] = ~0ULL };

/* Each domain's virtual clock: the largest vtime that started running. */
u64 dom_vtime[MAX_DOMS];

/* The deadline of the task each CPU is running (0: none known), for
 * wakeup preemption (should_preempt()). Written by the CPU itself, read by
 * others without a lock: a stale value costs one needless or missed
 * preemption, never correctness. */
u64 cpu_run_dl[MAX_CPUS];

/* How many tasks wait in each domain's DSQ, as of the last enqueue or
 * dispatch that touched it: a gauge for the stats, read by the daemon
 * through the mmapped bss (it cannot ask the DSQ itself). */
u32 dom_queued[MAX_DOMS];

static void note_queued(u32 dom)
{
	if (dom < MAX_DOMS)
		dom_queued[dom] = scx_bpf_dsq_nr_queued(dom);
}

/* Migration candidates, read by the daemon through the mmapped bss. */
struct cand_slot cands[MAX_DOMS][NR_CANDS_PER_DOM];

struct mask_wrapper {
	struct bpf_cpumask __kptr *mask;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, u32);
	__type(value, struct mask_wrapper);
	__uint(max_entries, MAX_DOMS);
} dom_masks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, struct dom_stats);
	__uint(max_entries, MAX_DOMS);
} dom_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, struct dom_load);
	__uint(max_entries, MAX_DOMS);
} dom_loads SEC(".maps");

/* pid -> destination domain, written by the balancer, consumed (and
 * deleted) here the next time the task wakes up or is enqueued. */
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
	u64 vtime;
	u64 running_at;
	/* The weight counted in the home domain's runnable_w while runnable
	 * (the task's weight may change in between). */
	u32 acct_weight;
	/* Decayed share of time runnable, DCYCLE_ONE = always. */
	u32 dcycle;
	u64 dcycle_at;
	u64 published_at;

	/* Latency (task_deadline()). */
	u64 avg_runtime;	/* ns run per hand-off, running average */
	u64 burst;		/* ns run since its last hand-off (see hand_off()) */
	u64 burst_skip;		/* ns of the current run that came before it */
	u32 waker_freq;		/* other tasks woken per second, average */
	u32 blocked_freq;	/* times blocked per second, average */
	u64 last_woke_at;
	u64 last_blocked_at;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_ctxs SEC(".maps");

static struct task_ctx *lookup_task_ctx(struct task_struct *p)
{
	return bpf_task_storage_get(&task_ctxs, p, 0, 0);
}

static const struct cpumask *dom_cpumask(u32 dom)
{
	struct mask_wrapper *w = bpf_map_lookup_elem(&dom_masks, &dom);

	return w ? cast_mask(w->mask) : NULL;
}

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

/*
 * The domain's virtual clock. Array accesses by a runtime index go through
 * MEMBER_VPTR, whose bounds check the compiler cannot optimise away (it
 * otherwise drops checks it already saw, and the verifier refuses).
 */
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

static void stat_add(u32 dom, u32 idx, u64 v)
{
	struct dom_stats *s = bpf_map_lookup_elem(&dom_stats, &dom);

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

/*
 * 2^(-x) for x = i/16, in DCYCLE fixed point: the decay of a running
 * average over i/16 of a half-life.
 */
static const u32 exp2_neg_16th[16] = {
	65536, 62757, 60097, 57549, 55109, 52773, 50535, 48393,
	46341, 44376, 42495, 40693, 38968, 37316, 35734, 34219,
};

/*
 * 2^(-dt / half-life) in DCYCLE fixed point. Whole half-lives are a shift,
 * sixteenths come from the table, and the rest (under 1/16 of a half-life,
 * where 2^-y ~ 1 - y ln 2 to within 0.1%) is linear. The linear part
 * matters: updates come every few ms, far below 1/16 of a half-life, and
 * without it such short steps would not decay at all.
 */
static u64 decay_factor(u64 dt)
{
	u64 hl = load_half_life_ns ?: 1;
	u64 halves = dt / hl;
	/* Position inside the half-life in 1/65536ths; dt % hl < hl < 2^47. */
	u64 x = ((dt % hl) << 16) / hl;
	/* ln 2 in 16.16 fixed point */
	u64 lin = DCYCLE_ONE - (((x & 4095) * 45426) >> 16);

	if (halves >= 32)
		return 0;
	return ((exp2_neg_16th[(x >> 12) & 15] * lin) >> DCYCLE_SHIFT) >> halves;
}

/* Fold the time since the last update into the task's duty cycle; the task
 * was runnable during it iff taskc->runnable. */
static void dcycle_update(struct task_ctx *taskc, u64 now)
{
	u64 dt = now - taskc->dcycle_at;
	u64 keep = decay_factor(dt);
	u64 dc = (u64)taskc->dcycle * keep;

	if (taskc->runnable)
		dc += (u64)DCYCLE_ONE * (DCYCLE_ONE - keep);
	taskc->dcycle = dc >> DCYCLE_SHIFT;
	taskc->dcycle_at = now;
}

/* This CPU's share of @dom's load (struct dom_load), its averages brought
 * up to @now so that a change can be applied from @now on. */
static struct dom_load *dom_load_at(u32 dom, u64 now)
{
	struct dom_load *l = bpf_map_lookup_elem(&dom_loads, &dom);
	s64 keep;

	if (!l)
		return NULL;
	if (now > l->at) {
		keep = decay_factor(now - l->at);
		l->avg = l->runnable + (((l->avg - l->runnable) * keep) >> DCYCLE_SHIFT);
		l->avg_w = l->runnable_w +
			   (((l->avg_w - l->runnable_w) * keep) >> DCYCLE_SHIFT);
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

static void publish_candidate(struct task_struct *p, struct task_ctx *taskc, u64 now)
{
	struct cand_slot *slot;
	u32 dom = taskc->dom;
	u32 idx = (u32)p->pid % NR_CANDS_PER_DOM;
	int i;

	if (now - taskc->published_at < cand_publish_ns)
		return;
	slot = MEMBER_VPTR(cands, [dom][idx]);
	if (!slot)
		return;
	taskc->published_at = now;

	slot->pid = p->pid;
	slot->dom = dom;
	slot->weight = p->scx.weight;
	slot->dcycle = taskc->dcycle;
	slot->updated_ns = now;
	for (i = 0; i < DOMMASK_WORDS; i++)
		slot->dom_mask[i] = taskc->dom_mask[i];
}

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

/* Where each CPU's next forked task goes (see fork_dom()). */
u32 fork_rr[MAX_CPUS];

/*
 * Home for a task being forked. The parent's own domain would be the
 * obvious choice, and the wrong one for a burst of forks (hackbench, a
 * build, a thread pool): every child would wait in one queue while the
 * other domains could only steal them one at a time, and the balancer,
 * which moves a few tasks per interval, takes seconds to catch up. Seen in
 * the VM: 160 hackbench tasks homed in one domain, load 73 against 5 in
 * the others, hackbench twice as slow as under EEVDF. Queue lengths do not
 * help choose: hackbench's children block at once, waiting for the start
 * signal, so every queue looks empty while the burst lands. So deal the
 * children out round-robin over the domains they may use, from a cursor
 * per forking CPU (as scx_rusty does); the balancer then corrects by load,
 * and NUMA placement by the balancer's cross-node pass.
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
static int set_home(struct task_struct *p, struct task_ctx *taskc, u32 dom,
		    const struct cpumask *cpus)
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
 * Carry out a move the balancer asked for. The task keeps its place in
 * time: its lag behind the old domain's clock becomes its lag behind the
 * new one's, so a move neither rewards nor punishes it.
 */
static void maybe_migrate(struct task_struct *p, struct task_ctx *taskc)
{
	s32 pid = p->pid;
	u32 *target, to, from = taskc->dom;
	u64 now;

	if (!migrations_pending)
		return;
	target = bpf_map_lookup_elem(&migrations, &pid);
	if (!target)
		return;
	to = *target;
	bpf_map_delete_elem(&migrations, &pid);

	if (to == from || to >= nr_doms || from >= MAX_DOMS || to >= MAX_DOMS ||
	    !dom_in_mask(taskc->dom_mask, to))
		return;

	now = scx_bpf_now();
	if (set_home(p, taskc, to, p->cpus_ptr))
		return;
	dom_load_xfer(taskc, from, to, now);
	taskc->vtime = taskc->vtime - dom_clock(from) + dom_clock(to);
	stat_add(from, DSTAT_MIGRATED_OUT, 1);
	stat_add(to, DSTAT_MIGRATED_IN, 1);
}

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
static s32 pick_idle_elsewhere(struct task_struct *p, struct task_ctx *taskc,
			       bool kick, bool node, bool xnode)
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
	s32 cpu = pick_idle_elsewhere(p, taskc, false, direct_node_greedy,
				      direct_xnode_greedy);

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

s32 BPF_STRUCT_OPS(rebal_select_cpu, struct task_struct *p, s32 prev_cpu,
		   u64 wake_flags)
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
	/* No idle CPU: queue on a CPU of the home domain so that the CPU
	 * that finally takes it usually pulls from its own runqueue. */
	if (prev_cpu >= 0 && bpf_cpumask_test_cpu(prev_cpu, mask))
		return prev_cpu;
	cpu = bpf_cpumask_any_distribute(mask);
	return cpu < nr_cpu_ids ? cpu : prev_cpu;
}

/* Wake an idle CPU that can take work just queued in @dom: one of the
 * domain first, then one of a lightly used domain nearby (see
 * pick_idle_elsewhere), which finds the work by stealing in dispatch. */
static bool kick_idle(struct task_struct *p, struct task_ctx *taskc, u32 dom)
{
	const struct cpumask *mask = cast_mask(taskc->mask);
	s32 cpu = -1;

	if (mask)
		cpu = scx_bpf_pick_idle_cpu(mask, 0);
	if (cpu < 0) {
		cpu = pick_idle_elsewhere(p, taskc, true, kick_node_greedy,
					  kick_xnode_greedy);
		if (cpu >= 0)
			stat_add(cpu_to_dom(cpu), DSTAT_KICK_GREEDY, 1);
	}
	if (cpu < 0)
		return false;
	scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
	stat_add(cpu_to_dom(cpu), DSTAT_KICKS, 1);
	return true;
}

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
 * How often something happens, in events per second, as a running average
 * of the rate each new interval implies (a quarter weight for the newest).
 * *@last_at is the time of the previous event.
 */
static u32 freq_update(u32 freq, u64 *last_at, u64 now)
{
	u64 dt = now - *last_at, inst;

	*last_at = now;
	inst = dt ? 1000000000ULL / dt : FREQ_MAX;
	if (inst > FREQ_MAX)
		inst = FREQ_MAX;
	return ((u64)freq * 3 + inst) / 4;
}

/* @freq as of @now: a task that has not done it for a while is doing it
 * at most once per that while, whatever its average still says. */
static u32 freq_now(u32 freq, u64 last_at, u64 now)
{
	u64 dt = now - last_at;
	u64 bound = dt ? 1000000000ULL / dt : FREQ_MAX;

	return bound < freq ? bound : freq;
}

/* The burst so far of @taskc, running for @ran since running(). */
static u64 burst_now(struct task_ctx *taskc, u64 ran)
{
	return taskc->burst + (ran > taskc->burst_skip ? ran - taskc->burst_skip : 0);
}

/*
 * A hand-off: the task gives the CPU, or work, to others: it blocks, or it
 * wakes another task. What it ran since its previous hand-off is one run
 * of the "run term" below, and the next one starts now. @ran is how long
 * it has been running since running() (0 when it is not running).
 *
 * Why waking counts, not only blocking: a producer that never blocks
 * (hackbench's senders, a decoder feeding a queue) would otherwise
 * look like a CPU hog after DL_RUN_MAX_US, with a far deadline and open
 * to wakeup preemption by its own consumers, each of which then ran for
 * one message and blocked again. Seen in the VM: 2,000-8,000 preemptions
 * per hackbench run, and 2-3x its context switches under EEVDF. A task
 * that hands work on every 50 us runs 50 us at a time, as far as anyone
 * waiting for it can tell. A real hog wakes nobody and stays a hog.
 */
static void hand_off(struct task_ctx *taskc, u64 ran, bool sleeping)
{
	taskc->avg_runtime = (taskc->avg_runtime * 3 + burst_now(taskc, ran)) / 4;
	taskc->burst = 0;
	taskc->burst_skip = sleeping ? 0 : ran;
}

/*
 * The virtual deadline that orders @p in its domain's queue:
 *
 *   run      = max(avg_runtime, burst) * WEIGHT_NICE0 / weight,
 *              capped at DL_RUN_MAX_US, where both count the run
 *              per hand-off (see hand_off())
 *   level    = log2(1 + blocked_freq) + 2 * log2(1 + waker_freq)
 *              + min(log2(1 + blocked_freq), log2(1 + waker_freq)),
 *              capped at LAT_LEVEL_MAX
 *   deadline = vtime + run * LAT_SCALE / (LAT_SCALE + level)
 *
 * Why each part:
 * - run: among tasks equally owed CPU time (equal vtime), the one that
 *   will give the CPU back soonest goes first; that shortens everyone's
 *   mean wait. It is the task's real run per hand-off (until it blocks or
 *   wakes another task), not a fixed slice, and what it has run since its
 *   last hand-off counts too, so a task that stops handing off is judged
 *   by what it does now. Weight scales it like vtime: nice -5 gets a
 *   nearer deadline than nice 0 for the same run.
 * - level: tasks that others wait on should not wait themselves. Blocking
 *   often marks a consumer, whose delay is its own: a small boost. Waking
 *   others often marks a producer, whose delay holds up every task it
 *   would wake: twice the boost. Doing both marks a link in the middle of
 *   a pipeline, delayed from both sides: the min() term gives it the most.
 *   Frequencies count in log2 so that what matters is their order of
 *   magnitude, not noise, and are bounded by the time since the event was
 *   last seen, so a task that has stopped waking others loses its boost.
 * - The boost divides the run term; it never moves vtime. A hog that
 *   also wakes a lot still has a long run term, and fairness (vtime,
 *   charged with real runtime) is untouched: a boosted task that runs
 *   more than its share falls behind in vtime like any other.
 */
/* The run term before the cap: max(avg_runtime, @burst), weight-scaled. */
static u64 run_term(struct task_struct *p, struct task_ctx *taskc, u64 burst)
{
	u64 run = burst > taskc->avg_runtime ? burst : taskc->avg_runtime;

	return run * WEIGHT_NICE0 / (p->scx.weight ?: 1);
}

static __always_inline u64 task_deadline(struct task_struct *p, struct task_ctx *taskc,
					 u64 vtime, u64 burst, u32 count_dom, u64 now)
{
	u64 run = run_term(p, taskc, burst);
	u32 b = log2_u32(1 + freq_now(taskc->blocked_freq, taskc->last_blocked_at, now));
	u32 w = log2_u32(1 + freq_now(taskc->waker_freq, taskc->last_woke_at, now));
	u32 level = b + 2 * w + (b < w ? b : w);

	if (run > DL_RUN_MAX_US * 1000ULL) {
		run = DL_RUN_MAX_US * 1000ULL;
		if (count_dom != NO_DOM)
			stat_add(count_dom, DSTAT_DL_CLAMPED, 1);
	}
	if (level > LAT_LEVEL_MAX)
		level = LAT_LEVEL_MAX;
	return vtime + run * LAT_SCALE / (LAT_SCALE + level);
}

/*
 * Record the deadline of @p, which @cpu is running, for should_preempt(). The
 * time it has run since running() counts as if charged already: a task
 * whose slice dispatch() renewed gets no new running()/stopping() pair,
 * and must not look younger than it is.
 */
static void note_running_dl(struct task_struct *p, struct task_ctx *taskc,
			    s32 cpu, u64 now)
{
	u64 *run_dl = MEMBER_VPTR(cpu_run_dl, [cpu]);
	u64 ran = now - taskc->running_at, cur = burst_now(taskc, ran);

	if (!run_dl || fifo_mode)
		return;
	/*
	 * Only a CPU hog (its run term at the cap: it has run DL_RUN_MAX_US
	 * without a hand-off, or does so on average) is ever preempted for a
	 * waking task. Tasks that block on their own soon give the CPU back
	 * anyway, and preempting them is what makes a pipeline ping-pong:
	 * seen with hackbench, a preemption after nearly every message, 10x
	 * the context switches of --fifo and 3x EEVDF's time.
	 */
	if (run_term(p, taskc, cur) < DL_RUN_MAX_US * 1000ULL) {
		*run_dl = 0;
		return;
	}
	*run_dl = task_deadline(p, taskc,
				taskc->vtime + ran * WEIGHT_NICE0 / (p->scx.weight ?: 1),
				cur, NO_DOM, now);
}

/*
 * Whether waking @p (deadline @dl, home @dom) should cut short the task
 * that @cpu runs. Without preemption it would wait for a slice to end on
 * one of the domain's CPUs: a whole slice in the worst case, which is
 * exactly the wakeup latency a game's frame thread or an audio callback
 * cannot afford. So if @cpu runs a task due more than preempt_margin_ns
 * after @p, that task has had its turn. The margin keeps tasks of about
 * the same standing (two CPU hogs, two hackbench workers) from preempting
 * each other back and forth. One lookup, no search: select_cpu already
 * chose the CPU (its previous one, in the home domain, when it could).
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

/*
 * Keep @p's vtime at most sleeper_credit_pct of a slice behind its
 * domain's clock (a sleeper gets the CPU soon, not a head start as long as
 * its sleep) and return its deadline.
 *
 * Why a whole slice by default: measured in the VM (3 rounds in one boot,
 * 24 hackbench -g 4 -l 50 runs and 9 runs of a 4-stage pipe chain under
 * CPU hogs per scheduler), no credit cut hackbench's context switches from
 * 0.49x EEVDF's to 0.40x, as woken consumers no longer went ahead of the
 * producers and found more work when they ran; but its effect on
 * hackbench's time changed sign between boots (1.09x EEVDF's against
 * 0.96x in one, 0.71x against 0.93x in another), and the pipe chain was
 * slower (0.97x against 0.77x). Credit only for tasks that wake others did
 * no better (0.96x and 0.96x).
 */
static u64 place_vtime(struct task_struct *p, struct task_ctx *taskc, u32 dom, u64 slice)
{
	u64 vtime = taskc->vtime, floor = dom_clock(dom) - slice * sleeper_credit_pct / 100;

	if (time_before(vtime, floor))
		vtime = floor;
	taskc->vtime = vtime;
	return task_deadline(p, taskc, vtime, taskc->burst, dom, scx_bpf_now());
}

void BPF_STRUCT_OPS(rebal_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *taskc = lookup_task_ctx(p);
	u64 dl = 0, slice = slice_ns;
	s32 cpu;
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

	/*
	 * A task that may run on one CPU only (a per-CPU kthread, a pinned
	 * thread: cyclictest's, say) goes to that CPU's local queue: a
	 * domain queue could only strand it. It may still preempt that
	 * CPU's hog like any other waking task; without that, it waits out
	 * the hog's slice: seen in the VM as cyclictest's median wakeup
	 * latency at twice EEVDF's. SCX_ENQ_PREEMPT reschedules the CPU
	 * itself, by IPI if it is another one.
	 */
	if (p->nr_cpus_allowed == 1) {
		if ((enq_flags & SCX_ENQ_WAKEUP) && !fifo_mode && dom < MAX_DOMS &&
		    should_preempt(cpu, dom, place_vtime(p, taskc, dom, slice)))
			enq_flags |= SCX_ENQ_PREEMPT;
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice, enq_flags);
		stat_add(dom, DSTAT_PINNED, 1);
		return;
	}
	if (dom >= MAX_DOMS) {
		scx_bpf_dsq_insert(p, SCX_DSQ_GLOBAL, slice, enq_flags);
		return;
	}
	if (!fifo_mode)
		dl = place_vtime(p, taskc, dom, slice);
	/*
	 * A wakeup that is to preempt the task running on this very CPU (a
	 * timer interrupt waking a frame thread over a CPU hog, typically)
	 * goes straight to this CPU's local queue with SCX_ENQ_PREEMPT: the
	 * kernel marks the current task for rescheduling and the woken task
	 * runs on the way out of the interrupt. Queueing it on the domain and
	 * kicking this CPU instead would go through an IPI to ourselves: on a
	 * real machine a few microseconds more, under QEMU's TCG (the test
	 * VM) the end of this vCPU's turn, which measured as 7 ms more median
	 * wakeup latency than EEVDF's (cyclictest under 2 hogs per CPU).
	 */
	if ((enq_flags & SCX_ENQ_WAKEUP) && cpu == bpf_get_smp_processor_id() &&
	    should_preempt(cpu, dom, dl)) {
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice, enq_flags | SCX_ENQ_PREEMPT);
		return;
	}

	if (fifo_mode)
		scx_bpf_dsq_insert(p, dom, slice, enq_flags);
	else
		scx_bpf_dsq_insert_vtime(p, dom, slice, dl, enq_flags);
	stat_add(dom, DSTAT_ENQUEUED, 1);
	note_queued(dom);
	/*
	 * A task re-queued at the end of its slice on a CPU of its own domain
	 * is picked up by that CPU's dispatch right after this. Kicking an
	 * idle CPU elsewhere would only race it there and drag the task to
	 * another LLC: seen in the VM, it kept hogs stealing around even
	 * once the balancer had given every domain its share.
	 */
	if (scx_bpf_task_running(p) &&
	    cpu_to_dom(bpf_get_smp_processor_id()) == dom)
		return;
	/* Another CPU: an idle one of the domain first, else preempt the one
	 * select_cpu chose, by IPI. */
	if (!kick_idle(p, taskc, dom) && (enq_flags & SCX_ENQ_WAKEUP) &&
	    should_preempt(cpu, dom, dl))
		scx_bpf_kick_cpu(cpu, SCX_KICK_PREEMPT);
}

void BPF_STRUCT_OPS(rebal_dispatch, s32 cpu, struct task_struct *prev)
{
	struct task_ctx *taskc;
	u32 dom = cpu_to_dom(cpu), i;
	bool got;

	if (dom >= nr_doms || dom >= MAX_DOMS)
		return;
	got = scx_bpf_dsq_move_to_local(dom, 0);
	note_queued(dom);
	if (got) {
		stat_add(dom, DSTAT_DISPATCHED, 1);
		return;
	}

	/*
	 * Nothing else queued here, but the task whose slice just ended can
	 * go on if this is its home: let it, rather than steal. dispatch runs
	 * before the kernel re-queues @prev, so stealing now would put another
	 * domain's task on this CPU and leave @prev for whichever CPU comes
	 * next, possibly on another LLC; in the VM that kept CPU hogs
	 * wandering between domains after the balancer had given each domain
	 * its share. A visitor (stolen earlier, or just moved by the
	 * balancer, which is applied here as a CPU hog never wakes up) is not
	 * kept: with SCX_OPS_ENQ_LAST the kernel queues it back on its home
	 * DSQ when nothing else turns up, and this CPU steals only if it
	 * would otherwise go idle.
	 */
	if (prev && (prev->scx.flags & SCX_TASK_QUEUED) &&
	    (taskc = lookup_task_ctx(prev))) {
		maybe_migrate(prev, taskc);
		if (taskc->dom == dom) {
			prev->scx.slice = slice_ns;
			stat_add(dom, DSTAT_KEPT, 1);
			note_running_dl(prev, taskc, cpu, scx_bpf_now());
			return;
		}
	}

	bpf_for(i, 0, nr_doms - 1) {
		const volatile u32 *vp = MEMBER_VPTR(steal_order, [dom][i]);
		u32 victim;

		if (!vp || (victim = *vp) >= MAX_DOMS)
			break;
		if (scx_bpf_dsq_move_to_local(victim, 0)) {
			stat_add(dom, DSTAT_STEAL_IN, 1);
			stat_add(victim, DSTAT_STEAL_OUT, 1);
			note_queued(victim);
			if (node_of(victim) != node_of(dom))
				stat_add(dom, DSTAT_STEAL_XNODE, 1);
			return;
		}
	}
}

void BPF_STRUCT_OPS(rebal_runnable, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *taskc = lookup_task_ctx(p);
	u64 now = scx_bpf_now();

	if (!taskc)
		return;
	if (enq_flags & SCX_ENQ_WAKEUP) {
		struct task_struct *waker = bpf_get_current_task_btf();
		struct task_ctx *wakerc;

		taskc->burst = 0;
		/*
		 * Only a task wakes others. From an interrupt (a timer, a
		 * device), "current" is whoever the interrupt cut into, most
		 * often a CPU hog on a busy machine: crediting it would give
		 * the hog a producer's boost, and the hog's near deadline
		 * would then keep a woken frame thread from preempting it.
		 * Seen with cyclictest under hogs: hogs at level 16.
		 */
		if (waker != p && in_task_context() && (wakerc = lookup_task_ctx(waker))) {
			wakerc->waker_freq = freq_update(wakerc->waker_freq,
							 &wakerc->last_woke_at, now);
			hand_off(wakerc, now - wakerc->running_at, false);
		}
	}
	dcycle_update(taskc, now);
	taskc->runnable = true;
	taskc->acct_weight = p->scx.weight;
	dom_load_runnable(taskc, taskc->dom, 1, now);
}

void BPF_STRUCT_OPS(rebal_running, struct task_struct *p)
{
	struct task_ctx *taskc = lookup_task_ctx(p);
	u32 dom;

	if (!taskc)
		return;
	taskc->running_at = scx_bpf_now();
	dom = taskc->dom;
	dom_clock_advance(dom, taskc->vtime);
	note_running_dl(p, taskc, bpf_get_smp_processor_id(), taskc->running_at);
}

void BPF_STRUCT_OPS(rebal_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *taskc = lookup_task_ctx(p);
	u64 now = scx_bpf_now(), used;

	if (!taskc)
		return;
	used = now - taskc->running_at;
	taskc->vtime += used * WEIGHT_NICE0 / (p->scx.weight ?: 1);
	if (runnable) {
		taskc->burst = burst_now(taskc, used);
		taskc->burst_skip = 0;
	} else {
		hand_off(taskc, used, true);	/* going to sleep */
	}
	/* Utilisation is of the CPUs: charge the domain of this CPU. */
	stat_add(cpu_to_dom(bpf_get_smp_processor_id()), DSTAT_RUN_NS, used);

	dcycle_update(taskc, now);
	publish_candidate(p, taskc, now);
}

void BPF_STRUCT_OPS(rebal_quiescent, struct task_struct *p, u64 deq_flags)
{
	struct task_ctx *taskc = lookup_task_ctx(p);
	u64 now = scx_bpf_now();

	if (!taskc)
		return;
	if (deq_flags & SCX_DEQ_SLEEP)
		taskc->blocked_freq = freq_update(taskc->blocked_freq,
						  &taskc->last_blocked_at, now);
	dcycle_update(taskc, now);
	dom_load_runnable(taskc, taskc->dom, -1, now);
	taskc->runnable = false;
}

void BPF_STRUCT_OPS(rebal_set_cpumask, struct task_struct *p,
		    const struct cpumask *cpumask)
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
	else if (set_home(p, taskc, dom, cpumask))
		return;
	if (dom != from)
		dom_load_xfer(taskc, from, dom, scx_bpf_now());
}

s32 BPF_STRUCT_OPS(rebal_init_task, struct task_struct *p,
		   struct scx_init_task_args *args)
{
	struct task_ctx *taskc;
	struct bpf_cpumask *mask;
	u32 dom;

	taskc = bpf_task_storage_get(&task_ctxs, p, 0,
				     BPF_LOCAL_STORAGE_GET_F_CREATE);
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
	else if (set_home(p, taskc, dom, p->cpus_ptr))
		return -ENOENT;
	taskc->vtime = dom_clock(dom);
	taskc->dcycle_at = scx_bpf_now();
	taskc->acct_weight = p->scx.weight;
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
