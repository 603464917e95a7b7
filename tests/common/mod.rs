//! Shared helpers for the VM integration tests: find the sched_ext kernel, boot a
//! VM through scripts/vm-run, and read the files the guest left in its rwdir.
//! A missing kernel is a failure, never a skip: these tests are the only real runs.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository root (where Cargo.toml, scripts/ and tests/vm/ live).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The scheduler binary cargo built for this test run (same profile as the
/// test), or the one SCX_REBAL_TEST_BINARY names: to see a check fail
/// against another build (an older commit, a build broken on purpose).
pub fn sched_binary() -> PathBuf {
    match std::env::var_os("SCX_REBAL_TEST_BINARY") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_scx_rebal")),
    }
}

/// The kernel image from scripts/find-kernel.sh; panics with its advice if none.
pub fn find_kernel() -> PathBuf {
    let out = Command::new(repo_root().join("scripts/find-kernel.sh"))
        .stdin(Stdio::null())
        .output()
        .expect("cannot run scripts/find-kernel.sh");
    if !out.status.success() {
        panic!(
            "no sched_ext kernel for the VM tests:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    PathBuf::from(path)
}

/// The cargo target directory: the test binary is target/<profile>/deps/<name>-<hash>.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .filter(|d| d.join("CACHEDIR.TAG").exists() || d.ends_with("target"))
        .unwrap_or_else(|| repo_root().join("target"))
}

/// A fresh, empty directory for one test's guest output: target/vm-tests/<name>-<pid>.
/// Under target/ so it is on the host root the guest sees, and kept after the run.
pub fn fresh_rwdir(name: &str) -> PathBuf {
    let dir = target_dir()
        .join("vm-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("cannot create the rwdir");
    dir.canonicalize().expect("cannot resolve the rwdir")
}

/// What one VM run gave: the guest command's exit status and the merged console output.
pub struct VmRun {
    pub status: Option<i32>,
    pub output: String,
}

/// Boots a VM of `shape` (see scripts/vm-run) with `rwdir` writable and runs `args`
/// in it. The console output is also saved as <rwdir>/vm-run.log.
pub fn vm_run(shape: &str, rwdir: &Path, timeout_secs: u32, args: &[&str]) -> VmRun {
    let kernel = find_kernel(); // fail here, with the advice, before booting anything
    eprintln!(
        "vm-run: shape {shape}, kernel {}, rwdir {}",
        kernel.display(),
        rwdir.display()
    );
    let out = Command::new(repo_root().join("scripts/vm-run"))
        .current_dir(repo_root())
        .env("SCX_REBAL_KERNEL", &kernel)
        .args(["--shape", shape, "--rwdir"])
        .arg(rwdir)
        .args(["--timeout", &timeout_secs.to_string(), "--"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run scripts/vm-run");
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    let _ = fs::write(rwdir.join("vm-run.log"), &output);
    let _ = fs::write(
        rwdir.join("vm-run.status"),
        format!("{:?}", out.status.code()),
    );
    VmRun {
        status: out.status.code(),
        output,
    }
}

/// Boots a 2-node, 4-LLC guest and runs tests/vm/`script` in it as
/// `sh SCRIPT SCHED_BINARY RWDIR ARGS...`, in a fresh rwdir named `name`.
/// Returns the rwdir and the checks, the guest's exit status among them.
pub fn run_guest_script(
    name: &str,
    script: &str,
    timeout_secs: u32,
    args: &[&str],
) -> (PathBuf, Checks) {
    // SCX_REBAL_TEST_RECHECK=DIR: no boot, the checks run again on what an
    // earlier run left in DIR (to try a check on real guest output).
    if let Some(dir) = std::env::var_os("SCX_REBAL_TEST_RECHECK") {
        let dir = PathBuf::from(dir);
        let status = read(&dir.join("vm-run.status"));
        let mut c = Checks::default();
        c.check(
            status.trim() == "Some(0)",
            format!("the guest script exited with {}", status.trim()),
        );
        return (dir, c);
    }
    let dir = fresh_rwdir(name);
    // SCX_REBAL_TEST_SCRIPTS: another copy of tests/vm (one broken on
    // purpose, to see a check fail).
    let scripts = std::env::var_os("SCX_REBAL_TEST_SCRIPTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/vm"));
    let script = scripts.join(script);
    let (script, sched, rw) = (
        script.to_string_lossy().into_owned(),
        sched_binary().to_string_lossy().into_owned(),
        dir.to_string_lossy().into_owned(),
    );
    let mut argv = vec!["sh", script.as_str(), sched.as_str(), rw.as_str()];
    argv.extend_from_slice(args);
    let run = vm_run("2n4l", &dir, timeout_secs, &argv);
    let mut c = Checks::default();
    c.check(
        run.status == Some(0),
        format!("the guest script exited with {:?}", run.status),
    );
    (dir, c)
}

/// Kernel messages that mean the guest kernel itself went wrong, or that a
/// BPF scheduler was in trouble short of being ejected.
pub const BAD_DMESG: &[&str] = &[
    "runnable task stall",
    "watchdog failed",
    "scx_bpf_error",
    "BUG:",
    "Oops",
    "ops error detected without ops",
];

/// Why sched_ext may say it disabled a scheduler without anything being
/// wrong: stopped by its daemon, ejected for a CPU hotplug (which asks for
/// a restart), or by SysRq-S. kernel/sched/ext.c's scx_ops_disable_workfn
/// prints `sched_ext: BPF scheduler "NAME" disabled (REASON)` for every
/// exit, REASON from scx_exit_reason(); the others are "runtime error"
/// (the kernel caught the BPF scheduler doing something invalid),
/// "scx_bpf_error", "runnable task stall" and "unregistered from BPF".
pub const OK_DISABLE_REASONS: &[&str] = &[
    "unregistered from user space",
    "unregistered from the main kernel",
    "disabled by sysrq-S",
];

/// The scheduler name and reason of a `sched_ext: BPF scheduler "NAME"
/// disabled (REASON)` line.
pub fn disabled_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.split("sched_ext: BPF scheduler \"").nth(1)?;
    let (name, rest) = rest.split_once("\" disabled (")?;
    let reason = rest
        .strip_suffix(')')
        .or_else(|| rest.rsplit_once(')').map(|r| r.0))?;
    Some((name, reason))
}

/// Fails `c` for every line of the guest's dmesg.txt that has a BAD_DMESG
/// message or says a scheduler was disabled for another reason than
/// OK_DISABLE_REASONS, and when the file is missing.
pub fn check_dmesg(c: &mut Checks, dir: &Path) {
    let dmesg = read(&dir.join("dmesg.txt"));
    c.check(!dmesg.is_empty(), "dmesg.txt is missing or empty");
    for bad in BAD_DMESG {
        if let Some(line) = dmesg.lines().find(|l| l.contains(bad)) {
            c.0.push(format!("dmesg has `{bad}`: {line}"));
        }
    }
    for line in dmesg.lines() {
        if let Some((_, reason)) = disabled_line(line)
            && !OK_DISABLE_REASONS.contains(&reason)
        {
            c.0.push(format!("dmesg: a scheduler was ejected: {line}"));
        }
    }
}

/// "D dead, S stalled, +T ticks" (tests/vm/lib.sh's ticks_check): true
/// when no process died or went without CPU time, and they got some.
pub fn all_ran(ticks: Option<&str>) -> bool {
    ticks
        .and_then(|t| t.strip_prefix("0 dead, 0 stalled, +"))
        .and_then(|t| t.split_whitespace().next()?.parse::<u64>().ok())
        .is_some_and(|t| t > 0)
}

/// Fails `c` unless each of `stressors` did some work by stress-ng's own
/// count, from a "NAME OPS NAME OPS ..." line (its --metrics-brief bogo
/// ops, gathered by the guest script): evidence that it ran at all (from a
/// read-only cwd it exits at once).
pub fn check_stress_ops(c: &mut Checks, what: &str, line: Option<&str>, stressors: &[&str]) {
    let words: Vec<&str> = line.unwrap_or_default().split_whitespace().collect();
    for stressor in stressors {
        let n = words
            .iter()
            .position(|w| w == stressor)
            .and_then(|i| words.get(i + 1)?.parse::<u64>().ok());
        c.check(
            n.is_some_and(|n| n > 0),
            format!("{what}: stress-ng {stressor} did {n:?} bogo ops"),
        );
    }
}

/// A file's contents, or "" when it is missing (the asserts then say what is absent).
pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// The value of a "label: value" line as written by tests/vm/lib.sh's `record`.
pub fn field(text: &str, label: &str) -> Option<String> {
    let prefix = format!("{label}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_string())
}

/// Prints the named files of `dir` (the tail of long ones) for a failure report.
pub fn dump(dir: &Path, names: &[&str]) -> String {
    const MAX: usize = 8000;
    let mut s = String::new();
    for name in names {
        let text =
            fs::read_to_string(dir.join(name)).unwrap_or_else(|e| format!("<cannot read: {e}>"));
        let start = text.len().saturating_sub(MAX);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        let cut = if start > 0 { "[...]\n" } else { "" };
        s.push_str(&format!("===== {name} =====\n{cut}{}\n", &text[start..]));
    }
    s
}

/// Collects failed checks so one run reports all of them, not just the first.
#[derive(Default)]
pub struct Checks(pub Vec<String>);

impl Checks {
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.0.push(what.into());
        }
    }

    /// Panics listing every failed check followed by the given files of `dir`.
    pub fn finish(self, dir: &Path, files: &[&str]) {
        if !self.0.is_empty() {
            panic!(
                "{} check(s) failed:\n  - {}\n\nfiles in {}:\n{}",
                self.0.len(),
                self.0.join("\n  - "),
                dir.display(),
                dump(dir, files)
            );
        }
    }
}
