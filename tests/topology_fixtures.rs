//! Topology -> domains on every fixture in topology-fixtures/: each is a
//! pruned copy of a real (or edited real, or generated) kernel's /sys,
//! stored as one tarball (`NAME/sys.tar.xz`), extracted into a temporary
//! folder and read through hwloc exactly as on a machine, with the domains
//! expected written beside it.
//!
//! `expected.json` holds the default domains; `expected-<opts>.json` the
//! domains under options named in the file name, dash-separated:
//! `together` (--hybrid-together) and `maxN` (--max-domain-cpus N), e.g.
//! `expected-together-max8.json`.

mod fixture;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use scx_rebal::domains::{DomainOpts, Domains};
use scx_rebal::topology::Topology;

/// The options an `expected*.json` file name stands for.
fn opts_of(file: &str) -> Result<DomainOpts, String> {
    let stem = file
        .strip_prefix("expected")
        .and_then(|s| s.strip_suffix(".json"))
        .ok_or_else(|| format!("{file}: not an expected*.json"))?;
    let mut opts = DomainOpts::default();
    for tok in stem.split('-').filter(|t| !t.is_empty()) {
        if tok == "together" {
            opts.hybrid_together = true;
        } else if let Some(n) = tok.strip_prefix("max").and_then(|n| n.parse().ok()) {
            opts.max_domain_cpus = Some(n);
        } else {
            return Err(format!("{file}: unknown option {tok:?} in the name"));
        }
    }
    Ok(opts)
}

/// Every `expected*.json` of a fixture, sorted.
fn expectations(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("expected") && n.ends_with(".json"))
        .collect();
    v.sort();
    v
}

fn json_file(path: &Path) -> serde_json::Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(name: &str) -> Topology {
    let f = fixture::extract(name);
    Topology::read(Some(&f.dir)).unwrap_or_else(|e| panic!("fixture {name}: {e:#}"))
}

