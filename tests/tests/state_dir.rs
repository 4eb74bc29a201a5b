//! The state directory trusted for nothing, through the real binary: links,
//! FIFOs and huge files where dynport's files go, a directory others may
//! write to, and a state file full of leases no server would have granted.
//! Each ends in a refusal (never a wait on a FIFO or a read without end) or a
//! clean start, and nothing planted is ever written through.

use crate::fixture::{Launch, TempDir, free_range, poll_until};
use serde_json::{Value, json};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::Duration;

/// Far beyond how long a refusal, or a file written after a start, takes:
/// only a server that hangs reaches it.
const PATIENCE: Duration = Duration::from_secs(10);
const VICTIM_TEXT: &str = "precious: not dynport's to write\n";

/// A file outside the state directory that a planted link points to.
fn victim() -> (TempDir, std::path::PathBuf) {
    let dir = TempDir::new();
    let path = dir.path().join("victim");
    std::fs::write(&path, VICTIM_TEXT).unwrap();
    (dir, path)
}

/// Starts a server on `launch` that must refuse to run: its exit status and
/// log. A server that waits instead fails the test after [`PATIENCE`].
fn refused(launch: &Launch) -> (i32, String) {
    let mut server = launch.spawn();
    let status = server.wait_exit(PATIENCE);
    (status.code().expect("an exit status"), server.log())
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status();
    assert!(status.unwrap().success(), "mkfifo {}", path.display());
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_link_at_the_lock_is_refused_and_not_followed() {
    let (_keep, target) = victim();
    let launch = Launch::new(&[]);
    let lock = launch.dir.path().join("dynamic_ports.lock");
    symlink(&target, &lock).unwrap();
    let (code, log) = refused(&launch);
    assert_eq!(code, 2, "{log}");
    let expected = format!(
        "{} is a symbolic link, not a regular file; dynport neither follows nor reads it: remove it",
        lock.display()
    );
    assert!(log.contains(&expected), "{log}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), VICTIM_TEXT);
    assert_eq!(launch.dir.names(), vec!["dynamic_ports.lock"]);
}

#[test]
fn a_link_at_the_state_file_is_refused_and_not_followed() {
    let (_keep, target) = victim();
    let launch = Launch::new(&[]);
    symlink(&target, launch.dir.state_file()).unwrap();
    let (code, log) = refused(&launch);
    assert_eq!(code, 2, "{log}");
    let expected = format!(
        "{} is a symbolic link, not a regular file",
        launch.dir.state_file().display()
    );
    assert!(log.contains(&expected), "{log}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), VICTIM_TEXT);
    assert_eq!(launch.dir.names(), vec!["dynamic_ports.json"]);
}

#[test]
fn a_link_to_dev_zero_is_refused_not_read() {
    let launch = Launch::new(&[]);
    symlink("/dev/zero", launch.dir.state_file()).unwrap();
    let (code, log) = refused(&launch);
    assert_eq!(code, 2, "{log}");
    assert!(
        log.contains("dynamic_ports.json is a symbolic link"),
        "{log}"
    );
}

#[test]
fn a_fifo_at_the_state_file_is_refused_not_waited_on() {
    let launch = Launch::new(&[]);
    mkfifo(&launch.dir.state_file());
    let (code, log) = refused(&launch);
    assert_eq!(code, 2, "{log}");
    let expected = format!(
        "{} is a FIFO, not a regular file",
        launch.dir.state_file().display()
    );
    assert!(log.contains(&expected), "{log}");
}

#[test]
fn a_link_or_fifo_at_the_journal_is_refused_and_not_followed() {
    let (_keep, target) = victim();
    let launch = Launch::new(&[]);
    let journal = launch.dir.path().join("dynamic_ports.journal");
    symlink(&target, &journal).unwrap();
    let (code, log) = refused(&launch);
    assert_eq!(code, 2, "{log}");
    let expected = format!(
        "{} is a symbolic link, not a regular file; dynport neither follows nor reads it: remove it",
        journal.display()
    );
    assert!(log.contains(&expected), "{log}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), VICTIM_TEXT);
    std::fs::remove_file(&journal).unwrap();
    mkfifo(&journal);
    let (code, log) = refused(&launch);
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("dynamic_ports.journal is a FIFO"), "{log}");
    assert_eq!(launch.dir.names(), vec!["dynamic_ports.journal"]);
}

#[test]
fn a_fifo_at_the_lock_is_refused_not_waited_on() {
    let launch = Launch::new(&[]);
    mkfifo(&launch.dir.path().join("dynamic_ports.lock"));
    let (code, log) = refused(&launch);
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("dynamic_ports.lock is a FIFO"), "{log}");
}

/// The old temporary name, `.dynamic_ports.json.tmp-PID`, could be guessed:
/// links planted there, before the start (for the pids likely next) and
/// while the server runs, are never written through.
#[test]
fn links_at_temporary_names_are_never_written_through() {
    let (_keep, target) = victim();
    let launch = Launch::new(&["--exclude", "none"]);
    let plant = |pid: u64| {
        let link = launch
            .dir
            .path()
            .join(format!(".dynamic_ports.json.tmp-{pid}"));
        let _ = symlink(&target, link);
    };
    let last_pid: u64 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    (last_pid + 1..last_pid + 200).for_each(plant);
    let mut server = launch.start();
    plant(u64::from(server.pid()));
    let temp_names = |names: Vec<String>| names.iter().filter(|n| n.contains(".tmp-")).count();
    let planted = temp_names(launch.dir.names());

    let (status, answer) = server
        .json_request("POST", "/api/v1/ports/lease", "{}")
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    assert!(server.term().success(), "{}", server.log());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), VICTIM_TEXT);
    let state = launch.dir.state_file();
    assert!(std::fs::symlink_metadata(&state).unwrap().is_file());
    assert_eq!(mode(&state), 0o644);
    let names = launch.dir.names();
    assert_eq!(
        temp_names(names.clone()),
        planted,
        "only the planted links, no leftover: {names:?}"
    );
}

