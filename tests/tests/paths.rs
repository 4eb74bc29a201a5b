//! Files and paths as another local user would attack them, through the
//! real binary: the lock file another user would lock to keep a server
//! down, a state directory reached through another user's directory or
//! link, or through a link swapped after start, a client sent to a fake
//! server in another user's `./state`, and a portserver socket where
//! others may put theirs first. Tests that need a second local user say
//! they are skipped without root.

use crate::fixture::{EXIT_TIMEOUT, Launch, TempDir, eventually, free_range};
use crate::trust::users::{Proc, User, alice_and_bob, as_user};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn chown(path: &Path, user: &User) {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A fresh directory `name` in `parent`, root's (this process's) and 0755.
fn subdir(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o755);
    dir
}

/// What a client run printed and how it exited.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `dynport args` as `user` (this process when `None`) in `cwd`, in an
/// environment of `PATH` and `env` only.
fn dynport_in(user: Option<&User>, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let bin = crate::fixture::for_everyone(Path::new(crate::fixture::BIN));
    let mut command = Command::new(bin);
    command
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().copied());
    command.env("PATH", std::env::var("PATH").unwrap_or_default());
    let (status, stdout, stderr) =
        crate::fixture::run_to_end(as_user(&mut command, user), EXIT_TIMEOUT);
    Out {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// Starts a server on `--state-dir dir` that must refuse to start: its exit
/// status and log.
fn refused(args: &[&str]) -> (i32, String) {
    let launch = Launch::with_range(free_range(4), args);
    let mut server = launch.spawn();
    let status = server.wait_exit(EXIT_TIMEOUT);
    (status.code().expect("an exit status"), server.log())
}

#[test]
fn another_user_can_neither_open_nor_lock_the_lock_file() {
    let Some((alice, _)) = alice_and_bob() else {
        return;
    };
    let mut server = Launch::with_range(free_range(4), &[]).start();
    let lock = server.dir().path().join("dynamic_ports.lock");
    assert!(server.term().success(), "{}", server.log());
    // What alice would do to keep a restarting server down.
    let mut flock = Command::new("flock");
    flock.arg("--nonblock").arg(&lock).arg("true");
    let out = as_user(&mut flock, Some(&alice)).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "alice locked it");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert_eq!(std::fs::metadata(&lock).unwrap().mode() & 0o7777, 0o600);
    let restarted = server.relaunch().start();
    drop(restarted);
}

#[test]
fn a_held_lock_names_the_process_that_holds_it_now() {
    let launch = Launch::with_range(free_range(4), &[]);
    let mut first = launch.start();
    let dir = first.dir().path().to_path_buf();
    assert!(first.term().success(), "{}", first.log());
    let lock = dir.join("dynamic_ports.lock");
    let mut flock = Command::new("flock");
    flock.arg(&lock).args(["sleep", "30"]).stdin(Stdio::null());
    let holder = Proc(flock.spawn().unwrap());
    let held = format!(" {} ", holder.pid());
    eventually(EXIT_TIMEOUT, "flock holding the lock", || {
        std::fs::read_to_string("/proc/locks").is_ok_and(|l| l.contains(&held))
    });
    let mut second = launch.spawn();
    let status = second.wait_exit(EXIT_TIMEOUT);
    let expected = format!(
        "state directory {} is in use by pid {} (flock); stop it or use another --state-dir",
        dir.display(),
        holder.pid()
    );
    assert_eq!(status.code(), Some(1), "{}", second.log());
    assert!(second.log().contains(&expected), "{}", second.log());
}

