//! Start = snapshot + journal, through the files of a real directory.

use super::*;
use crate::ports::lease::{Lease, Protocol};
use crate::state::journal::{Journal, Record};
use crate::state::tests::{lease_at, sample, temp_dir};
use std::fs;
use std::path::Path;
use std::time::Duration;

fn range() -> PortRange {
    PortRange::new(3000, 9000).unwrap()
}

fn lease(id: &str, port: u16) -> Lease {
    lease_at(
        id,
        &[port],
        UNIX_EPOCH + Duration::from_secs(1_790_000_000),
        300,
    )
}

fn put(seq: u64, id: &str, port: u16) -> Vec<u8> {
    let mut bytes = Vec::new();
    let lease = lease(id, port);
    Record::Put {
        seq,
        lease,
        cursor: None,
    }
    .encode(&mut bytes);
    bytes
}

/// A store with the sample snapshot and a journal continuing it that
/// grants `a` and `b`.
fn with_journal(name: &str) -> (PathBuf, Store) {
    let dir = temp_dir(name);
    let store = Store::open(&dir).unwrap();
    let id = store.save(&sample()).unwrap();
    let mut journal = Journal::create(store.dir(), id, &[]).unwrap();
    journal.append(&put(2, "a", 3002), Some(2)).unwrap();
    journal.append(&put(3, "b", 3003), Some(3)).unwrap();
    (dir, store)
}

/// The sample as a starting server reads it: without its `ports`.
fn sample_for_start() -> Loaded {
    let mut state = sample();
    state.ports.clear();
    Loaded::Found(state)
}

