//! Where changes are kept: each in the journal before its answer, the
//! state file a snapshot brought up to it, and a failed journal write
//! undone and followed by a whole snapshot.

use super::*;
use crate::state::journal::{self, Fit, JOURNAL_FILE};

fn grant(f: &Fixture) -> (u16, Value) {
    call(&f.app, "POST", "/api/v1/ports/lease", &[], "{}")
}

/// The changes the journal holds after the state file.
fn journaled(f: &Fixture) -> usize {
    let bytes = std::fs::read(f.app.store().journal_path()).unwrap();
    let snapshot = std::fs::read(f.app.store().path()).unwrap();
    let replay = journal::read(&bytes, Some(journal::snapshot_id(&snapshot))).unwrap();
    assert_eq!(replay.fit, Fit::Continues);
    replay.changes.len()
}

fn durable_leases(f: &Fixture) -> Vec<String> {
    let state = f.app.store().durable().unwrap().unwrap();
    state.leases.into_keys().collect()
}

#[test]
fn a_change_is_in_the_journal_before_its_answer_and_the_snapshot_follows() {
    let f = fixture("journal-first", None);
    let state_file = std::fs::read(f.app.store().path()).unwrap();
    let (status, answer) = grant(&f);
    assert_eq!(status, 201, "{answer}");
    let id = answer["lease"]["id"].as_str().unwrap().to_string();
    assert_eq!(journaled(&f), 1);
    assert_eq!(std::fs::read(f.app.store().path()).unwrap(), state_file);
    assert_eq!(durable_leases(&f), vec![id.clone()]);
    assert!(f.app.snapshot_due().is_some(), "the state file is behind");
    f.app.snapshot().unwrap();
    assert_eq!(journaled(&f), 0, "the journal starts over");
    assert_eq!(f.app.snapshot_due(), None);
    let saved: Value =
        serde_json::from_slice(&std::fs::read(f.app.store().path()).unwrap()).unwrap();
    assert_eq!(saved["leases"][&id]["id"], id.as_str());
    let release = format!("/api/v1/ports/leases/{id}");
    assert_eq!(call(&f.app, "DELETE", &release, &[], "").0, 200);
    assert_eq!(journaled(&f), 1);
    assert_eq!(durable_leases(&f), Vec::<String>::new());
}

/// The journal is never written through a file put in its place: the
/// change is refused with 503 and undone, and the next change, once the
/// state file can be written, writes a whole snapshot and a fresh journal.
#[test]
fn a_failed_journal_write_is_undone_and_the_next_commit_writes_a_snapshot() {
    let f = fixture("journal-fails", None);
    let (status, first) = grant(&f);
    assert_eq!(status, 201, "{first}");
    let path = f.app.store().journal_path();
    let planted = f.app.store().dir().path().join("planted");
    std::fs::write(&planted, std::fs::read(&path).unwrap()).unwrap();
    std::fs::rename(&planted, &path).unwrap();
    let before = durable_leases(&f);
    let (status, answer) = grant(&f);
    assert_eq!(status, 503, "{answer}");
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.contains("was replaced by another file"),
        "{message}"
    );
    assert_eq!(f.app.summary().counts.leased, 1, "undone");
    assert_eq!(durable_leases(&f), before);
    let (status, answer) = grant(&f);
    assert_eq!(status, 201, "{answer}");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(f.app.store().path()).unwrap()).unwrap();
    assert_eq!(saved["leases"].as_object().unwrap().len(), 2, "{saved}");
    assert_eq!(journaled(&f), 0, "a fresh journal after the snapshot");
    assert_eq!(f.app.summary().counts.leased, 2);
    let names: Vec<String> = std::fs::read_dir(f.app.store().dir().path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(JOURNAL_FILE))
        .collect();
    assert_eq!(names, vec![JOURNAL_FILE]);
}
