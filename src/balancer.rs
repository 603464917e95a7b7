//! The load-balancing policy of scx_rebal: pure Rust, no BPF or OS types.
//!
//! Every balancing interval the daemon reads per-domain loads and a list of
//! candidate tasks out of the BPF maps, packs them into a [`Snapshot`], calls
//! [`balance`], and writes each [`Move`] of the returned [`Plan`] back into
//! the task-to-domain map so the BPF side migrates the task on its next
//! enqueue. Keeping the policy free of BPF types lets it be unit-tested,
//! property-tested and benchmarked without a kernel.
//!
//! # Hierarchy
//!
//! ```text
//!                          machine (global avg load / CPU)
//!                     /                                   \
//!          node 0 (NUMA)                                 node 1 (NUMA)
//!        /      |       \                              /       |       \
//!    dom 0    dom 1    dom 2                        dom 3    dom 4    dom 5
//!    (LLC)    (LLC)    (LLC)                        (LLC)    (LLC)    (LLC)
//!   / | \     / \       |                            / \      |       / | \
//!  t  t  t   t   t      t                           t   t     t      t  t  t
//! ```
//!
//! A pass balances the top level first, then each node's domains:
//!
//! 1. **Cross-node.** Nodes are compared by load per CPU. A node above the
//!    machine average pushes to a node below it when its per-CPU load is more
//!    than `1 + cross_node_threshold` times the other's (the pair's ratio, as
//!    the kernel's own balancer compares the busiest group with the local
//!    one; a threshold against the average would, with two nodes, let one
//!    node carry 1.5 times the other's load per CPU at 20%). The task leaves the pushing node's busiest
//!    domain and lands in the pulling node's idlest one, because those are
//!    the domains the intra-node step would otherwise have to fix next. The
//!    threshold is higher than inside a node because a task that changes node
//!    leaves its cache *and* its memory behind: its pages stay on the old
//!    node, so every miss becomes a remote access until they migrate.
//! 2. **Intra-node.** Inside each node, domains above the node's average as
//!    left by step 1 push to domains below it, by the same pair rule with
//!    `intra_node_threshold`, so the cross-node moves are accounted for
//!    before the node's domains are evened out. Only the LLC is lost here,
//!    hence the lower threshold.
//!
//! # Choosing a task
//!
//! For a pair (source, destination) with per-CPU loads `s > d` and
//! capacities `Cs`, `Cd`, moving a task of load `x` changes the gap
//! `g = s - d` into `g - x * (1/Cs + 1/Cd)`. The ideal amount is what brings
//! the pusher down to the average or the puller up to it, whichever is
//! smaller (`target`), so each moved task goes straight to a place where it
//! can stay. Candidates of a domain are kept sorted by load, so the task
//! closest to the target is found by binary search plus a short walk outwards
//! (skipping tasks whose affinity forbids the destination or that already
//! moved), not by a scan of every task.
//!
//! When no single task fits a pair inside a node because every one is too
//! heavy (CPU hogs beside a domain whose surplus is small tasks), a *swap*
//! sends a heavy task one way and a light one back; it changes the pair
//! like a move of their difference and is judged as one, and it must leave
//! the pair within the threshold, so it is a pair's last step.
//!
//! A move is only accepted when it strictly shrinks the pair's gap and
//! neither side ends beyond the other's old value (so no per-CPU load leaves
//! the old `[min, max]` range and the machine's spread can never grow), and
//! when it overshoots, the pair must end at most `max_overshoot` of the old
//! gap apart in the other direction. Since every accepted move lowers the
//! capacity-weighted sum of squared deviations of the per-CPU loads by a
//! bounded-below amount, repeated passes converge to an empty plan: a task
//! can never be sent back and forth (no ping-pong), and a balanced machine
//! (nobody above the threshold) produces no moves at all.
//!
//! # Cost
//!
//! Nothing sweeps over every task. A domain's candidates are only read once
//! it is chosen as a source: first the union of their affinities (a
//! destination outside it is rejected at once, which keeps machines full of
//! pinned or node-bound tasks cheap), then, if some destination is
//! reachable, a sort by load. A (source, destination) pair that failed to
//! produce a move is not retried within the pass. With `max_moves_per_round`
//! moves per level, a pass is `O(D log D + S * n log n + P log n)` for `D`
//! domains, `S` source domains read, `n` candidates per domain and `P` pair
//! attempts, plus the walk past ineligible tasks near the target; there is no
//! `O(tasks^2)` step. `cargo bench` (benches/balancer.rs) measures it from
//! 1 node x 4 domains x 64 candidates to 8 nodes x 8 domains x 1024.

use std::collections::HashSet;
use std::fmt;

use ordered_float::OrderedFloat;
use sorted_vec::SortedVec;

/// Largest number of domains (LLCs) a [`DomSet`] can name: as many as the
/// BPF side supports (bpf/intf.h).
pub const MAX_DOMS: usize = crate::bpf_intf::consts_MAX_DOMS as usize;

/// Relative tolerance used when rechecking a move with exact arithmetic, so
/// rounding in the window computation cannot admit a move that would not
/// really shrink the gap.
const REL_EPS: f64 = 1e-12;

/// A set of domain ids (`0..MAX_DOMS`), used for task affinity.
///
/// Backed by as many 64-bit words as the highest member needs, so a task on a
/// small machine costs a word or two, not 128 bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DomSet {
    words: Vec<u64>,
}

impl DomSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// All domains `0..nr_doms` (capped at [`MAX_DOMS`]).
    pub fn full(nr_doms: usize) -> Self {
        let nr_doms = nr_doms.min(MAX_DOMS);
        let mut words = vec![u64::MAX; nr_doms / 64];
        if !nr_doms.is_multiple_of(64) {
            words.push((1u64 << (nr_doms % 64)) - 1);
        }
        Self { words }
    }

    /// The set holding only `dom` (empty if `dom >= MAX_DOMS`).
    pub fn single(dom: usize) -> Self {
        let mut set = Self::new();
        set.insert(dom);
        set
    }

    /// Builds a set from raw bitmap words (bit `i` of word `w` is domain
    /// `64 * w + i`), e.g. as read from a BPF map. Words past [`MAX_DOMS`]
    /// are dropped.
    pub fn from_words(mut words: Vec<u64>) -> Self {
        words.truncate(MAX_DOMS / 64);
        Self { words }
    }

    /// The raw bitmap words.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Adds `dom`; returns false if it was already present or out of range.
    pub fn insert(&mut self, dom: usize) -> bool {
        if dom >= MAX_DOMS {
            return false;
        }
        let (w, b) = (dom / 64, dom % 64);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        let was = self.words[w] & (1 << b) != 0;
        self.words[w] |= 1 << b;
        !was
    }

    /// Removes `dom`; returns whether it was present.
    pub fn remove(&mut self, dom: usize) -> bool {
        match self.words.get_mut(dom / 64) {
            Some(word) => {
                let was = *word & (1 << (dom % 64)) != 0;
                *word &= !(1 << (dom % 64));
                was
            }
            None => false,
        }
    }

    /// Whether `dom` is in the set.
    pub fn contains(&self, dom: usize) -> bool {
        self.words
            .get(dom / 64)
            .is_some_and(|word| word & (1 << (dom % 64)) != 0)
    }

    /// Adds every member of `other`.
    pub fn union_with(&mut self, other: &DomSet) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= o;
        }
    }

    /// Number of domains in the set.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            (0..64)
                .filter(move |b| word & (1u64 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }
}

impl FromIterator<usize> for DomSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut set = Self::new();
        for dom in iter {
            set.insert(dom);
        }
        set
    }
}

/// A task that the balancer may move.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSnap {
    pub pid: i32,
    /// Domain the task currently belongs to; must be the domain whose
    /// `tasks` list holds it.
    pub dom: usize,
    /// Scaled load: 1.0 is a nice-0 task keeping one CPU busy.
    pub load: f64,
    /// Domains the task's affinity allows.
    pub allowed: DomSet,
}

/// One domain (LLC) as seen by the daemon.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainSnap {
    /// NUMA node the domain belongs to (`< Snapshot::nr_nodes`).
    pub node: usize,
    /// Number of CPUs; domains are compared by `load / capacity`. A domain
    /// with no CPU takes no part in balancing.
    pub capacity: u32,
    /// Sum of the loads of all its tasks (not only the candidates).
    pub load: f64,
    /// Tasks the balancer may move out of this domain.
    pub tasks: Vec<TaskSnap>,
}

impl DomainSnap {
    /// Load per CPU (0 for a domain with no CPU).
    pub fn load_per_cpu(&self) -> f64 {
        per_cpu(self.load, f64::from(self.capacity))
    }
}

/// The loads the balancer works on. Domain ids are the indices of `doms`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub nr_nodes: usize,
    pub doms: Vec<DomainSnap>,
}

