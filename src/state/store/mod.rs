//! Reading and writing the files of one state directory: the snapshot
//! (`dynamic_ports.json`), replaced atomically, and the journal after it.
//! Start = snapshot + journal ([`Store::recover`]).

use super::files::Dir;
use super::journal::{self, Damaged, Fit, JOURNAL_FILE};
use super::{MAX_STATE_BYTES, STATE_FILE, StateFile};
use crate::ports::PortRange;
use serde::Serialize;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// What loading the snapshot found on disk.
#[derive(Debug, PartialEq)]
pub enum Loaded {
    /// No state file yet.
    Missing,
    Found(StateFile),
    /// The file did not parse; it was renamed to this path and kept.
    Corrupt {
        kept_as: PathBuf,
        reason: String,
    },
}

/// What the journal added at start.
#[derive(Debug, PartialEq)]
pub enum JournalLoad {
    /// There was none.
    Missing,
    /// It was read: how it fits the snapshot, how many changes it gave and
    /// the torn record dropped from its end (offset, bytes), if any.
    Read {
        fit: Fit,
        changes: usize,
        torn: Option<(usize, usize)>,
    },
    /// It was damaged before its tail (or too large): renamed to `kept_as`
    /// and not used.
    Damaged { kept_as: PathBuf, damage: Damaged },
}

/// The state a server starts from: the snapshot with the journal applied.
#[derive(Debug, PartialEq)]
pub struct Recovered {
    /// The snapshot as loaded, then with the journal's changes applied; a
    /// journal without a snapshot gives `Found` too.
    pub snapshot: Loaded,
    pub journal: JournalLoad,
}

/// A new, empty file beside the state file, for the next snapshot.
#[derive(Debug)]
pub struct Temp {
    tmp: String,
    file: File,
}

/// A snapshot written beside the state file, not yet in its place.
#[derive(Debug)]
pub struct Written {
    tmp: String,
    file: File,
    /// The snapshot's identity ([`journal::snapshot_id`]).
    pub id: u64,
}

/// Reads and writes the files of one state directory, each through the
/// directory's descriptor.
#[derive(Clone, Debug)]
pub struct Store {
    dir: Dir,
    path: PathBuf,
}

impl Store {
    pub fn new(dir: &Dir) -> Store {
        Store {
            dir: dir.clone(),
            path: dir.join(STATE_FILE),
        }
    }

    /// The store of the directory at `path` as it is now, unchecked: for
    /// tests and tools that read a state.
    pub fn open(path: &Path) -> io::Result<Store> {
        Ok(Store::new(&Dir::open(path)?))
    }

    /// The state file, as a path to show.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The journal, as a path to show.
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    /// Loads the state file. One that does not parse, or is over
    /// [`MAX_STATE_BYTES`], is renamed to
    /// `dynamic_ports.json.corrupt-<unix seconds>` and never overwritten.
    /// Anything but a regular file there is an error: never followed, read
    /// nor waited on.
    pub fn load(&self) -> io::Result<Loaded> {
        Ok(self.load_with_id(StateFile::parse)?.0)
    }

    /// [`Store::load`] with `parse`, and the loaded snapshot's identity.
    fn load_with_id(
        &self,
        parse: fn(&[u8]) -> Result<StateFile, String>,
    ) -> io::Result<(Loaded, Option<u64>)> {
        let parsed = match read(&self.dir, STATE_FILE)? {
            None => return Ok((Loaded::Missing, None)),
            Some(Ok(bytes)) => parse(&bytes).map(|s| (s, journal::snapshot_id(&bytes))),
            Some(Err(too_big)) => Err(too_big),
        };
        match parsed {
            Ok((state, id)) => Ok((Loaded::Found(state), Some(id))),
            Err(reason) => {
                let kept_as = self.keep_aside(STATE_FILE)?;
                Ok((Loaded::Corrupt { kept_as, reason }, None))
            }
        }
    }

