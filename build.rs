// Build script: compiles the BPF half of scx_rebal (bpf/main.bpf.c) into a
// libbpf skeleton and turns bpf/intf.h, the one header both halves share,
// into Rust with bindgen. The scx headers and vmlinux.h come from the
// scx_cargo crate. Debian installs clang as `clang-19`; BPF_CLANG picks it.
// It also compiles bpf/arith.h, the arithmetic both halves use, for this
// host (src/arith.c), with bindgen writing its Rust declarations, and finds
// the git commit that `--version` reports.
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    git_commit();
    if std::env::var_os("BPF_CLANG").is_none()
        && which("clang").is_none()
        && which("clang-19").is_some()
    {
        // SAFETY: build scripts are single-threaded at this point.
        unsafe { std::env::set_var("BPF_CLANG", "clang-19") };
    }
    println!("cargo:rerun-if-changed=bpf");
    let result = scx_cargo::BpfBuilder::new().and_then(|mut b| {
        b.enable_intf("bpf/intf.h", "bpf_intf.rs")
            .enable_skel("bpf/main.bpf.c", "bpf")
            .compile_link_gen()
    });
    if let Err(e) = result {
        eprintln!("error: building the BPF scheduler failed: {e:?}");
        eprintln!("hint: install clang-19 (Debian: apt-get install clang-19) or set BPF_CLANG");
        std::process::exit(1);
    }
    if let Err(e) = host_arith() {
        eprintln!("error: building bpf/arith.h for the host failed: {e}");
        std::process::exit(1);
    }
}

/// bpf/arith.h as a host library (src/arith.c) and its Rust declarations.
fn host_arith() -> Result<(), String> {
    println!("cargo:rerun-if-changed=src/arith.c");
    cc::Build::new()
        .file("src/arith.c")
        .warnings(true)
        .try_compile("rebal_arith")
        .map_err(|e| e.to_string())?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    bindgen::Builder::default()
        .header("bpf/arith.h")
        .clang_arg("-DREBAL_ARITH_FN=")
        .allowlist_function("rebal_.*")
        .generate()
        .map_err(|e| format!("bindgen: {e}"))?
        .write_to_file(out.join("arith_sys.rs"))
        .map_err(|e| format!("writing arith_sys.rs: {e}"))
}

fn which(cmd: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

/// Sets SCX_REBAL_GIT_COMMIT for `--version`: the value of that variable
/// when the builder sets it (a packager building from a tarball), else the
/// commit of the git checkout holding this crate, else "git commit unknown".
fn git_commit() {
    println!("cargo:rerun-if-env-changed=SCX_REBAL_GIT_COMMIT");
    let commit = match std::env::var("SCX_REBAL_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => checkout_commit().unwrap_or_else(|| "git commit unknown".to_string()),
    };
    println!("cargo:rustc-env=SCX_REBAL_GIT_COMMIT={commit}");
}

fn checkout_commit() -> Option<String> {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    // Only this crate's own checkout: a tarball unpacked inside some other
    // repository (a distribution's packaging tree) must not report its commit.
    let top = git(&dir, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    // Rebuild when HEAD moves: its reflog is written at every commit and
    // checkout (HEAD itself only names the branch). Only files that exist:
    // cargo would rerun this script on every build for a missing one.
    for name in ["HEAD", "logs/HEAD"] {
        if let Some(p) = git(&dir, &["rev-parse", "--git-path", name]) {
            let p = dir.join(p);
            if p.is_file() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
    let hash = git(&dir, &["rev-parse", "--short=12", "HEAD"])?;
    Some(format!("git {hash}"))
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}