/// Why a [`Snapshot`] was rejected.
#[derive(Clone, Debug, PartialEq)]
pub enum SnapshotError {
    TooManyDomains {
        nr_doms: usize,
    },
    NodeOutOfRange {
        dom: usize,
        node: usize,
    },
    BadDomainLoad {
        dom: usize,
        load: f64,
    },
    TaskInWrongDomain {
        pid: i32,
        listed_in: usize,
        dom: usize,
    },
    BadTaskLoad {
        pid: i32,
        load: f64,
    },
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyDomains { nr_doms } => {
                write!(f, "{nr_doms} domains, at most {MAX_DOMS} supported")
            }
            Self::NodeOutOfRange { dom, node } => {
                write!(f, "domain {dom} is on node {node}, beyond nr_nodes")
            }
            Self::BadDomainLoad { dom, load } => {
                write!(f, "domain {dom} has invalid load {load}")
            }
            Self::TaskInWrongDomain {
                pid,
                listed_in,
                dom,
            } => write!(f, "task {pid} listed in domain {listed_in} but says {dom}"),
            Self::BadTaskLoad { pid, load } => write!(f, "task {pid} has invalid load {load}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

impl Snapshot {
    /// Checks the whole snapshot: what [`Snapshot::validate_domains`]
    /// checks, plus every task listed under its own domain with a finite,
    /// non-negative load. Touches every task, so [`balance`] leaves it to the
    /// daemon (e.g. in debug builds) and only skips bad tasks itself.
    pub fn validate(&self) -> Result<(), SnapshotError> {
        self.validate_domains()?;
        for (id, dom) in self.doms.iter().enumerate() {
            for task in &dom.tasks {
                task_ok(task, id)?;
            }
        }
        Ok(())
    }

    /// Checks what [`balance`] cannot work around: at most [`MAX_DOMS`]
    /// domains, node ids in range, domain loads finite and non-negative.
    /// Costs `O(domains)`.
    pub fn validate_domains(&self) -> Result<(), SnapshotError> {
        if self.doms.len() > MAX_DOMS {
            return Err(SnapshotError::TooManyDomains {
                nr_doms: self.doms.len(),
            });
        }
        for (id, dom) in self.doms.iter().enumerate() {
            if dom.node >= self.nr_nodes {
                return Err(SnapshotError::NodeOutOfRange {
                    dom: id,
                    node: dom.node,
                });
            }
            if !(dom.load.is_finite() && dom.load >= 0.0) {
                return Err(SnapshotError::BadDomainLoad {
                    dom: id,
                    load: dom.load,
                });
            }
        }
        Ok(())
    }

    /// Difference between the highest and lowest per-CPU load among domains
    /// with CPUs (0 with fewer than two such domains).
    pub fn spread(&self) -> f64 {
        let pcs = self
            .doms
            .iter()
            .filter(|d| d.capacity > 0)
            .map(DomainSnap::load_per_cpu);
        let (lo, hi) = pcs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), pc| {
            (lo.min(pc), hi.max(pc))
        });
        if hi >= lo { hi - lo } else { 0.0 }
    }

    /// Capacity-weighted sum of squared deviations of the domains' per-CPU
    /// loads from the machine average: `sum C_i (L_i/C_i - avg)^2`. Weighting
    /// by CPUs makes it the quantity every accepted move strictly lowers,
    /// whatever the capacities.
    pub fn weighted_sq_dev(&self) -> f64 {
        let (load, cap) = self
            .doms
            .iter()
            .filter(|d| d.capacity > 0)
            .fold((0.0, 0.0), |(l, c), d| {
                (l + d.load, c + f64::from(d.capacity))
            });
        let avg = per_cpu(load, cap);
        self.doms
            .iter()
            .filter(|d| d.capacity > 0)
            .map(|d| {
                let dev = d.load_per_cpu() - avg;
                f64::from(d.capacity) * dev * dev
            })
            .sum()
    }

    /// `(load, capacity)` of each node, summed over its domains.
    pub fn node_totals(&self) -> Vec<(f64, u64)> {
        let mut totals = vec![(0.0, 0u64); self.nr_nodes];
        for dom in &self.doms {
            if let Some(t) = totals.get_mut(dom.node) {
                t.0 += dom.load;
                t.1 += u64::from(dom.capacity);
            }
        }
        totals
    }
}

/// Tunables of the balancer. See [`BalancerConfig::default`] for the values
/// and the reasons behind them.
#[derive(Clone, Debug, PartialEq)]
pub struct BalancerConfig {
    /// A node above the machine's average pushes to a node below it when
    /// its per-CPU load is more than `1 + cross_node_threshold` times the
    /// other's.
    pub cross_node_threshold: f64,
    /// A domain above its node's average pushes to a domain below it when
    /// its per-CPU load is more than `1 + intra_node_threshold` times the
    /// other's.
    pub intra_node_threshold: f64,
    /// Most moves per level and pass: at most this many cross-node moves,
    /// and at most this many intra-node moves inside each node.
    pub max_moves_per_round: usize,
    /// Tasks lighter than this (in CPUs) are never moved.
    pub min_task_load: f64,
    /// When a move overshoots, the destination may end above the source by
    /// at most this fraction of the gap the pair had before. Clamped to
    /// `[0, 1)`: at 1 a move could leave the pair exactly as imbalanced.
    pub max_overshoot: f64,
}

impl Default for BalancerConfig {
    /// - `cross_node_threshold = 0.20`: a cross-node move loses the cache and
    ///   leaves the task's memory remote, so it must buy a clear imbalance:
    ///   one node 1.2 times as loaded per CPU as the other. (Against the
    ///   average, as before, 20% let a node of 4 CPUs keep 5 CPU hogs while
    ///   the other ran 3 and a daemon: 1.38 times, in the VM test.)
    /// - `intra_node_threshold = 0.10`: inside a node only the LLC is lost;
    ///   10% is still well above the noise of decayed load averages, which
    ///   keeps the balancer from reacting to jitter.
    /// - `max_moves_per_round = 8`: loads are re-measured every interval, so
    ///   it is better to correct a large imbalance over a few intervals than
    ///   to act at once on one possibly stale snapshot; 8 also bounds the
    ///   BPF map updates per interval.
    /// - `min_task_load = 0.05`: a task using under 5% of a CPU hardly
    ///   changes any imbalance (such loads are within the noise of the
    ///   averages), but moving it still costs it its cache; in the VM a
    ///   lower floor let daemons of 1-3% be shuffled back and forth.
    /// - `max_overshoot = 0.5`: a task bigger than the gap may still be worth
    ///   moving (it may be all there is), but only if the pair ends at least
    ///   twice as close as before.
    fn default() -> Self {
        Self {
            cross_node_threshold: 0.20,
            intra_node_threshold: 0.10,
            max_moves_per_round: 8,
            min_task_load: 0.05,
            max_overshoot: 0.5,
        }
    }
}

/// Per-CPU loads at the moment a move was decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Imbalance {
    /// Per-CPU load of the pushing group (node or domain).
    pub src_load_pc: f64,
    /// Per-CPU load of the pulling group.
    pub dst_load_pc: f64,
    /// Average per-CPU load of the level (machine or node).
    pub avg_load_pc: f64,
}

/// Why a task is moved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reason {
    /// Node `from_node` was above the machine average by more than the
    /// cross-node threshold; the figures are the nodes' per-CPU loads.
    CrossNode {
        from_node: usize,
        to_node: usize,
        imbalance: Imbalance,
    },
    /// Within `node`, the source domain was above the node average by more
    /// than the intra-node threshold; the figures are the domains'.
    IntraNode { node: usize, imbalance: Imbalance },
}

/// One task migration.
#[derive(Clone, Debug, PartialEq)]
pub struct Move {
    pub pid: i32,
    pub from_dom: usize,
    pub to_dom: usize,
    pub load: f64,
    pub reason: Reason,
}

/// Load of a node before and after the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSummary {
    pub node: usize,
    pub capacity: u64,
    pub load_before: f64,
    pub load_after: f64,
}

/// Load of a domain before and after the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct DomSummary {
    pub dom: usize,
    pub node: usize,
    pub capacity: u32,
    pub load_before: f64,
    pub load_after: f64,
}

impl NodeSummary {
    pub fn load_pc_before(&self) -> f64 {
        per_cpu(self.load_before, self.capacity as f64)
    }
    pub fn load_pc_after(&self) -> f64 {
        per_cpu(self.load_after, self.capacity as f64)
    }
}

impl DomSummary {
    pub fn load_pc_before(&self) -> f64 {
        per_cpu(self.load_before, f64::from(self.capacity))
    }
    pub fn load_pc_after(&self) -> f64 {
        per_cpu(self.load_after, f64::from(self.capacity))
    }
}

/// The result of one pass: moves in the order they were decided, plus the
/// loads the balancer expects once they are carried out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub moves: Vec<Move>,
    pub nodes: Vec<NodeSummary>,
    pub doms: Vec<DomSummary>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }

    /// The snapshot as it would be once the moves are carried out: loads
    /// shifted and the moved tasks relisted under their new domain. Moves
    /// naming unknown domains are skipped; a move whose pid is not among the
    /// source's candidates still shifts the load.
    pub fn apply(&self, snap: &Snapshot) -> Snapshot {
        let mut out = snap.clone();
        for mv in &self.moves {
            if mv.from_dom >= out.doms.len() || mv.to_dom >= out.doms.len() {
                continue;
            }
            let src = &mut out.doms[mv.from_dom];
            src.load = (src.load - mv.load).max(0.0);
            let task = src
                .tasks
                .iter()
                .position(|t| t.pid == mv.pid)
                .map(|i| src.tasks.remove(i));
            let dst = &mut out.doms[mv.to_dom];
            dst.load += mv.load;
            if let Some(mut task) = task {
                task.dom = mv.to_dom;
                dst.tasks.push(task);
            }
        }
        out
    }
}

