//! The journal reader: any bytes, read against no snapshot or the one its
//! first record names, never panic; and no record is ever taken from a
//! frame whose checksum does not hold: each frame handed on is, byte for
//! byte, what encoding its payload writes, and follows the one before.
#![no_main]

use dynport::state::frame::{self, Frames};
use dynport::state::journal::{self, Record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut frames = Frames::new(data);
    let mut next = 0;
    for (at, payload) in frames.by_ref() {
        assert_eq!(at, next, "frames follow each other");
        let mut again = Vec::new();
        frame::encode(payload, &mut again);
        assert_eq!(&data[at..at + again.len()], &again[..], "a frame that was not written so");
        next = at + again.len();
    }
    assert_eq!(frames.good_len(), next);
    let named = frames_first_snapshot(data);
    for snapshot in [None, named, named.map(|s| s ^ 1)] {
        match journal::read(data, snapshot) {
            Ok(replay) => {
                assert!(replay.changes.iter().all(|r| r.seq().is_some()));
                if let Some((at, bytes)) = replay.torn {
                    assert_eq!(at + bytes, data.len(), "a torn record ends the journal");
                    assert!(at <= next);
                }
            }
            Err(damage) => assert!(damage.at < data.len()),
        }
    }
});

/// The snapshot the first record names, when it is a whole `follows` record.
fn frames_first_snapshot(data: &[u8]) -> Option<u64> {
    let (_, payload) = Frames::new(data).next()?;
    match serde_json::from_slice(payload).ok()? {
        Record::Follows { snapshot } => Some(snapshot),
        _ => None,
    }
}
