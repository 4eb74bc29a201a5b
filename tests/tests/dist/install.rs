//! `make install DESTDIR=… PREFIX=…` lays out exactly the expected files,
//! with their modes, the units pointing at the binary installed; `make
//! uninstall` takes every one of them away. The binary installed is this
//! test's own build (`BIN=`), so no release build is needed.

use super::{read, root};
use crate::fixture::find_program;
use crate::fixture::{BIN, TempDir, run_to_end};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

/// Runs `make TARGET DESTDIR=dest PREFIX=prefix BIN=<this build>`.
fn make(target: &str, dest: &Path, prefix: &str) {
    let mut make = Command::new("make");
    make.args(["--no-print-directory", target]);
    make.arg(format!("DESTDIR={}", dest.display()));
    make.arg(format!("PREFIX={prefix}"))
        .arg(format!("BIN={BIN}"));
    make.current_dir(root());
    let (status, _, err) = run_to_end(&mut make, PATIENCE);
    assert!(status.success(), "make {target}: {status}, stderr: {err}");
}

/// Every file under `dir`, by its path below it, with its mode.
fn files(dir: &Path) -> Vec<(String, u32)> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(next) = dirs.pop() {
        for entry in std::fs::read_dir(&next).expect("a readable directory") {
            let path = entry.expect("a directory entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("its metadata");
            if meta.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = path
                .strip_prefix(dir)
                .expect("below dir")
                .display()
                .to_string();
            found.push((name, meta.permissions().mode() & 0o7777));
        }
    }
    found.sort();
    found
}

fn no_make() -> bool {
    let missing = find_program("make").is_none();
    if missing {
        crate::fixture::skipped(format_args!(
            "make is not installed, so make install is not run"
        ));
    }
    missing
}

#[test]
fn make_install_lays_out_exactly_the_expected_files() {
    if no_make() {
        return;
    }
    let dest = TempDir::new();
    make("install", dest.path(), "/usr/local");
    let expected = [
        ("usr/local/bin/dynport", 0o755),
        ("usr/local/lib/systemd/system/dynport.service", 0o644),
        ("usr/local/share/bash-completion/completions/dynport", 0o644),
        (
            "usr/local/share/doc/dynport/examples/dynport-example-app.service",
            0o644,
        ),
        (
            "usr/local/share/fish/vendor_completions.d/dynport.fish",
            0o644,
        ),
        ("usr/local/share/man/man1/dynport.1", 0o644),
        ("usr/local/share/zsh/site-functions/_dynport", 0o644),
    ];
    let expected: Vec<(String, u32)> = expected.iter().map(|(p, m)| (p.to_string(), *m)).collect();
    assert_eq!(files(dest.path()), expected);
    let installed = |path: &str| std::fs::read(dest.path().join(path)).expect("installed");
    assert!(
        installed("usr/local/bin/dynport") == std::fs::read(BIN).unwrap(),
        "the binary"
    );
    let copies = [
        ("usr/local/share/man/man1/dynport.1", "dist/man/dynport.1"),
        (
            "usr/local/share/bash-completion/completions/dynport",
            "dist/completions/dynport.bash",
        ),
        (
            "usr/local/share/zsh/site-functions/_dynport",
            "dist/completions/_dynport",
        ),
        (
            "usr/local/share/fish/vendor_completions.d/dynport.fish",
            "dist/completions/dynport.fish",
        ),
        (
            "usr/local/lib/systemd/system/dynport.service",
            "dist/systemd/dynport.service",
        ),
    ];
    for (path, source) in copies {
        assert_eq!(
            String::from_utf8(installed(path)).unwrap(),
            read(source),
            "{path}"
        );
    }
}

#[test]
fn make_install_points_the_units_at_the_binary_of_its_prefix() {
    if no_make() {
        return;
    }
    let dest = TempDir::new();
    make("install", dest.path(), "/usr");
    let unit = |path: &str| std::fs::read_to_string(dest.path().join(path)).expect("installed");
    let service = unit("usr/lib/systemd/system/dynport.service");
    let exec: Vec<&str> = service
        .lines()
        .filter(|l| l.starts_with("ExecStart="))
        .collect();
    assert_eq!(
        exec,
        ["ExecStart=/usr/bin/dynport --state-dir /var/lib/dynport"]
    );
    let example = unit("usr/share/doc/dynport/examples/dynport-example-app.service");
    let exec: Vec<&str> = example
        .lines()
        .filter(|l| l.starts_with("ExecStart="))
        .collect();
    assert_eq!(
        exec,
        [
            "ExecStart=/usr/bin/dynport run --state-dir /var/lib/dynport --owner myapp -- /usr/local/bin/myapp"
        ]
    );
    assert!(!service.contains("/usr/local/bin/dynport"), "{service}");
    assert!(!example.contains("/usr/local/bin/dynport"), "{example}");
}

#[test]
fn make_uninstall_removes_every_file_installed() {
    if no_make() {
        return;
    }
    let dest = TempDir::new();
    make("install", dest.path(), "/opt/dynport");
    assert_eq!(files(dest.path()).len(), 7);
    make("uninstall", dest.path(), "/opt/dynport");
    assert_eq!(files(dest.path()), []);
    let doc = dest.path().join("opt/dynport/share/doc/dynport");
    assert!(
        !doc.exists(),
        "the documentation directory is dynport's own"
    );
}
