//! The install path, without a VM: scripts/install.sh into a scratch
//! DESTDIR installs exactly the expected files, a second run changes
//! nothing, scripts/uninstall.sh leaves the tree as it found it (an edited
//! settings file excepted, unless --purge); the systemd unit passes
//! `systemd-analyze verify`; `--version` names the commit. The VM test
//! (tests/vm/basic.sh) starts the installed binary with every profile.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_scx_rebal");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh scratch directory under target/ (kept on failure, for a look).
fn scratch(name: &str) -> PathBuf {
    let dir = repo()
        .join("target/packaging-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("creating the scratch directory");
    dir
}

fn script(name: &str, args: &[&str]) -> Output {
    let out = Command::new(repo().join("scripts").join(name))
        .args(args)
        .env_remove("DESTDIR")
        .env_remove("PREFIX")
        .env_remove("SYSCONFDIR")
        .env_remove("UNITDIR")
        .output()
        .unwrap_or_else(|e| panic!("running scripts/{name}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{name} {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every path under `root` (files and directories), relative to it.
fn tree(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in fs::read_dir(dir).expect("reading the scratch tree") {
            let p = e.expect("a directory entry").path();
            let rel = p.strip_prefix(root).expect("under the root");
            let mut s = format!("/{}", rel.display());
            if p.is_dir() {
                s.push('/');
                out.insert(s);
                walk(root, &p, out);
            } else {
                out.insert(s);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

const INSTALLED_FILES: &[&str] = &[
    "/etc/default/scx_rebal",
    "/usr/local/bin/scx_rebal",
    "/usr/local/lib/systemd/system/scx_rebal.service",
    "/usr/local/share/bash-completion/completions/scx_rebal",
    "/usr/local/share/fish/vendor_completions.d/scx_rebal.fish",
    "/usr/local/share/man/man8/scx_rebal.8",
    "/usr/local/share/scx_rebal/installed",
    "/usr/local/share/zsh/site-functions/_scx_rebal",
];

#[test]
fn install_is_idempotent_and_uninstall_leaves_nothing() {
    let dest = scratch("destdir");
    // Something of the machine's own, which must survive the uninstall.
    fs::create_dir_all(dest.join("usr/local/bin")).unwrap();
    fs::write(dest.join("usr/local/bin/other-tool"), "#!/bin/sh\n").unwrap();
    let before = tree(&dest);
    let d = format!("DESTDIR={}", dest.display());

    let first = stdout(&script("install.sh", &["--bin", BIN, &d]));
    let files: BTreeSet<String> = tree(&dest)
        .difference(&before)
        .filter(|p| !p.ends_with('/'))
        .cloned()
        .collect();
    let want: BTreeSet<String> = INSTALLED_FILES.iter().map(|s| s.to_string()).collect();
    assert_eq!(files, want, "install.sh output:\n{first}");
    for f in INSTALLED_FILES {
        assert!(
            first.contains(f),
            "install.sh did not say it installed {f}:\n{first}"
        );
    }
    assert!(
        fs::read(dest.join("usr/local/bin/scx_rebal")).unwrap() == fs::read(BIN).unwrap(),
        "the installed binary is not the one given"
    );
    let unit =
        fs::read_to_string(dest.join("usr/local/lib/systemd/system/scx_rebal.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/scx_rebal $SCX_REBAL_FLAGS"),
        "{unit}"
    );
    assert!(
        unit.contains("EnvironmentFile=-/etc/default/scx_rebal"),
        "{unit}"
    );
    assert!(
        !unit.contains('@'),
        "unsubstituted placeholder left:\n{unit}"
    );

    // Again: nothing changes, and it says so.
    let snapshot = tree(&dest);
    let second = stdout(&script("install.sh", &["--bin", BIN, &d]));
    assert_eq!(tree(&dest), snapshot);
    assert!(
        !second.contains("installed  "),
        "second install changed files:\n{second}"
    );
    assert_eq!(
        second.matches("unchanged").count(),
        INSTALLED_FILES.len(),
        "{second}"
    );

    let out = stdout(&script("uninstall.sh", &[&d]));
    assert_eq!(
        tree(&dest),
        before,
        "uninstall.sh left files behind:\n{out}"
    );
    for f in INSTALLED_FILES {
        assert!(
            out.contains(f),
            "uninstall.sh did not say it removed {f}:\n{out}"
        );
    }
    let again = stdout(&script("uninstall.sh", &[&d]));
    assert!(again.contains("nothing to remove"), "{again}");
    assert_eq!(tree(&dest), before);
    let _ = fs::remove_dir_all(&dest);
}

#[test]
fn a_missing_destdir_is_made_and_left() {
    let root = scratch("missing");
    let dest = root.join("not/yet");
    let d = format!("DESTDIR={}", dest.display());
    script("install.sh", &["--bin", BIN, &d]);
    assert!(dest.join("usr/local/bin/scx_rebal").is_file());
    script("uninstall.sh", &[&d]);
    assert_eq!(tree(&dest), BTreeSet::new());
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn an_edited_settings_file_is_kept_until_purge() {
    let dest = scratch("edited");
    let d = format!("DESTDIR={}", dest.display());
    let conf = dest.join("etc/default/scx_rebal");
    script("install.sh", &["--bin", BIN, &d]);
    fs::write(&conf, "SCX_REBAL_FLAGS=\"--profile server\"\n").unwrap();

    // A reinstall keeps it...
    let out = stdout(&script("install.sh", &["--bin", BIN, &d]));
    assert!(out.contains("kept"), "{out}");
    assert!(fs::read_to_string(&conf).unwrap().contains("server"));
    // ...and so does an uninstall, which says so...
    let out = stdout(&script("uninstall.sh", &[&d]));
    assert!(out.contains("kept") && out.contains("--purge"), "{out}");
    assert_eq!(
        tree(&dest),
        ["/etc/", "/etc/default/", "/etc/default/scx_rebal"]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
    // ...until --purge.
    let out = stdout(&script("uninstall.sh", &["--purge", &d]));
    assert!(out.contains("removed    /etc/default/scx_rebal"), "{out}");
    assert!(!conf.exists());
    let _ = fs::remove_dir_all(&dest);
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    // Installed for real under a scratch PREFIX (no DESTDIR), so the
    // unit's ExecStart names a binary that exists, as verify requires; the
    // man page is found through MANPATH (verify checks Documentation=man:).
    let root = scratch("verify");
    let prefix = root.join("prefix");
    let p = format!("PREFIX={}", prefix.display());
    let s = format!("SYSCONFDIR={}", root.join("etc").display());
    script("install.sh", &["--bin", BIN, "--no-systemctl", &p, &s]);
    let unit = prefix.join("lib/systemd/system/scx_rebal.service");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .env("MANPATH", prefix.join("share/man"))
        .output()
        .expect(
            "systemd-analyze is missing: scripts/install-deps.sh installs it (Debian: systemd)",
        );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("scx_rebal.service"),
        "systemd-analyze verify {}: {}\n{text}",
        unit.display(),
        out.status
    );

    // The restart policy the README describes.
    let unit = fs::read_to_string(&unit).unwrap();
    for line in [
        "Restart=on-failure",
        "RestartPreventExitStatus=1",
        "RestartSec=10s",
        "StartLimitBurst=5",
        "StartLimitIntervalSec=10min",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
    script("uninstall.sh", &["--no-systemctl", &p, &s]);
    assert_eq!(tree(&root), BTreeSet::new(), "uninstall left files");
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn version_names_the_commit_built_from() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let v = stdout(&out);
    assert!(
        v.starts_with(&format!("scx_rebal {} (", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    // Built from this checkout: its commit (build.rs reruns when HEAD moves).
    let head = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short=12",
            "HEAD",
        ])
        .output()
        .expect("git is needed to check --version");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert!(!head.is_empty(), "not a git checkout");
    assert_eq!(
        v.trim(),
        format!("scx_rebal {} (git {head})", env!("CARGO_PKG_VERSION"))
    );
}
