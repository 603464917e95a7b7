//! Cost of one balancer pass on deterministic, imbalanced snapshots of
//! growing size (nodes x domains per node x candidates per domain), up to
//! 8 x 8 x 1024 (64 domains, as many as the BPF side supports); and of building domains at
//! start (and at every hotplug restart) from the largest topology fixtures,
//! with and without `--max-domain-cpus`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use scx_rebal::balancer::{BalancerConfig, DomSet, DomainSnap, Snapshot, TaskSnap, balance};
use scx_rebal::domains::{DomainOpts, Domains};
use scx_rebal::topology::Topology;

#[path = "../tests/fixture/mod.rs"]
mod fixture;

/// xorshift64: deterministic and dependency-free, good enough for loads.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A machine where domains get a random "heat" multiplier, so some nodes and
/// some domains in every node are well above average. One task in eight is
/// restricted to its own node's domains, one in 32 pinned to its domain.
fn snapshot(nodes: usize, doms_per_node: usize, tasks_per_dom: usize) -> Snapshot {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let nr_doms = nodes * doms_per_node;
    let all = DomSet::full(nr_doms);
    let mut pid = 1;
    let doms = (0..nr_doms)
        .map(|dom| {
            let node = dom / doms_per_node;
            let node_set: DomSet = (node * doms_per_node..(node + 1) * doms_per_node).collect();
            let heat = 0.2 + 1.8 * rng.unit() * if node.is_multiple_of(2) { 1.5 } else { 0.7 };
            let tasks: Vec<TaskSnap> = (0..tasks_per_dom)
                .map(|_| {
                    pid += 1;
                    let allowed = match rng.next() % 32 {
                        0 => DomSet::single(dom),
                        1..=4 => node_set.clone(),
                        _ => all.clone(),
                    };
                    // One task in eight is busy (up to a whole CPU), the
                    // rest light, as on real machines: with thousands of
                    // candidates, most are under the balancer's
                    // min_task_load and only the busy ones can be moved.
                    let load = if rng.next().is_multiple_of(8) {
                        (heat * rng.unit()).min(1.0)
                    } else {
                        heat * rng.unit() * 2.0 / tasks_per_dom as f64
                    };
                    TaskSnap {
                        pid,
                        dom,
                        load,
                        allowed,
                    }
                })
                .collect();
            DomainSnap {
                node,
                capacity: 8,
                load: tasks.iter().map(|t| t.load).sum(),
                tasks,
            }
        })
        .collect();
    Snapshot {
        nr_nodes: nodes,
        doms,
    }
}

fn bench_balance(c: &mut Criterion) {
    let cfg = BalancerConfig::default();
    let mut group = c.benchmark_group("balance");
    for &(nodes, doms, tasks) in &[(1, 4, 64), (2, 8, 256), (4, 16, 512), (8, 8, 1024)] {
        let snap = snapshot(nodes, doms, tasks);
        let moves = balance(&snap, &cfg).map(|p| p.moves.len()).unwrap_or(0);
        assert!(moves > 0, "benchmark snapshot should need balancing");
        let id = BenchmarkId::from_parameter(format!("{nodes}x{doms}x{tasks}"));
        group.bench_with_input(id, &snap, |b, snap| {
            b.iter(|| balance(black_box(snap), black_box(&cfg)))
        });
    }
    group.finish();
}

fn bench_domains(c: &mut Criterion) {
    let mut group = c.benchmark_group("domains");
    for (fixture, max) in [
        ("2node-8llc-epyc7513", None),
        ("1node-1llc-xeon8480", None),
        ("1node-1llc-xeon8480", Some(16)),
    ] {
        let tree = fixture::extract(fixture);
        let topo = match Topology::read(Some(&tree.dir)) {
            Ok(t) => t,
            Err(e) => panic!("fixture {fixture}: {e:#}"),
        };
        let opts = DomainOpts {
            max_domain_cpus: max,
            ..Default::default()
        };
        let id = format!("{fixture}/max{}", max.map_or("-".into(), |m| m.to_string()));
        group.bench_function(id, |b| {
            b.iter(|| Domains::from_topology(black_box(&topo), black_box(&opts)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_balance, bench_domains);
criterion_main!(benches);