#[test]
fn a_state_directory_reached_through_another_users_directory_is_refused() {
    let Some((alice, _)) = alice_and_bob() else {
        return;
    };
    let top = TempDir::new();
    let home = subdir(top.path(), "alice");
    let state = subdir(&home, "state");
    chown(&home, &alice);
    let (code, log) = refused(&["--state-dir", state.to_str().unwrap()]);
    let expected = format!(
        "state directory {}: {} on its path is not owned by root, which runs dynport \
         (owner uid {} (dynport-alice), mode 0755): its owner could put another directory \
         in its place",
        state.display(),
        home.display(),
        alice.uid
    );
    assert_eq!(code, 2, "{log}");
    assert!(log.contains(&expected), "{log}");
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn a_link_of_another_users_is_not_followed_even_to_roots_directory() {
    let Some((alice, _)) = alice_and_bob() else {
        return;
    };
    let top = TempDir::new();
    let real = subdir(top.path(), "real");
    // As /tmp: root's and sticky, where alice may make a link of her own.
    let shared = subdir(top.path(), "shared");
    chmod(&shared, 0o1777);
    let link = shared.join("state");
    symlink(&real, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(alice.uid), Some(alice.gid)).unwrap();
    let (code, log) = refused(&["--state-dir", link.to_str().unwrap()]);
    let expected = format!(
        "state directory {}: {} on its path is not owned by root",
        link.display(),
        link.display()
    );
    assert_eq!(code, 2, "{log}");
    assert!(log.contains(&expected), "{log}");
    assert_eq!(
        std::fs::read_dir(&real).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn a_link_on_the_path_swapped_after_start_changes_nothing() {
    let top = TempDir::new();
    let first = subdir(top.path(), "first");
    let second = subdir(top.path(), "second");
    let link = top.path().join("state");
    symlink(&first, &link).unwrap();
    let state = link.to_str().unwrap();
    let launch = Launch::with_range(free_range(8), &["--exclude", "none", "--state-dir", state]);
    let server = launch.start();
    // The link now leads elsewhere, as its owner may make it.
    let swap = top.path().join("swap");
    symlink(&second, &swap).unwrap();
    std::fs::rename(&swap, &link).unwrap();
    let first_dir = first.to_str().unwrap();
    let out = dynport_in(
        None,
        top.path(),
        &["lease", "--json", "--state-dir", first_dir],
        &[],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let lease: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let id = lease["lease"]["id"].as_str().unwrap().to_string();
    eventually(EXIT_TIMEOUT, "the lease in the first directory", || {
        dynport::state::Store::open(&first)
            .and_then(|s| s.durable().map_err(std::io::Error::other))
            .is_ok_and(|s| s.is_some_and(|s| s.leases.contains_key(&id)))
    });
    drop(server);
    let names: Vec<_> = std::fs::read_dir(&second).unwrap().collect();
    assert!(names.is_empty(), "written into the new target: {names:?}");
}

/// A fake server of `user`'s: a plain Unix socket at `socket` that writes
/// what each connection sends into `record`, then answers 200 with `{}`.
fn fake_server(user: &User, socket: &Path, record: &Path) -> Proc {
    const FAKE: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
s.listen(8)
while True:
    c, _ = s.accept()
    c.settimeout(5)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            more = c.recv(65536)
            if not more:
                break
            data += more
    except OSError:
        pass
    with open(sys.argv[2], "ab") as f:
        f.write(data)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    c.close()
"#;
    let mut python = Command::new("/usr/bin/python3");
    python.args(["-c", FAKE]).arg(socket).arg(record);
    as_user(&mut python, Some(user));
    let fake = Proc(python.stdin(Stdio::null()).spawn().expect("python3 runs"));
    eventually(EXIT_TIMEOUT, "the fake server's socket", || socket.exists());
    fake
}

#[test]
fn the_client_sends_nothing_to_a_server_in_another_users_state_directory() {
    let Some((alice, bob)) = alice_and_bob() else {
        return;
    };
    let python = Path::new("/usr/bin/python3").exists();
    let why = format_args!(
        "/usr/bin/python3, for bob's fake server, is not installed (Debian package python3)"
    );
    if !crate::fixture::require(python, why) {
        return;
    }
    let cwd = TempDir::new();
    let state = subdir(cwd.path(), "state");
    let port = free_range(1).0;
    let state_file = format!(
        r#"{{"version": 1, "updated_at": "2026-12-07T00:00:00Z",
            "port_range": {{"start": {port}, "end": {port}}}, "server_port": {port},
            "last_server_port": {port}, "ports": {{}}, "last_scan": null,
            "server": {{"pid": 1, "host": "127.0.0.1", "started_at": "2026-12-07T00:00:00Z"}}}}"#
    );
    std::fs::write(state.join("dynamic_ports.json"), state_file).unwrap();
    chown(&state.join("dynamic_ports.json"), &bob);
    chown(&state, &bob);
    let record = state.join("received");
    std::fs::write(&record, b"").unwrap();
    chown(&record, &bob);
    let _fake = fake_server(&bob, &state.join("dynport.sock"), &record);
    const TOKEN: &str = "alices-token-bob-must-never-see";
    let env = [("DYNPORT_TOKEN", TOKEN)];
    let out = dynport_in(Some(&alice), cwd.path(), &["lease"], &env);
    let refused = format!(
        "dynport: state/ belongs to uid {}, not to you or root: nothing was sent\n",
        bob.uid
    );
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        "",
        "bob received it"
    );
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (3, refused.as_str()),
        "{out:?}"
    );
    // Trusted by name, bob's server is talked to.
    let bobs = bob.uid.to_string();
    let out = dynport_in(
        Some(&alice),
        cwd.path(),
        &["lease", "--server-uid", &bobs],
        &env,
    );
    let received = std::fs::read_to_string(&record).unwrap();
    assert!(
        received.starts_with("POST /api/v1/ports/lease "),
        "{out:?}: {received}"
    );
    assert!(received.contains(TOKEN), "{received}");
}

