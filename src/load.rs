//! From raw BPF readings to the loads the balancer compares.
//!
//! Two sources: each domain's load integrals (stats.rs turns them into
//! average runnable weight and average runnable tasks over the interval),
//! and the candidate table, where BPF publishes recently active tasks with
//! their decayed duty cycle and weight.
//!
//! Weight needs care. On a machine with idle CPUs, a nice -20 task that
//! runs 10% of the time takes nothing from anyone, yet weight x duty cycle
//! would make it look like ten busy tasks and the balancer would chase it.
//! So while the machine has room (summed duty cycles below its CPUs), load
//! is the duty cycle alone. Once it is saturated, weight decides who gets
//! the CPU, and load is weight x duty cycle, with weights no task can use
//! ("infeasible": a share above what the task runs when it never waits)
//! capped (weight_cap(), the infeasible-weights cap), so that a heavy task does not
//! dwarf a whole domain, nor a high-priority one that runs a few percent
//! of the time (the daemon itself) weigh like a dozen hogs.
//!
//! The cap is found from the sampled tasks and applies to all of them:
//! BPF counts every task's weight up to `load_weight_cap` in the domain
//! averages, and each round hands BPF the cap it found. While the machine
//! has room that cap is nice 0's weight, so the averages the first
//! saturated round reads count every task at most as a nice-0 one.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::balancer::{DomSet, DomainSnap, Snapshot, TaskSnap};
use crate::bpf_intf;
use crate::domains::Domains;
use crate::stats::DomReport;

const DCYCLE_ONE: f64 = bpf_intf::consts_DCYCLE_ONE as f64;
const WEIGHT_NICE0: f64 = bpf_intf::consts_WEIGHT_NICE0 as f64;
const WEIGHT_MAX: f64 = bpf_intf::consts_WEIGHT_MAX as f64;
pub const DOMMASK_WORDS: usize = bpf_intf::consts_DOMMASK_WORDS as usize;

/// A task the balancer may move.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSample {
    pub pid: i32,
    pub dom: usize,
    pub weight: u32,
    /// Share of time runnable, 0..1, decayed to the time of reading.
    pub dcycle: f64,
    /// Domains its affinity reaches, bit per domain id.
    pub dom_mask: [u64; DOMMASK_WORDS],
}

impl TaskSample {
    pub fn allows(&self, dom: usize) -> bool {
        self.dom_mask
            .get(dom / 64)
            .is_some_and(|w| w & (1u64 << (dom % 64)) != 0)
    }
}

/// Read the candidate table: `slots[dom]` are the slots of domain `dom`.
/// Entries are dropped when empty, filed under the wrong domain (the task
/// moved since), or not refreshed within `max_age_ns`; a task found twice
/// keeps its newest entry. Duty cycles are decayed from when BPF wrote
/// them to `now_ns`, as a task that has not run since is not runnable.
pub fn read_candidates(
    slots: &[&[bpf_intf::cand_slot]],
    now_ns: u64,
    half_life_ns: u64,
    max_age_ns: u64,
) -> Vec<TaskSample> {
    let mut best: HashMap<i32, (u64, TaskSample)> = HashMap::new();
    for (dom, table) in slots.iter().enumerate() {
        for s in table.iter() {
            if s.pid <= 0 || s.dom as usize != dom || s.updated_ns == 0 {
                continue;
            }
            let age = now_ns.saturating_sub(s.updated_ns);
            if age > max_age_ns {
                continue;
            }
            let decay = 0.5f64.powf(age as f64 / half_life_ns.max(1) as f64);
            let t = TaskSample {
                pid: s.pid,
                dom,
                weight: s.weight.max(1),
                dcycle: (s.dcycle as f64 / DCYCLE_ONE * decay).clamp(0.0, 1.0),
                dom_mask: s.dom_mask,
            };
            match best.get(&s.pid) {
                Some((at, _)) if *at >= s.updated_ns => {}
                _ => {
                    best.insert(s.pid, (s.updated_ns, t));
                }
            }
        }
    }
    let mut out: Vec<TaskSample> = best.into_values().map(|(_, t)| t).collect();
    out.sort_by_key(|t| t.pid);
    out
}

