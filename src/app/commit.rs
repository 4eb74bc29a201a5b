//! The commit queue and the thread that empties it: lease changes, queued
//! in the order they were made, are appended to the journal together, one
//! write and one fsync for all that queued up meanwhile (group commit), and
//! answered only then. The thread does nothing else, so a slow scan or a
//! snapshot being written never delays an answer.

use super::events::Event;
use super::{App, AppError, Disk, Done, Held, Undo};
use crate::app::gather::Gather;
use crate::app::metrics::Metrics;
use crate::state::journal::Record;
use crossbeam_channel::{Receiver, Sender, bounded, select};
use std::io;
use std::sync::{Arc, MutexGuard, RwLockWriteGuard};
use std::thread::{self, JoinHandle};
use std::time::Instant;

/// A change waiting in the commit queue to be made durable.
pub struct Waiter {
    seq: u64,
    /// What the journal gets: the change, after the ends of the leases
    /// that were due when it was made.
    records: Vec<Record>,
    /// Puts the change back when the commit fails; the ends stay.
    undo: Option<Undo>,
    done: Option<Done<()>>,
    /// What the event stream is told once the change is durable.
    events: Vec<Event>,
}

impl Waiter {
    pub(super) fn new(
        seq: u64,
        records: Vec<Record>,
        undo: Option<Undo>,
        done: Option<Done<()>>,
    ) -> Waiter {
        Waiter {
            seq,
            records,
            undo,
            done,
            events: Vec::new(),
        }
    }

    /// The events of the change, told once it is durable.
    pub(super) fn telling(mut self, events: Vec<Event>) -> Waiter {
        self.events = events;
        self
    }
}

/// Whom to tell what, once a batch is durable or failed.
type Told = Vec<(Done<()>, Result<(), AppError>)>;

impl App {
    /// Opens the commit queue: from now on a lease change does not hold its
    /// worker while it is written, and whoever reads the queue (the
    /// [`Committer`]) writes it with [`App::commit_queued`].
    pub fn open_commit_queue(&self) -> Receiver<Waiter> {
        let (queue, waiting) = crossbeam_channel::unbounded();
        // Set once; a second call gets a queue nobody writes to.
        let _ = self.commits.set(queue);
        waiting
    }

    /// Queues a change made under `held`, which is still locked, so that
    /// changes queue in the order they were made; without a commit queue,
    /// commits it here once the lock is released.
    pub(super) fn enqueue(&self, held: RwLockWriteGuard<'_, Held>, waiter: Waiter) {
        let unsent = match self.commits.get() {
            Some(queue) => match queue.send(waiter) {
                Ok(()) => return,
                Err(unsent) => unsent.0,
            },
            None => waiter,
        };
        drop(held);
        for (tell, outcome) in self.commit_batch(vec![unsent]) {
            tell(outcome);
        }
    }

    /// Commits `first` and every change queued behind it with one write,
    /// after waiting briefly for the changes `gather` expects (see
    /// [`crate::app::gather`]), then tells `gather` how the write went.
    pub fn commit_queued(&self, first: Waiter, queue: &Receiver<Waiter>, gather: &mut Gather) {
        let mut batch = vec![first];
        loop {
            batch.extend(queue.try_iter());
            if gather.ready(batch.len(), Instant::now()) {
                break;
            }
            match queue.recv_deadline(gather.until()) {
                Ok(waiter) => batch.push(waiter),
                Err(_) => break,
            }
        }
        let answered = batch.len();
        let started = Instant::now();
        let told = self.commit_batch(batch);
        // Measured before the answers go out: a client answered below may
        // be back in the queue before this thread looks again.
        *gather = Gather::wrote(answered, queue.len(), started, Instant::now());
        for (tell, outcome) in told {
            tell(outcome);
        }
    }

