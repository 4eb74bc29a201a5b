//! The journal's file: made whole beside the old one and renamed over it,
//! then appended to, each append synced before the changes it carries are
//! answered.

use super::{JOURNAL_FILE, Record};
use crate::state::files::Dir;
use crate::state::frame::{self, Frames};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

/// The journal, appended to by one writer at a time. The file is opened
/// for each append and closed after it, so no file stays open for writing
/// and the file system can be made read-only under a running server.
#[derive(Debug)]
pub struct Journal {
    dir: Dir,
    /// Device and inode of the file made by [`Journal::create`]: a file
    /// put in its place is never written to.
    file_id: (u64, u64),
    /// Bytes written and synced: where the next frames go.
    len: u64,
    /// Where each append began, with the first change it carried.
    appends: Vec<(u64, u64)>,
}

impl Journal {
    /// Makes `dir`'s journal a new file holding the header naming
    /// `snapshot` and then `tail` (whole frames): written beside it, synced,
    /// renamed over it and the directory synced, so a crash leaves the old
    /// journal or the new one.
    pub fn create(dir: &Dir, snapshot: u64, tail: &[u8]) -> io::Result<Journal> {
        let mut bytes = Vec::with_capacity(64 + tail.len());
        Record::Follows { snapshot }.encode(&mut bytes);
        let header = bytes.len() as u64;
        bytes.extend_from_slice(tail);
        let (tmp, file) = dir.create_temp(JOURNAL_FILE)?;
        let written = file
            .write_all_at(&bytes, 0)
            .and_then(|()| file.sync_data())
            .and_then(|()| file.metadata())
            .and_then(|meta| {
                dir.rename(&tmp, JOURNAL_FILE)
                    .map(|()| (meta.dev(), meta.ino()))
            });
        let file_id = match written {
            Ok(file_id) => file_id,
            Err(e) => {
                let _ = dir.remove(&tmp);
                return Err(e);
            }
        };
        dir.sync()?;
        let appends = if tail.is_empty() {
            Vec::new()
        } else {
            vec![(0, header)]
        };
        Ok(Journal {
            dir: dir.clone(),
            file_id,
            len: bytes.len() as u64,
            appends,
        })
    }

    /// Bytes in the journal.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no change.
    pub fn is_empty(&self) -> bool {
        self.appends.is_empty()
    }

    /// Opens the journal made by [`Journal::create`], and no other file.
    fn open(&self, flags: libc::c_int) -> io::Result<File> {
        let file = self.dir.open_regular(JOURNAL_FILE, flags, 0)?;
        let meta = file.metadata()?;
        if (meta.dev(), meta.ino()) != self.file_id {
            return Err(io::Error::other(format!(
                "{} was replaced by another file",
                self.dir.join(JOURNAL_FILE).display()
            )));
        }
        Ok(file)
    }

    /// Appends `frames` and syncs them: the records of changes from
    /// `first_seq` on, or (`None`) a record of no change. On failure the
    /// journal is cut back to what it held, so the next append does not
    /// follow a torn frame; when even that fails the error says so and the
    /// journal must not be appended to again.
    pub fn append(&mut self, frames: &[u8], first_seq: Option<u64>) -> Result<(), AppendError> {
        let file = self.open(libc::O_WRONLY).map_err(AppendError::Undone)?;
        let written = file
            .write_all_at(frames, self.len)
            .and_then(|()| file.sync_data());
        match written {
            Ok(()) => {
                if let Some(first) = first_seq {
                    self.appends.push((first, self.len));
                }
                self.len += frames.len() as u64;
                Ok(())
            }
            Err(e) => match file.set_len(self.len) {
                Ok(()) => Err(AppendError::Undone(e)),
                Err(_) => Err(AppendError::Torn(e)),
            },
        }
    }

    /// The frames of the changes after `cut`, as they are in the file: the
    /// tail a fresh journal starts with once a snapshot taken at `cut`
    /// replaced the state file.
    pub fn frames_after(&self, cut: u64) -> io::Result<Vec<u8>> {
        // Appends hold their changes in order, so the first change after
        // `cut` is in the last append that began at or before it, or later.
        let from = self
            .appends
            .iter()
            .rev()
            .find(|(first, _)| *first <= cut)
            .or(self.appends.first())
            .map_or(self.len, |(_, at)| *at);
        let mut bytes = vec![0; (self.len - from) as usize];
        if !bytes.is_empty() {
            self.open(libc::O_RDONLY)?.read_exact_at(&mut bytes, from)?;
        }
        let mut tail = Vec::new();
        for (at, payload) in Frames::new(&bytes) {
            let later = serde_json::from_slice::<Record>(payload)
                .ok()
                .and_then(|r| r.seq())
                .is_some_and(|seq| seq > cut);
            if later {
                tail.extend_from_slice(&bytes[at..at + frame::HEADER + payload.len()]);
            }
        }
        Ok(tail)
    }
}

/// Why an append failed.
#[derive(Debug)]
pub enum AppendError {
    /// Nothing of it stays in the journal.
    Undone(io::Error),
    /// Part of it may stay: the journal must be started over.
    Torn(io::Error),
}

impl AppendError {
    pub fn into_io(self) -> io::Error {
        match self {
            AppendError::Undone(e) | AppendError::Torn(e) => e,
        }
    }
}
