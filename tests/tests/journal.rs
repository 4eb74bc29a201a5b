//! Start = state file + journal, through the real binary: a torn last
//! record is dropped with a warning, a journal damaged before its tail is
//! kept aside and the state file used alone, a journal without a state file
//! gives its leases back, and a state file from before the journal loads.

use crate::fixture::Launch;
use dynport::ports::PortRange;
use dynport::ports::lease::{Lease, Protocol};
use dynport::state::journal::{Journal, Record};
use dynport::state::{StateFile, Store};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A lease of an hour from now on `port`, as a server would grant it.
fn lease(id: &str, port: u16) -> Lease {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = UNIX_EPOCH + Duration::from_secs(secs);
    Lease {
        id: id.to_string(),
        ports: vec![port],
        pool: "default".to_string(),
        owner: Some("journal test".to_string()),
        uid: None,
        protocol: Protocol::Both,
        pid: None,
        pid_start: None,
        created_at: now,
        expires_at: now + Duration::from_secs(3600),
        ttl_secs: 3600,
        name: None,
    }
}

fn put(seq: u64, lease: Lease) -> Vec<u8> {
    let mut bytes = Vec::new();
    Record::Put {
        seq,
        lease,
        cursor: None,
    }
    .encode(&mut bytes);
    bytes
}

/// An empty state file for `launch` and a journal after it granting one
/// lease per port of `ports`, `a0`, `a1`, …
fn with_journal(launch: &Launch, ports: &[u16]) {
    let (start, end) = launch.range;
    let state = StateFile::empty(PortRange::new(start, end).unwrap(), "2026-01-01T00:00:00Z");
    let dir = launch.dir.path();
    let store = Store::open(dir).unwrap();
    let id = store.save(&state).unwrap();
    let mut journal = Journal::create(store.dir(), id, &[]).unwrap();
    for (i, &port) in ports.iter().enumerate() {
        let seq = i as u64 + 2;
        journal
            .append(&put(seq, lease(&format!("a{i}"), port)), Some(seq))
            .unwrap();
    }
}

fn lease_ids(server: &crate::fixture::Server) -> Vec<String> {
    let (status, answer) = server
        .json_request("GET", "/api/v1/ports/leases", "")
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    let leases = answer["leases"].as_array().unwrap();
    leases
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect()
}

fn journal_path(launch: &Launch) -> std::path::PathBuf {
    launch.dir.path().join("dynamic_ports.journal")
}

#[test]
fn a_torn_last_record_is_dropped_with_a_warning() {
    let launch = Launch::new(&["--exclude", "none"]);
    let (start, _) = launch.range;
    with_journal(&launch, &[start + 2, start + 3]);
    let path = journal_path(&launch);
    let whole = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(whole - 5).unwrap();
    let server = launch.start();
    assert_eq!(lease_ids(&server), vec!["a0"]);
    let log = server.log();
    let warning = log
        .lines()
        .find(|l| l.contains("[WARN]") && l.contains("dropped an incomplete last record"))
        .unwrap_or_else(|| panic!("no warning of the torn record:\n{log}"));
    assert!(warning.contains("never acknowledged"), "{warning}");
    assert!(warning.contains(&path.display().to_string()), "{warning}");
    assert_eq!(
        server.state()["leases"]["a0"]["ports"],
        Value::from(vec![start + 2])
    );
}

#[test]
fn a_journal_damaged_before_its_tail_is_kept_aside() {
    let launch = Launch::new(&["--exclude", "none"]);
    let (start, _) = launch.range;
    with_journal(&launch, &[start + 2, start + 3]);
    let path = journal_path(&launch);
    let mut bytes = std::fs::read(&path).unwrap();
    let second = bytes.len() - put(3, lease("a1", start + 3)).len();
    let first = second - put(2, lease("a0", start + 2)).len();
    bytes[first + 20] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let server = launch.start();
    assert_eq!(
        lease_ids(&server),
        Vec::<String>::new(),
        "the state file alone"
    );
    let log = server.log();
    let expected = format!("journal {} is damaged at byte {first}", path.display());
    let warning = log
        .lines()
        .find(|l| l.contains("[WARN]") && l.contains(&expected))
        .unwrap_or_else(|| panic!("no warning naming the damage:\n{log}"));
    let kept = launch
        .dir
        .names()
        .into_iter()
        .find(|n| n.starts_with("dynamic_ports.journal.corrupt-"))
        .unwrap_or_else(|| panic!("not kept aside: {:?}", launch.dir.names()));
    assert!(warning.contains(&kept), "{warning}");
    assert_eq!(std::fs::read(launch.dir.path().join(&kept)).unwrap(), bytes);
}

#[test]
fn a_journal_without_a_state_file_gives_its_leases_back() {
    let launch = Launch::new(&["--exclude", "none"]);
    let (start, _) = launch.range;
    with_journal(&launch, &[start + 2, start + 3]);
    std::fs::remove_file(launch.dir.state_file()).unwrap();
    let server = launch.start();
    assert_eq!(lease_ids(&server), vec!["a0", "a1"]);
    assert!(
        server.log().contains("has no state file before it"),
        "{}",
        server.log()
    );
}

/// The state file of a dynport before the journal (and before principals
/// and UDP): no journal, no `uid` nor `protocol` in its leases.
#[test]
fn a_state_file_from_before_the_journal_loads_and_gets_one() {
    let launch = Launch::new(&["--exclude", "none"]);
    let (start, end) = launch.range;
    let port = start + 2;
    let Lease {
        created_at,
        expires_at,
        ..
    } = lease("x", port);
    let time = |t| dynport::util::time::rfc3339(t);
    let old = serde_json::json!({
        "version": 1, "updated_at": "2026-01-01T00:00:00Z",
        "port_range": {"start": start, "end": end},
        "server_port": null, "last_server_port": null, "server": null,
        "ports": {(port.to_string()): {"state": "leased", "since": time(created_at), "lease_id": "0000000000000old"}},
        "last_scan": null,
        "leases": {"0000000000000old": {"id": "0000000000000old", "ports": [port], "pool": "default",
            "owner": "old", "pid": null, "created_at": time(created_at),
            "expires_at": time(expires_at), "ttl_secs": 3600}},
    });
    std::fs::write(
        launch.dir.state_file(),
        serde_json::to_vec_pretty(&old).unwrap(),
    )
    .unwrap();
    let server = launch.start();
    assert_eq!(lease_ids(&server), vec!["0000000000000old"]);
    assert!(journal_path(&launch).exists());
    let (status, _) = server
        .json_request("POST", "/api/v1/ports/lease", "{}")
        .unwrap();
    assert_eq!(status, 201);
    assert_eq!(server.state()["leases"].as_object().unwrap().len(), 2);
    let log = server.log();
    // The one warning a server may give whatever its files: that it may not
    // filter handshakes, when it runs without the privilege.
    let warnings = log
        .lines()
        .filter(|l| l.contains("[WARN]") && !l.contains("may not filter handshakes"));
    assert_eq!(warnings.count(), 0, "{log}");
}