fn lease_ids(loaded: &Loaded) -> Vec<String> {
    match loaded {
        Loaded::Found(state) => state.leases.keys().cloned().collect(),
        other => panic!("expected a state, got {other:?}"),
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn state_file_round_trips() {
    let dir = temp_dir("roundtrip");
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.load().unwrap(), Loaded::Missing);
    let id = store.save(&sample()).unwrap();
    assert_eq!(store.load().unwrap(), Loaded::Found(sample()));
    assert_eq!(id, journal::snapshot_id(&fs::read(store.path()).unwrap()));
    assert_eq!(names(&dir), vec![STATE_FILE]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn corrupt_file_is_kept_aside_not_overwritten() {
    let dir = temp_dir("corrupt");
    let store = Store::open(&dir).unwrap();
    fs::write(store.path(), b"{\"version\": 1, \"trunc").unwrap();
    let Loaded::Corrupt { kept_as, .. } = store.load().unwrap() else {
        panic!("a truncated file must be reported corrupt");
    };
    assert!(!store.path().exists());
    assert_eq!(fs::read(&kept_as).unwrap(), b"{\"version\": 1, \"trunc");
    let name = kept_as.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("dynamic_ports.json.corrupt-"), "{name}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn start_is_the_snapshot_and_the_journal() {
    let (dir, store) = with_journal("recover");
    let recovered = store.recover(range()).unwrap();
    assert_eq!(lease_ids(&recovered.snapshot), vec!["a", "b"]);
    let read = JournalLoad::Read {
        fit: Fit::Continues,
        changes: 2,
        torn: None,
    };
    assert_eq!(recovered.journal, read);
    let durable = store.durable().unwrap().unwrap();
    assert_eq!(durable.leases.keys().collect::<Vec<_>>(), vec!["a", "b"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_torn_tail_is_dropped_and_the_rest_applied() {
    let (dir, store) = with_journal("torn");
    let journal = store.journal_path();
    let len = fs::metadata(&journal).unwrap().len();
    let file = fs::OpenOptions::new().write(true).open(&journal).unwrap();
    file.set_len(len - 3).unwrap();
    let recovered = store.recover(range()).unwrap();
    assert_eq!(lease_ids(&recovered.snapshot), vec!["a"]);
    let JournalLoad::Read {
        torn: Some((at, bytes)),
        ..
    } = recovered.journal
    else {
        panic!("expected a torn tail: {:?}", recovered.journal);
    };
    assert_eq!((at as u64 + bytes as u64), len - 3);
    assert_eq!(bytes as u64, put(3, "b", 3003).len() as u64 - 3);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn damage_in_the_middle_keeps_the_journal_aside_and_uses_the_snapshot() {
    let (dir, store) = with_journal("damage");
    let journal = store.journal_path();
    let mut bytes = fs::read(&journal).unwrap();
    let first_change = bytes.len() - put(3, "b", 3003).len() - put(2, "a", 3002).len();
    bytes[first_change + 12] ^= 0x01;
    fs::write(&journal, &bytes).unwrap();
    let recovered = store.recover(range()).unwrap();
    assert_eq!(recovered.snapshot, sample_for_start());
    let JournalLoad::Damaged { kept_as, damage } = recovered.journal else {
        panic!("expected damage: {:?}", recovered.journal);
    };
    assert_eq!(damage.at, first_change);
    assert_eq!(fs::read(&kept_as).unwrap(), bytes);
    let name = kept_as.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("dynamic_ports.journal.corrupt-"), "{name}");
    assert!(!journal.exists());
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_journal_without_snapshot_applies_to_an_empty_state() {
    let (dir, store) = with_journal("alone");
    fs::remove_file(store.path()).unwrap();
    let recovered = store.recover(range()).unwrap();
    assert_eq!(lease_ids(&recovered.snapshot), vec!["a", "b"]);
    let Loaded::Found(state) = &recovered.snapshot else {
        unreachable!()
    };
    assert_eq!((state.port_range, state.server_port), (range(), None));
    assert!(matches!(
        recovered.journal,
        JournalLoad::Read {
            fit: Fit::Alone,
            changes: 2,
            ..
        }
    ));
    fs::remove_dir_all(dir).unwrap();
}

/// A state file of the dynport before principals, UDP and the journal: no
/// `uid`, `protocol` or journal at all.
#[test]
fn a_snapshot_from_before_the_journal_loads_as_it_is() {
    let dir = temp_dir("before-journal");
    let store = Store::open(&dir).unwrap();
    let old = r#"{
  "version": 1,
  "updated_at": "2026-11-25T19:00:00Z",
  "port_range": { "start": 3000, "end": 9000 },
  "server_port": null,
  "last_server_port": 3456,
  "server": null,
  "ports": { "4100": { "state": "leased", "since": "2026-11-25T19:00:00Z", "lease_id": "00000000000000aa" } },
  "last_scan": null,
  "leases": { "00000000000000aa": { "id": "00000000000000aa", "ports": [4100], "pool": "default",
    "owner": "old", "pid": null, "created_at": "2026-11-25T19:00:00Z",
    "expires_at": "2026-11-25T19:05:00Z", "ttl_secs": 300 } },
  "cursors": { "default": 4101 }
}
"#;
    fs::write(store.path(), old).unwrap();
    let recovered = store.recover(range()).unwrap();
    assert_eq!(recovered.journal, JournalLoad::Missing);
    let Loaded::Found(state) = recovered.snapshot else {
        panic!("the old file must load");
    };
    let lease = &state.leases["00000000000000aa"];
    assert_eq!((lease.uid, lease.protocol), (None, Protocol::Both));
    assert_eq!(state.last_server_port, Some(3456));
    assert_eq!(
        fs::read(store.path()).unwrap(),
        old.as_bytes(),
        "read, not written"
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_oversized_journal_is_kept_aside() {
    let (dir, store) = with_journal("oversized");
    let file = fs::OpenOptions::new()
        .write(true)
        .open(store.journal_path())
        .unwrap();
    file.set_len(MAX_STATE_BYTES + 1).unwrap();
    let recovered = store.recover(range()).unwrap();
    assert_eq!(recovered.snapshot, sample_for_start());
    assert!(matches!(recovered.journal, JournalLoad::Damaged { .. }));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_borrowed_state_is_written_as_the_state_file_is() {
    let mut table = crate::ports::PortTable::new(range(), &[], "2026-11-25T18:59:58Z");
    let _ = table.insert_lease(lease("a", 3002), "2026-11-25T19:00:00Z");
    table.set_server_port(3456, "2026-11-25T18:59:58Z").unwrap();
    table.set_cursor("default", 3003);
    let mut owned = sample();
    owned.ports = table.entries().clone();
    owned.leases = [("a".to_string(), lease("a", 3002))].into();
    owned.cursors = table.cursors().clone();
    let server = owned.server.clone();
    let scan = owned.last_scan.clone();
    let borrowed = crate::state::StateRef::of(
        &table,
        Some(3456),
        server.as_ref(),
        scan.as_ref(),
        owned.updated_at.clone(),
    );
    assert_eq!(
        serde_json::to_string_pretty(&borrowed).unwrap(),
        serde_json::to_string_pretty(&owned).unwrap()
    );
}

#[test]
fn a_snapshot_is_written_beside_and_only_installed_when_asked() {
    let dir = temp_dir("install");
    let store = Store::open(&dir).unwrap();
    let written = store.write_temp(&sample()).unwrap();
    assert_eq!(store.load().unwrap(), Loaded::Missing);
    assert_eq!(names(&dir).len(), 1);
    assert!(names(&dir)[0].starts_with(".dynamic_ports.json.tmp-"));
    store.discard(written);
    assert!(names(&dir).is_empty());
    let written = store.write_temp(&sample()).unwrap();
    store.install(&written).unwrap();
    assert_eq!(store.load().unwrap(), Loaded::Found(sample()));
    assert_eq!(names(&dir), vec![STATE_FILE]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn stale_temporary_files_are_removed_and_nothing_else() {
    let dir = temp_dir("stale");
    let store = Store::open(&dir).unwrap();
    let keep = [
        ".dynamic_ports.json.tmp-short",
        ".dynamic_ports.json.tmp-0123456789abcdeg",
        "dynamic_ports.json.corrupt-1",
        STATE_FILE,
    ];
    for name in keep {
        fs::write(dir.join(name), b"x").unwrap();
    }
    let gone = [
        ".dynamic_ports.json.tmp-0123456789abcdef",
        ".dynamic_ports.journal.tmp-fedcba9876543210",
    ];
    for name in gone {
        fs::write(dir.join(name), b"x").unwrap();
    }
    std::os::unix::fs::symlink(
        "/etc/passwd",
        dir.join(".dynamic_ports.json.tmp-00000000000000aa"),
    )
    .unwrap();
    assert_eq!(store.remove_stale_temps().unwrap(), 3);
    let mut keep: Vec<String> = keep.iter().map(|n| n.to_string()).collect();
    keep.sort();
    assert_eq!(names(&dir), keep);
    assert!(Path::new("/etc/passwd").exists());
    fs::remove_dir_all(dir).unwrap();
}
