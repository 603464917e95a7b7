//! Bad input, as a table: every option that takes a value, given malformed,
//! out-of-range or contradictory values, must be refused with one clear
//! error line and exit status 1, before anything is loaded (2 is kept for
//! "the kernel ejected the scheduler"). These run on any machine: options
//! are checked before root, sched_ext or a running scheduler are.

mod fixture;

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_scx_rebal");

/// The sysfs copy the option checks run against (extracted; removed when
/// dropped).
fn fixture() -> fixture::Fixture {
    fixture::extract("2node-4llc-smt")
}

/// (arguments, text the first error line must contain)
const CASES: &[(&[&str], &str)] = &[
    (&["--slice-us", "0"], "0 is not in 50..=1000000"),
    (&["--slice-us", "abc"], "invalid digit"),
    (&["--slice-us", "2000000"], "not in 50..=1000000"),
    (
        &["--slice-us", "1000", "--slice-min-us", "500"],
        "cannot be used with",
    ),
    (
        &["--slice-min-us", "30000"],
        "--slice-min-us 30000 is more than --slice-max-us 20000",
    ),
    (&["--slice-max-us", "10"], "10 is not in 50..=1000000"),
    (&["--interval", "0"], "must be more than 0"),
    (&["--interval", "nan"], "must be more than 0"),
    (&["--interval", "1e9"], "at most 86400 seconds"),
    (&["--interval", "two"], "is not a number of seconds"),
    (&["--tune-interval", "0.001"], "too short"),
    (&["--tune-interval", "5"], "longer than --interval"),
    (&["--load-half-life", "-1"], "must be more than 0"),
    (&["--run-for", "0"], "must be more than 0"),
    (&["--direct-greedy-under", "101"], "101 is not in 0..=100"),
    (&["--kick-greedy-under", "x"], "invalid digit"),
    (&["--sleeper-credit-pct", "101"], "101 is not in 0..=100"),
    (&["--daemon-nice", "-21"], "-21 is not in -20..=19"),
    (&["--daemon-nice", "20"], "20 is not in -20..=19"),
    (&["--cpumasks", "0xzz"], "is not a hex mask"),
    (&["--cpumasks", "0x0", "0xff"], "is empty"),
    (
        &["--cpumasks", "0x0f", "0x18", "0xe0"],
        "overlaps cpumask \"0x0f\" on CPU 3",
    ),
    (
        &["--cpumasks", "0x0f", "0xf0", "0x100"],
        "names CPU 8, which does not exist or is offline",
    ),
    (
        &["--cpumasks", "0x0f"],
        "online CPU 4 is in none of the given cpumasks",
    ),
    (
        &["--stats-json", "/nonexistent/dir/stats.jsonl"],
        "opening --stats-json file",
    ),
    (&["--stats", "0"], "must be more than 0"),
    (&["--stats", "-3"], "must be more than 0"),
    (
        &["--stats", "1", "--stats-json", "-"],
        "both write to stdout",
    ),
    (&["--monitor", "1", "--stats", "1"], "cannot be used with"),
    (&["--monitor", "1", "--run-for", "5"], "cannot be used with"),
    (&["--max-domain-cpus", "0"], "0 is not in 1..=1024"),
    (&["--max-domain-cpus", "x"], "invalid digit"),
    (&["--max-domain-cpus", "-4"], "unexpected argument"),
    (&["--max-domain-cpus", "1025"], "1025 is not in 1..=1024"),
    (
        &["--max-domain-cpus", "4", "--cpumasks", "0xf"],
        "cannot be used with",
    ),
    (
        &["--hybrid-together", "--cpumasks", "0x0f", "0xf0"],
        "cannot be used with",
    ),
    // The fixture's cores have two threads each.
    (
        &["--max-domain-cpus", "1"],
        "--max-domain-cpus 1 is less than the 2 hardware threads of one core",
    ),
    (
        &["--profile", "turbo"],
        "invalid value 'turbo' for '--profile <PROFILE>'",
    ),
    // A value the profile set, contradicted by one given: the message says
    // where the value the user did not type came from.
    (
        &["--profile", "powersave", "--slice-max-us", "8000"],
        "--slice-min-us 20000 (from --profile powersave) is more than --slice-max-us 8000",
    ),
    (&["--man", "--profile", "gaming"], "cannot be used with"),
    (&["--completions", "tcsh"], "invalid value 'tcsh'"),
    (&["--no-such-option"], "unexpected argument"),
];

#[test]
fn bad_options_are_refused_with_one_clear_line() {
    let mut failures = Vec::new();
    let sysfs = fixture();
    for (args, want) in CASES {
        let out = Command::new(BIN)
            .arg("--sysfs-root")
            .arg(&sysfs.dir)
            .args(*args)
            .output()
            .expect("cannot run scx_rebal");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("");
        let ok = out.status.code() == Some(1)
            && first.contains("error")
            && first.contains(want)
            && out.stdout.is_empty();
        if !ok {
            failures.push(format!(
                "{args:?}: exit {:?}, first line {first:?} (want {want:?})",
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// --dump-domains honours the topology options: the same domains as the
/// fixture's expected files.
#[test]
fn dump_domains_follows_the_topology_options() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("hybrid-i7-12700h", &[], "expected.json"),
        (
            "hybrid-i7-12700h",
            &["--hybrid-together"],
            "expected-together.json",
        ),
        (
            "1node-1llc-xeon8480",
            &["--max-domain-cpus", "16"],
            "expected-max16.json",
        ),
    ];
    for (fixture, args, file) in cases {
        let f = fixture::extract(fixture);
        let out = Command::new(BIN)
            .arg("--sysfs-root")
            .arg(&f.dir)
            .arg("--dump-domains")
            .args(*args)
            .output()
            .expect("cannot run scx_rebal");
        assert_eq!(out.status.code(), Some(0), "{fixture} {args:?}");
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let want: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f.source().join(file)).unwrap()).unwrap();
        assert_eq!(got, want, "{fixture} {args:?}");
    }
}

#[test]
fn help_and_version_exit_zero() {
    for flag in ["--help", "--version"] {
        let out = Command::new(BIN)
            .arg(flag)
            .output()
            .expect("cannot run scx_rebal");
        assert_eq!(out.status.code(), Some(0), "{flag}");
        assert!(!out.stdout.is_empty(), "{flag} printed nothing");
    }
}

/// On a machine without sched_ext (like the hosts the VM tests run on),
/// good options get as far as the environment check and stop there.
#[test]
fn no_sched_ext_is_a_clear_error() {
    if Path::new("/sys/kernel/sched_ext").exists() {
        return; // a sched_ext machine: the VM tests cover the real thing
    }
    let sysfs = fixture();
    let out = Command::new(BIN)
        .arg("--sysfs-root")
        .arg(&sysfs.dir)
        .output()
        .expect("cannot run scx_rebal");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // Root is checked first; either refusal is one clear line.
    assert!(
        stderr.contains("this kernel has no sched_ext") || stderr.contains("must run as root"),
        "{stderr}"
    );
}
