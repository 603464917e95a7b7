//! Topology -> domains on every fixture in topology-fixtures/: each folder is
//! a pruned copy of a real (or edited real) kernel's /sys, read through hwloc
//! exactly as on a machine, with the domains expected written beside it.

use std::fs;
use std::path::PathBuf;

use scx_rebal::domains::Domains;
use scx_rebal::topology::Topology;

fn fixtures() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("topology-fixtures");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .expect("topology-fixtures/ is missing")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("expected.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_fixture_gives_its_expected_domains() {
    let dirs = fixtures();
    assert!(
        dirs.len() >= 7,
        "expected at least 7 fixtures, found {dirs:?}"
    );
    let mut failures = Vec::new();
    for dir in &dirs {
        let expected: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
        let got = Topology::read(Some(dir)).and_then(|t| Domains::from_topology(&t));
        match got {
            Ok(d) => {
                let got: serde_json::Value = serde_json::from_str(&d.to_json()).unwrap();
                if got != expected {
                    failures.push(format!("{}: got {got}, expected {expected}", dir.display()));
                }
            }
            Err(e) => failures.push(format!("{}: {e:#}", dir.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn smt_is_detected_where_threads_share_a_core() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("topology-fixtures");
    let smt = Topology::read(Some(&root.join("2node-2llc"))).unwrap();
    assert!(!smt.smt());
    assert_eq!(smt.nodes(), vec![0, 1]);
}

#[test]
fn cpumasks_are_checked_against_the_fixture() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("topology-fixtures");
    let topo = Topology::read(Some(&root.join("offline-cpus"))).unwrap();
    let m = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // CPUs 3 and 6 are offline there.
    let err = Domains::from_cpumasks(&m(&["0x0f", "0xf0"]), &topo).unwrap_err();
    assert!(
        format!("{err:#}").contains("CPU 3, which does not exist or is offline"),
        "{err:#}"
    );
    let ok = Domains::from_cpumasks(&m(&["0x07", "0xb0"]), &topo).unwrap();
    assert_eq!(ok.domains.len(), 2);
    assert_eq!(ok.domains[1].node, 1);
}

#[test]
fn a_missing_sysfs_root_is_a_clear_error() {
    let err = Topology::read(Some(&PathBuf::from("/nonexistent-sysfs"))).unwrap_err();
    assert!(
        format!("{err:#}").contains("is not a sysfs copy"),
        "{err:#}"
    );
}