    /// Loads the snapshot (without its `ports` map: see
    /// [`StateFile::parse_for_start`]) and applies the journal to it. A torn
    /// last record is dropped; a journal damaged before its tail is renamed
    /// to `dynamic_ports.journal.corrupt-<unix seconds>` and the snapshot
    /// used alone; a journal without a snapshot applies to an empty state
    /// of `range`. Nothing is written: the caller saves what it starts from.
    pub fn recover(&self, range: PortRange) -> io::Result<Recovered> {
        let (mut snapshot, id) = self.load_with_id(StateFile::parse_for_start)?;
        let bytes = match read(&self.dir, JOURNAL_FILE)? {
            None => {
                let journal = JournalLoad::Missing;
                return Ok(Recovered { snapshot, journal });
            }
            Some(Ok(bytes)) => bytes,
            Some(Err(why)) => {
                let damage = Damaged { at: 0, why };
                let kept_as = self.keep_aside(JOURNAL_FILE)?;
                let journal = JournalLoad::Damaged { kept_as, damage };
                return Ok(Recovered { snapshot, journal });
            }
        };
        let journal = match journal::read(&bytes, id) {
            Ok(replay) => {
                let changes = replay.changes.len();
                if id.is_none() && changes > 0 {
                    snapshot =
                        Loaded::Found(StateFile::empty(range, &crate::util::time::now_rfc3339()));
                }
                if let Loaded::Found(state) = &mut snapshot {
                    journal::apply(state, replay.changes);
                }
                let (fit, torn) = (replay.fit, replay.torn);
                JournalLoad::Read { fit, changes, torn }
            }
            Err(damage) => {
                let kept_as = self.keep_aside(JOURNAL_FILE)?;
                JournalLoad::Damaged { kept_as, damage }
            }
        };
        Ok(Recovered { snapshot, journal })
    }

    /// What a server started now would start from, read without changing
    /// anything: for tests and tools. A corrupt snapshot or a damaged
    /// journal is an error.
    pub fn durable(&self) -> Result<Option<StateFile>, String> {
        let shown = |path: &Path, e: String| format!("{}: {e}", path.display());
        let snapshot = read(&self.dir, STATE_FILE).map_err(|e| shown(&self.path, e.to_string()))?;
        let (mut state, id) = match snapshot {
            None => (None, None),
            Some(bytes) => {
                let bytes = bytes.map_err(|e| shown(&self.path, e))?;
                let state = StateFile::parse(&bytes).map_err(|e| shown(&self.path, e))?;
                (Some(state), Some(journal::snapshot_id(&bytes)))
            }
        };
        let journal_path = self.journal_path();
        let bytes =
            read(&self.dir, JOURNAL_FILE).map_err(|e| shown(&journal_path, e.to_string()))?;
        if let Some(bytes) = bytes {
            let bytes = bytes.map_err(|e| shown(&journal_path, e))?;
            let replay = journal::read(&bytes, id).map_err(|d| {
                shown(
                    &journal_path,
                    format!("damaged at byte {}: {}", d.at, d.why),
                )
            })?;
            if state.is_none() && !replay.changes.is_empty() {
                let range = PortRange {
                    start: 1,
                    end: 65535,
                };
                state = Some(StateFile::empty(range, &crate::util::time::now_rfc3339()));
            }
            if let Some(state) = &mut state {
                journal::apply(state, replay.changes);
            }
        }
        Ok(state)
    }

    /// Writes `state` as a new snapshot beside the state file: [`Store::temp`]
    /// then [`Store::write`].
    pub fn write_temp(&self, state: &impl Serialize) -> io::Result<Written> {
        self.write(self.temp()?, state)
    }

    /// Creates the file the next snapshot is written into: a temporary file
    /// of a name no one can guess. Its open may wait (on a security module,
    /// say): it is made before the state is locked for writing.
    pub fn temp(&self) -> io::Result<Temp> {
        let (tmp, file) = self.dir.create_temp(STATE_FILE)?;
        Ok(Temp { tmp, file })
    }

    /// Streams `state` into `temp` as pretty-printed JSON (no copy of it in
    /// memory). Not synced yet: see [`Store::sync`].
    pub fn write(&self, temp: Temp, state: &impl Serialize) -> io::Result<Written> {
        let Temp { tmp, file } = temp;
        match write_json(&file, state) {
            Ok(id) => Ok(Written { tmp, file, id }),
            Err(e) => {
                let _ = self.dir.remove(&tmp);
                Err(e)
            }
        }
    }

