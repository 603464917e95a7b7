/*
 * intf.h - the one place where the types and constants shared by the BPF
 * scheduler (bpf/) and the Rust daemon (src/) are defined, and where every
 * map and global the two sides share is described: who writes it, when,
 * in which unit and on which clock.
 *
 * build.rs runs bindgen over this file, so every number here reaches Rust as
 * `bpf_intf::consts_*` / `bpf_intf::dom_stat_idx_*` and is never written a
 * second time. Keep it plain C: no BPF-only constructs (kptrs, locks).
 *
 * One clock. Every timestamp that crosses the boundary (and, for
 * simplicity, every one BPF takes) is CLOCK_MONOTONIC in ns: BPF reads it
 * with bpf_ktime_get_ns() or, under a runqueue lock, carries such a reading
 * forward by the runqueue clock (now_rq(), rebal.bpf.h: a few microseconds
 * off, for a fraction of the cost); the daemon reads it with
 * clock_gettime(). (scx_bpf_now(), on kernels that have it, follows the
 * runqueue clock itself, which user space cannot read and which may step
 * backwards between CPUs.) Intervals are taken with rebal_elapsed()
 * (arith.h), which reads a backward step as 0.
 *
 * What the two sides share (R = read, W = written):
 *
 * Set by the daemon before load, constant afterwards (.rodata):
 *   nr_doms, nr_cpu_ids, smt_enabled     the machine as the domains cut it
 *   cpu_dom[cpu]                          domain of each CPU, NO_DOM if none
 *   dom_node[dom]                         kernel NUMA node id of each domain
 *   steal_order[dom][i]                   other domains, nearest first
 *   load_half_life_ns                     half-life of every load average
 *   cand_publish_ns                       least ns between two publications
 *                                         of one task in `cands`
 *   fifo_mode, no_preempt, preempt_margin_ns, sleeper_credit_pct,
 *   sync_wakeups, xnode_steal_min,
 *   kick/direct_(x)node_greedy            the policy options (--help)
 *
 * Written by the daemon while running (.data), read by BPF:
 *   slice_ns                  ns; the tuner, every --tune-interval
 *   greedy_direct[], greedy_kick[]
 *                             bit per domain: lightly used (the tuner)
 *   load_weight_cap           p->scx.weight units; the balancer, every
 *                             --interval: the largest weight a task's duty
 *                             cycle counts with in the domain loads
 *                             (load_weight(); src/load.rs says how it is
 *                             found). WEIGHT_NICE0 while the machine has
 *                             idle CPUs, as weights then decide nothing.
 * Written by both (.bss):
 *   migrations_pending        moves written to `migrations` and not yet
 *                             carried out: the daemon sets it after writing
 *                             a round's moves, BPF counts it down as it
 *                             carries them out and looks only while > 0
 * Written by BPF, read by the daemon through the mmapped .bss:
 *   cands[dom][slot]          migration candidates (struct cand_slot)
 *   cpu_busy_at[cpu]          ns (CLOCK_MONOTONIC) since which the CPU has
 *                             run a task not yet charged to DSTAT_RUN_NS; 0
 *                             when idle. The daemon adds now - cpu_busy_at
 *                             to the counter, so a task that keeps its CPU
 *                             for seconds is seen busy at every reading.
 *   cpu_charge_seq[cpu]       count, odd while BPF moves a run from
 *                             cpu_busy_at into DSTAT_RUN_NS (charge_run):
 *                             the daemon reads the two again when it
 *                             changed, or it would count that run twice or
 *                             not at all in one tuner tick
 *   dom_queued[dom]           tasks queued on each domain's DSQ, as of the
 *                             last run of the `read_queues` syscall program
 *                             (the daemon runs it when it samples)
 * Maps:
 *   pcpu_doms (array, mmapped by the daemon; BPF writes, the daemon reads):
 *       struct pcpu_dom at index cpu * nr_doms + dom: what CPU `cpu` saw of
 *       domain `dom` (counters and its share of the domain's load). Each
 *       slot is written by one CPU only, so the hot path takes no lock and
 *       bounces no cache line; the daemon sums the slots of a domain.
 *   migrations (hash pid -> domain; the daemon writes, BPF deletes): moves
 *       the balancer asked for, carried out when the task next wakes up or
 *       is queued.
 *   dom_masks, task_ctxs: BPF only.
 */
