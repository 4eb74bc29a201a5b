//! The journal `dynamic_ports.journal`: every acknowledged lease change,
//! appended and fsync'd before its answer, so that a commit costs the size
//! of the change and not of the whole state. The state file is the
//! snapshot the journal continues; start = snapshot + journal.
//!
//! Each record is a frame ([`super::frame`]) holding one JSON [`Record`].
//! The first names the snapshot the journal continues, by a hash of the
//! snapshot's bytes, so a journal is never applied to a snapshot it does not
//! continue. Changes are absolute (a lease as it now is, or its end) and
//! carry the sequence number of their change. Before a snapshot taken at
//! change `cut` replaces the state file while changes go on, a `next` record
//! says so: when a crash comes between that rename and the fresh journal,
//! the changes after `cut` are taken from the old one.

mod file;

pub use file::{AppendError, Journal};

pub use crate::util::hash::IdHasher;

use super::StateFile;
use super::frame::{self, End, Frames};
use crate::ports::lease::Lease;
use crate::ports::{PortEntry, PortState};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const JOURNAL_FILE: &str = "dynamic_ports.journal";

/// One record of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    /// The first record: the snapshot (by [`snapshot_id`]) this journal continues.
    Follows { snapshot: u64 },
    /// A lease as it is now, granted or renewed; `cursor` is where its
    /// pool's round-robin hand-out goes on, when the grant moved it.
    Put {
        seq: u64,
        lease: Lease,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<u16>,
    },
    /// A lease ended: released, expired, or its process exited.
    End { seq: u64, id: String },
    /// A name as it is now (`entry`), or gone (`None`).
    Name {
        seq: u64,
        name: String,
        entry: Option<crate::ports::names::Name>,
    },
    /// The snapshot `snapshot`, holding every change up to `cut`, is about
    /// to replace the state file.
    Next { snapshot: u64, cut: u64 },
}

impl Record {
    /// The sequence number of a change; `None` for the others.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Record::Put { seq, .. } | Record::End { seq, .. } | Record::Name { seq, .. } => {
                Some(*seq)
            }
            Record::Follows { .. } | Record::Next { .. } => None,
        }
    }

    /// Appends this record's frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // A record of plain fields serialises; one over the frame limit
        // cannot be made from a lease that passed the request checks.
        let payload = serde_json::to_vec(self).unwrap_or_default();
        frame::encode(&payload, out);
    }
}

/// The identity of a snapshot: a 64-bit hash of its bytes ([`IdHasher`]).
pub fn snapshot_id(bytes: &[u8]) -> u64 {
    let mut hasher = IdHasher::default();
    hasher.update(bytes);
    hasher.finish()
}

/// How a journal relates to the snapshot it was read with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// It continues the snapshot: every change applies.
    Continues,
    /// The snapshot was taken at change `cut` and replaced the state file,
    /// and a crash came before the journal started over: the changes after
    /// `cut` apply.
    After(u64),
    /// It continues an older snapshot whose changes the state file already
    /// holds: none applies.
    Predates,
    /// There is no snapshot: its changes apply to an empty state.
    Alone,
}

/// What reading a journal found.
#[derive(Debug, PartialEq)]
pub struct Replay {
    /// The changes to apply to the snapshot, in order.
    pub changes: Vec<Record>,
    pub fit: Fit,
    /// A torn last record (offset, bytes): it was never acknowledged.
    pub torn: Option<(usize, usize)>,
}

/// A journal damaged before its tail: it is kept aside and the snapshot used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damaged {
    pub at: usize,
    pub why: String,
}

/// Reads `bytes` as the journal of the snapshot with id `snapshot` (`None`:
/// no snapshot). An empty journal, or one torn before its first record
/// ended, holds nothing.
pub fn read(bytes: &[u8], snapshot: Option<u64>) -> Result<Replay, Damaged> {
    let mut frames = Frames::new(bytes);
    let mut records = Vec::new();
    for (at, payload) in frames.by_ref() {
        let record: Record = serde_json::from_slice(payload).map_err(|e| Damaged {
            at,
            why: format!("a record that does not parse: {e}"),
        })?;
        if records.is_empty() != matches!(record, Record::Follows { .. }) {
            let why = "a first record that names no snapshot, or a second that does";
            return Err(Damaged {
                at,
                why: why.to_string(),
            });
        }
        records.push(record);
    }
    let torn = match frames.end() {
        Some(End::Damaged { at, why }) => {
            let (at, why) = (*at, why.to_string());
            return Err(Damaged { at, why });
        }
        Some(End::Torn { at }) => Some((*at, bytes.len() - at)),
        _ => None,
    };
    let fit = fit(&records, snapshot);
    let changes = records
        .into_iter()
        .filter(|r| match (fit, r.seq()) {
            (Fit::Continues | Fit::Alone, Some(_)) => true,
            (Fit::After(cut), Some(seq)) => seq > cut,
            _ => false,
        })
        .collect();
    Ok(Replay { changes, fit, torn })
}

fn fit(records: &[Record], snapshot: Option<u64>) -> Fit {
    let Some(snapshot) = snapshot else {
        return Fit::Alone;
    };
    match records.first() {
        None => Fit::Continues,
        Some(Record::Follows { snapshot: s }) if *s == snapshot => Fit::Continues,
        _ => records
            .iter()
            .rev()
            .find_map(|r| match r {
                Record::Next { snapshot: s, cut } if *s == snapshot => Some(Fit::After(*cut)),
                _ => None,
            })
            .unwrap_or(Fit::Predates),
    }
}

/// Applies journal changes to a loaded state, in order: its leases, their
/// ports' entries, the pools' cursors and the names, as a snapshot taken after them
/// would hold them. Records are absolute, so a change the state already
/// holds changes nothing.
pub fn apply(state: &mut StateFile, changes: Vec<Record>) {
    for change in changes {
        match change {
            Record::Put { lease, cursor, .. } => {
                if let Some(port) = cursor {
                    state.cursors.insert(lease.pool.clone(), port);
                }
                let since = crate::util::time::rfc3339(lease.created_at);
                for &port in &lease.ports {
                    let entry = state
                        .ports
                        .entry(port)
                        .or_insert_with(|| PortEntry::new(PortState::Leased, &since));
                    if entry.lease_id.as_deref() != Some(lease.id.as_str()) {
                        *entry = PortEntry::new(PortState::Leased, &since);
                        entry.lease_id = Some(lease.id.as_str().into());
                    }
                }
                state.leases.insert(lease.id.clone(), lease);
            }
            Record::End { id, .. } => {
                let Some(lease) = state.leases.remove(&id) else {
                    continue;
                };
                for port in lease.ports {
                    if state.ports.get(&port).and_then(|e| e.lease_id.as_deref()) == Some(&id) {
                        state.ports.remove(&port);
                    }
                }
            }
            Record::Name { name, entry, .. } => {
                match entry {
                    Some(entry) => state.names.insert(name, entry),
                    None => state.names.remove(&name),
                };
            }
            Record::Follows { .. } | Record::Next { .. } => {}
        }
    }
}

/// Where `dir`'s journal is.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(JOURNAL_FILE)
}

#[cfg(test)]
mod tests;