/// Loads in one unit for domains and tasks: "CPUs' worth of demand".
#[derive(Debug, Clone, PartialEq)]
pub struct Loads {
    /// Whether the machine was saturated (weights counted).
    pub weighted: bool,
    pub dom_loads: Vec<f64>,
    /// Same order as the tasks given.
    pub task_loads: Vec<f64>,
    /// The weight cap BPF is to count with from now on (`load_weight_cap`).
    pub weight_cap: u32,
}

/// The infeasible-weights cap: the weight λ at which every heavier task
/// gets exactly its duty cycle and the lighter ones share the CPUs left by
/// weight. `dcycles` sums the duty cycles of the tasks of each weight.
/// Found as scx_utils' LoadAggregator finds it (from the heaviest weight
/// down, λ = load of the lighter tasks / (CPUs - duty cycles of the
/// heavier ones)), except when there is no such λ: the duty cycles then
/// leave CPUs free once the heavy tasks have theirs, so weights decide
/// nothing, as on a machine with room, and the cap is nice 0's weight
/// (LoadAggregator counts every weight in full then, and one nice -20
/// daemon among busy nice-0 tasks weighed like a dozen of them).
/// When no weight is infeasible, the largest weight there is: a task the
/// candidate table missed (counted as nice 0 here) must not count in full
/// in BPF's averages if it is heavier than any the cap was found from.
pub fn weight_cap(dcycles: &BTreeMap<u32, f64>, nr_cpus: usize) -> f64 {
    let p = nr_cpus.max(1) as f64;
    let classes: Vec<(f64, f64)> = dcycles
        .iter()
        .filter(|(_, d)| **d > 0.0)
        .map(|(&w, &d)| (f64::from(w), d))
        .collect();
    let mut load: f64 = classes.iter().map(|(w, d)| w * d).sum();
    let mut heavy_dc = 0.0;
    for (i, &(w, d)) in classes.iter().enumerate().rev() {
        let room = p - heavy_dc;
        if room <= 0.0 {
            break;
        }
        let lambda = load / room;
        if lambda >= w - 1e-4 {
            return if i + 1 == classes.len() {
                w
            } else {
                lambda.min(WEIGHT_MAX)
            };
        }
        heavy_dc += d;
        load -= w * d;
    }
    WEIGHT_NICE0
}

/// Loads of the domains and of the candidate `tasks`. `demand` caps a
/// task's duty cycle by what the kernel says it would use without waiting
/// (see demand.rs); what the cap takes off a task is taken off its domain
/// too, as the domains' figures count the same waiting. `counted_cap` is
/// the weight cap BPF has been counting the domains' averages with.
pub fn compute_loads(
    doms: &[DomReport],
    tasks: &[TaskSample],
    nr_cpus: usize,
    demand: &HashMap<i32, f64>,
    counted_cap: u32,
) -> Loads {
    let own = |t: &TaskSample| demand.get(&t.pid).map_or(t.dcycle, |d| t.dcycle.min(*d));
    let mut crowding = vec![0.0; doms.len()];
    for t in tasks {
        if let Some(c) = crowding.get_mut(t.dom) {
            *c += t.dcycle - own(t);
        }
    }
    let runnable: f64 = doms
        .iter()
        .enumerate()
        .map(|(i, d)| (d.dcycle - crowding[i]).max(0.0))
        .sum();
    let weighted = runnable >= nr_cpus as f64 * 0.95;
    if !weighted {
        return Loads {
            weighted,
            dom_loads: doms
                .iter()
                .enumerate()
                .map(|(i, d)| (d.dcycle - crowding[i]).max(0.0))
                .collect(),
            task_loads: tasks.iter().map(own).collect(),
            weight_cap: bpf_intf::consts_WEIGHT_NICE0,
        };
    }

    // The largest weight any task can really use on this machine. Tasks
    // the candidate table did not sample count as nice-0 ones, with what
    // the domains' duty cycles hold beyond the sampled tasks'.
    let mut by_weight: BTreeMap<u32, f64> = BTreeMap::new();
    let mut sampled = 0.0;
    for t in tasks {
        let o = own(t);
        *by_weight.entry(t.weight).or_insert(0.0) += o;
        sampled += o;
    }
    *by_weight
        .entry(bpf_intf::consts_WEIGHT_NICE0)
        .or_insert(0.0) += (runnable - sampled).max(0.0);
    let max_w = weight_cap(&by_weight, nr_cpus);
    let counted = f64::from(counted_cap.max(1));

    // Domain loads come from the BPF integrals (every task counts, not just
    // the sampled ones, each up to the cap BPF had); remove what this
    // round's cap and the demand caps take off the sampled ones.
    let mut excess = vec![0.0; doms.len()];
    let task_loads = tasks
        .iter()
        .map(|t| {
            let w = t.weight as f64;
            let load = w.min(max_w) * own(t) / WEIGHT_NICE0;
            if let Some(e) = excess.get_mut(t.dom) {
                *e += w.min(counted) * t.dcycle / WEIGHT_NICE0 - load;
            }
            load
        })
        .collect();
    let dom_loads = doms
        .iter()
        .enumerate()
        .map(|(i, d)| (d.load - excess.get(i).copied().unwrap_or(0.0)).max(0.0))
        .collect();
    Loads {
        weighted,
        dom_loads,
        task_loads,
        weight_cap: max_w.ceil() as u32,
    }
}