/// The name of the user running the tests, as `id -un` says it.
fn own_user_name() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_portserver_socket_where_others_may_write_is_refused() {
    let top = TempDir::new();
    for mode in [0o777, 0o1777] {
        let open = top.path().join(format!("open-{mode:o}"));
        std::fs::create_dir(&open).unwrap();
        chmod(&open, mode);
        let socket = open.join("ps.sock");
        let (code, log) = refused(&["--portserver-socket", socket.to_str().unwrap()]);
        let expected = format!(
            "--portserver-socket {}: {}: others may write to it (owner uid {} ({}), mode \
             {mode:04o}); another user could put a socket of their own there: give a path \
             in the state directory or /run/dynport/",
            socket.display(),
            open.display(),
            crate::trust::users::euid(),
            own_user_name()
        );
        assert_eq!(code, 2, "{log}");
        assert!(log.contains(&expected), "{log}");
        assert!(!socket.exists());
    }
}

#[test]
fn an_abstract_portserver_name_is_warned_about() {
    let name = format!("@dynport-test-{}-warned", std::process::id());
    let launch = Launch::with_range(free_range(4), &["--portserver-socket", &name]);
    let server = launch.start();
    let expected = format!(
        "--portserver-socket {name}: the abstract namespace has no owner check, so any \
         user could have taken the name first and portpicker would talk to them; give a \
         path in the state directory or /run/dynport/ instead"
    );
    server.wait_for_log(&expected, EXIT_TIMEOUT);
}

#[test]
fn without_a_local_state_the_client_looks_in_the_host_services_directory() {
    if Path::new("/var/lib/dynport").exists() {
        crate::fixture::skipped(format_args!("/var/lib/dynport exists on this host"));
        return;
    }
    let cwd = TempDir::new();
    let out = dynport_in(None, cwd.path(), &["leases"], &[]);
    let expected = "dynport: no server found: /var/lib/dynport/dynamic_ports.json does not \
                    exist; start one with `dynport --state-dir /var/lib/dynport`, or pass \
                    --url or --state-dir\n";
    assert_eq!((out.code, out.stderr.as_str()), (3, expected));
}
