//! The token through the real binary: its length off loopback, the rules
//! for token files (server's and client's), and the throttle on failed
//! token checks.

use super::{LOG_WAIT, metric};
use crate::fixture::{Server, TempDir, eventually, run_dynport};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// `dynport ARGS --state-dir <not yet there>`: exit 2, `message` on stderr,
/// nothing created.
fn refused(args: &[&str], message: &str) {
    let parent = TempDir::new();
    let state_dir = parent.path().join("state");
    let mut all = args.to_vec();
    all.extend(["--state-dir", state_dir.to_str().unwrap()]);
    let (status, _, stderr) = run_dynport(&all, &[]);
    assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(message), "{args:?}: {stderr}");
    assert!(!state_dir.exists(), "{args:?} created the state directory");
}

/// A token file holding `text` with `mode`, in `dir`.
fn token_file(dir: &TempDir, text: &str, mode: u32) -> PathBuf {
    let path = dir.path().join("token");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary directory")
}

#[test]
fn a_short_token_is_refused_off_loopback() {
    refused(
        &["--host", "0.0.0.0", "--token", "s3cret"],
        "dynport: --token: the token has 6 characters; off loopback (listening on 0.0.0.0) \
         it needs at least 16: make one with tr -dc A-Za-z0-9 </dev/urandom | head -c 32",
    );
}

#[test]
fn a_short_token_is_accepted_on_loopback() {
    let server = Server::start(&["--token", "t"]);
    assert_eq!(server.post("/api/v1/ports/lease", "", &[]).status, 401);
    let auth = [("Authorization", "Bearer t")];
    assert_eq!(server.post("/api/v1/ports/lease", "", &auth).status, 201);
}

#[test]
fn a_group_readable_token_file_is_refused() {
    let dir = TempDir::new();
    let path = token_file(&dir, "0123456789abcdef\n", 0o640);
    let me = std::fs::metadata(&path).map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    let me = me.unwrap();
    let p = text(&path);
    refused(
        &["--token-file", p],
        &format!(
            "--token-file: {p} is open to group or others (mode 640, owner uid {me}); \
             run chmod 600 {p} so only its owner can read it"
        ),
    );
}

#[test]
fn a_token_file_of_another_user_is_refused() {
    if !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
    {
        crate::fixture::skipped(format_args!(
            "giving a token file to another user needs root (chown)"
        ));
        return;
    }
    let dir = TempDir::new();
    let path = token_file(&dir, "0123456789abcdef\n", 0o600);
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).expect("chown as root");
    let p = text(&path);
    refused(
        &["--token-file", p],
        &format!(
            "--token-file: {p} is owned by uid 65534 (mode 600), not by the user running \
             dynport (uid 0) or root; use a token file of your own, or chown 0 {p}"
        ),
    );
}

#[test]
fn a_fifo_token_file_is_refused_at_once_by_server_and_client() {
    let dir = TempDir::new();
    let fifo = dir.path().join("token");
    let made = Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(&fifo)
        .status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo works");
    let p = text(&fifo);
    let message =
        format!("{p} is a FIFO, not a regular file; give a regular file holding the token");
    // Nothing ever opens the FIFO for writing: an answer at all shows that
    // neither waited on it (run_dynport fails the test on a hang).
    refused(&["--token-file", p], &format!("--token-file: {message}"));
    let envs = [
        ("DYNPORT_TOKEN_FILE", p),
        ("DYNPORT_URL", "http://127.0.0.1:1"),
    ];
    let (status, _, stderr) = run_dynport(&["leases"], &envs);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("DYNPORT_TOKEN_FILE: {message}")),
        "{stderr}"
    );
}

#[test]
fn a_symlinked_token_file_is_refused() {
    let dir = TempDir::new();
    let target = token_file(&dir, "0123456789abcdef\n", 0o600);
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (l, t) = (text(&link), text(&target));
    refused(
        &["--token-file", l],
        &format!(
            "--token-file: {l} is a symbolic link (to {t}); give the path of the token file itself"
        ),
    );
}

#[test]
fn more_than_20_bad_tokens_a_minute_get_429() {
    let server = Server::start(&["--token", "0123456789abcdef"]);
    let wrong = [("Authorization", "Bearer guess")];
    let began = Instant::now();
    for n in 1..=21 {
        let status = server.post("/api/v1/ports/lease", "", &wrong).status;
        assert_eq!(status, 401, "failure {n}");
    }
    let blocked = server.post("/api/v1/ports/lease", "", &wrong);
    assert_eq!(blocked.status, 429);
    let retry: u64 = blocked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    assert_eq!(
        blocked.error(),
        format!("too many failed token checks from this address: try again in {retry} s")
    );
    let right = [("Authorization", "Bearer 0123456789abcdef")];
    assert_eq!(server.post("/api/v1/ports/lease", "", &right).status, 429);
    assert_eq!(server.get("/api/v1/ports/leases").status, 200, "reads pass");
    assert_eq!(metric(&server, "dynport_auth_failures_total"), 21);
    // A local caller counts as its uid, which the kernel names even on TCP.
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let first = format!(
        "failed token check: POST /api/v1/ports/lease from local uid {uid}, 1 within a minute"
    );
    eventually(LOG_WAIT, &first, || server.log().contains(&first));
    let log = server.log();
    let lines = log.matches("[WARN] failed token check").count() as u64;
    let most = 1 + began.elapsed().as_secs() / 10;
    assert!(
        (1..=most).contains(&lines),
        "{lines} lines, at most {most}:\n{log}"
    );
}