#[test]
fn an_oversized_state_file_is_kept_aside_and_the_server_starts() {
    let launch = Launch::new(&[]);
    let state = launch.dir.state_file();
    let file = std::fs::File::create(&state).unwrap();
    file.set_len(100 << 20).unwrap();
    drop(file);
    let mut server = launch.start();
    let log = server.log();
    let expected = format!(
        "state file {} did not parse (it is over 64 MiB); kept it as {}.corrupt-",
        state.display(),
        state.display()
    );
    assert!(log.contains(&expected), "{log}");
    let kept: Vec<String> = launch
        .dir
        .names()
        .into_iter()
        .filter(|n| n.contains(".corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "{:?}", launch.dir.names());
    let kept = launch.dir.path().join(&kept[0]);
    assert_eq!(std::fs::metadata(kept).unwrap().len(), 100 << 20);
    assert_eq!(server.state()["server"]["pid"], server.pid());
    assert!(server.term().success());
}

/// What a forged log line would start with.
const FORGED: &str = "2026-01-01T00:00:00Z [ERROR] forged";

/// A state file whose text quotes a newline: the warning that names why it
/// did not parse stays one line. (A start reads past `ports`, which it
/// rebuilds: the newline is in a lease.)
#[test]
fn a_corrupt_file_cannot_forge_a_log_line() {
    let launch = Launch::new(&[]);
    let (start, end) = launch.range;
    let text = json!({
        "version": 1, "updated_at": "2026-01-01T00:00:00Z",
        "port_range": {"start": start, "end": end},
        "server_port": null, "last_server_port": null, "server": null,
        "ports": {},
        "last_scan": null,
        "leases": {"a": {"id": "a", "ports": [start], "pool": "default", "owner": null,
            "pid": null, "created_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-01-01T00:05:00Z", "protocol": format!("x\n{FORGED}")}},
    });
    std::fs::write(launch.dir.state_file(), text.to_string()).unwrap();
    let mut server = launch.start();
    let log = server.log();
    assert!(
        log.contains("did not parse (unknown variant `x\\n2026"),
        "{log}"
    );
    assert!(!log.lines().any(|l| l.starts_with(FORGED)), "{log}");
    assert!(server.term().success());
}

/// A state file with one lease of each kind no server would grant, and two
/// sound ones: the sound ones are kept, the others dropped with one
/// warning that counts them, and none of their text reaches the log.
#[test]
fn leases_that_break_the_rules_are_dropped_with_one_warning() {
    let mut launch = Launch::with_range(free_range(100), &["--exclude", "none"]);
    let (start, end) = launch.range;
    launch.args.push("--pool".to_string());
    launch.args.push(format!("web={start}-{}", start + 2));
    let leases = planted_leases(start, end);
    std::fs::write(launch.dir.state_file(), state_with(&launch, leases)).unwrap();

    let mut server = launch.start();
    let log = server.log();
    let warning = "of the 11 leases in the state file, 9 dropped (1 malformed id; \
                   1 owner empty, unprintable or over 128 characters; \
                   1 no ports, a port twice, or more than 64 ports; \
                   1 port outside the managed range; 1 pool not configured; \
                   1 port outside its pool; 1 expiry or TTL more than 604800 s away; \
                   2 port in another lease too), 2 kept: only leases that obey the \
                   rules of new leases are kept";
    assert!(log.contains(warning), "{log}");
    assert_eq!(log.matches("leases in the state file").count(), 1, "{log}");
    assert!(!log.contains("forged"), "{log}");
    let kept = server.state()["leases"].clone();
    let ids: Vec<&String> = kept.as_object().unwrap().keys().collect();
    assert_eq!(ids, vec!["aaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaa2"]);
    let listed = server.get("/api/v1/ports/leases").json();
    assert_eq!(listed["leases"].as_array().unwrap().len(), 2, "{listed}");
    assert!(server.term().success());
}

/// Two sound leases (the first two) and nine that break one rule each, in
/// a range `start..=end` whose pool `web` is its first three ports.
fn planted_leases(start: u16, end: u16) -> serde_json::Map<String, Value> {
    let lease = |id: &str, ports: Vec<u16>| {
        json!({"id": id, "ports": ports, "pool": "default", "owner": "ci job 17",
               "pid": null, "created_at": fixture_time(0), "expires_at": fixture_time(3600),
               "ttl_secs": 3600})
    };
    let with = |mut lease: Value, field: &str, value: Value| {
        lease[field] = value;
        lease
    };
    let in_2099 = || json!("2099-01-01T00:00:00Z");
    let forged_id = format!("b7\n{FORGED} by id");
    let all = [
        lease("aaaaaaaaaaaaaaa1", vec![start + 1]),
        with(
            lease("aaaaaaaaaaaaaaa2", vec![start + 2]),
            "pool",
            json!("web"),
        ),
        with(
            lease("b1", (start + 1..start + 99).collect()),
            "expires_at",
            in_2099(),
        ),
        with(lease("b2", vec![start + 3]), "expires_at", in_2099()),
        lease("b3", vec![start + 4]),
        lease("b4", vec![start + 4, start + 5]),
        lease("b5", vec![end + 1]),
        with(
            lease("b6", vec![start + 6]),
            "owner",
            json!(format!("job\n{FORGED} by owner")),
        ),
        lease(&forged_id, vec![start + 7]),
        with(lease("b8", vec![start + 7]), "pool", json!("web")),
        with(lease("b9", vec![start + 7]), "pool", json!("db")),
    ];
    let id = |lease: &Value| lease["id"].as_str().unwrap().to_string();
    all.into_iter().map(|l| (id(&l), l)).collect()
}

/// The RFC 3339 time `secs` from now.
fn fixture_time(secs: u64) -> String {
    let at = std::time::SystemTime::now() + Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A state file of `launch`'s range holding `leases`.
fn state_with(launch: &Launch, leases: serde_json::Map<String, Value>) -> String {
    let (start, end) = launch.range;
    json!({
        "version": 1, "updated_at": fixture_time(0),
        "port_range": {"start": start, "end": end},
        "server_port": null, "last_server_port": start, "server": null,
        "ports": {}, "last_scan": null, "leases": leases,
    })
    .to_string()
}

#[test]
fn a_state_directory_others_may_write_to_is_refused() {
    for bits in [0o775, 0o757, 0o1777] {
        let launch = Launch::new(&[]);
        let dir = launch.dir.path();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(bits)).unwrap();
        let (code, log) = refused(&launch);
        assert_eq!(code, 2, "{log}");
        let uid = std::fs::metadata(dir).unwrap().uid();
        let expected = format!(
            "state directory {} is writable by group or others (owner uid {uid}",
            dir.display()
        );
        assert!(log.contains(&expected), "{log}");
        let fix = format!(
            "mode {bits:04o}): they could replace dynport's files; run chmod go-w {}, \
             or use another --state-dir",
            dir.display()
        );
        assert!(log.contains(&fix), "{log}");
        assert!(launch.dir.names().is_empty(), "nothing is written");
    }
}

#[test]
fn a_state_directory_of_another_user_is_refused() {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        crate::fixture::skipped(format_args!(
            "giving the state directory to another user needs root"
        ));
        return;
    }
    let launch = Launch::new(&[]);
    let dir = launch.dir.path();
    std::os::unix::fs::chown(dir, Some(65534), None).unwrap();
    let (code, log) = refused(&launch);
    assert_eq!(code, 2, "{log}");
    let expected = format!(
        "state directory {} is not owned by root, which runs dynport (owner uid 65534",
        dir.display()
    );
    assert!(log.contains(&expected), "{log}");
    let fix = format!(
        "mode 0755): its owner could replace dynport's files; run chown 0 {}",
        dir.display()
    );
    assert!(log.contains(&fix), "{log}");
    assert!(launch.dir.names().is_empty(), "nothing is written");
}

#[test]
fn a_missing_state_directory_is_created_0755_whatever_the_umask() {
    for mask in [0o000, 0o077] {
        let parent = TempDir::new();
        let dir = parent.path().join("state");
        let launch = Launch::new(&["--state-dir", dir.to_str().unwrap()]).umask(mask);
        let mut server = launch.start();
        assert_eq!(mode(&dir), 0o755, "umask {mask:03o}");
        assert!(poll_until(PATIENCE, || dir
            .join("dynamic_ports.json")
            .exists()));
        assert_eq!(
            mode(&dir.join("dynamic_ports.json")),
            0o644,
            "umask {mask:03o}"
        );
        assert!(server.term().success());
    }
}