    /// Syncs a written snapshot to the disk; on failure it is removed.
    pub fn sync(&self, written: &Written) -> io::Result<()> {
        written.file.sync_all().inspect_err(|_| {
            let _ = self.dir.remove(&written.tmp);
        })
    }

    /// Puts a written snapshot in the state file's place: sync (at once when
    /// [`Store::sync`] did it), rename, then sync of the directory. On
    /// failure the snapshot is removed.
    pub fn install(&self, written: &Written) -> io::Result<()> {
        self.sync(written)?;
        if let Err(e) = self.dir.rename(&written.tmp, STATE_FILE) {
            let _ = self.dir.remove(&written.tmp);
            return Err(e);
        }
        self.dir.sync()
    }

    /// Drops a written snapshot that will not be installed.
    pub fn discard(&self, written: Written) {
        let _ = self.dir.remove(&written.tmp);
    }

    /// Replaces the state file atomically with `state`; returns its identity.
    pub fn save(&self, state: &impl Serialize) -> io::Result<u64> {
        let written = self.write_temp(state)?;
        self.install(&written)?;
        Ok(written.id)
    }

    /// Removes the temporary files a server that was killed left behind
    /// (`.dynamic_ports.json.tmp-…`, `.dynamic_ports.journal.tmp-…`), which
    /// no one else writes to: called at start, under the lock. Returns how
    /// many there were.
    pub fn remove_stale_temps(&self) -> io::Result<usize> {
        let prefixes = [STATE_FILE, JOURNAL_FILE].map(|name| format!(".{name}.tmp-"));
        let mut removed = 0;
        for name in self.dir.names()? {
            let ours = name.to_str().is_some_and(|name| {
                prefixes.iter().any(|p| {
                    name.strip_prefix(p.as_str())
                        .is_some_and(|r| r.len() == 16 && r.bytes().all(|b| b.is_ascii_hexdigit()))
                })
            });
            // Unlinking never follows a link, and a directory is left alone.
            let name = name.to_string_lossy();
            if ours && self.dir.remove(&name).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Renames `name` to `NAME.corrupt-<unix seconds>` in the directory,
    /// never over anything already there.
    fn keep_aside(&self, name: &str) -> io::Result<PathBuf> {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let base = format!("{name}.corrupt-{secs}");
        let mut kept_as = base.clone();
        let mut n = 1;
        // A dangling link counts as taken too: rename would replace it.
        while self.dir.lstat(&kept_as).is_ok() {
            kept_as = format!("{base}.{n}");
            n += 1;
        }
        self.dir.rename(name, &kept_as)?;
        Ok(self.dir.join(&kept_as))
    }
}

/// A file of the directory: `None` when it is not there, `Err` with the
/// reason when it is over [`MAX_STATE_BYTES`].
fn read(dir: &Dir, name: &str) -> io::Result<Option<Result<Vec<u8>, String>>> {
    match dir.read_capped(name, MAX_STATE_BYTES) {
        Ok(Some(bytes)) => Ok(Some(Ok(bytes))),
        Ok(None) => Ok(Some(Err(format!(
            "it is over {} MiB",
            MAX_STATE_BYTES >> 20
        )))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Streams `state` as pretty JSON and a newline into `file` and returns
/// the identity of what was written.
fn write_json(file: &File, state: &impl Serialize) -> io::Result<u64> {
    let mut out = BufWriter::with_capacity(64 << 10, Hashing::new(file));
    serde_json::to_writer_pretty(&mut out, state).map_err(io::Error::other)?;
    out.write_all(b"\n")?;
    Ok(out
        .into_inner()
        .map_err(|e| e.into_error())?
        .hasher
        .finish())
}

/// A writer that keeps the [`journal::snapshot_id`] of what passed.
struct Hashing<'a> {
    file: &'a File,
    hasher: journal::IdHasher,
}

impl<'a> Hashing<'a> {
    fn new(file: &'a File) -> Hashing<'a> {
        Hashing {
            file,
            hasher: journal::IdHasher::default(),
        }
    }
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut file = self.file;
        let n = file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
