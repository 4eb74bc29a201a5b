//! Local users for the trust tests: two system users made on demand when
//! the tests run as root, commands run as one of them, and their processes
//! killed when a test ends. Without root every test that needs them says
//! it is skipped.

use crate::fixture::BIN;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// A local user the tests act as.
#[derive(Clone, Debug)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

/// The effective uid of this test process.
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    unsafe { libc::geteuid() }
}

/// `dynport-alice` and `dynport-bob`, made when missing; `None`, after
/// saying the test is skipped, when this process cannot make users.
pub fn alice_and_bob() -> Option<(User, User)> {
    if euid() != 0 {
        crate::fixture::skipped(format_args!(
            "needs root to create a second local user (running as uid {})",
            euid()
        ));
        return None;
    }
    Some((ensure_user("dynport-alice"), ensure_user("dynport-bob")))
}

/// Creates `name` as a system user unless it exists. One at a time: two
/// `useradd` at once fight over the lock of `/etc/passwd`.
fn ensure_user(name: &'static str) -> User {
    static USERADD: Mutex<()> = Mutex::new(());
    let _one = USERADD.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(user) = lookup(name) {
        return user;
    }
    let out = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ])
        .output()
        .expect("useradd runs");
    // 9: it exists already (made by another test process meanwhile).
    assert!(
        out.status.success() || out.status.code() == Some(9),
        "useradd {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lookup(name).unwrap_or_else(|| panic!("{name} missing after useradd"))
}

fn lookup(name: &'static str) -> Option<User> {
    let out = Command::new("getent")
        .args(["passwd", name])
        .output()
        .ok()?;
    let line = String::from_utf8(out.stdout).ok()?;
    let fields: Vec<&str> = line.trim().split(':').collect();
    match fields[..] {
        [_, _, uid, gid, ..] => Some(User {
            uid: uid.parse().ok()?,
            gid: gid.parse().ok()?,
        }),
        _ => None,
    }
}

/// Fails the test unless every user may reach `dir` and read in it, as
/// the client of another user must to read the state file.
pub fn assert_reachable_by_all(dir: &Path) {
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o005, 0o005, "{} has mode {mode:o}", dir.display());
    for parent in dir.ancestors().skip(1) {
        let mode = std::fs::metadata(parent).unwrap().permissions().mode();
        assert_eq!(mode & 0o001, 0o001, "{} is closed", parent.display());
    }
}

/// `command` run as `user`, or as this process when `None`.
pub fn as_user<'a>(command: &'a mut Command, user: Option<&User>) -> &'a mut Command {
    if let Some(user) = user {
        // std drops root's supplementary groups when it sets the uid.
        command.uid(user.uid).gid(user.gid);
    }
    command
}

/// A process of some user's, killed and reaped when dropped.
pub struct Proc(pub Child);

impl Proc {
    /// `sleep 30` as `user`, to name its pid in a lease.
    pub fn sleep_as(user: &User) -> Proc {
        let mut command = Command::new("sleep");
        as_user(command.arg("30"), Some(user));
        Proc(command.stdin(Stdio::null()).spawn().expect("sleep runs"))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `dynport` server as `user` on exactly `port`, on a state directory
/// `dir` it owns and without a Unix socket, its log written to `log`.
pub fn server_as(user: &User, port: u16, dir: &Path, log: &Path) -> Proc {
    std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid)).unwrap();
    let range = format!("{port}-{port}");
    let mut command = Command::new(crate::fixture::for_everyone(std::path::Path::new(BIN)));
    command
        .args(["--range", &range, "--unix-socket", "none", "--state-dir"])
        .arg(dir)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    Proc(
        as_user(&mut command, Some(user))
            .spawn()
            .expect("dynport runs"),
    )
}
