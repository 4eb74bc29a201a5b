//! Rewriting the state file, the snapshot the journal continues.
//!
//! A checkpoint writes the whole state while no change can be committed and
//! starts the journal over empty: at start, at every port change, at
//! shutdown, and after a failed commit. The periodic snapshot lets commits
//! go on: it writes the state as of change `cut` under the read lock (no
//! copy of the table), syncs it with no lock held, then appends a `next`
//! record naming it and `cut` to the journal, renames it into place, and
//! starts the journal over with the changes after `cut`. A crash between
//! the rename and the fresh journal leaves the old journal, whose `next`
//! record tells the changes the new snapshot lacks.

use super::{App, Disk, Held};
use crate::app::metrics::Metrics;
use crate::state::journal::{AppendError, Journal, Record};
use crossbeam_channel::Receiver;
use std::io;
use std::time::{Duration, Instant};

/// How far behind the journal the state file may fall: about a second.
pub const SNAPSHOT_DELAY: Duration = Duration::from_secs(1);
/// A journal this long is folded into a snapshot at once, however young.
pub const JOURNAL_BOUND: u64 = 4 << 20;

impl App {
    /// Writes the whole state and starts the journal over. The caller holds
    /// the snapshot and disk locks, so no change is committed meanwhile;
    /// checkpoints are rare, so this one also keeps the table's read lock
    /// while it opens and syncs its file.
    pub(super) fn checkpoint(&self, disk: &mut Disk) -> io::Result<()> {
        let held = self.held_read();
        self.checkpoint_with(disk, &held)
    }

    /// [`App::checkpoint`] of `held`, which the caller has locked. Every
    /// change up to `held.seq` is then durable, those still queued
    /// included. When the fresh journal cannot be made, the state file is
    /// still written: the next commit tries again.
    pub(super) fn checkpoint_with(&self, disk: &mut Disk, held: &Held) -> io::Result<()> {
        Metrics::add(&self.metrics.state_writes, 1);
        let installed = self
            .store
            .write_temp(&held.state())
            .and_then(|written| self.store.install(&written).map(|()| written.id));
        let id = installed.inspect_err(|e| self.write_failed(e))?;
        disk.durable = disk.durable.max(held.seq);
        disk.behind_since = None;
        disk.journal = match Journal::create(self.store.dir(), id, &[]) {
            Ok(journal) => Some(journal),
            Err(e) => {
                self.write_failed(&e);
                None
            }
        };
        Ok(())
    }

    /// Counts and logs a failed write of the state directory.
    pub(super) fn write_failed(&self, e: &io::Error) {
        Metrics::add(&self.metrics.state_write_failures, 1);
        log::warn!("cannot write {}: {e}", self.store.dir().path().display());
    }

    /// Brings the state file up to the journal while commits go on: the
    /// refresh thread's work. When the journal cannot be used, it is a
    /// checkpoint instead.
    pub fn snapshot(&self) -> io::Result<()> {
        let _snapshots = self.snapshots();
        let failures = {
            let mut disk = self.disk();
            if disk.journal.is_none() {
                return self.checkpoint(&mut disk);
            }
            disk.failures
        };
        Metrics::add(&self.metrics.state_writes, 1);
        let began = Instant::now();
        let temp = self.store.temp().inspect_err(|e| self.write_failed(e))?;
        let (written, cut, locked) = {
            let held = self.held_read();
            let locked = Instant::now();
            let written = self.store.write(temp, &held.state());
            (written, held.seq, locked.elapsed())
        };
        let written = written
            .and_then(|w| self.store.sync(&w).map(|()| w))
            .inspect_err(|e| self.write_failed(e))?;
        let mut disk = self.disk();
        if disk.failures != failures || disk.journal.is_none() {
            // A commit failed since: the snapshot may hold what it undid.
            self.store.discard(written);
            return Ok(());
        }
        let mut marker = Vec::new();
        Record::Next {
            snapshot: written.id,
            cut,
        }
        .encode(&mut marker);
        if let Some(Err(e)) = disk.journal.as_mut().map(|j| j.append(&marker, None)) {
            self.store.discard(written);
            if matches!(e, AppendError::Torn(_)) {
                disk.journal = None;
            }
            let e = e.into_io();
            self.write_failed(&e);
            return Err(e);
        }
        self.store
            .install(&written)
            .inspect_err(|e| self.write_failed(e))?;
        disk.durable = disk.durable.max(cut);
        self.start_journal_over(&mut disk, written.id, cut);
        log::debug!(
            "state file written up to change {cut} in {} ms, {} ms of it under the read lock",
            crate::util::time::Decimal::ms(began.elapsed(), 1),
            crate::util::time::Decimal::ms(locked, 1)
        );
        Ok(())
    }

    /// After the snapshot `id` taken at change `cut` replaced the state
    /// file: a fresh journal holding the changes after `cut`. When it cannot
    /// be made, the old journal goes on; its `next` record keeps it right.
    fn start_journal_over(&self, disk: &mut Disk, id: u64, cut: u64) {
        let Some(old) = &disk.journal else {
            return;
        };
        let fresh = old
            .frames_after(cut)
            .and_then(|tail| Journal::create(self.store.dir(), id, &tail));
        match fresh {
            Ok(journal) => {
                disk.behind_since = (!journal.is_empty()).then(Instant::now);
                disk.journal = Some(journal);
            }
            Err(e) => self.write_failed(&e),
        }
    }

    /// When the state file should next be brought up to the journal: a
    /// second after the first change it lacks, at once when the journal
    /// grew past its bound, never when it lacks nothing.
    pub fn snapshot_due(&self) -> Option<Instant> {
        let disk = self.disk();
        let since = disk.behind_since?;
        let full = disk
            .journal
            .as_ref()
            .is_some_and(|j| j.len() > JOURNAL_BOUND);
        Some(if full { since } else { since + SNAPSHOT_DELAY })
    }

    /// A channel that hears when the state file falls behind the journal
    /// (or the journal outgrows its bound): the refresh thread's.
    pub fn watch_snapshots(&self) -> Receiver<()> {
        let (wake, woken) = crossbeam_channel::bounded(1);
        // Set once; a second call gets a channel nobody writes to.
        let _ = self.behind.set(wake);
        woken
    }

    /// Tells the refresh thread to look at [`App::snapshot_due`] again.
    pub(super) fn wake_snapshots(&self) {
        if let Some(wake) = self.behind.get() {
            let _ = wake.try_send(());
        }
    }
}