    /// Makes every change of `batch` durable with one journal append (or a
    /// checkpoint, when the journal cannot be used); when that fails, every
    /// change of it no earlier write carried is undone. Returns whom to
    /// tell what.
    fn commit_batch(&self, batch: Vec<Waiter>) -> Told {
        let (_snapshots, mut disk) = self.disk_to_commit();
        let outcome = self.make_durable(&mut disk, &batch);
        let mut told = Vec::with_capacity(batch.len());
        match outcome {
            Ok(()) => {
                // Under the disk lock, so the kernel's list follows the
                // commits in their order.
                self.reserve_kernel_ports(false);
                self.tell_status();
                for waiter in &batch {
                    self.publish(&waiter.events);
                }
                told.extend(batch.into_iter().filter_map(|w| Some((w.done?, Ok(())))));
            }
            Err(e) => {
                disk.failures += 1;
                let mut held = self.held_write();
                for waiter in batch.into_iter().rev() {
                    let outcome = match waiter.seq <= disk.durable {
                        true => {
                            self.publish(&waiter.events);
                            Ok(())
                        }
                        false => {
                            waiter
                                .undo
                                .into_iter()
                                .for_each(|undo| undo(&mut held.table));
                            Err(AppError::storage(&e))
                        }
                    };
                    told.extend(waiter.done.map(|tell| (tell, outcome)));
                }
                self.bump(&mut held);
            }
        }
        told
    }

    /// The disk lock, with the snapshot lock before it when the journal
    /// cannot be used and the commit must write a whole snapshot.
    fn disk_to_commit(&self) -> (Option<MutexGuard<'_, ()>>, MutexGuard<'_, Disk>) {
        let disk = self.disk();
        if disk.journal.is_some() {
            return (None, disk);
        }
        drop(disk);
        let snapshots = self.snapshots();
        (Some(snapshots), self.disk())
    }

    /// Appends the records of the changes of `batch` not yet durable, or
    /// writes a checkpoint when the journal cannot be used.
    fn make_durable(&self, disk: &mut Disk, batch: &[Waiter]) -> io::Result<()> {
        let newest = batch.iter().map(|w| w.seq).max().unwrap_or(0);
        let pending = || batch.iter().filter(|w| w.seq > disk.durable);
        let Some(first) = pending().map(|w| w.seq).min() else {
            return Ok(());
        };
        let mut frames = Vec::new();
        for record in pending().flat_map(|w| &w.records) {
            record.encode(&mut frames);
        }
        let Some(journal) = disk.journal.as_mut() else {
            return self.checkpoint(disk);
        };
        Metrics::add(&self.metrics.state_writes, 1);
        if let Err(e) = journal.append(&frames, Some(first)) {
            // Whether or not the journal kept part of it, the ends of the
            // batch stay made in memory: only a whole snapshot is right now.
            disk.journal = None;
            let e = e.into_io();
            self.write_failed(&e);
            return Err(e);
        }
        disk.durable = newest;
        if disk.behind_since.is_none() {
            disk.behind_since = Some(Instant::now());
            self.wake_snapshots();
        } else if journal.len() > super::snapshot::JOURNAL_BOUND {
            self.wake_snapshots();
        }
        Ok(())
    }
}

/// The commit thread: writes what arrives in the commit queue as it comes.
pub struct Committer {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Committer {
    /// Starts the thread that commits what arrives on `commits` (see
    /// [`App::open_commit_queue`]).
    pub fn spawn(app: Arc<App>, commits: Receiver<Waiter>) -> io::Result<Committer> {
        let (stop, stopped) = bounded::<()>(1);
        let thread = thread::Builder::new()
            .name("commit".to_string())
            .spawn(move || {
                let mut gather = Gather::new(Instant::now());
                loop {
                    select! {
                        recv(stopped) -> _ => {
                            // What the last requests queued, written at once.
                            if let Ok(first) = commits.try_recv() {
                                let mut at_once = Gather::new(Instant::now());
                                app.commit_queued(first, &commits, &mut at_once);
                            }
                            return;
                        }
                        recv(commits) -> waiter => match waiter {
                            Ok(first) => app.commit_queued(first, &commits, &mut gather),
                            Err(_) => return,
                        },
                    }
                }
            })?;
        Ok(Committer { stop, thread })
    }

    /// Ends the thread once the queue is written, and waits for it.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