/// Runs one balancing pass over `snap` and returns the moves to make.
///
/// Fails only on what [`Snapshot::validate_domains`] rejects. A task that
/// [`Snapshot::validate`] would reject (listed under another domain, load not
/// finite or negative) is simply never moved: checking all of them up front
/// would cost a sweep over every task (a few ms at 64k tasks, more than the
/// balancing itself), while only the candidates of source domains are read.
pub fn balance(snap: &Snapshot, cfg: &BalancerConfig) -> Result<Plan, SnapshotError> {
    snap.validate_domains()?;
    let mut pass = Pass::new(snap, cfg);
    pass.cross_node();
    for node in 0..snap.nr_nodes {
        pass.intra_node(node);
    }
    Ok(pass.into_plan())
}

fn task_ok(task: &TaskSnap, listed_in: usize) -> Result<(), SnapshotError> {
    if task.dom != listed_in {
        return Err(SnapshotError::TaskInWrongDomain {
            pid: task.pid,
            listed_in,
            dom: task.dom,
        });
    }
    if !(task.load.is_finite() && task.load >= 0.0) {
        return Err(SnapshotError::BadTaskLoad {
            pid: task.pid,
            load: task.load,
        });
    }
    Ok(())
}

/// False for NaN too, so a NaN figure never starts a move.
fn positive(x: f64) -> bool {
    x > 0.0
}

/// Groups (node or domain ids) with their per-CPU load, in the order they
/// should be tried.
type Ranked = Vec<(usize, f64)>;

fn per_cpu(load: f64, cap: f64) -> f64 {
    if cap > 0.0 { load / cap } else { 0.0 }
}

/// Loads and capacities of the two ends of a prospective move, at one level.
#[derive(Clone, Copy, Debug)]
struct Pair {
    src_load: f64,
    src_cap: f64,
    dst_load: f64,
    dst_cap: f64,
}

impl Pair {
    fn src_pc(&self) -> f64 {
        self.src_load / self.src_cap
    }

    fn dst_pc(&self) -> f64 {
        self.dst_load / self.dst_cap
    }

    fn gap(&self) -> f64 {
        self.src_pc() - self.dst_pc()
    }

    /// Largest load worth moving: beyond it the move overshoots too far, or
    /// a side would end past the other's old value.
    fn max_load(&self, max_overshoot: f64) -> f64 {
        let g = self.gap();
        let k = 1.0 / self.src_cap + 1.0 / self.dst_cap;
        ((1.0 + max_overshoot) * g / k)
            .min(self.src_cap * g)
            .min(self.dst_cap * g)
    }

    /// Whether moving `x` leaves the pair within `threshold` of each other
    /// (the busier at most `1 + threshold` times the other per CPU), so that
    /// nothing is left for the pair to do.
    fn evens_out(&self, x: f64, threshold: f64) -> bool {
        let new_s = (self.src_load - x).max(0.0) / self.src_cap;
        let new_d = (self.dst_load + x) / self.dst_cap;
        new_s.max(new_d) <= new_s.min(new_d) * (1.0 + threshold.max(0.0))
    }

    /// Exact check of a move of load `x`, with the same arithmetic
    /// [`Plan::apply`] uses.
    fn accepts(&self, x: f64, max_overshoot: f64) -> bool {
        let (s, d) = (self.src_pc(), self.dst_pc());
        let g = s - d;
        if !(positive(g) && positive(x)) {
            return false;
        }
        let new_s = (self.src_load - x).max(0.0) / self.src_cap;
        let new_d = (self.dst_load + x) / self.dst_cap;
        let new_gap = new_s - new_d;
        new_s >= d
            && new_d <= s
            && new_gap.abs() < g * (1.0 - REL_EPS)
            && -new_gap <= max_overshoot * g
    }
}

/// The first entry of `sorted` (loads ascending, with task indices), taken
/// nearest `target` first, for which `ok(load, index)` holds: a walk
/// outwards from the target that always takes the nearer side next, so the
/// first eligible task is the best fit.
fn nearest_first(
    sorted: &[(OrderedFloat<f64>, usize)],
    target: f64,
    mut ok: impl FnMut(f64, usize) -> bool,
) -> Option<usize> {
    let mid = sorted.partition_point(|e| e.0.0 < target);
    let (mut down, mut up) = (mid, mid);
    loop {
        let take_up = match (down > 0, up < sorted.len()) {
            (false, false) => return None,
            (true, false) => false,
            (false, true) => true,
            (true, true) => sorted[up].0.0 - target <= target - sorted[down - 1].0.0,
        };
        let (load, idx) = if take_up {
            up += 1;
            sorted[up - 1]
        } else {
            down -= 1;
            sorted[down]
        };
        if ok(load.0, idx) {
            return Some(idx);
        }
    }
}

/// Whether `task` may move to `to` in this pass: not already picked
/// (`taken`), allowed there, and not moved under another entry of its pid.
fn movable(task: &TaskSnap, taken: bool, to: usize, moved: &HashSet<i32>) -> bool {
    !taken && task.allowed.contains(to) && !moved.contains(&task.pid)
}

/// A domain's candidates sorted by load, built the first time the domain is
/// used as a source.
struct DomIndex {
    /// Union of the candidates' affinities. A destination outside it can take
    /// none of them, which is then known without sorting or scanning: with
    /// many pinned or node-bound tasks this is what keeps failed pairs cheap.
    reach: DomSet,
    /// Valid candidates by load, sorted the first time a reachable
    /// destination asks for them.
    by_load: Option<SortedVec<(OrderedFloat<f64>, usize)>>,
    taken: Vec<bool>,
}

impl DomIndex {
    fn new(tasks: &[TaskSnap], dom: usize) -> Self {
        let mut reach = DomSet::new();
        for task in tasks.iter().filter(|t| task_ok(t, dom).is_ok()) {
            reach.union_with(&task.allowed);
        }
        reach.remove(dom);
        Self {
            reach,
            by_load: None,
            taken: vec![false; tasks.len()],
        }
    }
}

struct Pass<'a> {
    snap: &'a Snapshot,
    cfg: &'a BalancerConfig,
    max_overshoot: f64,
    dom_load: Vec<f64>,
    dom_cap: Vec<f64>,
    node_load: Vec<f64>,
    node_cap: Vec<f64>,
    node_doms: Vec<Vec<usize>>,
    index: Vec<Option<DomIndex>>,
    moved_pids: HashSet<i32>,
    moves: Vec<Move>,
}

impl<'a> Pass<'a> {
    fn new(snap: &'a Snapshot, cfg: &'a BalancerConfig) -> Self {
        let nr_nodes = snap.nr_nodes;
        let mut node_load = vec![0.0; nr_nodes];
        let mut node_cap = vec![0.0; nr_nodes];
        let mut node_doms = vec![Vec::new(); nr_nodes];
        let mut dom_load = Vec::with_capacity(snap.doms.len());
        let mut dom_cap = Vec::with_capacity(snap.doms.len());
        for (id, dom) in snap.doms.iter().enumerate() {
            let cap = f64::from(dom.capacity);
            dom_load.push(dom.load);
            dom_cap.push(cap);
            // Domains without CPUs can neither run nor receive load; leaving
            // them out keeps every per-CPU figure finite.
            if dom.capacity > 0 {
                node_load[dom.node] += dom.load;
                node_cap[dom.node] += cap;
                node_doms[dom.node].push(id);
            }
        }
        let max_overshoot = if cfg.max_overshoot.is_finite() {
            cfg.max_overshoot.clamp(0.0, 1.0 - 1e-9)
        } else {
            0.0
        };
        Self {
            snap,
            cfg,
            max_overshoot,
            dom_load,
            dom_cap,
            node_load,
            node_cap,
            node_doms,
            index: (0..snap.doms.len()).map(|_| None).collect(),
            moved_pids: HashSet::new(),
            moves: Vec::new(),
        }
    }

    fn dom_pc(&self, dom: usize) -> f64 {
        per_cpu(self.dom_load[dom], self.dom_cap[dom])
    }

    fn node_pc(&self, node: usize) -> f64 {
        per_cpu(self.node_load[node], self.node_cap[node])
    }

    fn dom_pair(&self, src: usize, dst: usize) -> Pair {
        Pair {
            src_load: self.dom_load[src],
            src_cap: self.dom_cap[src],
            dst_load: self.dom_load[dst],
            dst_cap: self.dom_cap[dst],
        }
    }

    fn node_pair(&self, src: usize, dst: usize) -> Pair {
        Pair {
            src_load: self.node_load[src],
            src_cap: self.node_cap[src],
            dst_load: self.node_load[dst],
            dst_cap: self.node_cap[dst],
        }
    }

    /// Splits `groups` (with their per-CPU loads) into pushers (above
    /// `avg`), busiest first, and pullers (below it), idlest first. Which
    /// pairs are worth a move is [`Pass::worth_it`]'s decision.
    fn pushers_pullers(groups: impl Iterator<Item = (usize, f64)>, avg: f64) -> (Ranked, Ranked) {
        let mut push = Vec::new();
        let mut pull = Vec::new();
        // With no load at all nobody can be above average.
        if !positive(avg) {
            return (push, pull);
        }
        for (id, pc) in groups {
            if pc > avg {
                push.push((id, pc));
            } else if pc < avg {
                pull.push((id, pc));
            }
        }
        push.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        pull.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        (push, pull)
    }