#ifndef __REBAL_INTF_H
#define __REBAL_INTF_H

#ifndef __VMLINUX_H__
typedef unsigned char u8;
typedef unsigned int u32;
typedef int s32;
typedef unsigned long long u64;
typedef long long s64;
#endif

enum consts {
	/* Limits of the BPF side. Rust refuses topologies beyond them. */
	MAX_CPUS		= 1024,
	MAX_DOMS		= 64,
	CPUMASK_WORDS		= MAX_CPUS / 64,
	DOMMASK_WORDS		= MAX_DOMS / 64,

	/* Per-domain slots of the migration-candidate table (see cand_slot). */
	NR_CANDS_PER_DOM	= 128,

	/* Nice-0 weight, as the kernel gives it in p->scx.weight, and the
	 * largest weight it gives (sched_ext's range is 1..10000). */
	WEIGHT_NICE0		= 100,
	WEIGHT_MAX		= 10000,

	/* Fixed-point scale of a task's duty cycle: 1 << 16 = always runnable. */
	DCYCLE_SHIFT		= 16,
	DCYCLE_ONE		= 1 << DCYCLE_SHIFT,

	/* Defaults the daemon passes unless told otherwise. */
	SLICE_DFL_US		= 5000,
	/* 10 ms, not less: see "Why the floor" in src/tuner.rs. */
	SLICE_MIN_US_DFL	= 10000,
	SLICE_MAX_US_DFL	= 20000,
	LOAD_HALF_LIFE_MS_DFL	= 1000,
	TUNE_INTERVAL_MS_DFL	= 100,
	/* A domain busier than this (percent of its CPUs' time) takes no
	 * greedy placements or kicks from other domains' tasks. */
	DIRECT_GREEDY_UNDER_DFL	= 90,
	KICK_GREEDY_UNDER_DFL	= 90,

	/*
	 * Deadlines (rebal_run_term() in arith.h). A task's latency level
	 * grows with log2 of how often it blocks and, twice as fast, of how
	 * often it wakes others; the level shortens its run-length term by
	 * LAT_SCALE / (LAT_SCALE + level).
	 */
	LAT_SCALE		= 4,
	LAT_LEVEL_MAX		= 48,
	/* Wakeup preemption cuts a running task short only when its
	 * deadline is this much later than the waking task's: a CPU hog
	 * (run term up to DL_RUN_MAX_US) against a task that runs briefly,
	 * not two short-running tasks of a pipeline, which would otherwise
	 * preempt each other after every message. */
	PREEMPT_MARGIN_US_DFL	= 20000,
	/* How much of a slice a waking task may be behind its domain's
	 * clock, in percent (see place_vtime()). */
	SLEEPER_CREDIT_PCT_DFL	= 100,
	/* A CPU steals from a domain of another NUMA node only when that
	 * domain has at least this many tasks waiting (steal() in
	 * domain.bpf.h). 1 by default: whatever waits, since an idle CPU
	 * costs more than a task's memory being one node away for a slice
	 * (benches/vm/results/2026-11-30-work-conservation). */
	XNODE_STEAL_MIN_DFL	= 1,
	/* The run-length term of a deadline is capped (and the cap counted
	 * in DSTAT_DL_CLAMPED): past it, a hog is a hog. */
	DL_RUN_MAX_US		= 100000,
	/* Event frequencies are capped (per second) so one burst of
	 * wakeups cannot buy a task unbounded priority. */
	FREQ_MAX		= 1 << 20,

	/* Marks a CPU that belongs to no domain (offline or left out). */
	NO_DOM			= 0xffffffff,
};