#[test]
fn every_fixture_gives_its_expected_domains() {
    let names = fixture::names();
    assert!(
        names.len() >= 17,
        "expected at least 17 fixtures, found {names:?}"
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    for name in &names {
        let src = fixture::root().join(name);
        if !src.join("expected.json").is_file() {
            failures.push(format!("{name}: no expected.json"));
            continue;
        }
        let f = fixture::extract(name);
        let topo = match Topology::read(Some(&f.dir)) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{name}: {e:#}"));
                continue;
            }
        };
        for file in expectations(&src) {
            let opts = match opts_of(&file) {
                Ok(o) => o,
                Err(e) => {
                    failures.push(format!("{name}: {e}"));
                    continue;
                }
            };
            let expected = json_file(&src.join(&file));
            checked += 1;
            match Domains::from_topology(&topo, &opts) {
                Ok(d) => {
                    let got: serde_json::Value = serde_json::from_str(&d.to_json()).unwrap();
                    if got != expected {
                        failures.push(format!("{name}/{file}: got {got}, expected {expected}"));
                    }
                }
                Err(e) => failures.push(format!("{name}/{file}: {e:#}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 24, "only {checked} expectations checked");
}

/// The repository tracks one data file per fixture: its tarball, beside its
/// expectations and SOURCE.txt, and nothing else (no extracted tree left
/// behind by a generator).
#[test]
fn each_fixture_is_one_tarball_beside_its_expectations() {
    let mut bad = Vec::new();
    for name in fixture::names() {
        let dir = fixture::root().join(&name);
        for need in [fixture::TARBALL, "SOURCE.txt", "expected.json"] {
            if !dir.join(need).is_file() {
                bad.push(format!("{name}: no {need}"));
            }
        }
        for e in fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
            let p = e.path();
            let ok = p.is_file()
                && (p.file_name() == Some(fixture::TARBALL.as_ref())
                    || fixture::allowed_beside_tarball(&p));
            if !ok {
                bad.push(format!("{name}: unexpected {}", p.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The cases the issues ask for are really there (a file renamed away
/// would otherwise just drop out of the loop above).
#[test]
fn option_and_failure_kind_expectations_exist() {
    let root = fixture::root();
    for f in [
        "hybrid-i7-12700h/expected.json",
        "hybrid-i7-12700h/expected-together.json",
        "hybrid-i7-12700h/expected-max6.json",
        "hybrid-i7-12700h/expected-together-max8.json",
        "hybrid-rk3588/expected-together.json",
        "1node-1llc-xeon8480/expected-max16.json",
        "1node-1llc-xeon8480/expected-max24.json",
        "2node-8llc-epyc7513/expected-max8.json",
        "nul-terminated/expected.json",
        "no-cpu-online/expected.json",
        "8node-nocache-opteron/expected.json",
    ] {
        assert!(root.join(f).is_file(), "{f} is missing");
    }
}

/// A fixture that cannot be had is a failure, not a skip.
#[test]
#[should_panic(expected = "no-such-fixture")]
fn a_missing_fixture_fails() {
    fixture::extract("no-such-fixture");
}

#[test]
#[should_panic(expected = "tar -xJf")]
fn a_broken_tarball_fails() {
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let dir = std::env::temp_dir().join(format!("scx_rebal-badtar-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let _cleanup = Cleanup(dir.clone());
    let bad = dir.join(fixture::TARBALL);
    fs::write(&bad, b"not xz at all").unwrap();
    fixture::extract_tarball("broken", &bad);
}

/// Files ending in "\n\0" read as the same machine as without the NUL:
/// CPUs, caches, nodes and the distances read by hand.
#[test]
fn nul_terminated_files_read_like_the_plain_ones() {
    let nul = read("nul-terminated");
    let plain = read("3node-6llc");
    assert_eq!(nul.cpus, plain.cpus);
    assert_eq!(nul.distances, plain.distances);
    assert_eq!(nul.distances.len(), 3, "{:?}", nul.distances);
    assert_eq!(nul.nodes(), vec![0, 1, 2]);
}

/// Without cpu/online (nor offline, possible, present) the online CPUs come
/// from the cpuN folders and their `online` files, as hwloc derives them.
#[test]
fn no_cpu_online_derives_the_online_cpus() {
    let derived = read("no-cpu-online");
    let listed = read("offline-cpus");
    let cpus: Vec<usize> = derived.cpus.iter().map(|c| c.cpu).collect();
    assert_eq!(cpus, vec![0, 1, 2, 4, 5, 7]);
    assert_eq!(derived.cpus, listed.cpus);
}

/// The 8-node machine whose cores share no cache reads as exactly that,
/// whatever CPU the test runs on: hwloc's x86 backend would add this
/// machine's L3 to the snapshot's first package.
#[test]
fn no_shared_cache_machine_gets_nothing_from_the_host() {
    let t = read("8node-nocache-opteron");
    assert_eq!(t.cpus.len(), 16);
    assert_eq!(t.nodes(), (0..8).collect::<Vec<_>>());
    let with_l3: Vec<usize> = t
        .cpus
        .iter()
        .filter(|c| c.l3.is_some())
        .map(|c| c.cpu)
        .collect();
    assert!(with_l3.is_empty(), "CPUs {with_l3:?} have an L3: {t:?}");
    let l2s: BTreeSet<Option<u32>> = t.cpus.iter().map(|c| c.l2).collect();
    assert_eq!(l2s.len(), 16, "every CPU has an L2 of its own: {t:?}");
    assert!(!l2s.contains(&None));
    assert!(!t.smt());
    assert_eq!(t.distance(0, 7), 20);
    assert_eq!(t.distance(3, 3), 10);
}

/// `--dump-domains --sysfs-root` prints the same domains whatever hwloc
/// environment it is started in: scx_rebal loads hwloc with its Linux
/// backend only, on the given root, and nothing of this machine's CPUs.
#[test]
fn sysfs_root_output_does_not_depend_on_the_hwloc_environment() {
    let bin = env!("CARGO_BIN_EXE_scx_rebal");
    let variants: &[&[(&str, &str)]] = &[
        &[],
        &[("HWLOC_COMPONENTS", "x86")],
        &[("HWLOC_COMPONENTS", "-linux")],
        &[("HWLOC_FSROOT", "/"), ("HWLOC_XMLFILE", "/nonexistent.xml")],
    ];
    let mut failures = Vec::new();
    for name in fixture::names() {
        let f = fixture::extract(&name);
        let want = json_file(&f.source().join("expected.json"));
        for env in variants {
            let mut cmd = Command::new(bin);
            for var in [
                "HWLOC_COMPONENTS",
                "HWLOC_FSROOT",
                "HWLOC_XMLFILE",
                "HWLOC_SYNTHETIC",
            ] {
                cmd.env_remove(var);
            }
            cmd.envs(env.iter().copied())
                .arg("--dump-domains")
                .arg("--sysfs-root")
                .arg(&f.dir);
            let out = cmd.output().expect("cannot run scx_rebal");
            let got: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
            if !out.status.success() || got.as_ref() != Some(&want) {
                failures.push(format!(
                    "{name} with {env:?}: exit {:?}, got {}, stderr {}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hybrid_fixtures_read_their_core_types() {
    use scx_rebal::topology::CoreKind;
    let intel = read("hybrid-i7-12700h");
    assert!(
        intel.cpus[..12]
            .iter()
            .all(|c| c.kind == Some(CoreKind::Performance))
    );
    assert!(
        intel.cpus[12..]
            .iter()
            .all(|c| c.kind == Some(CoreKind::Efficiency))
    );
    let arm = read("hybrid-rk3588");
    assert_eq!(arm.cpus[0].kind, Some(CoreKind::Efficiency));
    assert_eq!(arm.cpus[7].kind, Some(CoreKind::Performance));
    // Not hybrid: no kind anywhere.
    let plain = read("1node-1llc-4c8t");
    assert!(plain.cpus.iter().all(|c| c.kind.is_none()));
    assert!(plain.smt());
}

#[test]
fn smt_is_detected_where_threads_share_a_core() {
    let smt = read("2node-2llc");
    assert!(!smt.smt());
    assert_eq!(smt.nodes(), vec![0, 1]);
}

#[test]
fn cpumasks_are_checked_against_the_fixture() {
    let topo = read("offline-cpus");
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