    /// Whether a group at `src_pc` per CPU should push to one at `dst_pc`:
    /// more than `1 + threshold` times as loaded. False for NaN figures and
    /// thresholds, so a nonsense figure never starts a move.
    fn worth_it(src_pc: f64, dst_pc: f64, threshold: f64) -> bool {
        !threshold.is_nan() && src_pc > dst_pc * (1.0 + threshold.max(0.0))
    }

    fn cross_node(&mut self) {
        if self.snap.nr_nodes < 2 {
            return;
        }
        let total_load: f64 = self.node_load.iter().sum();
        let total_cap: f64 = self.node_cap.iter().sum();
        // Moves between nodes leave the machine total unchanged.
        let avg = per_cpu(total_load, total_cap);
        let mut failed = HashSet::new();
        let mut nr_moves = 0;
        while nr_moves < self.cfg.max_moves_per_round {
            let nodes = (0..self.snap.nr_nodes)
                .filter(|&n| self.node_cap[n] > 0.0)
                .map(|n| (n, self.node_pc(n)));
            let (push, pull) = Self::pushers_pullers(nodes, avg);
            let mut done = false;
            'search: for &(sn, s_pc) in &push {
                for &(dn, d_pc) in &pull {
                    if !Self::worth_it(s_pc, d_pc, self.cfg.cross_node_threshold) {
                        continue;
                    }
                    if self.cross_node_pair(sn, dn, avg, &mut failed) {
                        done = true;
                        break 'search;
                    }
                }
            }
            if !done {
                break;
            }
            nr_moves += 1;
        }
    }

    /// Tries one move from node `sn` to node `dn`; returns whether it made one.
    fn cross_node_pair(
        &mut self,
        sn: usize,
        dn: usize,
        avg: f64,
        failed: &mut HashSet<(usize, usize)>,
    ) -> bool {
        let npair = self.node_pair(sn, dn);
        if !positive(npair.gap()) {
            return false;
        }
        let target = (self.node_load[sn] - avg * self.node_cap[sn])
            .min(avg * self.node_cap[dn] - self.node_load[dn]);
        let node_max = npair.max_load(self.max_overshoot);
        let (sn_pc, dn_pc) = (npair.src_pc(), npair.dst_pc());

        // Busiest domains of the pushing node first, idlest of the pulling
        // node first; the ones on the wrong side of their node's average
        // would only create work for the intra-node step.
        let mut srcs: Vec<(usize, f64)> = self.node_doms[sn]
            .iter()
            .map(|&d| (d, self.dom_pc(d)))
            .filter(|&(_, pc)| pc >= sn_pc)
            .collect();
        srcs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut dsts: Vec<(usize, f64)> = self.node_doms[dn]
            .iter()
            .map(|&d| (d, self.dom_pc(d)))
            .filter(|&(_, pc)| pc <= dn_pc)
            .collect();
        dsts.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));

        for &(s, _) in &srcs {
            for &(d, _) in &dsts {
                if failed.contains(&(s, d)) {
                    continue;
                }
                let dpair = self.dom_pair(s, d);
                if !positive(dpair.gap()) {
                    failed.insert((s, d));
                    continue;
                }
                let hi = node_max.min(dpair.max_load(self.max_overshoot));
                let mo = self.max_overshoot;
                let picked = self.pick(s, d, target, hi, |x| {
                    npair.accepts(x, mo) && dpair.accepts(x, mo)
                });
                match picked {
                    Some(idx) => {
                        let reason = Reason::CrossNode {
                            from_node: sn,
                            to_node: dn,
                            imbalance: Imbalance {
                                src_load_pc: sn_pc,
                                dst_load_pc: dn_pc,
                                avg_load_pc: avg,
                            },
                        };
                        self.commit(s, d, idx, reason);
                        return true;
                    }
                    None => {
                        failed.insert((s, d));
                    }
                }
            }
        }
        false
    }

    fn intra_node(&mut self, node: usize) {
        if self.node_doms[node].len() < 2 {
            return;
        }
        // Moves inside a node leave its total unchanged, and cross-node moves
        // are already reflected in node_load.
        let avg = self.node_pc(node);
        let mut failed = HashSet::new();
        let mut nr_moves = 0;
        while nr_moves < self.cfg.max_moves_per_round {
            let doms = self.node_doms[node].iter().map(|&d| (d, self.dom_pc(d)));
            let (push, pull) = Self::pushers_pullers(doms, avg);
            let mut done = false;
            'search: for &(s, s_pc) in &push {
                for &(d, d_pc) in &pull {
                    if failed.contains(&(s, d))
                        || !Self::worth_it(s_pc, d_pc, self.cfg.intra_node_threshold)
                    {
                        continue;
                    }
                    let pair = self.dom_pair(s, d);
                    let target = (self.dom_load[s] - avg * self.dom_cap[s])
                        .min(avg * self.dom_cap[d] - self.dom_load[d]);
                    let hi = pair.max_load(self.max_overshoot);
                    let mo = self.max_overshoot;
                    let threshold = self.cfg.intra_node_threshold;
                    let reason = Reason::IntraNode {
                        node,
                        imbalance: Imbalance {
                            src_load_pc: s_pc,
                            dst_load_pc: d_pc,
                            avg_load_pc: avg,
                        },
                    };
                    if let Some(idx) = self.pick(s, d, target, hi, |x| pair.accepts(x, mo)) {
                        self.commit(s, d, idx, reason);
                        nr_moves += 1;
                        done = true;
                        break 'search;
                    }
                    if nr_moves + 2 <= self.cfg.max_moves_per_round
                        && let Some((a, b)) = self.pick_swap(s, d, target, hi, |x| {
                            pair.accepts(x, mo) && pair.evens_out(x, threshold)
                        })
                    {
                        self.commit(s, d, a, reason);
                        self.commit(d, s, b, reason);
                        nr_moves += 2;
                        done = true;
                        break 'search;
                    }
                    failed.insert((s, d));
                }
            }
            if !done {
                break;
            }
        }
    }

    /// Finds the candidate of `src` whose load is closest to `target` within
    /// `[min_task_load, hi]`, that may run on `dst`, has not moved yet and
    /// passes `accepts`. Returns its index in `src`'s task list.
    fn pick(
        &mut self,
        src: usize,
        dst: usize,
        target: f64,
        hi: f64,
        accepts: impl Fn(f64) -> bool,
    ) -> Option<usize> {
        let lo = self.min_load();
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return None;
        }
        let target = if target.is_finite() { target } else { lo };
        let target = target.clamp(lo, hi);
        if !self.reaches(src, dst) {
            return None;
        }
        self.sorted(src);
        let tasks = &self.snap.doms[src].tasks;
        let index = self.index[src].as_mut()?;
        let sorted: &[(OrderedFloat<f64>, usize)] = index.by_load.as_ref()?;
        let start = sorted.partition_point(|e| e.0.0 < lo);
        let end = sorted.partition_point(|e| e.0.0 <= hi);
        if start >= end {
            return None;
        }
        let moved = &self.moved_pids;
        let taken = &index.taken;
        let idx = nearest_first(&sorted[start..end], target, |load, idx| {
            movable(&tasks[idx], taken[idx], dst, moved) && accepts(load)
        })?;
        index.taken[idx] = true;
        Some(idx)
    }

    /// The lightest movable load: `min_task_load`, at least the smallest
    /// positive float (a task of load 0 changes nothing).
    fn min_load(&self) -> f64 {
        if self.cfg.min_task_load.is_finite() {
            self.cfg.min_task_load.max(f64::MIN_POSITIVE)
        } else {
            f64::MIN_POSITIVE
        }
    }

    /// Whether some candidate of `src` may run on `dst`: known from the
    /// union of their affinities, before sorting anything.
    fn reaches(&mut self, src: usize, dst: usize) -> bool {
        let tasks = &self.snap.doms[src].tasks;
        self.index[src]
            .get_or_insert_with(|| DomIndex::new(tasks, src))
            .reach
            .contains(dst)
    }

    /// `dom`'s candidates sorted by load (built on first use).
    fn sorted(&mut self, dom: usize) -> &DomIndex {
        let tasks = &self.snap.doms[dom].tasks;
        let index = self.index[dom].get_or_insert_with(|| DomIndex::new(tasks, dom));
        index.by_load.get_or_insert_with(|| {
            SortedVec::from_unsorted(
                tasks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| task_ok(t, dom).is_ok())
                    .map(|(i, t)| (OrderedFloat(t.load), i))
                    .collect(),
            )
        });
        index
    }

    /// A swap for when no single task of `src` fits the pair: every one is
    /// too big (CPU hogs, say, beside a domain whose surplus is small tasks:
    /// a daemon, a sampler, kworkers). Task `a` of `src` goes to `dst` and a
    /// lighter task `b` of `dst` comes back, which changes the pair exactly
    /// as a move of `a - b` would, so [`Pair::accepts`] judges `a - b` and
    /// every guarantee of a single move holds. Without it 3 hogs stay on one
    /// 2-CPU domain next to one with a hog and ~1 CPU of small tasks: moving
    /// a hog overshoots, moving a small task widens the gap (seen in
    /// vm_balance). Only tasks too heavy to move alone (above `hi`) go out
    /// this way, only from a domain with more tasks of their size than
    /// CPUs to one with a CPU free of them, and only to even the pair out
    /// (the caller's `accepts`):
    /// swaps are the last step for a pair, not a finer way to shuffle
    /// tasks round after round. Tries the `SWAP_TRIES` heaviest eligible
    /// tasks of `src`; for each, the task of `dst` that brings `a - b`
    /// nearest `target`.
    /// Returns the indices of `a` in `src`'s list and `b` in `dst`'s.
    fn pick_swap(
        &mut self,
        src: usize,
        dst: usize,
        target: f64,
        hi: f64,
        accepts: impl Fn(f64) -> bool,
    ) -> Option<(usize, usize)> {
        const SWAP_TRIES: usize = 4;
        let lo = self.min_load();
        if !target.is_finite() || !self.reaches(src, dst) || !self.reaches(dst, src) {
            return None;
        }
        self.sorted(src);
        self.sorted(dst);
        let (si, di) = (self.index[src].as_ref()?, self.index[dst].as_ref()?);
        let (s_sorted, d_sorted) = (si.by_load.as_ref()?, di.by_load.as_ref()?);
        let (s_tasks, d_tasks) = (&self.snap.doms[src].tasks, &self.snap.doms[dst].tasks);
        let moved = &self.moved_pids;
        let d_start = d_sorted.partition_point(|e| e.0.0 < lo);
        let heaviest = s_sorted
            .iter()
            .rev()
            .take_while(|e| e.0.0 > hi)
            .filter(|e| movable(&s_tasks[e.1], si.taken[e.1], dst, moved))
            .take(SWAP_TRIES);
        for &(a, ia) in heaviest {
            let a = a.0;
            // Only a domain with more tasks like `a` than CPUs sends one
            // away, and only to a domain with a CPU free of them (counting
            // `b` as gone): loads add up, but a CPU runs one task at a
            // time. Else a swap on a passing figure (a burst of small
            // tasks beside two hogs on two CPUs) leaves three hogs on two
            // CPUs next door.
            // b in [lo, a - lo]: a swap, like a move, shifts at least the
            // least load worth moving.
            let end = d_sorted.partition_point(|e| e.0.0 <= a - lo);
            if d_start >= end {
                continue;
            }
            let big = a / 2.0;
            if self.tasks_from(src, big) as f64 <= self.dom_cap[src] {
                continue;
            }
            let dst_big = self.tasks_from(dst, big);
            let dst_cap = self.dom_cap[dst];
            let found = nearest_first(&d_sorted[d_start..end], a - target, |b, ib| {
                let after = (dst_big + 1).saturating_sub(usize::from(b >= big));
                a - b >= lo
                    && after as f64 <= dst_cap
                    && movable(&d_tasks[ib], di.taken[ib], src, moved)
                    && accepts(a - b)
            });
            if let Some(ib) = found {
                if let Some(i) = self.index[src].as_mut() {
                    i.taken[ia] = true;
                }
                if let Some(i) = self.index[dst].as_mut() {
                    i.taken[ib] = true;
                }
                return Some((ia, ib));
            }
        }
        None
    }

    /// Tasks of `dom` with a load of at least `min` as the round stands:
    /// its candidates not moved away this round, and the tasks moved in.
    fn tasks_from(&self, dom: usize, min: f64) -> usize {
        let stayed = self.snap.doms[dom]
            .tasks
            .iter()
            .filter(|t| t.load >= min && !self.moved_pids.contains(&t.pid))
            .count();
        let came = self
            .moves
            .iter()
            .filter(|m| m.to_dom == dom && m.load >= min)
            .count();
        stayed + came
    }

    fn commit(&mut self, src: usize, dst: usize, idx: usize, reason: Reason) {
        let task = &self.snap.doms[src].tasks[idx];
        let (sn, dn) = (self.snap.doms[src].node, self.snap.doms[dst].node);
        self.dom_load[src] = (self.dom_load[src] - task.load).max(0.0);
        self.dom_load[dst] += task.load;
        if sn != dn {
            self.node_load[sn] = (self.node_load[sn] - task.load).max(0.0);
            self.node_load[dn] += task.load;
        }
        self.moved_pids.insert(task.pid);
        self.moves.push(Move {
            pid: task.pid,
            from_dom: src,
            to_dom: dst,
            load: task.load,
            reason,
        });
    }

    fn into_plan(self) -> Plan {
        let doms: Vec<DomSummary> = self
            .snap
            .doms
            .iter()
            .enumerate()
            .map(|(id, d)| DomSummary {
                dom: id,
                node: d.node,
                capacity: d.capacity,
                load_before: d.load,
                load_after: self.dom_load[id],
            })
            .collect();
        // Summed from the domains rather than taken from node_load, which
        // leaves out domains without CPUs.
        let mut nodes: Vec<NodeSummary> = (0..self.snap.nr_nodes)
            .map(|node| NodeSummary {
                node,
                capacity: 0,
                load_before: 0.0,
                load_after: 0.0,
            })
            .collect();
        for d in &doms {
            let n = &mut nodes[d.node];
            n.capacity += u64::from(d.capacity);
            n.load_before += d.load_before;
            n.load_after += d.load_after;
        }
        Plan {
            moves: self.moves,
            nodes,
            doms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EPS: f64 = 1e-9;
    const CASES: u32 = 512;
    /// Rounds within which the default config settles a random snapshot.
    /// The rounds a snapshot needs fall off about tenfold per round past
    /// the third (`rounds_to_settle_histogram`; the counts are in
    /// benches/vm/results/2026-12-01-checks/balancer-rounds.md): the
    /// slowest need a chain of swaps, each using a task the previous round
    /// moved (`Pass::pick_swap`). Set above the slowest case seen in 4.2
    /// million before swaps were limited to crowded domains (7 rounds;
    /// since then, 6 in 2 million), so that correct code fails a CI run
    /// of `CASES` far less often than once in ten thousand runs, while a
    /// balancer that shuffles or crawls fails at once.
    const ROUNDS: usize = 8;

    /// Builds a snapshot from `(node, capacity, task loads)` per domain. Every
    /// task may run anywhere; a domain's load is the sum of its tasks plus
    /// `extra[dom]` if given.
    fn build(nr_nodes: usize, doms: &[(usize, u32, &[f64])]) -> Snapshot {
        let nr_doms = doms.len();
        let mut pid = 100;
        let doms = doms
            .iter()
            .enumerate()
            .map(|(id, &(node, capacity, loads))| DomainSnap {
                node,
                capacity,
                load: loads.iter().sum(),
                tasks: loads
                    .iter()
                    .map(|&load| {
                        pid += 1;
                        TaskSnap {
                            pid,
                            dom: id,
                            load,
                            allowed: DomSet::full(nr_doms),
                        }
                    })
                    .collect(),
            })
            .collect();
        Snapshot { nr_nodes, doms }
    }

    fn run(snap: &Snapshot) -> Plan {
        balance(snap, &BalancerConfig::default()).unwrap()
    }

    /// Checks what must hold for any plan and returns the applied snapshot.
    /// How many plans the balancer makes (each checked and applied) before
    /// it plans nothing; None if it still plans after `max`.
    fn rounds_to_settle(mut snap: Snapshot, cfg: &BalancerConfig, max: usize) -> Option<usize> {
        for rounds in 0..=max {
            let plan = balance(&snap, cfg).unwrap();
            if plan.is_empty() {
                return Some(rounds);
            }
            if rounds < max {
                snap = check_plan(&snap, &plan, cfg);
            }
        }
        None
    }

    fn check_plan(snap: &Snapshot, plan: &Plan, cfg: &BalancerConfig) -> Snapshot {
        let after = plan.apply(snap);
        let mut pids = HashSet::new();
        let mut cross = 0;
        let mut intra = vec![0; snap.nr_nodes];
        for mv in &plan.moves {
            assert!(pids.insert(mv.pid), "pid {} moved twice", mv.pid);
            assert_ne!(mv.from_dom, mv.to_dom);
            let task = snap.doms[mv.from_dom]
                .tasks
                .iter()
                .find(|t| t.pid == mv.pid)
                .expect("moved task is a candidate of its source");
            assert!(task.allowed.contains(mv.to_dom), "affinity broken: {mv:?}");
            assert_eq!(task.load, mv.load);
            assert!(mv.load >= cfg.min_task_load);
            let (sn, dn) = (snap.doms[mv.from_dom].node, snap.doms[mv.to_dom].node);
            match mv.reason {
                Reason::CrossNode {
                    from_node, to_node, ..
                } => {
                    assert_eq!((from_node, to_node), (sn, dn));
                    assert_ne!(sn, dn);
                    cross += 1;
                }
                Reason::IntraNode { node, .. } => {
                    assert_eq!((node, node), (sn, dn));
                    intra[node] += 1;
                }
            }
        }
        assert!(cross <= cfg.max_moves_per_round);
        assert!(intra.iter().all(|&n| n <= cfg.max_moves_per_round));
        let tol = EPS * (1.0 + snap.weighted_sq_dev());
        assert!(after.spread() <= snap.spread() + EPS, "spread grew");
        assert!(after.weighted_sq_dev() <= snap.weighted_sq_dev() + tol);
        if !plan.is_empty() {
            assert!(after.weighted_sq_dev() < snap.weighted_sq_dev());
        }
        for (d, sum) in plan.doms.iter().zip(&after.doms) {
            assert!((d.load_after - sum.load).abs() < EPS);
            assert_eq!(d.load_before, snap.doms[d.dom].load);
        }
        let totals = after.node_totals();
        for n in &plan.nodes {
            assert!((n.load_after - totals[n.node].0).abs() < 1e-6);
        }
        after.validate().unwrap();
        after
    }

    fn node_spread(snap: &Snapshot) -> f64 {
        let pcs: Vec<f64> = snap
            .node_totals()
            .iter()
            .filter(|t| t.1 > 0)
            .map(|&(l, c)| l / c as f64)
            .collect();
        let hi = pcs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lo = pcs.iter().cloned().fold(f64::INFINITY, f64::min);
        if hi >= lo { hi - lo } else { 0.0 }
    }

    #[test]
    fn domset_basics() {
        let mut s = DomSet::new();
        assert!(s.is_empty());
        assert!(s.insert(3));
        assert!(!s.insert(3));
        let top = MAX_DOMS - 1;
        assert!(s.insert(top));
        assert!(!s.insert(MAX_DOMS));
        assert!(s.contains(3) && s.contains(top) && !s.contains(4));
        assert!(!s.contains(5000));
        assert_eq!(s.len(), 2);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![3, top]);
        assert!(s.remove(3) && !s.remove(3) && !s.remove(9999));
        assert_eq!(DomSet::full(MAX_DOMS - 3).len(), MAX_DOMS - 3);
        assert_eq!(DomSet::full(64).words(), &[u64::MAX]);
        assert_eq!(DomSet::full(5000).len(), MAX_DOMS);
        assert_eq!(DomSet::single(top).iter().collect::<Vec<_>>(), vec![top]);
        assert!(DomSet::single(MAX_DOMS).is_empty());
        assert_eq!([1, 2, 1].into_iter().collect::<DomSet>().len(), 2);
        assert_eq!(DomSet::from_words(vec![0b101]).iter().count(), 2);
        // Words past MAX_DOMS are dropped.
        assert_eq!(
            DomSet::from_words(vec![1, 1, 1]).len(),
            1 + (MAX_DOMS > 64) as usize
        );
        let mut u = DomSet::single(1);
        u.union_with(&DomSet::single(top));
        assert_eq!(u.iter().collect::<Vec<_>>(), vec![1, top]);
    }

    #[test]
    fn balanced_machine_gives_empty_plan() {
        let t: &[f64] = &[0.5, 0.25, 0.25];
        let snap = build(2, &[(0, 2, t), (0, 2, t), (1, 2, t), (1, 2, t)]);
        let plan = run(&snap);
        assert!(plan.is_empty());
        assert_eq!(plan.doms.len(), 4);
        assert_eq!(plan.nodes.len(), 2);
        assert_eq!(plan.apply(&snap), snap);
    }

    #[test]
    fn two_equal_domains_do_not_ping_pong() {
        let snap = build(1, &[(0, 1, &[0.9]), (0, 1, &[0.9])]);
        assert!(run(&snap).is_empty());
    }

    #[test]
    fn small_imbalance_below_threshold_is_left_alone() {
        // 1.04 vs 0.96: 1.08 times as loaded, under the 10% intra threshold
        // (a swap of the 0.54 and 0.46 tasks would even them out exactly).
        let snap = build(1, &[(0, 1, &[0.54, 0.5]), (0, 1, &[0.5, 0.46])]);
        assert!(run(&snap).is_empty());
    }

    #[test]
    fn one_hot_domain_among_four() {
        let hot: &[f64] = &[0.5; 8];
        let cold: &[f64] = &[0.5, 0.5];
        let snap = build(1, &[(0, 2, cold), (0, 2, hot), (0, 2, cold), (0, 2, cold)]);
        let plan = run(&snap);
        let cfg = BalancerConfig::default();
        let after = check_plan(&snap, &plan, &cfg);
        // 7.0 over 4 domains: 1.75 each is the goal; with 0.5-sized tasks the
        // closest is two domains at 2.0 and two at 1.5, the hot one giving 4.
        assert_eq!(plan.moves.len(), 4);
        assert!(plan.moves.iter().all(|m| m.from_dom == 1));
        assert!(matches!(
            plan.moves[0].reason,
            Reason::IntraNode { node: 0, .. }
        ));
        assert!(after.spread() <= 0.25 + EPS);
        assert!(run(&after).is_empty());
    }

    #[test]
    fn hot_node_pushes_to_cold_node() {
        let snap = build(
            2,
            &[
                (0, 2, &[0.5, 0.5, 0.5, 0.5]),
                (0, 2, &[0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
                (1, 2, &[]),
                (1, 2, &[0.5]),
            ],
        );
        let plan = run(&snap);
        let cfg = BalancerConfig::default();
        let after = check_plan(&snap, &plan, &cfg);
        let first = &plan.moves[0];
        // Busiest domain of the hot node to the idlest of the cold one.
        assert_eq!((first.from_dom, first.to_dom), (1, 2));
        match first.reason {
            Reason::CrossNode {
                from_node,
                to_node,
                imbalance,
            } => {
                assert_eq!((from_node, to_node), (0, 1));
                assert!((imbalance.src_load_pc - 1.25).abs() < EPS);
                assert!((imbalance.dst_load_pc - 0.125).abs() < EPS);
                assert!((imbalance.avg_load_pc - 0.6875).abs() < EPS);
            }
            other => panic!("unexpected reason {other:?}"),
        }
        assert!(node_spread(&after) < node_spread(&snap));
        let totals = after.node_totals();
        // 5.5 total load: nodes should end within one task of 2.75 each.
        assert!((totals[0].0 - 2.75).abs() <= 0.25 + EPS, "{totals:?}");
        assert!(plan.nodes[0].load_pc_after() < plan.nodes[0].load_pc_before());
    }

    #[test]
    fn cross_node_threshold_is_higher_than_intra() {
        // Nodes at 1.08 and 0.92 per CPU (1.17 times: under the 1.2 of the
        // cross-node threshold): no cross-node moves. Inside node 0, 1.24
        // vs 0.92 (1.35 times) does trigger an intra-node move.
        let snap = build(
            2,
            &[
                (0, 1, &[0.7, 0.3, 0.12, 0.12]),
                (0, 1, &[0.46, 0.46]),
                (1, 1, &[0.92]),
                (1, 1, &[0.92]),
            ],
        );
        let plan = run(&snap);
        check_plan(&snap, &plan, &BalancerConfig::default());
        assert!(!plan.is_empty());
        assert!(
            plan.moves
                .iter()
                .all(|m| matches!(m.reason, Reason::IntraNode { node: 0, .. }))
        );
    }

    #[test]
    fn thresholds_compare_the_pair_not_the_average() {
        // The loads vm_balance settled at on a fresh machine: domains of 2
        // CPUs at [3.02, 2.05, 1.65, 2.03], 8 equal CPU hogs placed 3/2/1/2
        // and 0.75 of other load (the daemon itself and kworkers). Node 0 at
        // 1.27 per CPU is 1.38 times node 1's 0.92, but only 16% above the
        // 1.09 average: a threshold against the average (20%) left it so for
        // the whole run. Compared pairwise, one hog crosses and every
        // domain ends with two.
        let snap = build(
            2,
            &[
                (0, 2, &[1.0, 1.0, 1.0, 0.02]),
                (0, 2, &[1.0, 1.0, 0.05]),
                (1, 2, &[1.0, 0.45, 0.2]),
                (1, 2, &[1.0, 1.0, 0.03]),
            ],
        );
        let cfg = BalancerConfig::default();
        let plan = run(&snap);
        let after = check_plan(&snap, &plan, &cfg);
        let hogs = |d: &DomainSnap| d.tasks.iter().filter(|t| t.load == 1.0).count();
        assert_eq!(
            after.doms.iter().map(hogs).collect::<Vec<_>>(),
            vec![2, 2, 2, 2],
            "{:?}",
            plan.moves
        );
        assert!(matches!(
            plan.moves[0].reason,
            Reason::CrossNode {
                from_node: 0,
                to_node: 1,
                ..
            }
        ));
        // And it stays there.
        assert!(run(&after).is_empty(), "{:?}", run(&after).moves);
    }

    #[test]
    fn affinity_forbids_only_useful_move() {
        let mut snap = build(1, &[(0, 1, &[1.0, 1.0]), (0, 1, &[])]);
        for t in &mut snap.doms[0].tasks {
            t.allowed = DomSet::single(0);
        }
        assert!(run(&snap).is_empty());
    }

    #[test]
    fn affinity_picks_the_next_best_allowed_task() {
        let mut snap = build(1, &[(0, 1, &[0.5, 0.4, 1.0]), (0, 1, &[])]);
        // 0.5 fits the 0.95 target best... after 1.0, which is pinned.
        snap.doms[0].tasks[2].allowed = DomSet::single(0);
        let plan = run(&snap);
        check_plan(&snap, &plan, &BalancerConfig::default());
        assert_eq!(plan.moves[0].load, 0.5);
        assert!(plan.moves.iter().all(|m| m.load != 1.0));
    }

    #[test]
    fn best_fit_task_is_chosen() {
        // Gap 2.0 on equal single-CPU domains: 1.0 is ideal.
        let snap = build(1, &[(0, 1, &[0.1, 0.3, 0.9, 0.7]), (0, 1, &[])]);
        let plan = run(&snap);
        check_plan(&snap, &plan, &BalancerConfig::default());
        assert_eq!(plan.moves[0].load, 0.9);
        assert_eq!(plan.moves.len(), 2);
        assert_eq!(plan.moves[1].load, 0.1);
    }

    #[test]
    fn tasks_too_heavy_to_help() {
        // Gap of 1.0; moving the 3.0 task would leave a gap of 5.0.
        let mut snap = build(1, &[(0, 1, &[3.0]), (0, 1, &[])]);
        snap.doms[1].load = 2.0;
        assert!(run(&snap).is_empty());
    }

    #[test]
    fn no_swap_sends_a_hog_where_every_cpu_has_one() {
        // vm_balance-19047, late in the window: two hogs per domain, and
        // domain 3 also showed 1.08 of load no candidate accounted for (a
        // `ps` the test ran). Swapping a hog for domain 2's sampler (0.43)
        // evened the figures and left three hogs on domain 2's two CPUs
        // until a hog went back 3 s later.
        let mut snap = build(
            2,
            &[
                (0, 2, &[1.0, 1.0]),
                (0, 2, &[1.0, 1.0]),
                (1, 2, &[0.87, 0.87, 0.43]),
                (1, 2, &[1.0, 1.0]),
            ],
        );
        snap.doms[3].load += 1.08;
        let cfg = BalancerConfig::default();
        let plan = balance(&snap, &cfg).unwrap();
        assert!(plan.moves.iter().all(|m| m.load < 0.5), "{plan:?}");
    }

    #[test]
    fn hogs_are_swapped_for_small_tasks() {
        // vm_balance-32309: node 0's domains held 3 CPU hogs and 1 hog plus
        // ~1.1 CPUs of small tasks (the daemon, the test's sampler, the rest
        // not among the candidates). Moving a hog overshoots, moving a small
        // task widens the gap: only a swap evens them.
        let mut snap = build(
            2,
            &[
                (0, 2, &[1.0, 1.0, 1.0]),
                (0, 2, &[1.0, 0.45, 0.3]),
                (1, 2, &[1.0, 1.0]),
                (1, 2, &[1.0, 1.0]),
            ],
        );
        snap.doms[1].load += 0.33;
        let cfg = BalancerConfig::default();
        let plan = balance(&snap, &cfg).unwrap();
        let after = check_plan(&snap, &plan, &cfg);
        let moves: Vec<(usize, usize, f64)> = plan
            .moves
            .iter()
            .map(|m| (m.from_dom, m.to_dom, m.load))
            .collect();
        assert_eq!(moves, [(0, 1, 1.0), (1, 0, 0.45)]);
        assert!(after.spread() < snap.spread());
        // Without room for two moves it stays as it was.
        let one = BalancerConfig {
            max_moves_per_round: 1,
            ..cfg
        };
        assert!(balance(&snap, &one).unwrap().is_empty());
        // Later rounds (node 0 still carries the small tasks) move only
        // those: two hogs per domain stay.
        let mut snap = after;
        for _ in 0..4 {
            let plan = balance(&snap, &cfg).unwrap();
            assert!(plan.moves.iter().all(|m| m.load < 1.0), "{plan:?}");
            snap = check_plan(&snap, &plan, &cfg);
        }
        assert!(balance(&snap, &cfg).unwrap().is_empty());
        let hogs: Vec<usize> = snap
            .doms
            .iter()
            .map(|d| d.tasks.iter().filter(|t| t.load == 1.0).count())
            .collect();
        assert_eq!(hogs, [2, 2, 2, 2]);
    }

    #[test]
    fn swap_respects_affinity_of_the_task_coming_back() {
        let mut snap = build(1, &[(0, 2, &[1.0, 1.0, 1.0]), (0, 2, &[1.0, 0.45])]);
        snap.doms[1].load += 0.63;
        // The small task may not leave its domain: no swap, and no move.
        snap.doms[1].tasks[1].allowed = DomSet::single(1);
        assert!(run(&snap).is_empty());
    }

    #[test]
    fn overshoot_is_bounded() {
        // Gap 1.0; a 0.9 task leaves the pair 0.8 apart the other way. (The
        // 0.5 task may not leave, or swapping the two would even them.)
        let mut snap = build(1, &[(0, 1, &[0.9]), (0, 1, &[0.5])]);
        snap.doms[0].load += 0.6;
        snap.doms[1].tasks[0].allowed = DomSet::single(1);
        let plan = run(&snap);
        assert!(plan.is_empty(), "{plan:?}");
        // Allowing more overshoot lets it go, and the gap still shrinks.
        let cfg = BalancerConfig {
            max_overshoot: 0.9,
            ..Default::default()
        };
        let plan = balance(&snap, &cfg).unwrap();
        check_plan(&snap, &plan, &cfg);
        assert_eq!(plan.moves[0].load, 0.9);
    }

    #[test]
    fn single_domain_gives_empty_plan() {
        let snap = build(1, &[(0, 4, &[3.0, 2.0, 7.0])]);
        let plan = run(&snap);
        assert!(plan.is_empty());
        assert_eq!(plan.doms[0].load_after, 12.0);
    }

    #[test]
    fn zero_load_gives_empty_plan() {
        let snap = build(2, &[(0, 2, &[0.0]), (0, 2, &[]), (1, 2, &[0.0])]);
        assert!(run(&snap).is_empty());
        assert!(run(&Snapshot::default()).is_empty());
    }

    #[test]
    fn unequal_capacities_are_compared_per_cpu() {
        // Same per-CPU load, very different totals: nothing to do.
        let snap = build(1, &[(0, 4, &[1.0, 1.0, 1.0, 1.0]), (0, 1, &[1.0])]);
        assert!(run(&snap).is_empty());

        // 1.0 vs 0.0 per CPU, average 0.8: one task goes to the small domain,
        // which then sits at 1.0 vs 0.75, and stays there.
        let snap = build(1, &[(0, 4, &[1.0, 1.0, 1.0, 1.0]), (0, 1, &[])]);
        let plan = run(&snap);
        let cfg = BalancerConfig::default();
        let after = check_plan(&snap, &plan, &cfg);
        assert_eq!(plan.moves.len(), 1);
        assert_eq!((plan.moves[0].from_dom, plan.moves[0].to_dom), (0, 1));
        assert!(run(&after).is_empty());
    }

    #[test]
    fn move_never_pushes_a_side_past_the_other() {
        // Small source, huge destination: the 0.9 task would shrink the gap
        // (1.0 -> ~0.4) yet drop the source to 0.1, below the destination's
        // old 0.5 and below the third domain, widening the machine's spread.
        let snap = build(
            1,
            &[(0, 1, &[0.9, 0.1]), (0, 100, &[0.5; 100]), (0, 1, &[0.55])],
        );
        let plan = run(&snap);
        check_plan(&snap, &plan, &BalancerConfig::default());
        assert!(plan.moves.iter().all(|m| m.load != 0.9), "{plan:?}");
    }

    #[test]
    fn task_pinned_to_own_domain_is_not_moved() {
        let mut snap = build(1, &[(0, 1, &[1.0, 0.2]), (0, 1, &[])]);
        snap.doms[0].tasks[0].allowed = DomSet::single(0);
        let plan = run(&snap);
        check_plan(&snap, &plan, &BalancerConfig::default());
        assert_eq!(plan.moves.len(), 1);
        assert_eq!(plan.moves[0].pid, snap.doms[0].tasks[1].pid);
    }

    #[test]
    fn max_moves_cap_is_respected() {
        let hot = [0.1; 100];
        let mut doms: Vec<(usize, u32, &[f64])> = vec![(0, 1, &hot), (1, 1, &hot)];
        for node in 0..2 {
            for _ in 0..7 {
                doms.push((node, 1, &[]));
            }
        }
        let snap = build(2, &doms);
        let cfg = BalancerConfig {
            max_moves_per_round: 3,
            ..Default::default()
        };
        let plan = balance(&snap, &cfg).unwrap();
        check_plan(&snap, &plan, &cfg);
        // Two nodes, each hot domain can feed its own node: 3 per node.
        assert_eq!(plan.moves.len(), 6);
        let cfg = BalancerConfig {
            max_moves_per_round: 0,
            ..Default::default()
        };
        assert!(balance(&snap, &cfg).unwrap().is_empty());
    }

    #[test]
    fn min_task_load_is_respected() {
        let snap = build(1, &[(0, 1, &[0.005; 200]), (0, 1, &[])]);
        assert!(run(&snap).is_empty());
        let cfg = BalancerConfig {
            min_task_load: 0.001,
            ..Default::default()
        };
        assert_eq!(balance(&snap, &cfg).unwrap().moves.len(), 8);
    }

    #[test]
    fn duplicate_pid_moves_once() {
        let mut snap = build(1, &[(0, 1, &[0.5, 0.5, 0.5, 0.5]), (0, 1, &[])]);
        for t in &mut snap.doms[0].tasks {
            t.pid = 42;
        }
        let plan = run(&snap);
        assert_eq!(plan.moves.len(), 1);
    }

    #[test]
    fn zero_capacity_domain_is_ignored() {
        let snap = build(1, &[(0, 0, &[5.0]), (0, 1, &[1.0]), (0, 1, &[1.0])]);
        let plan = run(&snap);
        assert!(plan.is_empty());
        let snap = build(1, &[(0, 1, &[1.0, 1.0]), (0, 0, &[])]);
        assert!(run(&snap).is_empty());
    }

    #[test]
    fn invalid_snapshots_are_rejected() {
        let cfg = BalancerConfig::default();
        let mut snap = build(1, &[(0, 1, &[1.0])]);
        snap.doms[0].load = f64::NAN;
        assert!(matches!(
            balance(&snap, &cfg),
            Err(SnapshotError::BadDomainLoad { .. })
        ));
        // Bad tasks are reported by validate() but only skipped by balance().
        let mut snap = build(1, &[(0, 1, &[1.0, f64::NAN]), (0, 1, &[])]);
        snap.doms[0].load = 1.0;
        snap.doms[0].tasks[0].load = -1.0;
        assert!(matches!(
            snap.validate(),
            Err(SnapshotError::BadTaskLoad { .. })
        ));
        assert!(balance(&snap, &cfg).unwrap().is_empty());
        let mut snap = build(1, &[(0, 1, &[1.0, 1.0]), (0, 1, &[])]);
        snap.doms[0].tasks[0].dom = 1;
        snap.doms[0].tasks[1].dom = 1;
        assert!(matches!(
            snap.validate(),
            Err(SnapshotError::TaskInWrongDomain { .. })
        ));
        assert!(balance(&snap, &cfg).unwrap().is_empty());
        let snap = build(1, &[(3, 1, &[1.0])]);
        let err = balance(&snap, &cfg).unwrap_err();
        assert!(matches!(err, SnapshotError::NodeOutOfRange { .. }));
        assert!(!err.to_string().is_empty());
    }

    #[test]
    fn nonsense_config_does_not_panic() {
        let snap = build(2, &[(0, 1, &[1.0, 1.0]), (0, 1, &[]), (1, 1, &[])]);
        for cfg in [
            BalancerConfig {
                cross_node_threshold: f64::NAN,
                intra_node_threshold: f64::NAN,
                min_task_load: f64::NAN,
                max_overshoot: f64::NAN,
                ..Default::default()
            },
            BalancerConfig {
                cross_node_threshold: -1.0,
                intra_node_threshold: -1.0,
                min_task_load: -1.0,
                max_overshoot: 7.0,
                ..Default::default()
            },
        ] {
            let plan = balance(&snap, &cfg).unwrap();
            check_plan(
                &snap,
                &plan,
                &BalancerConfig {
                    min_task_load: 0.0,
                    ..cfg
                },
            );
        }
    }

    #[test]
    fn apply_relists_moved_tasks() {
        let snap = build(1, &[(0, 1, &[1.0, 1.0]), (0, 1, &[])]);
        let plan = run(&snap);
        let after = plan.apply(&snap);
        let mv = &plan.moves[0];
        assert!(after.doms[0].tasks.iter().all(|t| t.pid != mv.pid));
        let t = after.doms[1]
            .tasks
            .iter()
            .find(|t| t.pid == mv.pid)
            .unwrap();
        assert_eq!(t.dom, 1);
        assert_eq!((after.doms[0].load, after.doms[1].load), (1.0, 1.0));
        // Out-of-range moves are ignored rather than panicking.
        let bogus = Plan {
            moves: vec![Move {
                pid: 1,
                from_dom: 9,
                to_dom: 0,
                load: 1.0,
                reason: Reason::IntraNode {
                    node: 0,
                    imbalance: mv_imbalance(),
                },
            }],
            ..Default::default()
        };
        assert_eq!(bogus.apply(&snap), snap);
    }

    fn mv_imbalance() -> Imbalance {
        Imbalance {
            src_load_pc: 0.0,
            dst_load_pc: 0.0,
            avg_load_pc: 0.0,
        }
    }

    #[test]
    fn large_machine_is_balanced_quickly() {
        let mut doms = Vec::new();
        let loads: Vec<Vec<f64>> = (0..MAX_DOMS)
            .map(|d| {
                (0..1024)
                    .map(|i| ((d * 7919 + i * 104729) % 1000) as f64 / 1000.0 * (1 + d % 3) as f64)
                    .collect()
            })
            .collect();
        for (d, l) in loads.iter().enumerate() {
            doms.push((d / (MAX_DOMS / 8), 8, l.as_slice()));
        }
        let snap = build(8, &doms);
        let plan = run(&snap);
        check_plan(&snap, &plan, &BalancerConfig::default());
        assert!(!plan.is_empty());
    }

    /// Random snapshots: up to 3 nodes of up to 4 domains, random
    /// capacities, loads, affinities and some load that is not a candidate.
    fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
        (1usize..=3, 1usize..=4).prop_flat_map(|(nr_nodes, per_node)| {
            let nr_doms = nr_nodes * per_node;
            let dom = (
                1u32..=8,
                0.0f64..3.0,
                prop::collection::vec(
                    (0.0f64..2.0, any::<u16>(), prop::bool::weighted(0.7)),
                    0..12,
                ),
            );
            prop::collection::vec(dom, nr_doms).prop_map(move |doms| {
                let mut pid = 0;
                let doms = doms
                    .into_iter()
                    .enumerate()
                    .map(|(id, (capacity, extra, tasks))| {
                        let tasks: Vec<TaskSnap> = tasks
                            .into_iter()
                            .map(|(load, mask, free)| {
                                pid += 1;
                                let allowed = if free {
                                    DomSet::full(nr_doms)
                                } else {
                                    (0..nr_doms)
                                        .filter(|d| *d == id || mask & (1 << d) != 0)
                                        .collect()
                                };
                                TaskSnap {
                                    pid,
                                    dom: id,
                                    load,
                                    allowed,
                                }
                            })
                            .collect();
                        DomainSnap {
                            node: id / per_node,
                            capacity,
                            load: extra + tasks.iter().map(|t| t.load).sum::<f64>(),
                            tasks,
                        }
                    })
                    .collect();
                Snapshot { nr_nodes, doms }
            })
        })
    }

    fn arb_config() -> impl Strategy<Value = BalancerConfig> {
        (
            0.0f64..0.5,
            0.0f64..0.5,
            0usize..10,
            0.0f64..0.2,
            0.0f64..0.99,
        )
            .prop_map(
                |(cross, intra, max_moves, min_load, overshoot)| BalancerConfig {
                    cross_node_threshold: cross,
                    intra_node_threshold: intra,
                    max_moves_per_round: max_moves,
                    min_task_load: min_load,
                    max_overshoot: overshoot,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        #[test]
        fn plan_never_worsens_imbalance(snap in arb_snapshot()) {
            let cfg = BalancerConfig::default();
            let plan = balance(&snap, &cfg).unwrap();
            let after = check_plan(&snap, &plan, &cfg);
            prop_assert!(node_spread(&after) <= node_spread(&snap) + EPS);
        }

        #[test]
        fn any_config_keeps_invariants(snap in arb_snapshot(), cfg in arb_config()) {
            let plan = balance(&snap, &cfg).unwrap();
            check_plan(&snap, &plan, &cfg);
        }

        #[test]
        fn balanced_snapshot_gives_empty_plan(
            nr_nodes in 1usize..=4,
            per_node in 1usize..=8,
            capacity in 1u32..=16,
            tasks in prop::collection::vec(0.0f64..1.0, 0..10),
            extra in 0.0f64..4.0,
        ) {
            let load: f64 = extra + tasks.iter().sum::<f64>();
            let doms: Vec<(usize, u32, &[f64])> = (0..nr_nodes * per_node)
                .map(|d| (d / per_node, capacity, tasks.as_slice()))
                .collect();
            let mut snap = build(nr_nodes, &doms);
            for d in &mut snap.doms {
                d.load = load;
            }
            prop_assert!(balance(&snap, &BalancerConfig::default()).unwrap().is_empty());
        }

        #[test]
        fn default_config_converges_in_few_rounds(snap in arb_snapshot()) {
            let cfg = BalancerConfig::default();
            prop_assert!(rounds_to_settle(snap, &cfg, ROUNDS).is_some());
        }

        /// Not a check: prints how many rounds each random snapshot takes
        /// to settle under the default config ("rounds N"), for setting
        /// `ROUNDS`. Run by hand with `PROPTEST_CASES=1000000 cargo test
        /// --release --lib rounds_to_settle_histogram -- --ignored
        /// --nocapture | grep '^rounds' | sort | uniq -c`.
        #[test]
        #[ignore]
        fn rounds_to_settle_histogram(snap in arb_snapshot()) {
            let cfg = BalancerConfig::default();
            match rounds_to_settle(snap, &cfg, 64) {
                Some(rounds) => println!("rounds {rounds}"),
                None => println!("rounds 65+"),
            }
        }

        #[test]
        fn repeated_rounds_converge(snap in arb_snapshot(), cfg in arb_config()) {
            let cfg = BalancerConfig { max_moves_per_round: cfg.max_moves_per_round.max(1), ..cfg };
            prop_assert!(rounds_to_settle(snap, &cfg, 64).is_some(), "no convergence after 64 rounds");
        }
    }
}
