//! The journal's records and how they are read against a snapshot.

use super::*;
use crate::ports::lease::Protocol;
use std::fs;
use std::time::{Duration, UNIX_EPOCH};

fn lease(id: &str, port: u16) -> Lease {
    let at = UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    Lease {
        id: id.to_string(),
        ports: vec![port],
        pool: "default".to_string(),
        owner: Some("ci".to_string()),
        uid: Some(1000),
        protocol: Protocol::Both,
        pid: None,
        pid_start: None,
        created_at: at,
        expires_at: at + Duration::from_secs(300),
        ttl_secs: 300,
        name: None,
    }
}

fn put(seq: u64, id: &str, port: u16) -> Record {
    Record::Put {
        seq,
        lease: lease(id, port),
        cursor: Some(port + 1),
    }
}

fn end(seq: u64, id: &str) -> Record {
    Record::End {
        seq,
        id: id.to_string(),
    }
}

fn journal(records: &[Record]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for r in records {
        r.encode(&mut bytes);
    }
    bytes
}

fn follows(snapshot: u64) -> Record {
    Record::Follows { snapshot }
}

#[test]
fn a_record_is_one_json_object_in_a_frame() {
    let bytes = journal(&[end(7, "a")]);
    assert_eq!(&bytes[8..], br#"{"end":{"seq":7,"id":"a"}}"#);
    assert_eq!(bytes[..4], 26u32.to_le_bytes());
}

#[test]
fn a_journal_continuing_the_snapshot_gives_every_change() {
    let bytes = journal(&[
        follows(42),
        put(2, "a", 3000),
        end(3, "a"),
        put(4, "b", 3001),
    ]);
    let replay = read(&bytes, Some(42)).unwrap();
    assert_eq!(replay.fit, Fit::Continues);
    assert_eq!(
        replay.changes,
        vec![put(2, "a", 3000), end(3, "a"), put(4, "b", 3001)]
    );
    assert_eq!(replay.torn, None);
}

#[test]
fn a_torn_tail_is_dropped_and_said() {
    let whole = journal(&[follows(42), put(2, "a", 3000), put(3, "b", 3001)]);
    let second = journal(&[follows(42), put(2, "a", 3000)]).len();
    for cut in second + 1..whole.len() {
        let replay = read(&whole[..cut], Some(42)).unwrap();
        assert_eq!(replay.changes, vec![put(2, "a", 3000)], "cut at {cut}");
        assert_eq!(replay.torn, Some((second, cut - second)), "cut at {cut}");
    }
}

#[test]
fn damage_before_the_tail_is_an_error_naming_where() {
    let mut bytes = journal(&[follows(42), put(2, "a", 3000), put(3, "b", 3001)]);
    let second = journal(&[follows(42)]).len();
    bytes[second + 20] ^= 0x20;
    let damage = read(&bytes, Some(42)).unwrap_err();
    assert_eq!(damage.at, second);
    assert_eq!(damage.why, "a frame whose checksum does not match");
}

#[test]
fn a_whole_frame_that_is_not_a_record_is_damage() {
    let mut bytes = journal(&[follows(42)]);
    crate::state::frame::encode(b"{\"put\":1}", &mut bytes);
    end(3, "a").encode(&mut bytes);
    let damage = read(&bytes, Some(42)).unwrap_err();
    assert!(
        damage.why.starts_with("a record that does not parse"),
        "{damage:?}"
    );
    let bytes = journal(&[put(2, "a", 3000)]);
    let damage = read(&bytes, Some(42)).unwrap_err();
    assert_eq!(damage.at, 0);
    let bytes = journal(&[follows(42), follows(42)]);
    assert!(read(&bytes, Some(42)).is_err());
}

#[test]
fn an_empty_or_headless_journal_holds_nothing() {
    let replay = read(b"", Some(42)).unwrap();
    assert_eq!((replay.changes.len(), replay.fit), (0, Fit::Continues));
    let header = journal(&[follows(42)]);
    let replay = read(&header[..5], Some(42)).unwrap();
    assert_eq!(replay.torn, Some((0, 5)));
    assert!(replay.changes.is_empty());
}

#[test]
fn after_a_crash_between_snapshot_and_fresh_journal_only_later_changes_apply() {
    let bytes = journal(&[
        follows(41),
        put(2, "a", 3000),
        put(3, "b", 3001),
        Record::Next {
            snapshot: 42,
            cut: 2,
        },
        end(4, "a"),
    ]);
    let replay = read(&bytes, Some(42)).unwrap();
    assert_eq!(replay.fit, Fit::After(2));
    assert_eq!(replay.changes, vec![put(3, "b", 3001), end(4, "a")]);
    let replay = read(&bytes, Some(41)).unwrap();
    assert_eq!(replay.fit, Fit::Continues);
    assert_eq!(
        replay.changes.len(),
        3,
        "a next record of no snapshot in place is ignored"
    );
}

#[test]
fn a_journal_of_an_older_snapshot_adds_nothing() {
    let bytes = journal(&[follows(41), put(2, "a", 3000)]);
    let replay = read(&bytes, Some(42)).unwrap();
    assert_eq!((replay.fit, replay.changes), (Fit::Predates, vec![]));
}

#[test]
fn a_journal_without_snapshot_gives_every_change() {
    let bytes = journal(&[
        follows(41),
        put(2, "a", 3000),
        end(3, "a"),
        put(4, "b", 3001),
    ]);
    let replay = read(&bytes, None).unwrap();
    assert_eq!(replay.fit, Fit::Alone);
    assert_eq!(replay.changes.len(), 3);
}

#[test]
fn applying_changes_twice_changes_nothing_more() {
    let range = crate::ports::PortRange::new(3000, 3100).unwrap();
    let mut state = StateFile::empty(range, "2026-11-25T19:00:00Z");
    let changes = vec![put(2, "a", 3000), put(3, "b", 3001), end(4, "a")];
    apply(&mut state, changes.clone());
    let once = state.clone();
    apply(&mut state, changes);
    assert_eq!(state, once);
    assert_eq!(state.leases.keys().collect::<Vec<_>>(), vec!["b"]);
    assert_eq!(state.cursors["default"], 3002);
    let entries: Vec<_> = state.ports.iter().collect();
    let mut leased = PortEntry::new(PortState::Leased, "2026-09-21T14:13:20Z");
    leased.lease_id = Some("b".into());
    assert_eq!(entries, vec![(&3001, &leased)]);
}

#[test]
fn a_snapshot_id_does_not_depend_on_how_the_bytes_arrive() {
    let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    let whole = snapshot_id(&bytes);
    for cut in [1, 3, 8, 13, 500, 999] {
        let mut hasher = IdHasher::default();
        for piece in bytes.chunks(cut) {
            hasher.update(piece);
        }
        assert_eq!(hasher.finish(), whole, "pieces of {cut}");
    }
    assert_ne!(snapshot_id(&bytes[..999]), whole);
    assert_ne!(snapshot_id(b"a"), snapshot_id(b"a\0"));
    assert_ne!(snapshot_id(b""), snapshot_id(b"\0"));
    // Pinned: a journal names its snapshot by this value across builds.
    assert_eq!(snapshot_id(b"dynport"), 0xd693_e50b_b91a_d389);
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dynport-journal-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn appends_land_after_the_header_and_a_fresh_journal_keeps_the_changes_after_a_cut() {
    let dir = temp_dir("append");
    let held = crate::state::files::Dir::open(&dir).unwrap();
    let mut j = Journal::create(&held, 7, &[]).unwrap();
    assert!(j.is_empty());
    j.append(&journal(&[put(2, "a", 3000), put(3, "b", 3001)]), Some(2))
        .unwrap();
    j.append(
        &journal(&[Record::Next {
            snapshot: 8,
            cut: 3,
        }]),
        None,
    )
    .unwrap();
    j.append(&journal(&[end(4, "a"), put(5, "c", 3002)]), Some(4))
        .unwrap();
    let on_disk = fs::read(path(&dir)).unwrap();
    assert_eq!(on_disk.len() as u64, j.len());
    assert_eq!(read(&on_disk, Some(7)).unwrap().changes.len(), 4);
    let tail = j.frames_after(3).unwrap();
    assert_eq!(tail, journal(&[end(4, "a"), put(5, "c", 3002)]));
    assert_eq!(
        j.frames_after(2).unwrap(),
        journal(&[put(3, "b", 3001), end(4, "a"), put(5, "c", 3002)])
    );
    let fresh = Journal::create(&held, 8, &tail).unwrap();
    assert!(!fresh.is_empty());
    let replay = read(&fs::read(path(&dir)).unwrap(), Some(8)).unwrap();
    assert_eq!(replay.changes, vec![end(4, "a"), put(5, "c", 3002)]);
    assert_eq!(
        fresh.frames_after(4).unwrap(),
        journal(&[put(5, "c", 3002)])
    );
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(JOURNAL_FILE)]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn name_records_put_and_drop_names() {
    let range = crate::ports::PortRange::new(3000, 3100).unwrap();
    let mut state = StateFile::empty(range, "2026-11-25T19:00:00Z");
    let web = crate::ports::names::Name {
        uid: Some(1000),
        port: 3000,
        alias: false,
        lease_id: None,
        ended_at: Some(UNIX_EPOCH + Duration::from_secs(1_795_633_200)),
    };
    let named = |seq, name: &str, entry: Option<crate::ports::names::Name>| Record::Name {
        seq,
        name: name.to_string(),
        entry,
    };
    let changes = vec![
        named(2, "web", Some(web.clone())),
        named(3, "db", Some(web.clone())),
        named(4, "db", None),
    ];
    let bytes = journal(&[follows(7), changes[0].clone()]);
    assert_eq!(
        read(&bytes, Some(7)).unwrap().changes,
        vec![changes[0].clone()]
    );
    apply(&mut state, changes);
    assert_eq!(
        state.names,
        std::collections::BTreeMap::from([("web".to_string(), web)])
    );
    let mut frame = Vec::new();
    named(5, "x", None).encode(&mut frame);
    let text = String::from_utf8_lossy(&frame);
    assert!(
        text.contains(r#"{"name":{"seq":5,"name":"x","entry":null}}"#),
        "{text}"
    );
}