/// The balancer's input. Tasks in `hold` (moved in the previous round, so
/// their published figures may still describe the old domain) are left
/// where they are for this round.
pub fn snapshot(
    domains: &Domains,
    loads: &Loads,
    tasks: &[TaskSample],
    hold: &HashSet<i32>,
) -> Snapshot {
    let mut doms: Vec<DomainSnap> = domains
        .domains
        .iter()
        .map(|d| DomainSnap {
            node: domains.node_index(d.node),
            capacity: d.cpus.len() as u32,
            load: loads.dom_loads.get(d.id).copied().unwrap_or(0.0),
            tasks: Vec::new(),
        })
        .collect();
    for (t, &load) in tasks.iter().zip(&loads.task_loads) {
        if hold.contains(&t.pid) {
            continue;
        }
        if let Some(d) = doms.get_mut(t.dom) {
            let allowed: DomSet = (0..domains.domains.len())
                .filter(|&i| t.allows(i))
                .collect();
            d.tasks.push(TaskSnap {
                pid: t.pid,
                dom: t.dom,
                load,
                allowed,
            });
        }
    }
    Snapshot {
        nr_nodes: domains.nodes.len(),
        doms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BPF counted every weight in full.
    const MAX: u32 = bpf_intf::consts_WEIGHT_MAX;

    fn slot(pid: i32, dom: u32, dcycle: f64, weight: u32, at: u64) -> bpf_intf::cand_slot {
        bpf_intf::cand_slot {
            pid,
            dom,
            weight,
            dcycle: (dcycle * DCYCLE_ONE) as u32,
            updated_ns: at,
            dom_mask: [0b1111; DOMMASK_WORDS],
        }
    }

    fn report(id: usize, load: f64, dcycle: f64) -> DomReport {
        DomReport {
            id,
            node: 0,
            cpus: vec![id],
            load,
            dcycle,
            ..Default::default()
        }
    }

    #[test]
    fn candidates_are_filtered_and_deduplicated() {
        let d0 = [
            slot(10, 0, 0.5, 100, 900),
            slot(11, 1, 0.5, 100, 900),
            slot(0, 0, 1.0, 100, 900),
        ];
        let d1 = [slot(10, 1, 0.25, 100, 1000), slot(12, 1, 1.0, 100, 10)];
        let got = read_candidates(&[&d0, &d1], 1000, 1_000_000_000, 500);
        // pid 11 is filed under the wrong domain, pid 12 is stale, pid 0 is
        // empty; pid 10 keeps its newest entry (domain 1).
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].pid, got[0].dom), (10, 1));
        assert!((got[0].dcycle - 0.25).abs() < 1e-3);
        assert!(got[0].allows(3) && !got[0].allows(4));
    }

    #[test]
    fn idle_machine_ignores_weight() {
        let doms = [report(0, 5.0, 0.1), report(1, 0.1, 0.1)];
        let tasks = [TaskSample {
            pid: 1,
            dom: 0,
            weight: 5000,
            dcycle: 0.1,
            dom_mask: [3; DOMMASK_WORDS],
        }];
        let l = compute_loads(&doms, &tasks, 4, &HashMap::new(), MAX);
        assert!(!l.weighted);
        assert_eq!(l.dom_loads, vec![0.1, 0.1]);
        assert_eq!(l.task_loads, vec![0.1]);
        assert_eq!(l.weight_cap, bpf_intf::consts_WEIGHT_NICE0);
    }

    #[test]
    fn waiting_is_not_counted_as_a_tasks_load() {
        // Domain 0: 3 hogs and a kworker whose runnable share (0.17) is
        // mostly waiting behind them; it runs 1% of the time.
        let doms = [report(0, 3.17, 3.17), report(1, 2.0, 2.0)];
        let t = |pid, dom, dcycle| TaskSample {
            pid,
            dom,
            weight: 100,
            dcycle,
            dom_mask: [3; DOMMASK_WORDS],
        };
        let tasks = [
            t(1, 0, 1.0),
            t(2, 0, 1.0),
            t(3, 0, 1.0),
            t(4, 0, 0.17),
            t(5, 1, 1.0),
        ];
        let demand: HashMap<i32, f64> = [(1, 1.0), (4, 0.01)].into_iter().collect();
        let l = compute_loads(&doms, &tasks, 4, &demand, MAX);
        assert!(l.weighted);
        assert!((l.task_loads[3] - 0.01).abs() < 1e-9, "{l:?}");
        assert!((l.task_loads[0] - 1.0).abs() < 1e-9, "{l:?}");
        assert!((l.dom_loads[0] - 3.01).abs() < 1e-9, "{l:?}");
        assert!((l.dom_loads[1] - 2.0).abs() < 1e-9, "{l:?}");
        // Without the kernel's figures, nothing changes.
        let l = compute_loads(&doms, &tasks, 4, &HashMap::new(), MAX);
        assert!((l.dom_loads[0] - 3.17).abs() < 1e-9, "{l:?}");
    }

    /// Sixteen nice-0 hogs in two domains on 8 CPUs, plus one task of
    /// `weight` and `dcycle` in domain 0; the domains' reports count every
    /// task at its full weight.
    fn hogs_and(weight: u32, dcycle: f64) -> (Vec<DomReport>, Vec<TaskSample>) {
        let extra = TaskSample {
            pid: 100,
            dom: 0,
            weight,
            dcycle,
            dom_mask: [3; DOMMASK_WORDS],
        };
        let hog = |pid, dom| TaskSample {
            pid,
            dom,
            weight: 100,
            dcycle: 1.0,
            dom_mask: [3; DOMMASK_WORDS],
        };
        let mut tasks: Vec<TaskSample> = (0..16).map(|i| hog(i + 1, (i % 2) as usize)).collect();
        let extra_load = extra.weight as f64 * extra.dcycle / WEIGHT_NICE0;
        let extra_dc = extra.dcycle;
        tasks.push(extra);
        let doms = vec![
            report(0, 8.0 + extra_load, 8.0 + extra_dc),
            report(1, 8.0, 8.0),
        ];
        (doms, tasks)
    }

    #[test]
    fn a_heavy_task_counts_for_the_cpu_it_can_use() {
        // A nice -20 hog (weight 10000) can use one CPU, no more: the
        // other 16 hogs share the other 7, so it counts as 16/7 hogs.
        let (doms, tasks) = hogs_and(10000, 1.0);
        let l = compute_loads(&doms, &tasks, 8, &HashMap::new(), MAX);
        assert!(l.weighted);
        let heavy = l.task_loads[16];
        assert!((heavy - 16.0 / 7.0).abs() < 1e-6, "{l:?}");
        assert!((l.task_loads[0] - 1.0).abs() < 1e-9, "{l:?}");
        assert!((l.dom_loads[0] - (8.0 + 16.0 / 7.0)).abs() < 1e-6, "{l:?}");
        assert!((l.dom_loads[1] - 8.0).abs() < 1e-9, "{l:?}");
        // BPF is to count it so from now on.
        assert_eq!(l.weight_cap, (1600.0f64 / 7.0).ceil() as u32);
    }

    #[test]
    fn a_light_high_priority_task_counts_for_what_it_uses() {
        // A nice -20 task that runs 5% of the time (a daemon) gets its 5%
        // whatever the weight: it counts as 5% of a CPU at the going rate
        // (16 hogs on the 7.95 CPUs it leaves), not as 5 hogs.
        let (doms, tasks) = hogs_and(10000, 0.05);
        let l = compute_loads(&doms, &tasks, 8, &HashMap::new(), MAX);
        assert!(l.weighted);
        let want = 0.05 * 16.0 / 7.95;
        assert!((l.task_loads[16] - want).abs() < 1e-6, "{l:?}");
        assert!((l.dom_loads[0] - (8.0 + want)).abs() < 1e-6, "{l:?}");

        // BPF counted it at a cap of nice 0 (the machine had room before):
        // the domain's average has it at 0.05, and the same loads result.
        let mut capped = doms.clone();
        capped[0].load = 8.05;
        let l = compute_loads(&capped, &tasks, 8, &HashMap::new(), 100);
        assert!((l.task_loads[16] - want).abs() < 1e-6, "{l:?}");
        assert!((l.dom_loads[0] - (8.0 + want)).abs() < 1e-6, "{l:?}");
    }

    fn classes(c: &[(u32, f64)]) -> BTreeMap<u32, f64> {
        c.iter().copied().collect()
    }

    #[test]
    fn weight_cap_cases() {
        // Nothing infeasible: 32 nice-0 hogs and a nice -5 one on 8 CPUs.
        assert_eq!(weight_cap(&classes(&[(100, 32.0), (305, 1.0)]), 8), 305.0);
        // With 16 hogs the nice -5 one would get 1.28 CPUs: capped.
        let cap = weight_cap(&classes(&[(100, 16.0), (305, 1.0)]), 8);
        assert!((cap - 1600.0 / 7.0).abs() < 1e-9, "{cap}");
        // A nice -20 hog gets one CPU: 16 hogs on the other 7.
        let cap = weight_cap(&classes(&[(100, 16.0), (10000, 1.0)]), 8);
        assert!((cap - 1600.0 / 7.0).abs() < 1e-9, "{cap}");
        // Two infeasible weights, both capped: 8 hogs on the 6 CPUs left.
        let cap = weight_cap(&classes(&[(100, 8.0), (5000, 1.0), (10000, 1.0)]), 8);
        assert!((cap - 800.0 / 6.0).abs() < 1e-9, "{cap}");
        // The nice-0 tasks' duty cycles leave CPUs free once the nice -20
        // daemon has its 5%: weights decide nothing.
        let cap = weight_cap(&classes(&[(100, 4.0), (10000, 0.05)]), 8);
        assert_eq!(cap, WEIGHT_NICE0);
        // No tasks, or none with a duty cycle.
        assert_eq!(weight_cap(&BTreeMap::new(), 8), WEIGHT_NICE0);
        assert_eq!(weight_cap(&classes(&[(10000, 0.0)]), 8), WEIGHT_NICE0);
    }

    #[test]
    fn no_infeasible_weight_caps_at_the_largest() {
        // All nice 0, saturated: nothing to cap among them, and nothing
        // unseen counts above them.
        let (doms, tasks) = hogs_and(100, 1.0);
        let l = compute_loads(&doms, &tasks, 8, &HashMap::new(), 100);
        assert!(l.weighted);
        assert_eq!(l.weight_cap, 100);
        assert!((l.dom_loads[0] - 9.0).abs() < 1e-9, "{l:?}");
        assert!(
            l.task_loads.iter().all(|&x| (x - 1.0).abs() < 1e-9),
            "{l:?}"
        );
    }

    #[test]
    fn saturated_machine_counts_weight() {
        // Two of 8 tasks sampled on 4 CPUs: the other 6 count as nice 0,
        // and a weight of 200 is one the task can use.
        let doms = [report(0, 5.0, 4.0), report(1, 4.0, 4.0)];
        let tasks = [
            TaskSample {
                pid: 1,
                dom: 0,
                weight: 200,
                dcycle: 1.0,
                dom_mask: [3; DOMMASK_WORDS],
            },
            TaskSample {
                pid: 2,
                dom: 0,
                weight: 100,
                dcycle: 1.0,
                dom_mask: [3; DOMMASK_WORDS],
            },
        ];
        let l = compute_loads(&doms, &tasks, 4, &HashMap::new(), MAX);
        assert!(l.weighted);
        assert_eq!(l.weight_cap, 200);
        assert!((l.task_loads[0] - 2.0).abs() < 1e-9, "{l:?}");
        assert!((l.task_loads[1] - 1.0).abs() < 1e-9, "{l:?}");
        assert!(l.dom_loads[0] > l.dom_loads[1]);
        // Were those two all there is, both would have a CPU each.
        let doms = [report(0, 3.0, 2.0), report(1, 0.0, 0.0)];
        let l = compute_loads(&doms, &tasks, 2, &HashMap::new(), MAX);
        assert!(l.weighted);
        assert!((l.task_loads[0] - 1.0).abs() < 1e-9, "{l:?}");
    }
}