/* Per-domain event counters, kept per CPU in struct pcpu_dom. */
enum dom_stat_idx {
	DSTAT_ENQUEUED,		/* tasks queued on the domain's DSQ */
	DSTAT_DISPATCHED,	/* taken from the DSQ by one of its own CPUs */
	DSTAT_KEPT,		/* slices renewed for a task with nothing else queued
				 * for its CPU (at home, or a visitor whose home has
				 * no idle CPU) */
	DSTAT_DIRECT,		/* placed straight on an idle CPU at wakeup */
	DSTAT_PINNED,		/* single-CPU tasks sent to their CPU's local DSQ */
	DSTAT_STEAL_IN,		/* tasks this domain's CPUs took from other domains */
	DSTAT_STEAL_OUT,	/* tasks other domains' CPUs took from this one */
	DSTAT_STEAL_XNODE,	/* steals that crossed a NUMA node (counted on the taker) */
	DSTAT_KICKS,		/* idle CPUs of this domain kicked to pick up work */
	DSTAT_KICK_GREEDY,	/* ... of which for work queued in another domain */
	DSTAT_GREEDY_IN,	/* wakeups of other domains' tasks run on an idle CPU here */
	DSTAT_PREEMPT,		/* running tasks cut short for a waking task due long before */
	DSTAT_MIGRATED_IN,	/* balancer moves that took effect, arriving here */
	DSTAT_MIGRATED_OUT,	/* ... and leaving here */
	DSTAT_RUN_NS,		/* ns the domain's CPUs spent running tasks, charged
				 * when a task stops or renews its slice */
	DSTAT_DL_CLAMPED,	/* deadlines that had to be clamped */
	DSTAT_SYNC,		/* wakeups placed on the waker's CPU (WAKE_SYNC) */
	DSTAT_WENT_HOME,	/* visitors sent home at the end of their slice
				 * because an idle CPU waited for them there */
	NR_DSTATS,
};

/*
 * A domain's load, as a running average of how many of its tasks are
 * runnable (and of their summed weight), with the half-life the daemon sets.
 *
 * The average is linear in its input, so it can be split: each CPU keeps
 * the changes it saw (a task becoming runnable here and quiescent there
 * leaves +1 on one CPU and -1 on the other) and its own average of them;
 * the domain's figure is the sum over CPUs. No lock, no shared cache line,
 * and still exact. Linearity is also what makes a move cheap and instant:
 * the task's own average (its duty cycle, decayed the same way) is taken
 * out of the old domain's sum and put into the new one's, so the daemon's
 * next reading already shows the move, rather than catching up over a
 * half-life and inviting a second, redundant move.
 *
 * Units: runnable counts DCYCLE_ONE per task, runnable_w weight x
 * DCYCLE_ONE; avg and avg_w are their averages at time `at` (ns,
 * CLOCK_MONOTONIC). To read at time t:
 * v(t) = runnable + (avg - runnable) * 2^(-(t - at) / half-life), i.e.
 * rebal_decay_towards(avg, runnable, t - at, half_life).
 */
struct dom_load {
	s64 runnable;
	s64 runnable_w;
	s64 avg;
	s64 avg_w;
	u64 at;
};

/*
 * What one CPU saw of one domain: a slot of the `pcpu_doms` map, written by
 * that CPU only. 192 bytes, three cache lines, so that slots of different
 * CPUs never share one.
 */
struct pcpu_dom {
	u64 cnt[NR_DSTATS];
	struct dom_load load;
	u64 _pad[1];
};

/*
 * One entry of the migration-candidate table: BPF writes the recently
 * active tasks of each domain here (slot = pid % NR_CANDS_PER_DOM, so the
 * table stays bounded whatever the number of tasks), the daemon reads it.
 * dcycle is the task's decayed runnable share at updated_ns (CLOCK_MONOTONIC).
 */
struct cand_slot {
	s32 pid;
	u32 dom;
	u32 weight;
	u32 dcycle;
	u64 updated_ns;
	u64 dom_mask[DOMMASK_WORDS];
};

#endif /* __REBAL_INTF_H */
