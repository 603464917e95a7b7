// Build script: compiles the BPF half of scx_rebal (bpf/main.bpf.c) into a
// libbpf skeleton and turns bpf/intf.h, the one header both halves share,
// into Rust with bindgen. The scx headers and vmlinux.h come from the
// scx_cargo crate. Debian installs clang as `clang-19`; BPF_CLANG picks it.
// It also compiles bpf/arith.h, the arithmetic both halves use, for this
// host (src/arith.c), with bindgen writing its Rust declarations.
fn main() {
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
